"""Generate the embedded "digits on photos" dataset (see mmkd/datasets/digits.py).

Example (the configs under configs/_base_/datasets/digits_*.py read data/digits)::

    python tools/make_digits_dataset.py --out data/digits
"""
import argparse

from mmkd.datasets import make_digits_dataset


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Paste scikit-learn digits on crops of scikit-learn sample photos and '
        'write COCO annotations and semantic label maps.')
    parser.add_argument('--out', required=True, help='dataset root (the configs use data/digits)')
    parser.add_argument('--train', type=int, default=1000, help='training images')
    parser.add_argument('--val', type=int, default=200, help='validation images')
    parser.add_argument('--size', type=int, default=128, help='image side in pixels')
    parser.add_argument('--seed', type=int, default=0, help='same seed, same bytes')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    summary = make_digits_dataset(args.out, num_train=args.train, num_val=args.val,
                                  size=args.size, seed=args.seed)
    splits = ', '.join(f'{split}: {s["images"]} images / {s["instances"]} digits'
                       for split, s in summary['splits'].items())
    print(f'digits dataset ({args.size} px, seed {args.seed}) in {args.out}: {splits}')


if __name__ == '__main__':
    main()
