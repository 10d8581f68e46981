"""Export the student of a distillation checkpoint for mmdet's / mmseg's own APIs.

    python tools/export_student.py CKPT OUT [--config DISTILL_CONFIG]

Writes OUT (the student's weights: no teacher, no connectors) and, next to it, OUT's name with
`.py`: the student's runnable config, so that e.g. `mmdet.apis.init_detector(OUT.py, OUT)` or
`mmseg.apis.init_model(OUT.py, OUT)` loads it with no missing or unexpected keys.
"""
import argparse

from mmkd.engine.export import export_student


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('checkpoint', help='checkpoint saved while distilling')
    parser.add_argument('out', help='output student checkpoint (.pth)')
    parser.add_argument('--config', help='distillation config (default: the one stored in '
                        'the checkpoint)')
    args = parser.parse_args(argv)
    ckpt, cfg = export_student(args.checkpoint, args.out, args.config)
    print(f'student checkpoint: {ckpt}')
    print(f'student config:     {cfg or "(none: the checkpoint stores no config)"}')


if __name__ == '__main__':
    main()
