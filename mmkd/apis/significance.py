"""Each training image's significance, measured with the teacher, for self-regulated
distillation (:mod:`mmkd.datasets.significance` defines it and reads the file back).

:func:`write_teacher_significance` runs the teacher of a teacher or distillation config on a
split's whole dataset (wrappers such as ``mmkd.SignificanceSubset`` looked through), through
the config's test pipeline, and writes ``{image: significance}`` where the subset will look
for it. ``tools/significance.py`` is its command line; the accuracy benchmark calls it for the
``selfreg`` configs' teachers.
"""
import copy
from typing import Optional, Tuple

import torch
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope
from mmengine.runner import Runner, load_checkpoint

from mmkd.datasets.significance import (DEFINITIONS, default_significance_file,
                                        detection_significance, image_key,
                                        segmentation_significance, write_significance_file)
from mmkd.engine.runtime import load_config
from mmkd.models.distillers.model_config import resolve_model_cfg
from mmkd.models.losses.utils import box_tensor, gt_boxes
from mmkd.version import __version__

HISTOGRAM_BINS = 5


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
                        gt_boxes(sample, 'significance').cpu(), gt.labels.cpu(),
                        box_tensor(pred.bboxes).cpu(),
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
    """What is printed: the images' count, mean and histogram, and the file written."""
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


def write_teacher_significance(config: str, checkpoint: Optional[str] = None,
                               out: Optional[str] = None, score_thr: float = 0.3,
                               iou_thr: float = 0.5, split: str = 'train', batch_size: int = 1,
                               device: Optional[str] = None, cfg_options: Optional[dict] = None,
                               log=print) -> str:
    """Measure, write and summarise; returns the path written.

    Args:
        config (str): the teacher's config, or a distillation config (its ``model.teacher``).
        checkpoint (str, optional): the teacher's weights; a distillation config defaults to
            its ``model.teacher_ckpt``.
        out (str, optional): the JSON to write; defaults to the ``significance_file`` of the
            config's ``SignificanceSubset``, else a file next to the annotations.
        score_thr (float): teacher score (det) / max softmax probability (seg) below which an
            object / pixel counts as not confidently predicted.
        iou_thr (float): IoU at which a teacher box finds a ground-truth box (det).
        split (str): whose dataloader dataset to measure.
        batch_size (int): images per teacher forward.
        device (str, optional): defaults to CUDA where available, else the CPU.
        cfg_options (dict, optional): config overrides, as ``--cfg-options`` gives them.
        log: receives the printed summary.
    """
    cfg = load_config(config, cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model_cfg, checkpoint = teacher_of(cfg, checkpoint)
    dataset_cfg, subset_file = dataset_of(cfg, split)

    model = MODELS.build(model_cfg)
    load_checkpoint(model, checkpoint, map_location='cpu', strict=True, logger='silent')
    model.to(device or ('cuda' if torch.cuda.is_available() else 'cpu')).eval()
    dataloader = Runner.build_dataloader(dict(
        batch_size=batch_size, num_workers=0, persistent_workers=False,
        sampler=dict(type='DefaultSampler', shuffle=False), dataset=dataset_cfg))
    images, task = measure(model, dataloader, score_thr, iou_thr)
    if task is None:
        raise ValueError(f'The {split} dataset is empty.')

    path = out or subset_file or default_significance_file(dataloader.dataset)
    values = list(images.values())
    meta = dict(tool='tools/significance.py', mmkd_version=__version__, task=task,
                definition=DEFINITIONS[task], config=config, checkpoint=checkpoint,
                split=split, score_thr=score_thr, num_images=len(values),
                mean_significance=round(sum(values) / len(values), 6))
    if task == 'detection':
        meta['iou_thr'] = iou_thr
    write_significance_file(path, images, meta)
    log(summary(images, task, path))
    return path


def add_teacher_tool_arguments(parser) -> None:
    """The options every tool that runs a teacher over a config's data shares (this one's and
    ``tools/maskd_tokens.py``): ``--device`` and ``--cfg-options``."""
    import torch
    from mmengine.config import DictAction
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, e.g. '
                        'train_dataloader.dataset.data_root=data/other/')
