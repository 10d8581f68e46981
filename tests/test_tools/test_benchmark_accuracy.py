import math
import os.path as osp
import sys

import matplotlib.image
import pytest

from tool_runs import REPO

sys.path.insert(0, osp.join(REPO, 'tools'))
import benchmark_accuracy  # noqa: E402


def fake_result(student, methods, teacher=0.5):
    def runs(values):
        return [dict(value=v, seconds=10.0, seed=i) for i, v in enumerate(values)]
    rows = dict(student=runs(student), **{k: runs(v) for k, v in methods.items()})
    return dict(metric='bbox_mAP', teacher=dict(value=teacher, seconds=100.0), rows=rows,
                noise=benchmark_accuracy.summarize(student)[1])


def test_gain_gap_and_noise_arithmetic():
    result = fake_result([0.1, 0.12, 0.14], {'a': [0.3], 'b': [0.13, 0.11, 0.15]})
    rows = {r['method']: r for r in benchmark_accuracy.table_rows(result)}
    assert rows['a']['gain'] == pytest.approx(0.18)
    assert rows['a']['gap_closed'] == pytest.approx(0.18 / 0.38)
    assert rows['b']['std'] == pytest.approx(0.02)
    assert [r['method'] for r in benchmark_accuracy.table_rows(result)] == ['student', 'a', 'b']
    assert benchmark_accuracy.within_noise([0.13], [0.1, 0.12, 0.14], noise=0.02)
    assert not benchmark_accuracy.within_noise([0.3], [0.1, 0.12, 0.14], noise=0.02)
    assert math.isnan(benchmark_accuracy.gap_closed(0.2, 0.3, 0.3))


def test_markdown_and_chart_from_results(tmp_path):
    results = {'det': fake_result([0.1, 0.12], {'a': [0.3], 'b': [0.2]})}
    text = benchmark_accuracy.format_markdown(
        results, 'python tools/benchmark_accuracy.py', benchmark_accuracy.BUDGETS['quick'])
    table = [line for line in text.splitlines() if line.startswith('| ')]
    assert [line.split(' | ')[0][2:] for line in table[1:]] == ['student', 'a', 'b']
    assert '| a | 30.00 | 1 | +19.00 | 49% | 10 |' in text
    chart = tmp_path / 'chart.png'
    benchmark_accuracy.draw_chart(results, str(chart))
    assert matplotlib.image.imread(str(chart)).shape[0] > 100


def test_tiny_real_benchmark_writes_table_and_chart(tmp_path, monkeypatch):
    monkeypatch.setitem(benchmark_accuracy.BUDGETS, 'quick', dict(
        num_train=16, num_val=8, teacher_iters=4, student_iters=2))
    out, chart = tmp_path / 'RESULTS.md', tmp_path / 'results.png'
    args = ['--tasks', 'det', '--methods', 'fitnet_fpn', '--budget', 'quick', '--seeds', '0',
            '--noise-seeds', '1', '--work-dir', str(tmp_path / 'work'), '--out', str(out),
            '--chart', str(chart)]
    results = benchmark_accuracy.main(args)
    assert set(results['det']['rows']) == {'student', 'fitnet_fpn'}
    assert len(results['det']['rows']['student']) == 2  # seed 0 and the noise seed
    text = out.read_text()
    assert '| fitnet_fpn |' in text and '| student |' in text
    assert matplotlib.image.imread(str(chart)).ndim == 3
    # a second call reuses every finished run
    again = benchmark_accuracy.main(args)
    assert again['det']['rows']['fitnet_fpn'][0]['seconds'] == \
        results['det']['rows']['fitnet_fpn'][0]['seconds']
