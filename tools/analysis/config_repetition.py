"""The share of config code lines written in more than one file (default: configs/distill).

    python tools/analysis/config_repetition.py [FOLDER] [--top 10]

Prints the number of files and code lines (not blank, not comments), how many of those lines
another file also holds, and the lines held by the most files.
"""
import argparse
import os.path as osp

from mmkd.apis.config_repetition import config_repetition

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('folder', nargs='?', default=osp.join(REPO, 'configs', 'distill'))
    parser.add_argument('--top', type=int, default=10, help='how many common lines to list')
    args = parser.parse_args(argv)
    print(config_repetition(args.folder).summary(args.top))


if __name__ == '__main__':
    main()
