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
import copy
import os.path as osp
import sys
from typing import Optional, Tuple

try:
    import mmkd  # noqa: F401
except ImportError:
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
    import mmkd  # noqa: F401

import torch
from mmengine.config import Config, DictAction
from mmengine.registry import MODELS, init_default_scope
from mmengine.runner import Runner, load_checkpoint

from mmkd.datasets.significance import (DEFINITIONS, default_significance_file,
                                        detection_significance, image_key,
                                        segmentation_significance, write_significance_file)
from mmkd.engine.runtime import load_config
from mmkd.models.distillers.model_config import resolve_model_cfg
from mmkd.version import __version__

HISTOGRAM_BINS = 5


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
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, e.g. '
                        'train_dataloader.dataset.data_root=data/other/')
    return parser.parse_args(argv)


def teacher_of(cfg: Config, checkpoint: Optional[str]) -> Tuple[dict, str]:
    """(teacher model config with its scope, checkpoint) of a teacher or distillation config."""
    if cfg.model.get('type') in ('Distiller', 'mmkd.Distiller'):
        model_cfg, _ = resolve_model_cfg(cfg.model.teacher, 'teacher')
        checkpoint = checkpoint or cfg.model.get('teacher_ckpt')
    else:
        model_cfg = copy.deepcopy(cfg.model)
        if '_scope_' not in model_cfg and '.' not in model_cfg['type']:
            model_cfg['_scope_'] = cfg.get('default_scope')
    if not checkpoint:
        raise ValueError('Give the teacher CHECKPOINT (a significance measured with random '
                         'weights means nothing).')
    return model_cfg, checkpoint


def dataset_of(cfg: Config, split: str) -> Tuple[dict, Optional[str]]:
    """(the split's dataset config with the test pipeline, the significance_file a
    SignificanceSubset names), looking through dataset wrappers."""
    loader = cfg.get(f'{split}_dataloader')
    if not loader:
        raise KeyError(f'The config has no {split}_dataloader.')
    dataset = copy.deepcopy(loader.dataset)
    significance_file = None
    while 'dataset' in dataset:
        inner = dataset.dataset
        if str(dataset.get('type', '')).endswith('SignificanceSubset'):
            significance_file = dataset.get('significance_file')
            if dataset.get('data_root'):
                inner.data_root = dataset.data_root
        dataset = inner
    if 'datasets' in dataset:
        raise ValueError(f'{split}_dataloader concatenates datasets: measure each one with its '
                         'own config.')
    test_loader = cfg.get('test_dataloader') or cfg.get('val_dataloader')
    if not test_loader:
        raise KeyError('The config has no test_dataloader / val_dataloader: its test pipeline '
                       'reads the images.')
    pipeline = copy.deepcopy(test_loader.dataset.pipeline)
    check_test_pipeline(pipeline)
    dataset.pipeline = pipeline
    return dataset, significance_file


def check_test_pipeline(pipeline) -> None:
    """The ground truth must be loaded, after any resizing (so it keeps the original size,
    where mmdet / mmseg return their predictions)."""
    types = [str(t.get('type', '')).split('.')[-1] for t in pipeline]
    if 'LoadAnnotations' not in types:
        raise ValueError(f'The test pipeline {types} does not load annotations: add '
                         "dict(type='LoadAnnotations', ...) after Resize.")
    resizes = [i for i, t in enumerate(types) if 'Resize' in t]
    if resizes and types.index('LoadAnnotations') < max(resizes):
        raise ValueError(f'The test pipeline {types} loads annotations before resizing: put '
                         'LoadAnnotations after Resize (as mmdet / mmseg test pipelines do).')


def measure(model, dataloader, score_thr: float, iou_thr: float) -> Tuple[dict, str]:
    """``({image key: significance}, task)`` over the dataloader, in its order."""
    dataset = dataloader.dataset
    data_root = getattr(dataset, 'data_root', None)
    ignore_index = getattr(dataset, 'ignore_index', 255)
    images, task = {}, None
    with torch.no_grad():
        for batch in dataloader:
            for sample in model.test_step(batch):
                if 'pred_instances' in sample:
                    task = 'detection'
                    gt, pred = sample.gt_instances, sample.pred_instances
                    value = detection_significance(
                        _tensor(gt.bboxes).cpu(), gt.labels.cpu(), _tensor(pred.bboxes).cpu(),
                        pred.labels.cpu(), pred.scores.cpu(), score_thr, iou_thr)
                elif 'seg_logits' in sample:
                    task = 'segmentation'
                    value = segmentation_significance(sample.seg_logits.data.cpu(),
                                                      sample.gt_sem_seg.data.cpu(), score_thr,
                                                      ignore_index)
                else:
                    raise TypeError('The teacher returned neither pred_instances (mmdet) nor '
                                    'seg_logits (mmseg).')
                images[image_key(sample.img_path, data_root)] = value
    return images, task


def histogram(values) -> list:
    """Counts in HISTOGRAM_BINS equal bins over [0, 1] (the last one closed)."""
    counts = [0] * HISTOGRAM_BINS
    for value in values:
        counts[min(int(value * HISTOGRAM_BINS), HISTOGRAM_BINS - 1)] += 1
    return counts


def summary(images: dict, task: str, path: str) -> str:
    values = list(images.values())
    mean = sum(values) / max(len(values), 1)
    lines = [f'{task} significance of {len(values)} images: mean {mean:.3f}, '
             f'{sum(v == 0 for v in values)} at 0, {sum(v == 1 for v in values)} at 1']
    counts = histogram(values)
    for i, count in enumerate(counts):
        low, high = i / HISTOGRAM_BINS, (i + 1) / HISTOGRAM_BINS
        bracket = ']' if i == HISTOGRAM_BINS - 1 else ')'
        bar = '#' * round(40 * count / max(max(counts), 1))
        lines.append(f'  [{low:.1f}, {high:.1f}{bracket} {count:6d} {bar}')
    lines.append(f'wrote {path}')
    return '\n'.join(lines)


def main(argv=None) -> str:
    """Measure, write and summarise; returns the path written."""
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model_cfg, checkpoint = teacher_of(cfg, args.checkpoint)
    dataset_cfg, subset_file = dataset_of(cfg, args.split)

    model = MODELS.build(model_cfg)
    load_checkpoint(model, checkpoint, map_location='cpu', strict=True, logger='silent')
    model.to(args.device).eval()
    dataloader = Runner.build_dataloader(dict(
        batch_size=args.batch_size, num_workers=0, persistent_workers=False,
        sampler=dict(type='DefaultSampler', shuffle=False), dataset=dataset_cfg))
    images, task = measure(model, dataloader, args.score_thr, args.iou_thr)
    if task is None:
        raise ValueError(f'The {args.split} dataset is empty.')

    path = args.out or subset_file or default_significance_file(dataloader.dataset)
    values = list(images.values())
    meta = dict(tool='tools/significance.py', mmkd_version=__version__, task=task,
                definition=DEFINITIONS[task], config=args.config, checkpoint=checkpoint,
                split=args.split, score_thr=args.score_thr, num_images=len(values),
                mean_significance=round(sum(values) / len(values), 6))
    if task == 'detection':
        meta['iou_thr'] = args.iou_thr
    write_significance_file(path, images, meta)
    print(summary(images, task, path))
    return path


def _tensor(boxes):
    """mmdet boxes may be a ``HorizontalBoxes``; its ``.tensor`` is (n, 4) x1 y1 x2 y2."""
    return getattr(boxes, 'tensor', boxes)


if __name__ == '__main__':
    main()
