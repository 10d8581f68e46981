"""What the accuracy benchmark trains: its tasks and regimes, each task's seeds, rows and
teachers.

A task is a teacher / student pair of digits configs (:data:`TASKS`) whose rows are every
method config of its pairs (:data:`PAIRS_OF_TASK`, found by
:mod:`mmkd.apis.method_configs`). A row is named ``[TASK:]METHOD[@xSCALE][@PRECISION]``
(:func:`split_row`): the method, limited to one task, with every distillation loss weight
scaled (:func:`loss_weight_overrides`), with another ``teacher_precision``. A row with several
teachers (``teachers=``) reads the task's :data:`EXTRA_TEACHERS` besides the task's own
teacher; :func:`teacher_slots` names every teacher to train, :func:`teacher_overrides` points a
row at them. :mod:`mmkd.apis.accuracy_benchmark` trains it all.
"""
import functools
import os.path as osp
from typing import Dict, List, Optional

from mmkd.apis import CONFIGS
from mmkd.apis.demo import TASKS as DEMO_TASKS
from mmkd.apis.method_configs import method_configs

#: The benchmark's tasks: the demo's two (det, seg), instance segmentation (ins: Mask R-CNN
#: R18 -> half width, COCO mask mAP) and query-based detection (detr: DINO R18 -> half width,
#: COCO box mAP), each a teacher / student pair of digits configs.
TASKS = dict(DEMO_TASKS, ins=dict(
    teacher=f'{CONFIGS}/digits/mask-rcnn_r18_digits.py',
    student=f'{CONFIGS}/digits/mask-rcnn_r18-w32_digits.py',
    metric='coco/segm_mAP', metric_name='segm_mAP'), detr=dict(
    teacher=f'{CONFIGS}/digits/dino_r18_digits.py',
    student=f'{CONFIGS}/digits/dino_r18-w32_digits.py',
    metric='coco/bbox_mAP', metric_name='bbox_mAP'))
#: The method-config pairs (:data:`mmkd.apis.method_configs.PAIRS`) whose every config is a row
#: of the task.
PAIRS_OF_TASK = {'det': ('digits_det', 'digits_det_2t'), 'seg': ('digits_seg', ),
                 'ins': ('digits_mask', ), 'detr': ('digits_detr', )}
#: Teachers besides the task's own, read by the rows with several teachers (``teachers=``):
#: ``{task: {name: config}}``, trained like the task's teacher (same backbone pretraining,
#: schedule and seed) when such a row is asked for. A row's teachers are matched to these by
#: config file.
EXTRA_TEACHERS = {'det': {'gfl': f'{CONFIGS}/digits/gfl_r18_digits.py'}}
#: Each regime: data; backbone pretraining (settings of mmkd.engine.pretrain, None: none);
#: whether the students start from their pretrained backbone (the teacher always does when
#: there is pretraining); teacher and student schedules. ``pretrained`` is the benchmark's
#: regime, ``scratch`` its control (same teacher, students from random init); see
#: benchmarks/RESULTS.md, "Choosing the regime".
REGIMES = {
    'pretrained': dict(num_train=1000, num_val=500, pretrain=dict(), pretrained_student=True,
                       teacher_iters=1600, student_iters=400,
                       seeds=dict(det=[0, 1, 2, 3, 4], detr=[0, 1, 2, 3, 4])),
    'scratch': dict(num_train=1000, num_val=500, pretrain=dict(), pretrained_student=False,
                    teacher_iters=1600, student_iters=400),
    'quick': dict(num_train=16, num_val=8, teacher_iters=4, student_iters=2,
                  pretrain=dict(num_images=32, num_heldout=8, iters=2, batch_size=8),
                  pretrained_student=True),
}
#: Seeds of a task when the regime names none for it (``seeds``: ``{task: [seeds]}``). The
#: detection student alone spreads over 7.7 mAP between seeds 0-2 (std 3.9, against 0.4 mIoU for
#: segmentation), and the distilled rows do not follow it seed by seed, so its paired intervals
#: need more seeds: with 5 instead of 3 the t quantile drops from 4.30 to 2.78 (RESULTS.md).
#: The DINO student alike: 15.9-20.6 bbox mAP over seeds 0-2, KD-DETR's paired gains +2.1 to +8.1.
DEFAULT_SEEDS = [0, 1, 2]
#: A sweep row's separator: ``METHOD@xSCALE``.
SWEEP = '@x'
#: Row suffixes that set the teacher's precision.
TEACHER_PRECISION_ROWS = ('@bf16', '@fp16', '@fp32')


def task_seeds(regime: dict, tasks: List[str], seeds: Optional[List[int]] = None) -> dict:
    """``{task: seeds}``: ``seeds`` for every task when given, else the regime's per task
    (:data:`DEFAULT_SEEDS` where it names none)."""
    return {task: list(seeds) if seeds else list(regime.get('seeds', {}).get(
        task, DEFAULT_SEEDS)) for task in tasks}


def regime_with(name: str, student_iters: Optional[int] = None,
                teacher_iters: Optional[int] = None) -> dict:
    """A copy of the regime ``name`` with the schedules given (None: the regime's)."""
    regime = dict(REGIMES[name])
    for key, iters in (('student_iters', student_iters), ('teacher_iters', teacher_iters)):
        if iters is not None:
            regime[key] = iters
    return regime


# ---------------------------------------------------------------- rows
def split_row(row: str) -> tuple:
    """``'det:topkd_logits@x10'`` -> ``('det', 'topkd_logits@x10', 'topkd_logits')``: the task
    it is limited to ('' for every task), the row's name, its method."""
    only, _, name = row.rpartition(':')
    return only, name, split_sweep(split_teacher_precision(name)[0])[0]


def split_teacher_precision(name: str) -> tuple:
    """``'pkd_fpn@bf16'`` -> ``('pkd_fpn', 'bf16')``; no suffix -> ``(name, None)``.

    Example:
        >>> split_teacher_precision('topkd_logits@x10@bf16')
        ('topkd_logits@x10', 'bf16')
    """
    for suffix in TEACHER_PRECISION_ROWS:
        if name.endswith(suffix):
            return name[:-len(suffix)], suffix[1:]
    return name, None


def split_sweep(name: str) -> tuple:
    """``'topkd_logits@x10'`` -> ``('topkd_logits', 10.0)``; a plain name -> ``(name, None)``.

    A sweep row trains the method with every distillation loss's ``loss_weight`` multiplied by
    the scale: the loss-weight sweep of a root-cause analysis, as rows of the same table.
    """
    base, sep, scale = name.partition(SWEEP)
    if not sep:
        return name, None
    try:
        return base, float(scale)
    except ValueError:
        raise SystemExit(f'{name!r}: a sweep row is METHOD{SWEEP}SCALE with a number, e.g. '
                         f'{base}{SWEEP}10') from None


def check_rows(rows: List[str]) -> None:
    """Exit naming the ``rows`` whose method or task the benchmark does not have."""
    known = {method for pairs in PAIRS_OF_TASK.values() for pair in pairs
             for method in method_configs(pair)}
    unknown = sorted({row for row in rows if split_row(row)[2] not in known
                      or split_row(row)[0] not in ('', *TASKS)} - {'student'})
    if unknown:
        raise SystemExit(f'unknown methods {unknown}; known: {sorted(known)}')


def row_configs(task: str, methods: Optional[List[str]]) -> Dict[str, str]:
    """``{name: config}`` of the ``methods`` that exist for ``task``'s pair, in the order
    given (all, by name, without ``methods``); a sweep row (``name@x<scale>``) maps to its
    method's config."""
    found = {}
    for pair in PAIRS_OF_TASK[task]:
        found.update(method_configs(pair))
    if not methods:
        return found
    configs = {}
    for row in methods:
        only, name, method = split_row(row)
        if only in ('', task) and method in found:
            configs[name] = found[method]
    return configs


def loss_weight_overrides(config: str, scale: float) -> Dict[str, float]:
    """``cfg_options`` multiplying the ``loss_weight`` of every ``model.distill_losses`` entry
    and every recipe (its own, else its method's published one) of ``config`` by ``scale``."""
    from mmengine.config import Config

    from mmkd.models.distillers.recipes import parse_recipe
    model = Config.fromfile(config).model
    overrides = {}
    for name, loss in (model.get('distill_losses') or {}).items():
        if 'loss_weight' not in loss:
            raise SystemExit(f'{config}: distill_losses.{name} sets no loss_weight, so a sweep '
                             'cannot scale it; write its loss_weight in the config')
        overrides[f'model.distill_losses.{name}.loss_weight'] = scale * loss['loss_weight']
    for index, recipe in enumerate(model.get('recipes') or []):
        weight = parse_recipe(index, recipe).loss_weight
        if weight is None:
            raise SystemExit(f'{config}: recipes[{index}] has a loss without loss_weight, so a '
                             'sweep cannot scale it')
        overrides[f'model.recipes.{index}.loss_weight'] = scale * weight
    return overrides


# ---------------------------------------------------------------- teachers
def teacher_slots(tasks: List[str], methods: Optional[List[str]]) -> Dict[str, tuple]:
    """``{slot: (task, teacher config)}``: each task's teacher (slot ``task``) and, where a row
    of the task reads several teachers, the task's :data:`EXTRA_TEACHERS` (slot
    ``task_name``)."""
    slots = {task: (task, TASKS[task]['teacher']) for task in tasks}
    for task in tasks:
        if any(teacher_configs(config) for config in row_configs(task, methods).values()):
            for name, config in EXTRA_TEACHERS.get(task, {}).items():
                slots[f'{task}_{name}'] = (task, config)
    return slots


def others(task: str, slots: Dict[str, tuple]) -> List[str]:
    """The slots of ``task``'s extra teachers."""
    return [slot for slot, (of, _) in slots.items() if of == task and slot != task]


@functools.lru_cache(maxsize=None)
def _teacher_paths(config: str) -> tuple:
    """``((teacher name, config path), ...)`` of ``config``'s ``teachers=``; read once per
    file (slots, row filter and overrides all ask)."""
    from mmengine.config import Config
    teachers = Config.fromfile(config).model.get('teachers') or {}
    return tuple((name, osp.normpath(osp.abspath(entry['cfg_path'])))
                 for name, entry in teachers.items())


def teacher_configs(config: str) -> Dict[str, str]:
    """``{teacher name: config path}`` of a config with several teachers (``teachers=``), or
    {} for one with a single teacher."""
    return dict(_teacher_paths(config))


def _task_teacher_paths(task: str, slots: Dict[str, tuple]) -> Dict[str, str]:
    """``{config path: slot}`` of ``task``'s teachers."""
    return {osp.normpath(osp.abspath(path)): slot
            for slot, (of, path) in slots.items() if of == task}


def _slots_of_teachers(task: str, config: str, slots: Dict[str, tuple]) -> Dict[str, str]:
    """``{teacher name: the slot trained from its config, or None}`` of a config with
    several teachers; {} for one with a single teacher."""
    by_config = _task_teacher_paths(task, slots)
    return {name: by_config.get(path) for name, path in teacher_configs(config).items()}


def needed_slots(task: str, config: str, slots: Dict[str, tuple]) -> List[str]:
    """The teacher slots a row of ``task`` reads (its task's, or one per teacher of a config
    with several)."""
    several = _slots_of_teachers(task, config, slots)
    return [slot for slot in several.values() if slot is not None] if several else [task]


def teacher_overrides(task: str, config: str, slots: Dict[str, tuple],
                      teachers: Dict[str, dict]) -> tuple:
    """(config overrides that load the benchmark's teachers, the identity of their weights):
    ``model.teacher_ckpt`` for a single teacher; for several, each ``model.teachers.<name>
    .ckpt`` from the slot trained from that teacher's config (the identity joins their
    hashes, in the config's order)."""
    several = _slots_of_teachers(task, config, slots)
    if not several:
        return {'model.teacher_ckpt': teachers[task]['ckpt']}, teachers[task].get('sha')
    overrides, shas = {}, []
    for name, slot in several.items():
        if slot is None:
            raise SystemExit(f'{config}: teacher {name!r} ({teacher_configs(config)[name]}) is '
                             f"none of the {task} benchmark's teachers "
                             f'({sorted(_task_teacher_paths(task, slots))}): add its config to '
                             'EXTRA_TEACHERS in mmkd/apis/accuracy_tasks.py.')
        overrides[f'model.teachers.{name}.ckpt'] = teachers[slot]['ckpt']
        shas.append(teachers[slot].get('sha') or '?')
    return overrides, '+'.join(shas)
