"""Measure every training image's significance with the teacher (self-regulated distillation).

    python tools/significance.py CONFIG [CHECKPOINT] [--out PATH] [--score-thr 0.3]
        [--iou-thr 0.5] [--split train] [--batch-size 1] [--device DEVICE] [--cfg-options k=v]

CONFIG is the teacher's own config (``configs/digits/retinanet_r18_digits.py``, a model-zoo
config) with its CHECKPOINT, or a distillation config: then its ``model.teacher`` runs, with
``model.teacher_ckpt`` unless CHECKPOINT is given. The images are those of the config's
``<split>_dataloader.dataset`` (its ``filter_cfg`` and ``indices`` apply; wrappers such as
``mmkd.SignificanceSubset`` and ``RepeatDataset`` are looked through, so the whole underlying
dataset is measured), read with the config's test pipeline (no augmentation), one image per
batch by default (mmdet's test setting: an image's result does not depend on its batch-mates).

Significance (see :mod:`mmkd.datasets.significance`): detection, the fraction of an image's
objects without a same-class teacher box of IoU >= ``--iou-thr`` and score >= ``--score-thr``
(the teacher's own ``test_cfg.score_thr`` drops boxes before, so thresholds below it have no
effect); segmentation, the fraction of labelled pixels the teacher misclassifies or predicts
with a max softmax probability < ``--score-thr``.

The JSON goes to ``--out``, else to the ``significance_file`` of the config's
``SignificanceSubset``, else next to the annotations (``<ann_file without .json>
.significance.json``) or, for folder datasets (mmseg), beside the image folder
(``<img dir>.significance.json``). The same teacher and dataset give the same bytes (no time
stamps; written atomically). A summary (images, mean, histogram) is printed.
"""
import argparse

from mmkd.apis.significance import add_teacher_tool_arguments, write_teacher_significance


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Write each training image's significance, measured with the teacher")
    parser.add_argument('config', help='teacher config, or a distillation config')
    parser.add_argument('checkpoint', nargs='?',
                        help="teacher checkpoint (default for a distillation config: its "
                        'model.teacher_ckpt)')
    parser.add_argument('--out', help='output JSON (default: next to the annotations)')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='teacher score (det) / max softmax probability (seg) below which '
                        'an object / pixel counts as not confidently predicted')
    parser.add_argument('--iou-thr', type=float, default=0.5,
                        help='IoU at which a teacher box finds a ground-truth box (det)')
    parser.add_argument('--split', default='train', choices=['train', 'val', 'test'],
                        help='whose dataloader dataset to measure')
    parser.add_argument('--batch-size', type=int, default=1)
    add_teacher_tool_arguments(parser)
    return parser.parse_args(argv)


def main(argv=None) -> str:
    """Measure, write and summarise; returns the path written."""
    args = parse_args(argv)
    return write_teacher_significance(args.config, args.checkpoint, args.out, args.score_thr,
                                      args.iou_thr, args.split, args.batch_size, args.device,
                                      args.cfg_options)


if __name__ == '__main__':
    main()
