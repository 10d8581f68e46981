"""Paired statistics of the accuracy benchmark: a method against the student alone, seed by
seed (same initialisation and data order), with a Student's t interval.

Used by :mod:`mmkd.apis.accuracy_report` (the accuracy table) and
``tools/analysis/run_metrics.py`` (every metric of the runs' final evaluations).
"""
import math
import statistics
from typing import Dict, List

CONFIDENCE = 0.95


def summarize(values: List[float]) -> tuple:
    """(mean, sample standard deviation or 0.0 for one value)."""
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) if len(values) > 1 else 0.0)


def t_quantile(p: float, dof: int) -> float:
    """The ``p`` quantile of Student's t distribution with ``dof`` degrees of freedom."""
    from scipy.stats import t
    return float(t.ppf(p, dof))


def paired_gain(method: Dict[int, float], student: Dict[int, float],
                confidence: float = CONFIDENCE) -> dict:
    """Mean of the per-seed differences ``method[s] - student[s]`` and its t interval.

    Only seeds present in both count. With fewer than two pairs the interval is unbounded.

    Example:
        >>> g = paired_gain({0: 0.3, 1: 0.5}, {0: 0.1, 1: 0.3, 2: 0.9})
        >>> round(g['gain'], 6), g['pairs']
        (0.2, 2)
    """
    seeds = sorted(set(method) & set(student))
    diffs = [method[s] - student[s] for s in seeds]
    if not diffs:
        raise ValueError(f'no common seed: method has {sorted(method)}, student '
                         f'{sorted(student)}')
    gain = statistics.fmean(diffs)
    if len(diffs) < 2:
        low, high = -math.inf, math.inf
    else:
        half = (t_quantile((1 + confidence) / 2, len(diffs) - 1)
                * statistics.stdev(diffs) / math.sqrt(len(diffs)))
        low, high = gain - half, gain + half
    resolved = 'above' if low > 0 else 'below' if high < 0 else 'no'
    return dict(gain=gain, low=low, high=high, pairs=len(diffs), resolved=resolved)


def gap_closed(value: float, student: float, teacher: float) -> float:
    """Share of the teacher-student gap the method closes: 0 = student, 1 = teacher.

    Example:
        >>> round(gap_closed(0.3, student=0.1, teacher=0.5), 6)
        0.5
    """
    gap = teacher - student
    return float('nan') if gap == 0 else (value - student) / gap
