"""Every metric of the accuracy benchmark's final evaluations, row against row, seed by seed.

    python tools/analysis/run_metrics.py REFERENCE_ROW ROW [ROW ...] [--keys KEY ...]

A row is a benchmark row's folder (``work_dirs/benchmark_accuracy/<regime>/<task>/<row>``,
one ``seed<N>`` folder per seed). The benchmark's table keeps one metric per task (bbox mAP,
mIoU, segm mAP); the final test of each run logged them all (a Mask R-CNN run: bbox and segm
mAP at every IoU and size). This prints, per metric, each row's values per seed, mean +- std
and its paired difference with REFERENCE_ROW (usually the student alone) with its 95% t
interval, as the table does for its metric. It reads the logs of finished runs only (those
with ``result.json``); COCO metrics are printed in percent.

Example: why does mask KD not raise the segm mAP?
    python tools/analysis/run_metrics.py WORK/ins/student WORK/ins/maskkd_mask-head \
        --keys coco/bbox_mAP coco/segm_mAP coco/segm_mAP_50 coco/segm_mAP_75
"""
import argparse
import glob
import os.path as osp
import re
from typing import Dict, List, Optional

from mmkd.apis.paired_stats import paired_gain, summarize

#: ``key: value`` pairs of an mmengine log line.
PAIR = re.compile(r'(\S+): (-?\d+(?:\.\d+)?(?:e[-+]?\d+)?)')
#: Timing entries of the log line, not metrics.
NOT_METRICS = ('data_time', 'time')


def final_metrics(seed_dir: str) -> Optional[Dict[str, float]]:
    """The metrics of the last test logged in ``seed_dir`` (a finished run's folder), or None
    when it has no ``result.json`` or no test line."""
    if not osp.exists(osp.join(seed_dir, 'result.json')):
        return None
    for log in sorted(glob.glob(osp.join(seed_dir, '*', '*.log')), reverse=True):
        with open(log) as f:
            tests = [line for line in f if 'Iter(test)' in line]
        if tests:
            line = tests[-1].split('Iter(test)', 1)[1]
            return {key: float(value) * (100 if key.startswith('coco/') else 1)
                    for key, value in PAIR.findall(line) if key not in NOT_METRICS}
    return None


def row_metrics(row_dir: str) -> Dict[int, Dict[str, float]]:
    """``{seed: {metric: value}}`` of a row's finished runs."""
    found = {}
    for seed_dir in glob.glob(osp.join(row_dir, 'seed*')):
        metrics = final_metrics(seed_dir)
        if metrics is not None:
            found[int(osp.basename(seed_dir)[len('seed'):])] = metrics
    return found


def compare(rows: Dict[str, Dict[int, Dict[str, float]]], reference: str,
            keys: Optional[List[str]] = None) -> str:
    """A Markdown table per metric: every row's values per seed, mean +- std, and the paired
    difference with ``reference``."""
    if not rows[reference]:
        raise ValueError(f'the reference row {reference} has no finished run with a test line')
    if keys is None:
        keys = sorted(set.intersection(*(set(m) for m in rows[reference].values())))
    out = []
    for key in keys:
        out += [f'### {key}', '', '| row | per seed | mean +- std | difference [95% interval] |',
                '|---|---|---|---|']
        ref = {seed: m[key] for seed, m in rows[reference].items() if key in m}
        for name, runs in rows.items():
            values = {seed: m[key] for seed, m in sorted(runs.items()) if key in m}
            if not values:
                out.append(f'| {name} | no finished run logs {key} | | |')
                continue
            mean, std = summarize(list(values.values()))
            diff = ''
            if name != reference and set(values) & set(ref):
                g = paired_gain(values, ref)
                interval = (f' [{g["low"]:+.2f}, {g["high"]:+.2f}]' if g['pairs'] > 1 else '')
                diff = f'{g["gain"]:+.2f}{interval} ({g["pairs"]} seed{"s" * (g["pairs"] > 1)})'
            seeds = ' / '.join(f'{v:.2f}' for v in values.values())
            out.append(f'| {name} | {seeds} | {mean:.2f} +- {std:.2f} | {diff} |')
        out.append('')
    return '\n'.join(out)


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('reference', help="the row the others are paired with (a row's folder)")
    parser.add_argument('rows', nargs='+', help="other rows' folders")
    parser.add_argument('--keys', nargs='+', help='metrics to show (default: every metric the '
                        "reference row's tests logged)")
    args = parser.parse_args(argv)
    paths = [args.reference] + args.rows
    names = [osp.basename(osp.normpath(path)) for path in paths]
    if len(set(names)) < len(names):  # e.g. det/student and seg/student: one would be lost
        raise SystemExit(f'rows are named by their folder, and {names} repeat a name: compare '
                         'rows of one task (one folder of rows) at a time.')
    rows = {name: row_metrics(path) for name, path in zip(names, paths)}
    table = compare(rows, names[0], args.keys)
    print(table)
    return table


if __name__ == '__main__':
    main()
