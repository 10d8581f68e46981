"""Which method makes a better student: every shipped digits method, over seeds, with intervals.

    python tools/benchmark_accuracy.py [--regime pretrained|scratch|quick]
        [--tasks det seg ins detr]
        [--methods pkd_fpn det:topkd_logits@x10 ...] [--seeds 0 1 2 ...] [--jobs 1] [--threads N]
        [--student-iters N] [--teacher-iters N] [--work-dir work_dirs/benchmark_accuracy] [--report-only]
        [--out benchmarks/RESULTS.md] [--chart benchmarks/results.png] [--json PATH]
        [--ledger benchmarks/accuracy_runs.json] [--weights-dir benchmarks/weights]

Per task (det: RetinaNet R18 -> half-width R18, COCO bbox mAP; seg: Semantic FPN R18 -> half
width, mIoU; ins: Mask R-CNN R18 -> half width, COCO mask mAP; detr: DINO R18 -> half width,
COCO bbox mAP) and regime it

1. (``pretrained`` regime) pretrains the teacher's and the student's backbones on digit
   classification (:mod:`mmkd.engine.pretrain`, cached by content); both tasks share them;
2. trains the teacher once, validating along the way (its learning curve shows the plateau),
   and writes its per-image significance for the self-regulated configs; rows with several
   teachers (``configs/distill/multiteacher``) also read the task's :data:`EXTRA_TEACHERS`
   (det: GFL R18), trained the same way;
3. trains the student alone and the student with every method config of the pair, each with
   every seed. A seed fixes initialisation and data order (mmengine's ``randomness``), and the
   distiller initialises its student exactly as the plain student, so each method is compared
   with the student seed by seed: the table gives mean +- std, the paired gain over the
   student with its 95% t interval, and "resolved" when that interval excludes 0.

Runs go to ``--jobs`` worker processes with ``--threads`` torch threads each (default: the
cores shared out); a run's numbers depend on its thread count, so the same command gives the
same table. Default ``--jobs 1``: on this 2-core machine a ResNet-18 forward + backward (batch
8, 128 px) takes 0.55 s on one thread and 0.30 s on two, so two one-thread processes could
gain at most 10% over one two-thread process, before they compete for memory. Every
finished run leaves ``result.json`` in its own folder (regime, schedule, seed in the path) and
is never run again: a killed benchmark redoes only what is missing, and a later call with
other ``--methods`` extends the same table. Work folders are not committed, so each finished
run is also recorded in ``--ledger`` (``benchmarks/accuracy_runs.json``) with the identity of
the teacher and backbone weights it started from, and those weights are kept as float16 copies
in ``--weights-dir`` (``benchmarks/weights``; the teacher is evaluated again from its copy,
which every row uses): a fresh checkout trains no teacher again and reads back every run of
the ledger (:mod:`mmkd.apis.run_ledger`). Commit both as rows finish. A run is recognised by
its folder (or ledger key) alone: after changing a method's config, delete that method's
folder and its ledger entries to have it rerun. A method named
``METHOD@xSCALE`` (e.g. ``topkd_logits@x10``) is a row of its own: the method with every
distillation loss's ``loss_weight`` times SCALE (loss-weight sweeps); ``METHOD@bf16`` (or
``@fp16``, ``@fp32``, after any ``@xSCALE``) is the method with that ``teacher_precision``
(issue 11: does a cheaper teacher change the student?); ``TASK:METHOD`` (e.g.
``det:topkd_logits@x10``) queues a row for that task only. ``--report-only``
trains nothing and writes the table of the runs finished so far. The Markdown table goes to
``--out`` (a ``## Notes`` section written by hand below it is kept), the chart (gains with
their interval whiskers) to ``--chart``.
"""
import argparse
import functools
import json
import math
import os
import os.path as osp
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Dict, List, Optional

from mmkd.apis import CONFIGS
from mmkd.apis.demo import TASKS as DEMO_TASKS
from mmkd.apis.demo import evaluate, run
from mmkd.apis.maskd_tokens import learn_maskd_tokens, tokens_options
from mmkd.apis.method_configs import method_configs
from mmkd.apis.paired_stats import gap_closed, paired_gain, summarize
from mmkd.apis.run_ledger import RunLedger, WeightStore, weights_sha
from mmkd.apis.significance import write_teacher_significance
from mmkd.datasets import make_digits_dataset

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
#: Iterations of MasKD's first phase (tokens on the teacher, the teacher config's batch of 8)
#: before its rows: the paper's 10k on Cityscapes, scaled down as the students' schedules are
#: (300 iterations are 2.4 passes over the 1000 training images).
MASKD_TOKEN_ITERS = 300


def task_seeds(regime: dict, tasks: List[str], seeds: Optional[List[int]] = None) -> dict:
    """``{task: seeds}``: ``seeds`` for every task when given, else the regime's per task
    (:data:`DEFAULT_SEEDS` where it names none)."""
    return {task: list(seeds) if seeds else list(regime.get('seeds', {}).get(
        task, DEFAULT_SEEDS)) for task in tasks}


# ---------------------------------------------------------------- runs
def finished(work_dir: str) -> Optional[dict]:
    """The ``result.json`` of a finished run in ``work_dir``, or None."""
    path = osp.join(work_dir, 'result.json')
    if not osp.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def train_once(work_dir: str, config: str, data_root: str, iters: int, metric: str, seed: int,
               pretrained: Optional[str] = None, val_interval: Optional[int] = None,
               save_checkpoint: bool = False, overrides: Optional[dict] = None,
               ledger: Optional[str] = None, key: Optional[str] = None,
               expect: Optional[dict] = None) -> dict:
    """Train + test ``config`` unless ``work_dir`` already holds its ``result.json`` or the
    ``ledger`` holds ``key`` with the ``expect``\\ ed weights (a run that saves a checkpoint,
    the teacher, needs its file: it trains again when the file is gone). Every finished run is
    recorded in the ledger with ``expect`` (which teacher and backbone it started from) and,
    with ``save_checkpoint``, its own weights' ``sha``."""
    book = RunLedger(ledger) if ledger and key else None
    done = finished(work_dir)
    if done is None and book is not None and not save_checkpoint:
        done = book.get(key, expect)
    if done is not None:
        if save_checkpoint and 'sha' not in done and osp.exists(done.get('ckpt') or ''):
            done['sha'] = weights_sha(done['ckpt'])  # a teacher from before the hashes
        if book is not None and book.get(key) is None:  # a run from before the ledger
            book.record(key, _ledger_entry(done, expect))
        return done
    path = osp.join(work_dir, 'result.json')
    import torch
    start = time.time()
    value, ckpt = run(config, work_dir, data_root, iters, metric, seed=seed,
                      pretrained=pretrained, val_interval=val_interval,
                      save_checkpoint=save_checkpoint, **(overrides or {}))
    result = dict(value=value, ckpt=ckpt, seconds=round(time.time() - start, 1), seed=seed,
                  threads=torch.get_num_threads(), curve=read_curve(work_dir, metric),
                  **(expect or {}))
    if ckpt is not None:
        result['sha'] = weights_sha(ckpt)
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(result, f, indent=2)
    os.replace(tmp, path)
    if book is not None:
        book.record(key, _ledger_entry(result, expect))
    return result


def _ledger_entry(result: dict, expect: Optional[dict]) -> dict:
    """What the ledger keeps of a run: everything but its local checkpoint path."""
    return {k: v for k, v in dict(result, **(expect or {})).items() if k != 'ckpt'}


def read_curve(work_dir: str, metric: str) -> List[list]:
    """``[[iteration, value], ...]`` of every validation of the latest run in ``work_dir``."""
    runs = sorted(d for d in os.listdir(work_dir) if osp.isfile(
        osp.join(work_dir, d, 'vis_data', 'scalars.json')))
    if not runs:
        return []
    curve = []
    with open(osp.join(work_dir, runs[-1], 'vis_data', 'scalars.json')) as f:
        for line in f:
            entry = json.loads(line)
            if metric in entry:
                curve.append([entry['step'], entry[metric]])
    return curve


def significance_job(teacher_config: str, ckpt: str, data_root: str, marker: str) -> None:
    """The teacher's per-image significance, where the self-regulated (``selfreg``) configs'
    ``SignificanceSubset`` reads it (next to the training annotations)."""
    if osp.exists(marker):
        return
    write_teacher_significance(teacher_config, ckpt, cfg_options={
        'train_dataloader.dataset.data_root': f'{data_root.rstrip("/")}/'})
    open(marker, 'w').close()


def maskd_tokens_job(teacher_config: str, ckpt: str, data_root: str, out: str) -> None:
    """The receptive tokens the MasKD configs read (their first phase, on the task's
    teacher), written once to ``out``."""
    if osp.exists(out):
        return
    learn_maskd_tokens(teacher_config, ckpt, out=out, iters=MASKD_TOKEN_ITERS, cfg_options={
        'train_dataloader.dataset.data_root': f'{data_root.rstrip("/")}/'})


def _set_threads(threads: int) -> None:
    import torch
    torch.set_num_threads(threads)


class Pool:
    """Runs jobs in ``jobs`` spawned worker processes, each with ``threads`` torch threads;
    ``jobs=0`` runs them here, also with ``threads`` threads (tests).

    Each run's numbers depend on its thread count (float reductions split differently), not
    on ``jobs``: the same ``threads`` gives the same table.
    """

    def __init__(self, jobs: int, threads: int):
        self.executor, self.threads = None, threads
        if jobs > 0:
            os.environ['OMP_NUM_THREADS'] = str(threads)  # inherited by the workers at spawn
            self.executor = ProcessPoolExecutor(jobs, mp_context=get_context('spawn'),
                                                initializer=_set_threads,
                                                initargs=(threads, ))

    def map(self, fn, kwargs_list: List[dict]) -> list:
        if self.executor is None:
            import torch
            threads = torch.get_num_threads()
            torch.set_num_threads(self.threads)
            try:
                return [fn(**kwargs) for kwargs in kwargs_list]
            finally:
                torch.set_num_threads(threads)
        futures = [self.executor.submit(fn, **kwargs) for kwargs in kwargs_list]
        return [f.result() for f in futures]

    def close(self) -> None:
        if self.executor is not None:
            self.executor.shutdown()


def run_dirs(work_dir: str, name: str, regime: dict) -> tuple:
    """(teachers' folder, students' folder) of a regime. What a run depends on is part of the
    folder name (data, pretraining, schedules), so a changed regime never reuses the runs of
    another; regimes that share a teacher share its folder."""
    data = f'{regime["num_train"]}-{regime["num_val"]}'
    teachers = osp.join(work_dir, 'teachers', f'{data}_t{regime["teacher_iters"]}'
                        + ('_pretrained' if regime['pretrain'] is not None else ''))
    students = osp.join(work_dir, f'{name}_{data}_t{regime["teacher_iters"]}'
                        f'_s{regime["student_iters"]}')
    return teachers, students


def run_benchmark(tasks: List[str], regime_name: str, regime: dict, work_dir: str,
                  methods: Optional[List[str]], seeds: Dict[str, List[int]],
                  pool: Optional[Pool],
                  log=print, ledger: Optional[str] = None,
                  weights_dir: Optional[str] = None) -> Dict[str, dict]:
    """Train what is missing and return ``{task: result}`` (see :func:`table_rows`).

    Without a ``pool`` nothing is trained: the result holds the finished runs only (rows
    with fewer seeds than asked, and no row where none finished). ``ledger``: the
    :class:`~mmkd.apis.run_ledger.RunLedger` file every finished run is recorded in and read
    back from, so a fresh checkout reuses the runs whose teacher and backbone weights equal
    its own; ``weights_dir``: the :class:`~mmkd.apis.run_ledger.WeightStore` of those weights
    (a fresh checkout then trains neither teachers nor backbones).
    """
    data_root = osp.join(work_dir, f'data_{regime["num_train"]}_{regime["num_val"]}')
    if not osp.exists(osp.join(data_root, 'annotations', 'instances_val.json')):
        make_digits_dataset(data_root, num_train=regime['num_train'],
                            num_val=regime['num_val'], seed=0)
    teacher_root, root = run_dirs(work_dir, regime_name, regime)

    book = RunLedger(ledger) if ledger else None
    store = WeightStore(weights_dir) if weights_dir else None

    # 1. the students' pretrained backbone (the det configs' ResNet; the seg configs' has the
    # same weights): the committed copy, else trained with every thread and cached.
    student_backbone = (_pretrained('student', regime, work_dir, store, pool is not None, log)
                        if regime['pretrained_student'] else None)
    backbone_sha = (weights_sha(student_backbone)
                    if student_backbone and osp.exists(student_backbone) else None)
    if pool is None:
        student_backbone = None

    # 2. teachers (from their own pretrained backbone), with their learning curve, then their
    # significance; the extra teachers of rows with several teachers too
    slots = teacher_slots(tasks, methods)
    teachers = _teachers(slots, regime, work_dir, data_root, teacher_root, store, book, pool,
                         log)
    # (only --report-only can lack one): its task, or the rows that read it, are left out
    missing = [slot for slot in slots if teachers[slot] is None]
    if missing:
        log(f'no finished teacher for {missing} in {teacher_root} yet: the rows that need it '
            'are left out (run without --report-only to train it)')
    tasks = [task for task in tasks if teachers[task] is not None]
    for slot in slots:
        if teachers[slot] is not None:
            log(f'[{slot}] teacher {teachers[slot]["value"]:.4f}, curve '
                f'{teachers[slot]["curve"]}')
    if pool is not None and any(name.startswith('selfreg') for task in tasks
                                for name in _configs(task, methods)):
        pool.map(significance_job, [dict(
            teacher_config=TASKS[task]['teacher'], ckpt=teachers[task]['ckpt'],
            data_root=data_root,
            marker=osp.join(teacher_root, task, 'significance_written')) for task in tasks])

    tokens = {task: osp.join(teacher_root, task, f'maskd_tokens_{MASKD_TOKEN_ITERS}it.pth')
              for task in tasks}
    if pool is not None:
        pool.map(maskd_tokens_job, [dict(
            teacher_config=TASKS[task]['teacher'], ckpt=teachers[task]['ckpt'],
            data_root=data_root, out=tokens[task]) for task in tasks
            if any(tokens_options(config, '') for config in _configs(task, methods).values())])

    # 3. every row x seed in one queue, row by row (both tasks), so that an interrupted run
    # leaves whole rows
    jobs, keys = [], []
    rows = {task: {'student': TASKS[task]['student'], **{
        name: config for name, config in _configs(task, methods).items()
        if all(teachers[slot] is not None for slot in needed_slots(task, config, slots))}}
            for task in tasks}
    for index in range(max((len(r) for r in rows.values()), default=0)):
        for task in tasks:
            if index >= len(rows[task]):
                continue
            spec = TASKS[task]
            name, config = list(rows[task].items())[index]
            overrides, teacher_sha = ({}, None) if name == 'student' else teacher_overrides(
                task, config, slots, teachers)
            name_without_precision, precision = split_teacher_precision(name)
            scale = split_sweep(name_without_precision)[1]
            if scale is not None:
                overrides.update(loss_weight_overrides(config, scale))
            if precision is not None:
                overrides['model.teacher_precision'] = precision
            if name != 'student':
                overrides.update(tokens_options(config, tokens[task]))
            expect = _known(backbone_sha=backbone_sha, teacher_sha=teacher_sha)
            for seed in seeds[task]:
                keys.append((task, name, seed))
                run_dir = osp.join(root, task, name, f'seed{seed}')
                # the student alone is validated along the way too: is it near its plateau?
                jobs.append(dict(work_dir=run_dir, ledger=ledger,
                                 key=osp.relpath(run_dir, work_dir),
                                 expect=expect,
                                 config=config, data_root=data_root,
                                 iters=regime['student_iters'], metric=spec['metric'],
                                 seed=seed, pretrained=student_backbone, overrides=overrides,
                                 val_interval=(max(1, regime['student_iters'] // 4)
                                               if name == 'student' else None)))
    finished_others = {task: {slot[len(task) + 1:]: teachers[slot]
                              for slot in others(task, slots) if teachers[slot] is not None}
                       for task in tasks}
    results = {task: dict(metric=TASKS[task]['metric_name'], teacher=teachers[task], rows={},
                          **(dict(other_teachers=finished_others[task])
                             if finished_others[task] else {}))
               for task in tasks}
    for (task, name, seed), result in zip(keys, _results(pool, jobs)):
        if result is not None:
            results[task]['rows'].setdefault(name, {})[seed] = result
    # a task whose student alone has no finished run yet has nothing to compare with
    return {task: result for task, result in results.items() if 'student' in result['rows']}


def _results(pool: Optional[Pool], jobs: List[dict]) -> list:
    """Run ``train_once`` jobs in ``pool``, or (no pool) read those that finished, from
    their folder or their ledger."""
    if pool is None:
        return [finished(job['work_dir']) or (
            RunLedger(job['ledger']).get(job['key'], job['expect']) if job['ledger'] else None)
            for job in jobs]
    return pool.map(train_once, jobs)


def _known(**identities) -> dict:
    """The weights' identities a run is checked against, those that are known."""
    return {k: v for k, v in identities.items() if v is not None}


def _pretrained(role: str, regime: dict, work_dir: str, store: Optional[WeightStore],
                train: bool, log=print) -> Optional[str]:
    """Path of ``role``'s pretrained backbone (None for a regime without pretraining): the
    store's copy when it has one; else the cached one, trained first when ``train`` (and then
    copied into the store)."""
    if regime['pretrain'] is None:
        return None
    from mmengine.config import Config

    from mmkd.engine.pretrain import pretrained_backbone
    backbone = Config.fromfile(TASKS['det'][role]).model.backbone.to_dict()
    backbone['_scope_'] = 'mmdet'
    kwargs = dict(cache_dir=osp.join(work_dir, 'pretrained'), log=log,
                  name=f'resnet18_w{backbone["base_channels"]}', **regime['pretrain'])
    name = osp.basename(pretrained_backbone(backbone, train=False, **kwargs))
    if store is not None and store.has(name):
        return store.path(name)
    path = pretrained_backbone(backbone, train=train, **kwargs)
    return store.publish(path, name) if store is not None and train else path


def teacher_slots(tasks: List[str], methods: Optional[List[str]]) -> Dict[str, tuple]:
    """``{slot: (task, teacher config)}``: each task's teacher (slot ``task``) and, where a row
    of the task reads several teachers, the task's :data:`EXTRA_TEACHERS` (slot
    ``task_name``)."""
    slots = {task: (task, TASKS[task]['teacher']) for task in tasks}
    for task in tasks:
        if any(teacher_configs(config) for config in _configs(task, methods).values()):
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
                             'EXTRA_TEACHERS in tools/benchmark_accuracy.py.')
        overrides[f'model.teachers.{name}.ckpt'] = teachers[slot]['ckpt']
        shas.append(teachers[slot].get('sha') or '?')
    return overrides, '+'.join(shas)


def _teachers(slots: Dict[str, tuple], regime: dict, work_dir: str, data_root: str,
              teacher_root: str, store: Optional[WeightStore], book: Optional[RunLedger],
              pool: Optional[Pool], log=print) -> Dict[str, Optional[dict]]:
    """``{slot: teacher result}`` for the :func:`teacher_slots`: the store's copy with the
    ledger's entry when both exist and agree; else (with a pool) trained, copied into the
    store as float16 and evaluated again from that copy (``value``; ``value_fp32`` is the
    trained model's), the copy being the teacher every row uses; else (no pool) the finished
    run or the ledger's entry."""
    teachers, todo = {}, []
    for slot in slots:
        run_dir = osp.join(teacher_root, slot)
        entry = book.get(osp.relpath(run_dir, work_dir)) if book is not None else None
        name = _teacher_name(slot, teacher_root)
        if (store is not None and entry is not None and store.has(name)
                and weights_sha(store.path(name)) == entry.get('sha')):
            teachers[slot] = dict(entry, ckpt=store.path(name))
        elif pool is None:
            teachers[slot] = finished(run_dir) or entry
        else:
            todo.append(slot)
    if not todo:
        return teachers
    backbone = _pretrained('teacher', regime, work_dir, None, True, log)
    trained = pool.map(train_once, [dict(
        work_dir=osp.join(teacher_root, slot), config=slots[slot][1], data_root=data_root,
        iters=regime['teacher_iters'], metric=TASKS[slots[slot][0]]['metric'],
        seed=0, pretrained=backbone, save_checkpoint=True,
        val_interval=max(1, regime['teacher_iters'] // 8)) for slot in todo])
    for slot, result in zip(todo, trained):
        run_dir = osp.join(teacher_root, slot)
        if store is not None:
            ckpt = store.publish(result['ckpt'], _teacher_name(slot, teacher_root))
            value = pool.map(evaluate, [dict(
                config=slots[slot][1], ckpt=ckpt, data_root=data_root,
                work_dir=osp.join(run_dir, 'float16'),
                metric=TASKS[slots[slot][0]]['metric'])])[0]
            result = dict(result, ckpt=ckpt, sha=weights_sha(ckpt), value=value,
                          value_fp32=result['value'])
        if book is not None:
            book.record(osp.relpath(run_dir, work_dir), _ledger_entry(result, None))
        teachers[slot] = result
    return teachers


def _teacher_name(slot: str, teacher_root: str) -> str:
    """The file name of a teacher's copy in the weight store."""
    return f'teacher_{slot}_{osp.basename(teacher_root)}.pth'


def _configs(task: str, methods: Optional[List[str]]) -> Dict[str, str]:
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


SWEEP = '@x'


def split_row(row: str) -> tuple:
    """``'det:topkd_logits@x10'`` -> ``('det', 'topkd_logits@x10', 'topkd_logits')``: the task
    it is limited to ('' for every task), the row's name, its method."""
    only, _, name = row.rpartition(':')
    return only, name, split_sweep(split_teacher_precision(name)[0])[0]


#: Row suffixes that set the teacher's precision.
TEACHER_PRECISION_ROWS = ('@bf16', '@fp16', '@fp32')


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


# ---------------------------------------------------------------- report
def table_rows(result: dict) -> List[dict]:
    """One dict per row: the student first, then the methods by paired gain, best first.

    ``result['rows']`` maps a row name to ``{seed: dict(value=..., seconds=...)}``.
    """
    teacher = result['teacher']['value']
    student = {s: r['value'] for s, r in result['rows']['student'].items()}
    student_mean, _ = summarize(list(student.values()))
    rows = []
    for name, runs in result['rows'].items():
        values = {s: r['value'] for s, r in runs.items()}
        mean, std = summarize(list(values.values()))
        gain = paired_gain(values, student)
        rows.append(dict(method=name, mean=mean, std=std, seeds=len(values), **gain,
                         gap_closed=gap_closed(student_mean + gain['gain'], student_mean,
                                               teacher),
                         seconds=statistics.fmean(r['seconds'] for r in runs.values())))
    first = rows.pop(next(i for i, r in enumerate(rows) if r['method'] == 'student'))
    return [first] + sorted(rows, key=lambda r: -r['gain'])


SCALE = {'bbox_mAP': 100.0, 'segm_mAP': 100.0, 'mIoU': 1.0}  # all reported as percentages


def format_markdown(results: Dict[str, dict], command: str, regime_name: str, regime: dict,
                    seeds, minutes: Optional[float] = None) -> str:
    pre = regime['pretrain']
    lines = [
        '# Accuracy of every method on the embedded digits dataset', '',
        f'Command: `{command}`', '',
        f'Machine: {os.cpu_count()} CPU cores, no GPU; {time.strftime("%Y-%m-%d")}. '
        f'Regime `{regime_name}`: {regime["num_train"]} training / {regime["num_val"]} '
        f'validation images; '
        + ('no pretraining' if pre is None else
           'teacher backbone pretrained on digit classification (`mmkd/engine/pretrain.py`), '
           + ('student backbones too' if regime['pretrained_student']
              else 'students from random initialisation'))
        + f'; teacher {regime["teacher_iters"]} iterations, every student '
        f'{regime["student_iters"]} iterations; seeds {_seeds_text(seeds)}; torch threads per '
        f'run {_threads_of(results)}'
        + (f'; wall time of this call {minutes:.0f} min' if minutes is not None else '') + '.',
        '',
        'Metrics in percent. "gain" is the mean over seeds of (method - student) with the same '
        'seed (same initialisation and data order), with its 95% t interval; "resolved" says '
        'whether the interval excludes 0; "gap closed" is gain / (teacher - student mean). A '
        'row with fewer seeds than listed is unfinished: the same command completes it (every '
        'finished run is kept).', '']
    for task, result in results.items():
        k = SCALE.get(result['metric'], 1.0)
        teacher = result['teacher']
        lines += [f'## {task}: {result["metric"]} (teacher {k * teacher["value"]:.2f}, '
                  f'trained in {teacher["seconds"]:.0f} s)', '',
                  f'Teacher validation curve (iteration: metric): {_curve(teacher, k)}.']
        for name, other in result.get('other_teachers', {}).items():
            lines.append(f'Teacher `{name}` (rows with several teachers; gap closed is '
                         f'still against the task\'s teacher): {k * other["value"]:.2f}, '
                         f'trained in {other["seconds"]:.0f} s, curve {_curve(other, k)}.')
        lines += ['Student alone, per seed: ' + '; '.join(
            f'seed {seed}: {_curve(run, k)}'
            for seed, run in sorted(result['rows']['student'].items())) + '.', '',
            f'| method | {result["metric"]} mean +- std | seeds | gain [95% interval] '
            '| resolved | gap closed | train s |', '|---|---|---|---|---|---|---|']
        for row in table_rows(result):
            interval = (f' [{k * row["low"]:+.2f}, {k * row["high"]:+.2f}]'
                        if math.isfinite(row['low']) else '')
            lines.append(
                f'| {row["method"]} | {k * row["mean"]:.2f} +- {k * row["std"]:.2f} '
                f'| {row["seeds"]} | {k * row["gain"]:+.2f}{interval} '
                f'| {"-" if row["method"] == "student" else row["resolved"]} '
                f'| {100 * row["gap_closed"]:.0f}% | {row["seconds"]:.0f} |')
        runs, seconds = training_time({task: result})
        lines += ['', f'{runs} runs in this table, {seconds / 3600:.1f} h of training (the '
                  'sum of their "train s", the teachers\' not counted).', '']
    runs, seconds = training_time(results)
    lines += [f'All tasks: {runs} runs, {seconds / 3600:.1f} h of training.', '']
    return '\n'.join(lines)


def training_time(results: Dict[str, dict]) -> tuple:
    """(number of runs, their summed training seconds) of the rows in ``results``.

    Example:
        >>> training_time({'det': dict(rows={'student': {0: dict(seconds=80.0),
        ...                                               1: dict(seconds=90.0)}})})
        (2, 170.0)
    """
    seconds = [run['seconds'] for result in results.values()
               for runs in result['rows'].values() for run in runs.values()]
    return len(seconds), float(sum(seconds))


NOTES_HEADING = '## Notes'


def kept_notes(path: str) -> str:
    """The part of an existing report from its ``## Notes`` heading on (written by hand: the
    regime's rationale, root causes), to be kept below a regenerated table."""
    if not path or not osp.exists(path):
        return ''
    with open(path) as f:
        text = f.read()
    start = text.find('\n' + NOTES_HEADING)
    return '' if start < 0 else '\n' + text[start + 1:]


def _seeds_text(seeds) -> str:
    """``[0, 1, 2]``, or ``det [0, 1, 2, 3, 4], seg [0, 1, 2]`` when the tasks differ."""
    if not isinstance(seeds, dict):
        return str(list(seeds))
    if len({tuple(v) for v in seeds.values()}) == 1:
        return str(next(iter(seeds.values())))
    return ', '.join(f'{task} {list(v)}' for task, v in seeds.items())


def _curve(run: dict, scale: float) -> str:
    return ', '.join(f'{it}: {scale * v:.1f}' for it, v in run.get('curve') or []) or '-'


def _threads_of(results: Dict[str, dict]) -> str:
    """The thread counts the runs in ``results`` used (one number when they agree)."""
    counts = sorted({r.get('threads') for res in results.values()
                     for runs in res['rows'].values() for r in runs.values()} - {None})
    return '/'.join(map(str, counts)) or '?'


def draw_chart(results: Dict[str, dict], path: str) -> None:
    """Per task, each method's paired gain over the student with its 95% interval."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(results), figsize=(7 * len(results), 7), squeeze=False)
    for ax, (task, result) in zip(axes[0], results.items()):
        k = SCALE.get(result['metric'], 1.0)
        rows = table_rows(result)[1:]
        student_mean = summarize([r['value'] for r in result['rows']['student'].values()])[0]
        gains = [k * r['gain'] for r in rows]
        lows = [k * (r['gain'] - r['low']) if math.isfinite(r['low']) else 0 for r in rows]
        highs = [k * (r['high'] - r['gain']) if math.isfinite(r['high']) else 0 for r in rows]
        if not rows:
            ax.text(0.5, 0.5, 'no method row finished yet', ha='center',
                    transform=ax.transAxes)
        colours = {'above': 'tab:green', 'below': 'tab:red', 'no': 'tab:grey'}
        ax.barh([r['method'] for r in rows], gains, xerr=[lows, highs], capsize=3,
                color=[colours[r['resolved']] for r in rows])
        ax.axvline(0, color='black', linewidth=0.8)
        ax.axvline(k * (result['teacher']['value'] - student_mean), color='tab:red',
                   linestyle='--', label='teacher - student')
        ax.invert_yaxis()
        ax.set_xlabel(f'gain in {result["metric"]} over the student (95% interval)')
        ax.set_title(f'{task}: green above 0, red below, grey not resolved')
        ax.legend(loc='lower right')
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> Dict[str, dict]:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--regime', choices=list(REGIMES), default='pretrained')
    parser.add_argument('--tasks', nargs='+', choices=list(TASKS), default=list(TASKS))
    parser.add_argument('--methods', nargs='+',
                        help='method names (default: all of the pair); METHOD@xSCALE adds a '
                        "row with every distillation loss's loss_weight times SCALE; "
                        'METHOD@bf16 / @fp16 / @fp32 a row with that teacher_precision; '
                        'TASK:METHOD runs it for that task only (det:topkd_logits@x10)')
    parser.add_argument('--seeds', nargs='+', type=int,
                        help="every task's seeds (default: the regime's per task: pretrained "
                        'det and detr 0-4, otherwise 0-2)')
    parser.add_argument('--jobs', type=int, default=1,
                        help='worker processes (0: run in this process)')
    parser.add_argument('--threads', type=int,
                        help='torch threads per run (default: CPU cores / jobs)')
    parser.add_argument('--student-iters', type=int, help="override the regime's")
    parser.add_argument('--teacher-iters', type=int, help="override the regime's")
    parser.add_argument('--work-dir', default='work_dirs/benchmark_accuracy')
    parser.add_argument('--out', default='benchmarks/RESULTS.md')
    parser.add_argument('--chart', default='benchmarks/results.png')
    parser.add_argument('--json', help='also write the raw results here')
    parser.add_argument('--ledger', default='benchmarks/accuracy_runs.json',
                        help='committed record of every finished run (read back by a fresh '
                        "checkout whose teacher and backbones match); '' for none")
    parser.add_argument('--weights-dir', default='benchmarks/weights',
                        help='committed float16 copies of the teachers and the students\' '
                        "pretrained backbone every row starts from; '' for none")
    parser.add_argument('--report-only', action='store_true',
                        help='train nothing: the table of the runs finished so far')
    args = parser.parse_args(argv)
    if args.methods:
        known = {method for pairs in PAIRS_OF_TASK.values() for pair in pairs
                 for method in method_configs(pair)}
        unknown = sorted({row for row in args.methods if split_row(row)[2] not in known
                          or split_row(row)[0] not in ('', *TASKS)} - {'student'})
        if unknown:
            raise SystemExit(f'unknown methods {unknown}; known: {sorted(known)}')
    regime = dict(REGIMES[args.regime])
    for key in ('student_iters', 'teacher_iters'):
        if getattr(args, key) is not None:
            regime[key] = getattr(args, key)
    seeds = task_seeds(regime, args.tasks, args.seeds)
    start = time.time()
    threads = args.threads or max(1, (os.cpu_count() or 1) // max(1, args.jobs))
    pool = None if args.report_only else Pool(args.jobs, threads)
    try:
        results = run_benchmark(args.tasks, args.regime, regime, osp.abspath(args.work_dir),
                                args.methods, seeds, pool, ledger=args.ledger or None,
                                weights_dir=args.weights_dir or None)
    finally:
        if pool is not None:
            pool.close()
    words = [w for w in (argv if argv is not None else sys.argv[1:]) if w != '--report-only']
    command = ' '.join(['python tools/benchmark_accuracy.py'] + words)
    text = format_markdown(results, command, args.regime, regime, seeds,
                           None if args.report_only else (time.time() - start) / 60)
    print(text)
    text += kept_notes(args.out)
    for path, content in ((args.out, text), (args.json, json.dumps(results, indent=1))):
        if path:
            os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
            with open(path, 'w') as f:
                f.write(content)
    draw_chart(results, args.chart)
    print(f'written: {args.out}, {args.chart}')
    return results


if __name__ == '__main__':
    main()
