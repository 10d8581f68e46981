"""The demo's pipeline on the embedded digits dataset: teacher, student, distilled student.

:func:`run` trains one config for a number of iterations and tests it, seeded (the same call
gives the same numbers on the same machine and thread count), :func:`evaluate` tests a
checkpoint; :func:`run_task` does the three
runs of a task and exports the distilled student; :data:`TASKS` names the configs and metric
of each task. ``tools/demo.py`` is the command line over them; ``tools/benchmark_accuracy.py``
trains every row of its table with :func:`run` on :data:`TASKS`' pairs.
"""
import json
import os
import os.path as osp
import time
from typing import Callable, Optional

from mmengine.runner import Runner

from mmkd.apis import CONFIGS
from mmkd.datasets import make_digits_dataset
from mmkd.engine.export import export_student
from mmkd.engine.pretrain import set_pretrained_backbone
from mmkd.engine.runtime import load_config, set_data_root

#: Configs and budgets per task. The teacher trains longer: it has to be clearly better than
#: the student for distillation to have anything to teach.
TASKS = {
    'det': dict(
        teacher=f'{CONFIGS}/digits/retinanet_r18_digits.py',
        student=f'{CONFIGS}/digits/retinanet_r18-w32_digits.py',
        distilled=f'{CONFIGS}/distill/fitnet/fitnet_fpn_retina-r18_retina-r18w32_digits.py',
        metric='coco/bbox_mAP', metric_name='bbox_mAP'),
    'seg': dict(
        teacher=f'{CONFIGS}/digits/semfpn_r18_digits.py',
        student=f'{CONFIGS}/digits/semfpn_r18-w32_digits.py',
        distilled=f'{CONFIGS}/distill/fitnet/fitnet_fpn_semfpn-r18_semfpn-r18w32_digits.py',
        metric='mIoU', metric_name='mIoU'),
}
#: (train images, val images, teacher iters, student iters) for the full and the quick demo.
BUDGETS = {
    'full': dict(num_train=1000, num_val=200, teacher_iters=800, student_iters=400),
    'quick': dict(num_train=96, num_val=32, teacher_iters=40, student_iters=20),
}


def run(config: str, work_dir: str, data_root: str, iters: int, metric: str, seed: int = 0,
        pretrained: Optional[str] = None, val_interval: Optional[int] = None,
        save_checkpoint: bool = True, **overrides) -> tuple:
    """Train ``config`` for ``iters`` iterations, then test it; returns (metric, last ckpt).

    ``seed`` fixes initialisation and data order (mmengine's ``randomness``), so the same call
    gives the same numbers on the same machine and thread count. ``pretrained``: a backbone
    checkpoint loaded through ``init_cfg=dict(type='Pretrained')`` (the student's, for a
    distillation config; :mod:`mmkd.engine.pretrain`). ``val_interval``: validate every that
    many iterations as well (a learning curve in the work dir's scalars); by default only the
    final model is evaluated. Without ``save_checkpoint`` nothing is written but logs, and the
    returned checkpoint is None.

    mmdet's CocoMetric reports nothing when no box scores above the threshold (an untrained
    model): that is an mAP of 0.
    """
    cfg = load_config(config, work_dir=work_dir)
    set_data_root(cfg, data_root)
    set_pretrained_backbone(cfg, pretrained)
    cfg.randomness = dict(seed=seed, deterministic=False)
    # mmengine keeps one visualizer per name for the whole process: without a name of its
    # own, a second run in this process would log its scalars into the first run's folder.
    cfg.visualizer.name = f'visualizer:{osp.abspath(work_dir)}:{time.time()}'
    cfg.train_cfg.max_iters = iters
    # Validation only where asked: the test at the end evaluates the final model anyway.
    cfg.train_cfg.val_interval = val_interval or iters
    cfg.train_cfg.val_begin = val_interval or iters + 1
    cfg.default_hooks.checkpoint.interval = iters if save_checkpoint else -1
    cfg.default_hooks.checkpoint.save_last = save_checkpoint
    cfg.default_hooks.checkpoint.save_best = None
    cfg.param_scheduler[-1].end = iters
    cfg.param_scheduler[0].end = min(cfg.param_scheduler[0].end, max(iters // 10, 1))
    cfg.default_hooks.logger.interval = max(1, min(20, iters // 10))
    cfg.default_hooks.logger.log_metric_by_epoch = False  # validation scalars by iteration
    cfg.merge_from_dict(overrides)
    runner = Runner.from_cfg(cfg)
    runner.train()
    metrics = runner.test()
    ckpt = osp.join(work_dir, f'iter_{iters}.pth') if save_checkpoint else None
    return float(metrics.get(metric, 0.0)), ckpt


def evaluate(config: str, ckpt: str, work_dir: str, data_root: str, metric: str) -> float:
    """Test ``ckpt`` (any checkpoint of ``config``'s model, e.g. a float16 copy) on
    ``data_root``'s validation images; returns ``metric``."""
    cfg = load_config(config, work_dir=work_dir)
    set_data_root(cfg, data_root)
    cfg.load_from = ckpt
    cfg.visualizer.name = f'visualizer:{osp.abspath(work_dir)}:{time.time()}'
    return float(Runner.from_cfg(cfg).test().get(metric, 0.0))


def finished_run(run_dir: str, config: str, iters: int, seed: int, budget: dict,
                 train: Callable[[str], tuple]) -> dict:
    """``{value, ckpt, seconds}`` of one demo run: read from ``run_dir/demo_result.json`` when
    a run of the same config, iterations, seed and budget finished there (its checkpoint still
    on disk), else trained now with ``train(run_dir)`` -> (value, ckpt) and written there
    atomically, so a killed demo redoes only the runs it had not finished."""
    path = osp.join(run_dir, 'demo_result.json')
    key = dict(config=osp.relpath(config, CONFIGS), iters=iters, seed=seed, budget=budget)
    if osp.exists(path):
        with open(path) as f:
            done = json.load(f)
        if done.get('key') == key and osp.exists(done['ckpt']):
            return done
    start = time.time()
    value, ckpt = train(run_dir)
    done = dict(key=key, value=value, ckpt=ckpt, seconds=time.time() - start)
    os.makedirs(run_dir, exist_ok=True)
    with open(path + '.tmp', 'w') as f:
        json.dump(done, f, indent=1)
    os.replace(path + '.tmp', path)
    return done


def run_task(task: str, work_dir: str, budget: dict, seed: int = 0) -> dict:
    """Teacher, student alone and distilled student of ``task`` on ``budget`` (a
    :data:`BUDGETS` entry) under ``work_dir``, which also holds the generated dataset; the
    distilled student is exported. Returns their metrics, checkpoints and training seconds."""
    spec = TASKS[task]
    data_root = osp.join(work_dir, 'data', 'digits')
    if not osp.exists(osp.join(data_root, 'annotations', 'instances_val.json')):
        make_digits_dataset(data_root, num_train=budget['num_train'],
                            num_val=budget['num_val'], seed=0)
    result, ckpts, times = {}, {}, {}
    for role in ('teacher', 'student', 'distilled'):
        iters = budget['teacher_iters'] if role == 'teacher' else budget['student_iters']
        extra = {'model.teacher_ckpt': ckpts['teacher']} if role == 'distilled' else {}
        done = finished_run(osp.join(work_dir, task, role), spec[role], iters, seed, budget,
                            lambda d: run(spec[role], d, data_root, iters, spec['metric'],
                                          seed=seed, **extra))
        result[role] = {spec['metric_name']: done['value']}
        ckpts[role], times[role] = done['ckpt'], done['seconds']
    ckpt, distill_dir = ckpts['distilled'], osp.join(work_dir, task, 'distilled')
    exported, student_config = export_student(ckpt, osp.join(distill_dir, 'student_exported.pth'))
    result.update(distilled_ckpt=ckpt, exported_student_ckpt=exported,
                  student_config=student_config,
                  train_seconds={k: round(v, 1) for k, v in times.items()})
    return result


def format_table(results: dict) -> str:
    """The demo's table: one line per task and model, with its metric and training time."""
    lines = [f'{"task":<5} {"model":<10} {"metric":<9} {"value":>7} {"train s":>8}']
    for task, result in results.items():
        for role in ('teacher', 'student', 'distilled'):
            (name, value), = result[role].items()
            lines.append(f'{task:<5} {role:<10} {name:<9} {value:>7.3f} '
                         f'{result["train_seconds"][role]:>8.1f}')
    return '\n'.join(lines)
