"""How much each shipped method improves the student, on the embedded digits dataset.

    python tools/benchmark_accuracy.py [--tasks det seg] [--methods fitnet_fpn ...]
        [--seeds 0] [--noise-seeds 1 2] [--budget full|quick] [--student-iters N]
        [--work-dir work_dirs/benchmark_accuracy] [--out benchmarks/RESULTS.md]
        [--chart benchmarks/results.png]

Per task (det: RetinaNet R18 -> half-width R18, COCO bbox mAP; seg: Semantic FPN R18 -> half
width, mIoU) it trains the teacher once, the student alone, and the student with every
shipped ``*_digits.py`` method config of that pair, all with the same data, iterations and
seeds (the demo's budget: ``tools/demo.py``); the teacher's per-image significance is
written first (``tools/significance.py``) for the self-regulated configs. The student alone is
also trained with the ``--noise-seeds``: the spread of its metric over seeds is the noise
level, and every method whose gain lies within twice that spread is rerun with the noise seeds
too, so its row is a mean over seeds. The table (method, metric, gain over the student, share of the
teacher-student gap closed, training time) goes to ``--out`` with the command that produced
it, and a bar chart to ``--chart``.

Every finished run leaves ``result.json`` in its work dir and is not run again, so an
interrupted benchmark continues where it stopped.
"""
import argparse
import json
import os
import os.path as osp
import statistics
import sys
import time
from typing import Dict, List, Optional

try:
    import mmkd  # noqa: F401
except ImportError:
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
    import mmkd  # noqa: F401

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from benchmark_overhead import method_configs  # noqa: E402
from demo import BUDGETS, TASKS, run  # noqa: E402

from mmkd.datasets import make_digits_dataset  # noqa: E402

PAIR_OF_TASK = {'det': 'digits_det', 'seg': 'digits_seg'}


def train_once(config: str, work_dir: str, data_root: str, iters: int, metric: str,
               seed: int, **overrides) -> dict:
    """Train + test ``config`` unless ``work_dir`` already holds its result."""
    path = osp.join(work_dir, 'result.json')
    if osp.exists(path):
        with open(path) as f:
            return json.load(f)
    start = time.time()
    value, ckpt = run(config, work_dir, data_root, iters, metric,
                      randomness=dict(seed=seed, deterministic=False), **overrides)
    result = dict(value=value, ckpt=ckpt, seconds=round(time.time() - start, 1), seed=seed)
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(result, f, indent=2)
    os.replace(tmp, path)
    return result


def summarize(values: List[float]) -> tuple:
    """(mean, sample standard deviation or 0.0 for one value)."""
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) if len(values) > 1 else 0.0)


def gap_closed(value: float, student: float, teacher: float) -> float:
    """Share of the teacher-student gap the method closes: 0 = student, 1 = teacher.

    Example:
        >>> gap_closed(0.3, student=0.1, teacher=0.5)
        0.5
    """
    gap = teacher - student
    return float('nan') if gap == 0 else (value - student) / gap


def within_noise(values: List[float], student: List[float], noise: float) -> bool:
    """Whether the gain over the student is smaller than twice the student's seed spread."""
    return abs(statistics.fmean(values) - statistics.fmean(student)) <= 2 * noise


def run_task(task: str, work_dir: str, budget: dict, methods: Optional[List[str]],
             seeds: List[int], noise_seeds: List[int], log=print) -> dict:
    spec = TASKS[task]
    data_root = osp.join(work_dir, 'data', 'digits')
    if not osp.exists(osp.join(data_root, 'annotations', 'instances_val.json')):
        make_digits_dataset(data_root, num_train=budget['num_train'],
                            num_val=budget['num_val'], seed=0)
    iters, metric = budget['student_iters'], spec['metric']
    task_dir = osp.join(work_dir, task)

    teacher = train_once(spec['teacher'], osp.join(task_dir, 'teacher'), data_root,
                         budget['teacher_iters'], metric, seed=seeds[0])
    log(f'[{task}] teacher {teacher["value"]:.4f}')
    marker = osp.join(task_dir, 'teacher', 'significance_written')
    if not osp.exists(marker):
        write_significance(spec['teacher'], teacher['ckpt'], data_root)
        open(marker, 'w').close()

    def student_run(seed):
        return train_once(spec['student'], osp.join(task_dir, 'student', f'seed{seed}'),
                          data_root, iters, metric, seed)

    def method_run(name, config, seed):
        return train_once(config, osp.join(task_dir, name, f'seed{seed}'), data_root, iters,
                          metric, seed, **{'model.teacher_ckpt': teacher['ckpt']})

    rows = {'student': [student_run(s) for s in seeds + noise_seeds]}
    _, noise = summarize([r['value'] for r in rows['student']])
    log(f'[{task}] student {[r["value"] for r in rows["student"]]} (seed spread {noise:.4f})')
    configs = method_configs(PAIR_OF_TASK[task], methods)
    for name, config in configs.items():
        rows[name] = [method_run(name, config, s) for s in seeds]
        values = [r['value'] for r in rows[name]]
        if noise_seeds and within_noise(values, [r['value'] for r in rows['student']], noise):
            rows[name] += [method_run(name, config, s) for s in noise_seeds]
        log(f'[{task}] {name} {[r["value"] for r in rows[name]]}')
    return dict(metric=spec['metric_name'], teacher=teacher, rows=rows, noise=noise)


def write_significance(teacher_config: str, ckpt: str, data_root: str) -> None:
    """The teacher's per-image significance, where the self-regulated (``selfreg``) configs'
    ``SignificanceSubset`` reads it (next to the training annotations)."""
    import significance
    significance.main([teacher_config, ckpt, '--cfg-options',
                       f'train_dataloader.dataset.data_root={data_root.rstrip("/")}/'])


def table_rows(result: dict) -> List[dict]:
    """One dict per row: student first, then methods by mean metric, best first."""
    teacher = result['teacher']['value']
    student_mean, _ = summarize([r['value'] for r in result['rows']['student']])
    rows = []
    for name, runs in result['rows'].items():
        mean, std = summarize([r['value'] for r in runs])
        rows.append(dict(method=name, mean=mean, std=std, seeds=len(runs),
                         gain=mean - student_mean,
                         gap_closed=gap_closed(mean, student_mean, teacher),
                         seconds=statistics.fmean(r['seconds'] for r in runs)))
    student = rows.pop(0)
    return [student] + sorted(rows, key=lambda r: -r['mean'])


def format_markdown(results: Dict[str, dict], command: str, budget: dict) -> str:
    scale = {'bbox_mAP': 100.0, 'mIoU': 1.0}  # both as percentages
    lines = ['# Accuracy of every method on the embedded digits dataset', '',
             f'Command: `{command}`', '',
             f'Machine: {os.cpu_count()} CPU cores, no GPU; {time.strftime("%Y-%m-%d")}. '
             f'Budget: {budget["num_train"]} training / {budget["num_val"]} validation '
             f'images, teacher {budget["teacher_iters"]} iterations, students '
             f'{budget["student_iters"]} iterations, from scratch. Metrics in percent; '
             '"gap closed" is (method - student) / (teacher - student). Methods whose gain '
             'lay within twice the student\'s seed spread were rerun with more seeds '
             '(mean +- sample std).', '']
    for task, result in results.items():
        k = scale.get(result['metric'], 1.0)
        teacher = result['teacher']
        lines += [f'## {task}: {result["metric"]} (teacher {k * teacher["value"]:.2f}, '
                  f'trained in {teacher["seconds"]:.0f} s; student seed spread '
                  f'{k * result["noise"]:.2f})', '',
                  f'| method | {result["metric"]} | seeds | gain over student | gap closed '
                  '| train s |', '|---|---|---|---|---|---|']
        for row in table_rows(result):
            spread = f' +- {k * row["std"]:.2f}' if row['seeds'] > 1 else ''
            lines.append(f'| {row["method"]} | {k * row["mean"]:.2f}{spread} | {row["seeds"]} '
                         f'| {k * row["gain"]:+.2f} | {100 * row["gap_closed"]:.0f}% '
                         f'| {row["seconds"]:.0f} |')
        lines.append('')
    return '\n'.join(lines)


def draw_chart(results: Dict[str, dict], path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(results), figsize=(7 * len(results), 6), squeeze=False)
    for ax, (task, result) in zip(axes[0], results.items()):
        rows = table_rows(result)
        names = [r['method'] for r in rows]
        ax.barh(names, [r['mean'] for r in rows], xerr=[r['std'] for r in rows],
                color=['grey'] + ['tab:blue'] * (len(rows) - 1))
        ax.axvline(result['teacher']['value'], color='tab:red', linestyle='--',
                   label='teacher')
        ax.invert_yaxis()
        ax.set_xlabel(result['metric'])
        ax.set_title(f'{task}: student and distilled students')
        ax.legend(loc='lower right')
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--tasks', nargs='+', choices=list(TASKS), default=list(TASKS))
    parser.add_argument('--methods', nargs='+', help='method names (default: all of the pair)')
    parser.add_argument('--seeds', nargs='+', type=int, default=[0])
    parser.add_argument('--noise-seeds', nargs='*', type=int, default=[1, 2])
    parser.add_argument('--budget', choices=list(BUDGETS), default='full')
    parser.add_argument('--student-iters', type=int, help="override the budget's")
    parser.add_argument('--teacher-iters', type=int, help="override the budget's")
    parser.add_argument('--work-dir', default='work_dirs/benchmark_accuracy')
    parser.add_argument('--out', default='benchmarks/RESULTS.md')
    parser.add_argument('--chart', default='benchmarks/results.png')
    args = parser.parse_args(argv)
    budget = dict(BUDGETS[args.budget])
    for key in ('student_iters', 'teacher_iters'):
        if getattr(args, key) is not None:
            budget[key] = getattr(args, key)
    results = {}
    for task in args.tasks:
        methods = args.methods
        if methods:  # names are per pair: keep those of this task
            available = method_configs(PAIR_OF_TASK[task])
            methods = [m for m in methods if m in available] or None
            if methods is None:
                continue
        results[task] = run_task(task, osp.abspath(args.work_dir), budget, methods,
                                 args.seeds, args.noise_seeds)
    command = 'python tools/benchmark_accuracy.py ' + ' '.join(argv if argv is not None
                                                               else sys.argv[1:])
    text = format_markdown(results, command.strip(), budget)
    print(text)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        f.write(text)
    draw_chart(results, args.chart)
    print(f'written: {args.out}, {args.chart}')
    return results


if __name__ == '__main__':
    main()
