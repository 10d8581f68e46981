"""The accuracy benchmark: every row of :mod:`mmkd.apis.accuracy_tasks` trained over seeds,
its teachers first, and the table written (``tools/benchmark_accuracy.py`` is its command
line).

:func:`benchmark_accuracy` does a whole call: :func:`run_benchmark` trains what is missing in
a :class:`Pool` of worker processes (every run with :func:`mmkd.apis.demo.run`, through
:func:`train_once`, which skips a run finished in its folder or in the
:class:`~mmkd.apis.run_ledger.RunLedger`), after the teachers' significance and MasKD token jobs
where rows read them; :func:`mmkd.apis.accuracy_report.write_report` writes the table. The
functions the workers run are here, in the package, so that a spawned worker imports them by
name.
"""
import json
import os
import os.path as osp
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Dict, List, Optional

from mmkd.apis.accuracy_report import write_report
from mmkd.apis.accuracy_tasks import (TASKS, check_rows, loss_weight_overrides, needed_slots,
                                      others, regime_with, row_configs, split_sweep,
                                      split_teacher_precision, task_seeds, teacher_overrides,
                                      teacher_slots)
from mmkd.apis.demo import evaluate, run
from mmkd.apis.maskd_tokens import learn_maskd_tokens, tokens_options
from mmkd.apis.run_ledger import RunLedger, WeightStore, weights_sha
from mmkd.apis.significance import write_teacher_significance
from mmkd.datasets import make_digits_dataset

#: Iterations of MasKD's first phase (tokens on the teacher, the teacher config's batch of 8)
#: before its rows: the paper's 10k on Cityscapes, scaled down as the students' schedules are
#: (300 iterations are 2.4 passes over the 1000 training images).
MASKD_TOKEN_ITERS = 300


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


def _data_root_options(data_root: str) -> dict:
    """``cfg_options`` that read a teacher config's training images from ``data_root``."""
    return {'train_dataloader.dataset.data_root': f'{data_root.rstrip("/")}/'}


def significance_job(teacher_config: str, ckpt: str, data_root: str, marker: str) -> None:
    """The teacher's per-image significance, where the self-regulated (``selfreg``) configs'
    ``SignificanceSubset`` reads it (next to the training annotations)."""
    if osp.exists(marker):
        return
    write_teacher_significance(teacher_config, ckpt, cfg_options=_data_root_options(data_root))
    open(marker, 'w').close()


def maskd_tokens_job(teacher_config: str, ckpt: str, data_root: str, out: str) -> None:
    """The receptive tokens the MasKD configs read (their first phase, on the task's
    teacher), written once to ``out``."""
    if osp.exists(out):
        return
    learn_maskd_tokens(teacher_config, ckpt, out=out, iters=MASKD_TOKEN_ITERS,
                       cfg_options=_data_root_options(data_root))


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


# ---------------------------------------------------------------- the benchmark
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
    """Train what is missing and return ``{task: result}`` (see
    :func:`mmkd.apis.accuracy_report.table_rows`).

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
    # significance and MasKD tokens; the extra teachers of rows with several teachers too
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
    configs = {task: row_configs(task, methods) for task in tasks}
    if pool is not None and any(name.startswith('selfreg') for task in tasks
                                for name in configs[task]):
        pool.map(significance_job, [dict(
            teacher_config=TASKS[task]['teacher'], ckpt=teachers[task]['ckpt'],
            data_root=data_root,
            marker=osp.join(teacher_root, task, 'significance_written')) for task in tasks])

    # one parse of each method config finds its MasKD recipes: both the overrides that point
    # them at the task's tokens and whether the task needs its token job
    tokens = {task: osp.join(teacher_root, task, f'maskd_tokens_{MASKD_TOKEN_ITERS}it.pth')
              for task in tasks}
    maskd = {task: {config: tokens_options(config, tokens[task])
                    for config in set(configs[task].values())} for task in tasks}
    if pool is not None:
        pool.map(maskd_tokens_job, [dict(
            teacher_config=TASKS[task]['teacher'], ckpt=teachers[task]['ckpt'],
            data_root=data_root, out=tokens[task]) for task in tasks
            if any(maskd[task].values())])

    # 3. every row x seed in one queue, row by row (both tasks), so that an interrupted run
    # leaves whole rows
    jobs, keys = [], []
    rows = {task: {'student': TASKS[task]['student'], **{
        name: config for name, config in configs[task].items()
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
                overrides.update(maskd[task][config])
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


def _teachers(slots: Dict[str, tuple], regime: dict, work_dir: str, data_root: str,
              teacher_root: str, store: Optional[WeightStore], book: Optional[RunLedger],
              pool: Optional[Pool], log=print) -> Dict[str, Optional[dict]]:
    """``{slot: teacher result}`` for the
    :func:`~mmkd.apis.accuracy_tasks.teacher_slots`: the store's copy with the
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


def benchmark_accuracy(tasks: Optional[List[str]] = None, regime_name: str = 'pretrained',
                       methods: Optional[List[str]] = None,
                       seeds: Optional[List[int]] = None, jobs: int = 1,
                       threads: Optional[int] = None, student_iters: Optional[int] = None,
                       teacher_iters: Optional[int] = None,
                       work_dir: str = 'work_dirs/benchmark_accuracy',
                       out: str = 'benchmarks/RESULTS.md', chart: str = 'benchmarks/results.png',
                       json_path: Optional[str] = None,
                       ledger: Optional[str] = 'benchmarks/accuracy_runs.json',
                       weights_dir: Optional[str] = 'benchmarks/weights',
                       report_only: bool = False,
                       command: str = 'python tools/benchmark_accuracy.py',
                       log=print) -> Dict[str, dict]:
    """Train what is missing, write the report, return ``{task: result}``.

    Args:
        tasks (list[str], optional): Keys of :data:`~mmkd.apis.accuracy_tasks.TASKS`.
            Defaults to all.
        regime_name (str): A key of :data:`~mmkd.apis.accuracy_tasks.REGIMES`. Defaults to
            ``'pretrained'``.
        methods (list[str], optional): Row names (see
            :func:`~mmkd.apis.accuracy_tasks.split_row`); an unknown one exits. Defaults to
            every method of the tasks' pairs.
        seeds (list[int], optional): Every task's seeds. Defaults to the regime's per task.
        jobs (int): Worker processes; 0 runs in this process. Defaults to 1.
        threads (int, optional): Torch threads per run. Defaults to the CPU cores / ``jobs``.
        student_iters, teacher_iters (int, optional): The regime's schedules overridden.
        work_dir (str): Root of every run's folder and the generated data.
        out, chart (str): The Markdown table (its ``## Notes`` kept) and the chart to write.
        json_path (str, optional): Where the raw results go too.
        ledger, weights_dir (str, optional): The committed
            :class:`~mmkd.apis.run_ledger.RunLedger` and
            :class:`~mmkd.apis.run_ledger.WeightStore`; '' or None for none.
        report_only (bool): Train nothing: the table of the runs finished so far.
        command (str): The command the report names.
        log: receives the progress lines and the table.
    """
    if methods:
        check_rows(methods)
    tasks = list(tasks or TASKS)
    regime = regime_with(regime_name, student_iters, teacher_iters)
    seeds = task_seeds(regime, tasks, seeds)
    start = time.time()
    threads = threads or max(1, (os.cpu_count() or 1) // max(1, jobs))
    pool = None if report_only else Pool(jobs, threads)
    try:
        results = run_benchmark(tasks, regime_name, regime, osp.abspath(work_dir),
                                methods, seeds, pool, log=log, ledger=ledger or None,
                                weights_dir=weights_dir or None)
    finally:
        if pool is not None:
            pool.close()
    write_report(results, command, regime_name, regime, seeds,
                 None if report_only else (time.time() - start) / 60, out, chart, json_path,
                 log)
    return results
