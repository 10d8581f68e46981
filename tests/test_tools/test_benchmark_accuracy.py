"""tools/benchmark_accuracy.py, the command line over mmkd/apis/accuracy_tasks.py (tasks,
regimes, seeds, rows, teachers), mmkd/apis/accuracy_benchmark.py (runs, ledger, jobs) and
mmkd/apis/accuracy_report.py (table, chart)."""
import math
import os.path as osp

import matplotlib.image
import pytest
from mmengine.config import Config
from tool_runs import REPO, load_tool

from mmkd.apis import accuracy_benchmark, accuracy_report, accuracy_tasks
from mmkd.apis.paired_stats import gap_closed, paired_gain
from mmkd.engine.runtime import load_config

benchmark_accuracy = load_tool('benchmark_accuracy.py')


def fake_result(student, methods, teacher=0.5):
    def runs(values):
        return {seed: dict(value=v, seconds=10.0) for seed, v in enumerate(values)}
    rows = dict(student=runs(student), **{k: runs(v) for k, v in methods.items()})
    return dict(metric='bbox_mAP', teacher=dict(value=teacher, seconds=100.0, curve=[[2, 0.4]]),
                rows=rows)


def test_paired_interval_arithmetic():
    # differences 1, 2, 3: mean 2, sd 1, t(0.975, 2) = 4.3027 -> half width 2.4841
    g = paired_gain({0: 2.0, 1: 4.0, 2: 6.0}, {0: 1.0, 1: 2.0, 2: 3.0})
    assert g['gain'] == pytest.approx(2.0)
    assert (g['low'], g['high']) == pytest.approx((2 - 2.48414, 2 + 2.48414), abs=1e-4)
    assert g['resolved'] == 'no' and g['pairs'] == 3
    # consistent differences resolve even when the seeds themselves vary a lot
    g = paired_gain({0: 1.2, 1: 5.15, 2: 3.08}, {0: 1.0, 1: 5.0, 2: 2.9})
    assert g['resolved'] == 'above' and g['low'] > 0
    g = paired_gain({0: 0.8, 1: 4.9, 2: 2.7}, {0: 1.0, 1: 5.0, 2: 2.9})
    assert g['resolved'] == 'below' and g['high'] < 0
    # only common seeds pair up; one pair gives an unbounded interval
    g = paired_gain({0: 2.0, 5: 9.0}, {0: 1.0, 1: 3.0})
    assert g['pairs'] == 1 and g['gain'] == 1.0 and math.isinf(g['low'])
    assert g['resolved'] == 'no'
    with pytest.raises(ValueError, match='no common seed'):
        paired_gain({3: 1.0}, {0: 1.0})
    assert math.isnan(gap_closed(0.2, 0.3, 0.3))


def test_rows_sorted_by_gain_with_gap_closed():
    result = fake_result([0.1, 0.12, 0.14], {'a': [0.3, 0.33, 0.33], 'b': [0.13, 0.11, 0.15]})
    rows = accuracy_report.table_rows(result)
    assert [r['method'] for r in rows] == ['student', 'a', 'b']
    a = rows[1]
    assert a['gain'] == pytest.approx(0.2) and a['resolved'] == 'above'
    assert a['gap_closed'] == pytest.approx(0.2 / 0.38)
    assert rows[2]['std'] == pytest.approx(0.02) and rows[2]['resolved'] == 'no'


def test_markdown_and_chart_from_results(tmp_path):
    results = {'det': fake_result([0.1, 0.12], {'a': [0.3, 0.34], 'b': [0.2, 0.2]})}
    text = accuracy_report.format_markdown(
        results, 'python tools/benchmark_accuracy.py', 'quick',
        accuracy_tasks.REGIMES['quick'], [0, 1])
    table = [line for line in text.splitlines() if line.startswith('| ')]
    assert [line.split(' | ')[0][2:] for line in table[1:]] == ['student', 'a', 'b']
    # gain 0.21, differences 0.20 / 0.22: sd 0.01414, t(0.975, 1) = 12.706 -> +- 0.127
    assert '| a | 32.00 +- 2.83 | 2 | +21.00 [+8.29, +33.71] | above | 54% | 10 |' in text
    assert 'Teacher validation curve (iteration: metric): 2: 40.0.' in text
    # 3 rows x 2 seeds of 10 s each
    assert '6 runs in this table, 0.0 h of training' in text
    assert accuracy_report.training_time(results) == (6, 60.0)
    chart = tmp_path / 'chart.png'
    accuracy_report.draw_chart(results, str(chart))
    assert matplotlib.image.imread(str(chart)).shape[0] > 100


@pytest.mark.slow  # trains a tiny benchmark: about a minute
def test_tiny_real_benchmark_is_seeded_resumable_and_filtered(tmp_path):
    out, chart = tmp_path / 'RESULTS.md', tmp_path / 'results.png'
    # segmentation: mIoU exists at any accuracy (a 4-iteration detector may find no box)
    args = ['--regime', 'quick', '--tasks', 'seg', '--methods', 'fitnet_fpn', '--seeds', '0',
            '1', '--jobs', '0', '--threads', '1', '--work-dir', str(tmp_path / 'work'),
            '--out', str(out), '--chart', str(chart), '--ledger', str(tmp_path / 'runs.json'),
            '--weights-dir', str(tmp_path / 'weights')]
    results = benchmark_accuracy.main(args)
    rows = results['seg']['rows']
    assert set(rows) == {'student', 'fitnet_fpn'} and set(rows['student']) == {0, 1}
    assert all(r['threads'] == 1 for r in rows['student'].values())
    # learning curves by iteration: the teacher's every iteration here, the student's 2 points
    assert [it for it, _ in results['seg']['teacher']['curve']] == [1, 2, 3, 4]
    assert [it for it, _ in rows['student'][0]['curve']] == [1, 2]
    assert rows['fitnet_fpn'][0]['curve'] == []
    text = out.read_text()
    assert '| fitnet_fpn |' in text and '| student |' in text
    # notes written by hand below the table survive a regenerated table
    out.write_text(text + '\n## Notes\n\nwhy the regime\n')
    benchmark_accuracy.main(args + ['--report-only'])
    assert out.read_text().endswith('\n## Notes\n\nwhy the regime\n')
    assert out.read_text().count('## Notes') == 1
    assert 'pretrained on digit classification' in text and 'student backbones too' in text
    assert matplotlib.image.imread(str(chart)).ndim == 3
    # a second call reuses every finished run, and a killed run is the only one redone
    run_dir = tmp_path / 'work' / 'quick_16-8_t4_s2' / 'seg' / 'fitnet_fpn' / 'seed1'
    (run_dir / 'result.json').unlink()
    again = benchmark_accuracy.main(args)
    assert again['seg']['rows']['student'][0]['seconds'] == rows['student'][0]['seconds']
    assert again['seg']['rows']['fitnet_fpn'][1]['value'] == rows['fitnet_fpn'][1]['value']
    with pytest.raises(SystemExit, match='unknown methods'):
        benchmark_accuracy.main(args + ['--methods', 'fitnett_fpn'])
    with pytest.raises(SystemExit, match='unknown methods'):
        benchmark_accuracy.main(args + ['--methods', 'fitnett_fpn@x2'])
    with pytest.raises(SystemExit, match='unknown methods'):
        benchmark_accuracy.main(args + ['--methods', 'sge:fitnet_fpn'])
    # a sweep row: its method with every loss weight halved, next to the same student runs
    sweep = benchmark_accuracy.main(args + ['--methods', 'seg:fitnet_fpn@x0.5',
                                            'det:fitnet_fpn@x2', '--seeds', '0'])
    assert set(sweep['seg']['rows']) == {'student', 'fitnet_fpn@x0.5'}
    assert sweep['seg']['rows']['student'][0] == rows['student'][0]  # reused, not retrained
    sweep_dir = tmp_path / 'work' / 'quick_16-8_t4_s2' / 'seg' / 'fitnet_fpn@x0.5' / 'seed0'
    ran = Config.fromfile(str(next(sweep_dir.glob('fitnet_fpn_*.py'))))
    assert {k: v.loss_weight for k, v in ran.model.distill_losses.items()} == {
        f'loss_fpn{i}': 0.5 for i in range(4)}
    assert '| fitnet_fpn@x0.5 |' in out.read_text()
    # a fresh checkout (the work folder lost): the ledger and the weight store still give the
    # same table, and a new row trains against the same teacher without training it again
    import shutil
    shutil.rmtree(tmp_path / 'work')
    report = benchmark_accuracy.main(args + ['--report-only'])
    assert report['seg']['rows']['fitnet_fpn'][1]['value'] == rows['fitnet_fpn'][1]['value']
    assert report['seg']['rows']['fitnet_fpn'][1]['teacher_sha'] == report['seg']['teacher'][
        'sha'] and len(report['seg']['rows']['student'][0]['backbone_sha']) == 16
    more = benchmark_accuracy.main(args + ['--methods', 'seg:fitnet_fpn@x0.5', 'pkd_fpn',
                                           '--seeds', '0'])
    assert not (tmp_path / 'work' / 'teachers').exists()  # teacher from the store
    assert not (tmp_path / 'work' / 'pretrained').exists()  # backbone from the store
    assert more['seg']['rows']['pkd_fpn'][0]['teacher_sha'] == report['seg']['teacher']['sha']
    assert more['seg']['rows']['fitnet_fpn@x0.5'][0]['value'] == sweep['seg']['rows'][
        'fitnet_fpn@x0.5'][0]['value']


def test_teacher_precision_rows_name_their_method():
    split = accuracy_tasks.split_teacher_precision
    assert split('pkd_fpn@bf16') == ('pkd_fpn', 'bf16')
    assert split('pkd_fpn@x10@fp16') == ('pkd_fpn@x10', 'fp16')
    assert split('pkd_fpn') == ('pkd_fpn', None)
    assert accuracy_tasks.split_row('det:pkd_fpn@x10@bf16') == (
        'det', 'pkd_fpn@x10@bf16', 'pkd_fpn')
    assert set(accuracy_tasks.row_configs('det', ['pkd_fpn@bf16'])) == {'pkd_fpn@bf16'}


def test_sweep_rows_scale_every_loss_weight():
    assert accuracy_tasks.split_sweep('topkd_logits') == ('topkd_logits', None)
    assert accuracy_tasks.split_sweep('cka_logits@x0.03') == ('cka_logits', 0.03)
    with pytest.raises(SystemExit, match='METHOD@xSCALE with a number'):
        accuracy_tasks.split_sweep('cka_logits@xten')
    config = osp.join(REPO, 'configs', 'distill', 'cka',
                      'cka_logits_semfpn-r18_semfpn-r18w32_digits.py')
    assert accuracy_tasks.loss_weight_overrides(config, 0.1) == {
        'model.recipes.0.loss_weight': pytest.approx(1.0)}  # CKA on logits: weight 10
    scaled = load_config(config, accuracy_tasks.loss_weight_overrides(config, 0.1))
    assert scaled.model.recipes == [
        dict(type='CKA', on='seg_logits', loss_weight=pytest.approx(1.0))]
    explicit = osp.join(REPO, 'configs', 'distill', 'fitnet',
                        'fitnet_fpn_semfpn-r18_semfpn-r18w32_digits.py')
    assert accuracy_tasks.loss_weight_overrides(explicit, 3.0) == {
        f'model.distill_losses.loss_fpn{i}.loss_weight': 3.0 for i in range(4)}
    # TASK:METHOD rows exist for that task only, under the plain name
    rows = accuracy_tasks.row_configs('det', ['seg:cka_logits@x0.1', 'det:topkd_logits@x10',
                                              'pkd_fpn', 'dkd_logits'])
    assert list(rows) == ['topkd_logits@x10', 'pkd_fpn']  # no DKD config for the detector
    assert rows['topkd_logits@x10'].endswith('topkd_logits_retina-r18_retina-r18w32_digits.py')
    assert list(accuracy_tasks.row_configs('seg', ['seg:cka_logits@x0.1'])) == ['cka_logits@x0.1']


def test_seeds_per_task():
    """The pretrained regime gives the noisier detection task 5 seeds, the others 3; --seeds
    sets every task's; the header names them per task only when they differ."""
    regime = accuracy_tasks.REGIMES['pretrained']
    assert accuracy_tasks.task_seeds(regime, ['det', 'seg', 'ins', 'detr']) == dict(
        det=[0, 1, 2, 3, 4], seg=[0, 1, 2], ins=[0, 1, 2], detr=[0, 1, 2, 3, 4])
    assert accuracy_tasks.task_seeds(regime, ['det', 'seg'], [7]) == dict(det=[7], seg=[7])
    assert accuracy_tasks.task_seeds(accuracy_tasks.REGIMES['scratch'], ['det']) == dict(
        det=[0, 1, 2])
    text = accuracy_report.format_markdown(
        dict(det=fake_result([0.1, 0.2], dict(a=[0.3, 0.4]))), 'cmd', 'pretrained', regime,
        dict(det=[0, 1, 2, 3, 4], seg=[0, 1, 2]))
    assert 'seeds det [0, 1, 2, 3, 4], seg [0, 1, 2];' in text
    assert 'seeds [0, 1];' in accuracy_report.format_markdown(
        dict(det=fake_result([0.1, 0.2], {})), 'cmd', 'pretrained', regime, dict(det=[0, 1]))


def test_rows_with_several_teachers_load_every_teacher():
    """The two-teacher row trains the det task's extra teacher too, and each teacher entry of
    the config gets the checkpoint trained from its own config; other rows keep one."""
    multi = 'multiteacher-uncertainty_fpn'
    assert set(accuracy_tasks.teacher_slots(['det', 'seg'], ['pkd_fpn'])) == {'det', 'seg'}
    slots = accuracy_tasks.teacher_slots(['det', 'ins'], [multi, 'maskkd_mask-head'])
    assert slots['det_gfl'] == ('det', accuracy_tasks.EXTRA_TEACHERS['det']['gfl'])
    assert set(slots) == {'det', 'det_gfl', 'ins'}
    assert accuracy_tasks.others('det', slots) == ['det_gfl']
    teachers = {'det': dict(ckpt='retina.pth', sha='r'), 'det_gfl': dict(ckpt='gfl.pth', sha='g'),
                'ins': dict(ckpt='mask.pth', sha='m')}
    config = accuracy_tasks.row_configs('det', [multi])[multi]
    overrides, sha = accuracy_tasks.teacher_overrides('det', config, slots, teachers)
    assert overrides == {'model.teachers.gfl.ckpt': 'gfl.pth',
                         'model.teachers.retina.ckpt': 'retina.pth'} and sha == 'g+r'
    # --report-only leaves out the rows whose teachers have not finished: those they read
    assert accuracy_tasks.needed_slots('det', config, slots) == ['det_gfl', 'det']
    model = load_config(config, overrides).model
    assert model.teachers.gfl.ckpt == 'gfl.pth' and model.teachers.retina.ckpt == 'retina.pth'
    mask = accuracy_tasks.row_configs('ins', ['maskkd_mask-head'])['maskkd_mask-head']
    assert accuracy_tasks.teacher_overrides('ins', mask, slots, teachers) == (
        {'model.teacher_ckpt': 'mask.pth'}, 'm')
    assert accuracy_tasks.needed_slots('ins', mask, slots) == ['ins']
    # a row whose teacher the benchmark does not train says where to add it
    with pytest.raises(SystemExit, match='EXTRA_TEACHERS'):
        accuracy_tasks.teacher_overrides('det', config, {'det': slots['det']}, teachers)


def test_ledger_keeps_runs_for_a_fresh_checkout(tmp_path, monkeypatch):
    import torch

    from mmkd.apis.run_ledger import RunLedger, weights_sha

    # the weights' hash ignores what else a checkpoint file records
    weights = {'conv.weight': torch.arange(6.).view(2, 3)}
    torch.save(dict(state_dict=weights, meta=dict(time='monday')), tmp_path / 'a.pth')
    torch.save(dict(state_dict=weights, meta=dict(time='tuesday')), tmp_path / 'b.pth')
    torch.save(dict(state_dict={'conv.weight': torch.arange(6.).view(2, 3) + 1e-3}),
               tmp_path / 'c.pth')
    sha = weights_sha(str(tmp_path / 'a.pth'))
    assert sha == weights_sha(str(tmp_path / 'b.pth')) != weights_sha(str(tmp_path / 'c.pth'))

    # the committed float16 copy loads into a float32 model through mmengine
    from mmengine.runner import load_checkpoint
    from torch import nn

    from mmkd.apis.run_ledger import WeightStore
    copy = WeightStore(str(tmp_path / 'weights')).publish(str(tmp_path / 'a.pth'), 'a16.pth')
    assert torch.load(copy)['state_dict']['conv.weight'].dtype == torch.float16
    model = nn.Module()
    model.conv = nn.Linear(3, 2, bias=False)
    load_checkpoint(model, copy)
    assert model.conv.weight.dtype == torch.float32
    assert torch.equal(model.conv.weight.data, weights['conv.weight'])
    # Publishing the same weights again keeps the copy byte for byte (git sees no change);
    # other weights replace it.
    store = WeightStore(str(tmp_path / 'weights'))
    with open(copy, 'rb') as f:
        before = f.read()
    assert store.publish(str(tmp_path / 'b.pth'), 'a16.pth') == copy  # same weights
    with open(copy, 'rb') as f:
        assert f.read() == before
    store.publish(str(tmp_path / 'c.pth'), 'a16.pth')
    with open(copy, 'rb') as f:
        assert f.read() != before
    assert torch.equal(torch.load(copy)['state_dict']['conv.weight'],
                       (torch.arange(6.).view(2, 3) + 1e-3).half())

    trained = []

    def fake_run(config, work_dir, data_root, iters, metric, seed=0, save_checkpoint=False,
                 **kwargs):
        trained.append(work_dir)
        ckpt = None
        if save_checkpoint:
            ckpt = osp.join(work_dir, 'iter_4.pth')
            torch.save(dict(state_dict=weights), ckpt)
        return 0.25 + seed, ckpt

    monkeypatch.setattr(accuracy_benchmark, 'run', fake_run)
    ledger = str(tmp_path / 'benchmarks' / 'runs.json')

    def job(name, **kwargs):
        (tmp_path / 'work' / name).mkdir(parents=True, exist_ok=True)
        return dict(work_dir=str(tmp_path / 'work' / name), config='c.py', data_root='d',
                    iters=4, metric='m', seed=1, ledger=ledger, key=name, **kwargs)

    teacher = accuracy_benchmark.train_once(**job('teacher', save_checkpoint=True))
    assert teacher['sha'] == sha
    student = accuracy_benchmark.train_once(**job('pkd', expect=dict(teacher_sha=sha)))
    assert student['value'] == 1.25 and len(trained) == 2
    book = RunLedger(ledger)
    assert 'ckpt' not in book.get('pkd') and book.get('pkd')['teacher_sha'] == sha
    # a fresh checkout: the work folders are gone, the ledger (committed) is not
    import shutil
    shutil.rmtree(tmp_path / 'work')
    again = accuracy_benchmark.train_once(**job('pkd', expect=dict(teacher_sha=sha)))
    assert again['value'] == 1.25 and len(trained) == 2  # read back, not trained
    # ... but never with another teacher's weights, and a teacher needs its file
    accuracy_benchmark.train_once(**job('pkd', expect=dict(teacher_sha='0' * 16)))
    assert len(trained) == 3 and book.get('pkd')['teacher_sha'] == '0' * 16
    accuracy_benchmark.train_once(**job('teacher', save_checkpoint=True))
    assert len(trained) == 4
    # the report (no pool) reads the ledger too
    jobs = [job('pkd', expect=dict(teacher_sha='0' * 16)),
            job('pkd', expect=dict(teacher_sha=sha))]
    shutil.rmtree(tmp_path / 'work')
    assert [r and r['value'] for r in accuracy_benchmark._results(None, jobs)] == [1.25, None]


def test_maskd_rows_read_the_tokens_found_in_one_parse(tmp_path, monkeypatch):
    """Each method config is parsed once for its MasKD recipes: that one parse both queues the
    task's token job and points the MasKD rows (sweeps included) at the tokens."""
    parsed, token_jobs, runs = [], [], []
    tokens_options = accuracy_benchmark.tokens_options

    def counting_tokens_options(config, tokens):
        parsed.append(config)
        return tokens_options(config, tokens)

    def fake_train_once(**job):
        runs.append(job)
        return dict(value=0.1, seconds=1.0)

    monkeypatch.setattr(accuracy_benchmark, 'tokens_options', counting_tokens_options)
    monkeypatch.setattr(accuracy_benchmark, 'make_digits_dataset', lambda *args, **kwargs: None)
    monkeypatch.setattr(accuracy_benchmark, '_teachers', lambda slots, *args: {
        slot: dict(value=0.5, ckpt=f'{slot}.pth', sha=slot, curve=[]) for slot in slots})
    monkeypatch.setattr(accuracy_benchmark, 'maskd_tokens_job', lambda **job: token_jobs.append(
        job))
    monkeypatch.setattr(accuracy_benchmark, 'train_once', fake_train_once)
    regime = accuracy_tasks.REGIMES['scratch']  # students from random init: no backbone
    results = accuracy_benchmark.run_benchmark(
        ['det', 'seg'], 'scratch', regime, str(tmp_path), ['maskd_logits', 'maskd_logits@x2',
                                                          'pkd_fpn'],
        dict(det=[0], seg=[0]), accuracy_benchmark.Pool(0, 1), log=lambda line: None)
    assert sorted(osp.basename(p).split('_')[0] for p in parsed) == ['maskd', 'pkd', 'pkd']
    assert len(set(parsed)) == len(parsed)  # det and seg's pkd_fpn are two configs
    tokens = str(tmp_path / 'teachers' / '1000-500_t1600_pretrained' / 'seg' /
                 'maskd_tokens_300it.pth')
    assert [(job['teacher_config'], job['out']) for job in token_jobs] == [
        (accuracy_tasks.TASKS['seg']['teacher'], tokens)]
    overrides = {(job['key'].split('/')[1], job['key'].split('/')[2]): job['overrides']
                 for job in runs}
    assert overrides['seg', 'maskd_logits']['model.recipes.0.tokens'] == tokens
    assert overrides['seg', 'maskd_logits@x2']['model.recipes.0.tokens'] == tokens
    assert not any('tokens' in key for key in overrides['seg', 'pkd_fpn'])
    assert set(results['seg']['rows']) == {'student', 'maskd_logits', 'maskd_logits@x2',
                                           'pkd_fpn'}
    assert set(results['det']['rows']) == {'student', 'pkd_fpn'}  # no MasKD detector


def test_command_line_forwards_every_option(monkeypatch):
    """The script parses, the package runs: the report names the command without
    --report-only (the command that completes the table)."""
    calls = []
    monkeypatch.setattr(benchmark_accuracy, 'benchmark_accuracy',
                        lambda *args, **kwargs: calls.append((args, kwargs)) or {})
    benchmark_accuracy.main(['--tasks', 'seg', '--methods', 'seg:pkd_fpn@x2', '--seeds', '3',
                             '--jobs', '0', '--report-only', '--ledger', ''])
    (args, kwargs), = calls
    assert args == (['seg'], 'pretrained', ['seg:pkd_fpn@x2'], [3])
    assert kwargs == dict(
        jobs=0, threads=None, student_iters=None, teacher_iters=None,
        work_dir='work_dirs/benchmark_accuracy', out='benchmarks/RESULTS.md',
        chart='benchmarks/results.png', json_path=None, ledger='',
        weights_dir='benchmarks/weights', report_only=True,
        command='python tools/benchmark_accuracy.py --tasks seg --methods seg:pkd_fpn@x2 '
        '--seeds 3 --jobs 0 --ledger ')
