"""tools/analysis/: CKA heatmaps, feature maps and loss / path-weight plots on a real tiny run."""
import json
import os
import os.path as osp

import pytest
import torch
from matplotlib.image import imread

from tool_runs import CONFIGS, load_tool, run_tool, tiny_config

from mmkd.apis.analysis import build_distiller, load_analysis_config, resolve_layers

MULTIPATH = (f'{CONFIGS}/distill/multipath/'
             'multipath-uncertainty_fpn-logits_retina-r18_retina-r18w32_digits.py')
DEFAULT_LAYERS = ['backbone.layer1', 'backbone.layer2', 'backbone.layer3', 'backbone.layer4',
                  'neck.0', 'neck.1', 'neck.2']


def png_size(path):
    """(height, width) of a PNG that decodes to an RGB(A) image."""
    image = imread(str(path))
    assert image.ndim == 3 and image.shape[2] in (3, 4)
    return image.shape[:2]


@pytest.fixture(scope='module')
def distilled_run(digits_root, det_teacher_ckpt, tmp_path_factory):
    """2 iterations of multi-path distillation with uncertainty weighting: a distilled
    checkpoint and a scalar log with distill_weight.* entries, shared by the tests."""
    out = tmp_path_factory.mktemp('multipath')
    config = tiny_config(MULTIPATH, digits_root, out, iters=2,
                         **{'model.teacher_ckpt': det_teacher_ckpt})
    run_tool('train.py', config)
    return dict(config=config, ckpt=str(out / 'iter_2.pth'), work_dir=str(out))


# ---------------------------------------------------------------------- cka_map
def test_cka_matrix_is_one_on_the_diagonal_of_identical_features():
    cka_map = load_tool('analysis/cka_map.py')
    torch.manual_seed(0)
    features = {'a': torch.randn(12, 4, 3, 3), 'b': torch.randn(12, 20), 'c': torch.rand(12, 7)}
    matrix = cka_map.cka_matrix(features, features)
    assert matrix.shape == (3, 3)
    assert torch.allclose(matrix.diagonal(), torch.ones(3), atol=1e-5)
    assert ((matrix >= 0) & (matrix <= 1)).all()
    assert torch.allclose(matrix, matrix.t(), atol=1e-6)
    q, _ = torch.linalg.qr(torch.randn(20, 20))  # invariant to rotation and scale
    assert abs(float(cka_map.cka_matrix([features['b']], [3 * features['b'] @ q])) - 1) < 1e-5
    with pytest.raises(ValueError, match='same number of rows'):
        cka_map.cka_matrix([torch.randn(5, 3)], [torch.randn(6, 3)])
    with pytest.raises(ValueError, match='at least 3 images'):
        cka_map.cka_matrix([torch.randn(2, 3)], [torch.randn(2, 3)])


def test_cka_map_draws_before_and_after_distillation(distilled_run, digits_root,
                                                      det_teacher_ckpt, tmp_path, capsys):
    cka_map = load_tool('analysis/cka_map.py')  # in-process: feature_maps.py tests the script form
    png, report = tmp_path / 'cka.png', tmp_path / 'cka.json'
    cka_map.main([distilled_run['config'], '--checkpoint', distilled_run['ckpt'],
                  '--teacher-ckpt', det_teacher_ckpt, '--batches', '2',
                  '--data-root', str(digits_root), '--out', str(png), '--json', str(report)])
    stdout = capsys.readouterr().out
    assert 'before: student at initialisation' in stdout
    assert 'after: distilled student (iter_2.pth)' in stdout
    data = json.loads(report.read_text())
    assert data['num_images'] == 8  # 2 batches of 4 val images
    assert data['teacher_layers'] == data['student_layers'] == DEFAULT_LAYERS
    assert list(data['matrices']) == ['init', 'distilled']
    for matrix in data['matrices'].values():
        values = torch.tensor(matrix)
        assert values.shape == (7, 7)
        assert ((values >= 0) & (values <= 1)).all()
    # the distilled weights were loaded: the student's representations changed
    assert data['matrices']['init'] != data['matrices']['distilled']
    height, width = png_size(png)
    assert 300 < height < width  # two panels side by side


def test_cka_map_one_panel_with_named_layers(distilled_run, tmp_path):
    cka_map = load_tool('analysis/cka_map.py')
    png = tmp_path / 'cka.png'
    result = cka_map.main([distilled_run['config'], '--batches', '1', '--out', str(png),
                           '--layers-teacher', 'neck.0', 'backbone.layer3',
                           '--layers-student', 'neck'])
    assert list(result['matrices']) == ['init']
    assert result['teacher_layers'] == ['neck.0', 'backbone.layer3']
    assert result['student_layers'] == ['neck.0', 'neck.1', 'neck.2']
    assert torch.tensor(result['matrices']['init']).shape == (2, 3)
    assert min(png_size(png)) > 150


def test_wrong_layer_names_fail_with_the_closest_names(distilled_run):
    distiller = build_distiller(load_analysis_config(distilled_run['config']))
    assert resolve_layers(distiller.teacher, ['neck.1', 'backbone.layer1.0'], 'teacher') == [
        ('neck.1', 'neck', 1), ('backbone.layer1.0', 'backbone.layer1.0', None)]
    with pytest.raises(KeyError, match=r"no module named 'backbone.layr3'.*backbone.layer3"):
        resolve_layers(distiller.student, ['backbone.layr3'], 'student')
    with pytest.raises(KeyError, match=r"'nek.0'.*Closest valid names"):
        resolve_layers(distiller.teacher, ['nek.0'], 'teacher')


# ---------------------------------------------------------------------- feature_maps
def test_channel_mean_maps_compare_different_widths_and_sizes():
    feature_maps = load_tool('analysis/feature_maps.py')
    teacher = torch.rand(8, 6, 6)
    t_map, s_map, diff = feature_maps.channel_mean_maps(teacher, teacher.repeat(2, 1, 1)[None])
    assert t_map.shape == s_map.shape == diff.shape == (6, 6)
    assert float(diff.max()) < 1e-6  # same channel mean, twice the channels
    assert float(t_map.min()) == 0 and abs(float(t_map.max()) - 1) < 1e-6
    t_map, s_map, diff = feature_maps.channel_mean_maps(teacher, torch.rand(3, 3, 3))
    assert s_map.shape == (6, 6) and 0 <= float(diff.min()) and float(diff.max()) <= 1
    with pytest.raises(ValueError, match=r'\(C, H, W\)'):
        feature_maps.channel_mean_maps(torch.rand(2, 8, 6, 6), teacher)


def test_feature_maps_grid(distilled_run, digits_root, tmp_path):
    png = tmp_path / 'maps.png'
    image = osp.join(str(digits_root), 'images', 'val', '000000.png')
    result = run_tool('analysis/feature_maps.py', distilled_run['config'], image,
                      '--checkpoint', distilled_run['ckpt'],
                      '--layers', 'neck', 'backbone.layer2', '--out', png)
    lines = [line for line in result.stdout.splitlines() if 'mean |T - S|' in line]
    assert [line.split(':')[0] for line in lines] == ['neck.0', 'neck.1', 'neck.2',
                                                      'backbone.layer2']
    assert 'teacher (128, 16, 16), student (64, 16, 16)' in lines[-1]  # half-width student
    height, width = png_size(png)
    assert height > 800 and width > 600  # 4 rows of input | teacher | student | |T - S|


# ---------------------------------------------------------------------- plot_weights
def test_plot_weights_of_an_uncertainty_weighted_run(distilled_run, tmp_path):
    png = tmp_path / 'weights.png'
    result = run_tool('analysis/plot_weights.py', distilled_run['work_dir'], '--out', png)
    assert 'read 2 logged iterations' in result.stdout
    assert 'distill_weight.loss_mse_fpn0' in result.stdout
    assert 'no adaptive path weights' not in result.stdout
    assert png_size(png)[0] > 400

    plot_weights = load_tool('analysis/plot_weights.py')
    groups = plot_weights.group_series(plot_weights.read_scalars(distilled_run['work_dir']))
    assert sorted(groups['weights']) == ['loss_kd_cls', 'loss_mse_fpn0', 'loss_mse_fpn1',
                                         'loss_mse_fpn2']
    assert {'loss', 'loss_cls', 'loss_bbox', 'distill.loss_kd_cls'} <= set(groups['losses'])
    assert all(iters == [1, 2] for iters, _ in groups['weights'].values())
    assert not groups['extra']


def write_run(work_dir, stamp, rows, tail=''):
    vis = osp.join(str(work_dir), stamp, 'vis_data')
    os.makedirs(vis)
    with open(osp.join(vis, 'scalars.json'), 'w') as f:
        f.write(''.join(json.dumps(row) + '\n' for row in rows) + tail)


def test_plot_weights_without_weights_with_extra_scalars_and_resumed_runs(tmp_path, capsys):
    plot_weights = load_tool('analysis/plot_weights.py')
    row = lambda i, **kw: dict(iter=i, step=i, lr=1e-3, loss=2.0 / i, loss_cls=1.0 / i,  # noqa
                               **{'distill.loss_fpn0': 1.0 / i}, **kw)
    write_run(tmp_path, '20240101_000000', [row(1), row(2), row(3)])
    # resumed at iteration 3 (repeated), with a validation line and a line cut by a kill
    write_run(tmp_path, '20240102_000000',
              [row(3, **{'sokd_coverage.fpn0': 0.5}), dict(step=3, mAP=0.1),
               row(4, **{'sokd_coverage.fpn0': 0.7, 'selfreg_skipped.fpn0': 1.0})],
              tail='{"iter": 5, "lo')

    assert [r['iter'] for r in plot_weights.read_scalars(str(tmp_path))] == [3, 4]
    joined = plot_weights.read_scalars(str(tmp_path), all_runs=True)
    assert [r['iter'] for r in joined] == [1, 2, 3, 4]
    assert 'sokd_coverage.fpn0' in joined[2]  # the resumed run's iteration 3 wins

    two, three = tmp_path / 'two.png', tmp_path / 'three.png'
    first_run = str(tmp_path / '20240101_000000')
    groups = plot_weights.main([first_run, '--out', str(two)])
    assert not groups['weights'] and not groups['extra']
    assert 'no adaptive path weights' in capsys.readouterr().out
    groups = plot_weights.main([str(tmp_path), '--all-runs', '--out', str(three)])
    assert sorted(groups['extra']) == ['selfreg_skipped.fpn0', 'sokd_coverage.fpn0']
    assert groups['extra']['sokd_coverage.fpn0'] == ([3, 4], [0.5, 0.7])
    assert png_size(three)[0] > png_size(two)[0]  # the third panel

    with pytest.raises(FileNotFoundError, match='vis_data/scalars.json'):
        plot_weights.find_scalar_files(str(tmp_path / '20240101_000000' / 'vis_data'))


def test_loss_balance_reports_value_gradient_ratio_and_cosine(digits_root, det_teacher_ckpt,
                                                              tmp_path):
    """Gradients on the shared neck: the task's own row is ratio 1, cosine 1; a distillation
    loss that only exists on the student side of the neck gets a real gradient there."""
    tool = load_tool('analysis/loss_balance.py')
    config = f'{CONFIGS}/distill/fitnet/fitnet_fpn_retina-r18_retina-r18w32_digits.py'
    out = tmp_path / 'balance.json'
    name = 'fitnet_fpn_retina-r18_retina-r18w32_digits'
    balance = tool.main([config, '--teacher-ckpt', det_teacher_ckpt, '--data-root',
                         str(digits_root), '--batches', '2', '--json', str(out),
                         '--cfg-options', 'train_dataloader.batch_size=2'])[name]
    assert set(balance) == {'task', 'distill.loss_fpn0', 'distill.loss_fpn1',
                            'distill.loss_fpn2'}
    assert balance['task']['ratio'] == pytest.approx(1.0)
    assert balance['task']['cosine'] == pytest.approx(1.0, abs=1e-5)
    for loss in ('distill.loss_fpn0', 'distill.loss_fpn1', 'distill.loss_fpn2'):
        assert balance[loss]['value'] > 0 and balance[loss]['grad_norm'] > 0
        assert -1.0 <= balance[loss]['cosine'] <= 1.0
    saved = json.loads(out.read_text())[name]
    assert saved['task']['value'] == pytest.approx(balance['task']['value'])
    # a loss of twice the weight has twice the value and gradient, the same direction
    doubled = tool.main([config, '--teacher-ckpt', det_teacher_ckpt, '--data-root',
                         str(digits_root), '--batches', '2', '--cfg-options',
                         'train_dataloader.batch_size=2',
                         'model.distill_losses.loss_fpn0.loss_weight=2.0'])[name]
    row, twice = balance['distill.loss_fpn0'], doubled['distill.loss_fpn0']
    assert twice['value'] == pytest.approx(2 * row['value'], rel=1e-4)
    assert twice['ratio'] == pytest.approx(2 * row['ratio'], rel=1e-4)
    assert twice['cosine'] == pytest.approx(row['cosine'], abs=1e-4)
