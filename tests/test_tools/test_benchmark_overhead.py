import json

import pytest
import torch

from tool_runs import load_tool

from mmkd.apis.method_configs import PAIRS, method_configs

benchmark_overhead = load_tool('benchmark_overhead.py')


class FakeClock:
    """A clock that only moves when a fake step says how long it took."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def step(self, seconds):
        def run():
            self.now += seconds
        return run


def test_ratio_arithmetic_on_a_fake_clock():
    clock = FakeClock()
    steps = dict(student=clock.step(2.0), teacher=clock.step(0.5), distill=clock.step(3.0))
    result = benchmark_overhead.measure_steps(steps, 'cpu', repeats=3, clock=clock)
    assert result['student']['seconds'] == 2.0
    assert result['teacher']['seconds'] == 0.5
    assert result['distill']['seconds'] == 3.0
    assert result['ratio'] == pytest.approx(3.0 / 2.5)
    table = benchmark_overhead.format_table({'cka_fpn': result})
    assert 'cka_fpn' in table and '1.200' in table and 'above 1.05' in table


def test_by_design_methods_are_named_as_such():
    clock = FakeClock()
    steps = dict(student=clock.step(1.0), teacher=clock.step(1.0), distill=clock.step(3.0))
    result = benchmark_overhead.measure_steps(steps, 'cpu', repeats=1, clock=clock)
    table = benchmark_overhead.format_table({'gkd_fpn': result, 'fitnet_fpn': dict(
        result, ratio=1.01)})
    gkd_line, fitnet_line = table.splitlines()[2:]
    assert 'by design' in gkd_line and 'above' not in fitnet_line


def test_every_pair_has_method_configs_and_unknown_methods_are_named():
    for pair in PAIRS:
        assert method_configs(pair), pair
    with pytest.raises(ValueError, match='fitnet_fpn'):
        method_configs('digits_det', ['fitnet_fp'])


@pytest.mark.parametrize('pair,methods', [('digits_det', ['fitnet_fpn', 'kd_logits']),
                                          ('digits_seg', ['cwd_logits'])])
def test_real_run_measures_each_method(pair, methods, tmp_path, capsys):
    out = tmp_path / 'overhead.json'
    results = benchmark_overhead.main(['--pair', pair, '--methods', *methods, '--repeats', '1',
                                       '--image-size', '64', '64', '--json', str(out)])
    printed = capsys.readouterr().out
    assert set(results) == set(methods)
    for method in methods:
        row = results[method]
        assert 'error' not in row, row
        assert row['ratio'] > 0 and row['distill']['seconds'] > 0
        assert any(line.startswith(method) for line in printed.splitlines())
    assert set(json.loads(out.read_text())['results']) == set(methods)


def test_quick_teacher_settings_mode_runs_every_setting(tmp_path, capsys):
    out = tmp_path / 'settings.json'
    settings = ['fp32', 'bf16+channels_last+early_stop', 'fp16+channels_last']
    results = benchmark_overhead.main(['--quick', '--cases', 'pkd_digits', '--settings',
                                       *settings, '--json', str(out)])
    printed = capsys.readouterr().out
    row = results['pkd_digits']
    assert row['student']['seconds'] > 0 and row['teacher']['seconds'] > 0
    assert list(row['settings']) == settings
    for name in settings[:2]:
        assert 'error' not in row['settings'][name], row['settings'][name]
        assert row['settings'][name]['ratio'] > 0 and row['settings'][name]['peak_mib'] > 0
        assert any(line.strip().startswith(name) for line in printed.splitlines())
    if not torch.cuda.is_available():  # fp16 is refused off CUDA, in the table, not a crash
        assert 'runs on CUDA only' in row['settings']['fp16+channels_last']['error']
    assert set(json.loads(out.read_text())['results']) == {'pkd_digits'}


def test_default_teacher_settings_leave_out_what_cannot_pay():
    from mmkd.models.distillers.teacher_runner import cpu_has_fast_bf16
    cpu = benchmark_overhead.default_settings('cpu')
    assert 'fp32' in cpu and not any(s.startswith('fp16') for s in cpu)
    assert any(s.startswith('bf16') for s in cpu) == cpu_has_fast_bf16()
    assert 'fp16+channels_last' in benchmark_overhead.default_settings('cuda')
