"""A model-zoo distillation config cut down to a short run on the embedded digits data.

:func:`adapt_to_digits` takes the config ``tools/distill.py`` writes for two model-zoo configs
(the student's data, schedule and hooks; a Distiller of both models) and changes only what a
short compatibility run on a CPU needs, keeping the config's own transforms, hooks, EMA and
schedule shape. Everything is read from the config, nothing is per family:

* **data**: every dataloader reads the digits set (:mod:`mmkd.datasets.digits`) through the
  config's own pipelines and dataset wrappers (``MultiImageMixDataset`` stays, a
  ``RepeatDataset`` repeats once, a ``ConcatDataset`` keeps its first dataset): mmdet's
  ``CocoDataset`` with the classes ``'0'``..``'9'`` for detection,
  :class:`~mmkd.datasets.DigitsSegDataset` (11 classes, background included) for
  segmentation, whose label 0 is a class (``reduce_zero_label`` dropped from the pipeline);
  batch size ``batch_size``, no workers; the evaluators to match (``CocoMetric`` on the
  digits' COCO file, keeping the config's metrics; ``IoUMetric``); the test dataloader and
  evaluator are the validation's;
* **sizes**: every integer image size in the pipelines (also the pipelines of hooks and of
  test-time augmentation), the models' batch augments, fixed pad sizes and sliding-window
  crops is multiplied by ``size / reference`` (:func:`reference_size`), multiples of 32 staying
  multiples of 32; relative sizes (floats) are kept;
* **classes**: in both models' configs (the Distiller's ``student`` / ``teacher`` entries get
  ``cfg_options``: only what changed, so the written config stays readable), every
  ``num_classes`` / ``num_things_classes`` equal to the config's class count becomes the
  digits' (``num_stuff_classes`` becomes 0 on detectors), class-weight lists of that length
  (or one more: the no-object weight) are rebuilt for the new count (each class the mean
  weight, the no-object weight kept); pretrained weights are dropped (``pretrained=False``,
  every ``pretrained`` URL set to None);
* **schedule**: ``epochs`` epochs of ``ceil(num_train / batch_size)`` iterations (an
  iteration-based schedule: the same number of iterations, an "epoch" being that many),
  validation and a checkpoint every epoch; every parameter scheduler becomes iteration-based,
  its ``begin`` / ``end`` / ``T_max`` / ``milestones`` at the same fraction of the run (a
  scheduler counted in iterations inside an epoch-based schedule, a warm-up, ends by the end
  of the first epoch); mmengine's AMP wrapper, which needs CUDA, becomes mmkd's bfloat16 CPU
  wrapper on a machine without CUDA;
* **switch points**: ``YOLOXModeSwitchHook(num_last_epochs)``, ``switch_epoch`` (e.g.
  ``PipelineSwitchHook``) and ``train_cfg.dynamic_intervals`` fire at the start of the last
  epoch; ``EMAHook`` and every other hook are kept as they are.
"""
import copy
import math
import os.path as osp
from dataclasses import dataclass
from typing import Dict, Optional

import torch
from mmengine.config import Config, ConfigDict

from mmkd.datasets.digits import DIGIT_CLASSES, DIGIT_PALETTE, SEG_CLASSES
from mmkd.models.distillers.model_config import load_model_file

#: Keys of a transform (or batch augment) that hold an image size in pixels.
SIZE_KEYS = ('img_scale', 'scale', 'scales', 'crop_size', 'size', 'random_size_range', 'border')
#: Keys whose value is a list of transforms (or, for ``transforms``, of lists of them).
PIPELINE_KEYS = ('pipeline', 'switch_pipeline', 'transforms')
#: Keys of scheduler arguments counted in the scheduler's unit (epochs or iterations).
SCHEDULE_KEYS = ('begin', 'end', 'T_max')


@dataclass(frozen=True)
class ShortRun:
    """What the short run looks like.

    Args:
        data_root (str): The digits dataset (:func:`mmkd.datasets.make_digits_dataset`).
        task (str): ``'det'`` or ``'seg'``.
        size (int): The digits images' side; the config's reference size maps to it.
        num_train (int): Training images.
        batch_size (int): Images per batch, training and validation.
        epochs (int): Training epochs (an iteration-based schedule: ``epochs`` times
            :attr:`iters_per_epoch` iterations).
    """
    data_root: str
    task: str
    size: int
    num_train: int
    batch_size: int
    epochs: int

    @property
    def iters_per_epoch(self) -> int:
        return math.ceil(self.num_train / self.batch_size)

    @property
    def total_iters(self) -> int:
        return self.epochs * self.iters_per_epoch

    @property
    def num_classes(self) -> int:
        return len(SEG_CLASSES) if self.task == 'seg' else len(DIGIT_CLASSES)


def adapt_to_digits(cfg: Config, run: ShortRun, student_options: Optional[dict] = None,
                    teacher_options: Optional[dict] = None) -> Config:
    """Cut the distillation config ``cfg`` down to ``run`` in place (see the module docstring).

    Args:
        cfg (Config): A config written by ``tools/distill.py`` (a Distiller whose ``student``
            and ``teacher`` are ``dict(cfg_path=...)`` entries), loaded.
        run (ShortRun): The short run.
        student_options (dict, optional): ``cfg_options`` of the student's config applied
            before the adaptation (e.g. narrower layers for a fast test). Defaults to None.
        teacher_options (dict, optional): The same for the teacher. Defaults to None.

    Returns:
        Config: ``cfg``.
    """
    if run.epochs < 1:
        raise ValueError(f'epochs must be at least 1, got {run.epochs}.')
    student_entry = cfg.model.get('student')
    if not isinstance(student_entry, dict) or 'cfg_path' not in student_entry:
        raise ValueError('adapt_to_digits needs a Distiller whose student is '
                         "dict(cfg_path=...), as tools/distill.py writes it; got "
                         f'{student_entry!r}.')
    student_source = _model_source(student_entry, student_options)
    factor = run.size / reference_size(student_source.model, cfg)
    cfg.model.student = _adapted_entry(student_entry, student_source, run, factor)
    teacher_entry = cfg.model.get('teacher')
    if isinstance(teacher_entry, dict) and 'cfg_path' in teacher_entry:
        cfg.model.teacher = _adapted_entry(
            teacher_entry, _model_source(teacher_entry, teacher_options), run, factor)
    cfg.model.input_size = (run.size, run.size)  # the probe's image: the digits' size
    _use_digits(cfg, run)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader', 'custom_hooks',
                'tta_pipeline'):
        if cfg.get(key) is not None:
            cfg[key] = scale_pipelines(cfg[key], factor)
    _short_schedule(cfg, run)
    cfg.load_from, cfg.resume = None, False
    if (cfg.get('optim_wrapper') or {}).get('type') == 'AmpOptimWrapper' and \
            not torch.cuda.is_available():
        for key in ('loss_scale', 'dtype'):
            cfg.optim_wrapper.pop(key, None)
        cfg.optim_wrapper.type = 'mmkd.CPUAmpOptimWrapper'
    return cfg


def reference_size(model_cfg: dict, cfg: Config) -> int:
    """The config's nominal image side, which the short run's ``size`` replaces: the shorter
    side of the model's fixed input size (mmseg's ``data_preprocessor.size``), else of the
    test pipeline's first resize, else of the training pipeline's first crop or image scale.
    """
    size = (model_cfg.get('data_preprocessor') or {}).get('size')
    if _is_size(size):
        return min(size)
    for loader, keys in (('val_dataloader', ('scale', )),
                         ('train_dataloader', ('crop_size', 'img_scale', 'scale'))):
        dataset = (cfg.get(loader) or {}).get('dataset') or {}
        for transform in _transforms(dataset):
            for key in keys:
                if _is_size(transform.get(key)):
                    return min(transform[key])
    raise ValueError('No reference image size found (data_preprocessor.size, a Resize scale in '
                     'the test pipeline, a crop_size / img_scale in the training pipeline): '
                     'give the config one, or adapt its sizes by hand.')


def _is_size(value) -> bool:
    return (isinstance(value, (tuple, list)) and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value))


def _transforms(node):
    """Every transform dict under ``node``'s pipelines, depth first."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in PIPELINE_KEYS:
                yield from _flatten_transforms(value)
            elif isinstance(value, dict):
                yield from _transforms(value)


def _flatten_transforms(value):
    if isinstance(value, dict):
        yield value
        for key in PIPELINE_KEYS:
            if key in value:
                yield from _flatten_transforms(value[key])
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _flatten_transforms(item)


def scale_pipelines(node, factor: float, in_pipeline: bool = False):
    """A copy of ``node`` whose transforms (dicts inside a ``pipeline`` / ``switch_pipeline`` /
    ``transforms`` list) have their integer sizes (:data:`SIZE_KEYS`) scaled by ``factor``."""
    if isinstance(node, dict):
        out = type(node)()
        for key, value in node.items():
            if in_pipeline and key in SIZE_KEYS:
                out[key] = scale_size(value, factor)
            else:
                out[key] = scale_pipelines(value, factor, in_pipeline or key in PIPELINE_KEYS)
        return out
    if isinstance(node, (list, tuple)):
        return type(node)(scale_pipelines(v, factor, in_pipeline) for v in node)
    return node


def scale_size(value, factor: float):
    """``value`` (an int, or nested lists / tuples of them) scaled: a positive multiple of 32
    to the nearest multiple of 32 (at least 32), any other int to the nearest int (a positive
    one to at least 1); floats (relative sizes) and other values unchanged.

    Example:
        >>> scale_size([(480, 1333), (-320, 600)], 0.12)
        [(64, 160), (-38, 72)]
    """
    if isinstance(value, (list, tuple)):
        return type(value)(scale_size(v, factor) for v in value)
    if not isinstance(value, int) or isinstance(value, bool):
        return value
    if value > 0 and value % 32 == 0:
        return max(32, round(value * factor / 32) * 32)
    scaled = round(value * factor)
    return max(1, scaled) if value > 0 else scaled


def _model_source(entry: dict, options: Optional[dict]) -> Config:
    """The entry's config file with its own ``cfg_options`` and then ``options`` applied."""
    source = load_model_file(entry['cfg_path'])
    for extra in (entry.get('cfg_options'), options):
        if extra:
            source.merge_from_dict(extra)
    return source


def _adapted_entry(entry: dict, source: Config, run: ShortRun, factor: float) -> dict:
    """``entry`` with ``pretrained=False`` and ``cfg_options`` that adapt its model."""
    original = load_model_file(entry['cfg_path']).model
    model = adapt_model(source.model, run.task, run.num_classes, factor)
    return dict(cfg_path=entry['cfg_path'], pretrained=False,
                cfg_options=config_changes(original.to_dict(), model.to_dict(), 'model'))


def adapt_model(model_cfg, task: str, num_classes: int, factor: float) -> ConfigDict:
    """A copy of a detector / segmentor config with ``num_classes`` classes, no pretrained
    URL, and its batch augments, fixed input size and sliding-window crop scaled."""
    model = ConfigDict(copy.deepcopy(dict(model_cfg)))
    old = class_count(model)
    if old is None:
        raise ValueError(f'No num_classes found in the model config ({model.get("type")}): '
                         'cannot set the digits classes; give them in the case options.')
    model = _no_pretrained_urls(_set_classes(model, old, num_classes, task))
    preprocessor = model.get('data_preprocessor')
    if isinstance(preprocessor, dict):
        if _is_size(preprocessor.get('size')):
            preprocessor.size = scale_size(preprocessor.size, factor)
        if preprocessor.get('batch_augments'):
            preprocessor.batch_augments = scale_pipelines(
                preprocessor.batch_augments, factor, in_pipeline=True)
    test_cfg = model.get('test_cfg')
    if isinstance(test_cfg, dict) and test_cfg.get('mode') == 'slide':
        for key in ('crop_size', 'stride'):
            test_cfg[key] = scale_size(test_cfg[key], factor)
    return model


def _no_pretrained_urls(node):
    """``node`` with every ``pretrained='<checkpoint>'`` (mmseg's model-level argument, which
    ``pretrained=False`` does not drop) set to None."""
    if isinstance(node, dict):
        out = type(node)()
        for key, value in node.items():
            out[key] = None if key == 'pretrained' and isinstance(value, str) else \
                _no_pretrained_urls(value)
        return out
    if isinstance(node, (list, tuple)):
        return type(node)(_no_pretrained_urls(v) for v in node)
    return node


def class_count(node) -> Optional[int]:
    """The model's class count: the largest ``num_classes``, or ``num_things_classes +
    num_stuff_classes``, anywhere in its config (None without any)."""
    found = []

    def visit(item):
        if isinstance(item, dict):
            if isinstance(item.get('num_classes'), int):
                found.append(item['num_classes'])
            if isinstance(item.get('num_things_classes'), int):
                found.append(item['num_things_classes'] + (item.get('num_stuff_classes') or 0))
            for value in item.values():
                visit(value)
        elif isinstance(item, (list, tuple)):
            for value in item:
                visit(value)

    visit(node)
    return max(found) if found else None


def _set_classes(node, old: int, new: int, task: str):
    if isinstance(node, dict):
        out = type(node)()
        for key, value in node.items():
            if key in ('num_classes', 'num_things_classes') and value == old:
                value = new
            elif key == 'num_things_classes' and task == 'det':
                value = new
            elif key == 'num_stuff_classes' and task == 'det':
                value = 0
            elif key == 'class_weight' and isinstance(value, (list, tuple)) and \
                    len(value) in (old, old + 1):
                per_class = sum(value[:old]) / old
                value = [per_class] * new + list(value[old:])
            else:
                value = _set_classes(value, old, new, task)
            out[key] = value
        return out
    if isinstance(node, (list, tuple)):
        return type(node)(_set_classes(v, old, new, task) for v in node)
    return node


def config_changes(old, new, prefix: str) -> Dict[str, object]:
    """The ``cfg_options`` (dotted keys, list items by index) that turn ``old`` into ``new``.

    Example:
        >>> config_changes(dict(a=dict(b=1, c=[dict(d=2)])), dict(a=dict(b=1, c=[dict(d=3)])),
        ...                'model')
        {'model.a.c.0.d': 3}
    """
    if isinstance(old, dict) and isinstance(new, dict):
        changes = {}
        for key, value in new.items():
            if key not in old:
                changes[f'{prefix}.{key}'] = value
            elif old[key] != value:
                changes.update(config_changes(old[key], value, f'{prefix}.{key}'))
        return changes
    if isinstance(old, (list, tuple)) and isinstance(new, (list, tuple)) and \
            len(old) == len(new) and all(isinstance(v, dict) for v in list(old) + list(new)):
        changes = {}
        for index, (a, b) in enumerate(zip(old, new)):
            if a != b:
                changes.update(config_changes(a, b, f'{prefix}.{index}'))
        return changes
    return {prefix: new}


def _use_digits(cfg: Config, run: ShortRun) -> None:
    """Dataloaders and evaluators on the digits set; the test ones are the validation's."""
    for key in ('train_dataloader', 'val_dataloader'):
        split = 'train' if key == 'train_dataloader' else 'val'
        loader = cfg[key]
        loader.update(batch_size=run.batch_size, num_workers=0, persistent_workers=False)
        loader.pop('pin_memory', None)
        loader.dataset = _digits_dataset(loader.dataset, split, run)
    cfg.test_dataloader = copy.deepcopy(cfg.val_dataloader)
    evaluators = cfg.val_evaluator if isinstance(cfg.val_evaluator, list) else [cfg.val_evaluator]
    kept = [e for e in map(lambda e: _digits_evaluator(e, run), evaluators) if e is not None]
    if not kept:
        kept = [_digits_evaluator(dict(type='IoUMetric' if run.task == 'seg' else 'CocoMetric'),
                                  run)]
    cfg.val_evaluator = kept[0] if len(kept) == 1 else kept
    cfg.test_evaluator = copy.deepcopy(cfg.val_evaluator)
    if run.task == 'seg':  # registers DigitsSegDataset in mmseg's registry
        imports = list((cfg.get('custom_imports') or {}).get('imports', []))
        if 'mmkd.datasets' not in imports:
            cfg.custom_imports = dict(imports=imports + ['mmkd.datasets'],
                                      allow_failed_imports=False)


def _digits_dataset(dataset: dict, split: str, run: ShortRun) -> dict:
    """The config's dataset (through its wrappers) reading the digits ``split``."""
    dataset = copy.deepcopy(dataset)
    if 'dataset' in dataset:  # a wrapper: MultiImageMixDataset, RepeatDataset ...
        if 'times' in dataset:
            dataset.times = 1
        dataset.dataset = _digits_dataset(dataset.dataset, split, run)
        return dataset
    if 'datasets' in dataset:  # ConcatDataset: its first dataset
        dataset.datasets = [_digits_dataset(dataset.datasets[0], split, run)]
        return dataset
    root = osp.abspath(run.data_root) + '/'
    if run.task == 'seg':
        out = ConfigDict(type='DigitsSegDataset', data_root=root,
                         data_prefix=dict(img_path=f'images/{split}',
                                          seg_map_path=f'seg_labels/{split}'))
        pipeline = [_no_label_reduction(t) for t in dataset.get('pipeline', [])]
    else:
        out = ConfigDict(type='CocoDataset', data_root=root,
                         metainfo=dict(classes=DIGIT_CLASSES,
                                       palette=[tuple(c) for c in DIGIT_PALETTE]),
                         ann_file=f'annotations/instances_{split}.json',
                         data_prefix=dict(img=f'images/{split}/'))
        for key in ('filter_cfg', 'backend_args'):
            if key in dataset:
                out[key] = dataset[key]
        pipeline = dataset.get('pipeline', [])
    out.pipeline = pipeline
    if dataset.get('test_mode'):
        out.test_mode = True
    return out


def _no_label_reduction(transform):
    """mmseg's LoadAnnotations without ``reduce_zero_label`` (ADE20K's): the digits' label 0
    is a class, and the transform must agree with the dataset, which says so."""
    if isinstance(transform, dict) and 'reduce_zero_label' in transform:
        transform = copy.deepcopy(transform)
        transform.pop('reduce_zero_label')
    return transform


def _digits_evaluator(evaluator: dict, run: ShortRun) -> Optional[dict]:
    """The evaluator on the digits validation set (None: a metric the digits cannot feed)."""
    evaluator = ConfigDict(copy.deepcopy(dict(evaluator)))
    kind = str(evaluator.get('type', '')).split('.')[-1]
    if run.task == 'seg':
        if kind != 'IoUMetric':
            evaluator = ConfigDict(type='IoUMetric', iou_metrics=['mIoU'])
        evaluator.setdefault('iou_metrics', ['mIoU'])
        return evaluator
    if kind != 'CocoMetric':
        return None
    evaluator.ann_file = osp.join(osp.abspath(run.data_root), 'annotations', 'instances_val.json')
    evaluator.setdefault('metric', 'bbox')
    for key in ('format_only', 'outfile_prefix'):
        evaluator.pop(key, None)
    return evaluator


def _short_schedule(cfg: Config, run: ShortRun) -> None:
    """The training loop, parameter schedulers and hooks for ``run`` (module docstring)."""
    train_cfg = cfg.train_cfg
    by_epoch = 'max_epochs' in train_cfg or 'Epoch' in str(train_cfg.get('type', ''))
    last_epoch_start = (run.epochs - 1) * (1 if by_epoch else run.iters_per_epoch)
    if by_epoch:
        old_total = train_cfg.max_epochs
        train_cfg.update(max_epochs=run.epochs, val_interval=1)
    else:
        old_total = train_cfg.max_iters
        train_cfg.update(max_iters=run.total_iters, val_interval=run.iters_per_epoch)
    if train_cfg.get('dynamic_intervals'):
        train_cfg.dynamic_intervals = [(last_epoch_start, train_cfg.val_interval)]
    schedulers = cfg.get('param_scheduler') or []
    if isinstance(schedulers, dict):
        schedulers = [schedulers]
    cfg.param_scheduler = [_short_scheduler(s, by_epoch, old_total, run) for s in schedulers]

    hooks = cfg.default_hooks
    hooks.checkpoint.update(interval=1 if by_epoch else run.iters_per_epoch, by_epoch=by_epoch,
                            save_last=True)
    hooks.logger.interval = 1
    for hook in cfg.get('custom_hooks') or []:
        if 'num_last_epochs' in hook:  # YOLOXModeSwitchHook: epoch + 1 >= max - num_last
            hook.num_last_epochs = 0
        if 'switch_epoch' in hook:  # PipelineSwitchHook: epoch >= switch_epoch
            hook.switch_epoch = run.epochs - 1
    cfg.randomness = dict(seed=(cfg.get('randomness') or {}).get('seed', 0))


def _short_scheduler(scheduler: dict, loop_by_epoch: bool, old_total: int,
                     run: ShortRun) -> dict:
    """One parameter scheduler moved onto the run's iterations, at the same fractions."""
    scheduler = ConfigDict(copy.deepcopy(dict(scheduler)))
    in_epochs = scheduler.get('by_epoch', True)

    def move(value):
        if in_epochs == loop_by_epoch:  # counted like the loop: the same fraction of it
            return min(run.total_iters, round(value / old_total * run.total_iters))
        return min(run.iters_per_epoch, value)  # iterations of an epoch loop: a warm-up

    for key in SCHEDULE_KEYS:
        if isinstance(scheduler.get(key), (int, float)) and scheduler[key] < float('inf'):
            scheduler[key] = move(scheduler[key])
    if 'milestones' in scheduler:
        scheduler.milestones = [move(m) for m in scheduler.milestones]
    if 'end' in scheduler and scheduler.end <= scheduler.get('begin', 0):
        scheduler.end = scheduler.get('begin', 0) + 1
    if 'T_max' in scheduler:
        scheduler.T_max = max(1, scheduler.T_max)
    scheduler.by_epoch = False
    scheduler.pop('convert_to_iter_based', None)
    return scheduler

