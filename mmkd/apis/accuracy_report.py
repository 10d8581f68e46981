"""The accuracy benchmark's report: the Markdown table (``benchmarks/RESULTS.md``) and the
chart of its results.

A result is ``{task: dict(metric=..., teacher=run, rows={row: {seed: run}},
other_teachers=...)}`` (:func:`mmkd.apis.accuracy_benchmark.run_benchmark`); each row is
compared with the student alone seed by seed (:mod:`mmkd.apis.paired_stats`). A ``## Notes``
section written by hand below the table survives a regenerated report.
"""
import json
import math
import os
import os.path as osp
import statistics
import time
from typing import Dict, List, Optional

from mmkd.apis.paired_stats import gap_closed, paired_gain, summarize

SCALE = {'bbox_mAP': 100.0, 'segm_mAP': 100.0, 'mIoU': 1.0}  # all reported as percentages
NOTES_HEADING = '## Notes'


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


def format_markdown(results: Dict[str, dict], command: str, regime_name: str, regime: dict,
                    seeds, minutes: Optional[float] = None) -> str:
    """The report: the regime, then per task its teachers, the student's curves and the
    table of :func:`table_rows`, metrics in percent."""
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


def write_report(results: Dict[str, dict], command: str, regime_name: str, regime: dict,
                 seeds, minutes: Optional[float], out: str, chart: str,
                 json_path: Optional[str] = None, log=print) -> None:
    """Log the :func:`format_markdown` table, write it to ``out`` above the ``out``'s kept
    notes, the raw ``results`` to ``json_path`` (when given) and :func:`draw_chart` to
    ``chart``."""
    text = format_markdown(results, command, regime_name, regime, seeds, minutes)
    log(text)
    text += kept_notes(out)
    for path, content in ((out, text), (json_path, json.dumps(results, indent=1))):
        if path:
            os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
            with open(path, 'w') as f:
                f.write(content)
    draw_chart(results, chart)
    log(f'written: {out}, {chart}')
