"""tools/significance.py with the session's tiny teachers, and the self-regulated configs
(configs/distill/selfreg, three modes per task) trained through tools/train.py on what it wrote."""
import glob
import json
import os
import os.path as osp
import re
import shutil

import pytest
from tool_runs import CONFIGS, DET_TEACHER, SEG_TEACHER, run_tool, tiny_config

SELFREG = sorted(glob.glob(f'{CONFIGS}/distill/selfreg/*_digits.py'))
TRAIN_IMAGES = {f'images/train/{i:06d}.png' for i in range(16)}  # conftest's digits_root


def is_detection(config):
    return '_retina-' in osp.basename(config)


def uses_subset(config):
    return '/selfreg-regulated_' not in config


# detection's significance is computed in-process in tests/test_datasets/test_significance.py;
# through the tool, twice, with ``-m slow``
@pytest.mark.parametrize('task', [pytest.param('det', marks=pytest.mark.slow), 'seg'])
def test_significance_is_reproducible_and_a_fraction(task, digits_root, request, tmp_path):
    config = DET_TEACHER if task == 'det' else SEG_TEACHER
    ckpt = request.getfixturevalue(f'{task}_teacher_ckpt')
    outputs = []
    for name in ('first.json', 'second.json'):
        result = run_tool('significance.py', config, ckpt, '--out', tmp_path / name,
                          '--cfg-options', f'train_dataloader.dataset.data_root={digits_root}/')
        outputs.append(open(tmp_path / name, 'rb').read())
    assert outputs[0] == outputs[1], 'same teacher and dataset must give the same bytes'

    content = json.loads(outputs[0])
    assert set(content['images']) == TRAIN_IMAGES
    assert all(0.0 <= v <= 1.0 for v in content['images'].values())
    meta = content['meta']
    assert meta['task'] == ('detection' if task == 'det' else 'segmentation')
    assert meta['checkpoint'] == ckpt and meta['score_thr'] == 0.3 and meta['num_images'] == 16
    assert meta['definition'] and meta['mmkd_version']
    assert re.search(r'significance of 16 images: mean [\d.]+', result.stdout)
    histogram = [int(n) for n in re.findall(r'^  \[[\d.]+, [\d.]+[)\]]\s+(\d+)', result.stdout,
                                            re.M)]
    assert len(histogram) == 5 and sum(histogram) == 16


# One subset mode through the tools in the default suite; the others with ``-m slow`` (the
# regulated mode trains in tests/test_configs/test_embedded_distill_training.py).
@pytest.mark.parametrize('config', [
    pytest.param(p, marks=() if osp.basename(p).startswith('selfreg-significance_kd-logits_semfpn')
                 else pytest.mark.slow) for p in SELFREG], ids=osp.basename)
def test_selfreg_config_trains_through_the_tools(config, digits_root, request, tmp_path):
    task = 'det' if is_detection(config) else 'seg'
    ckpt = request.getfixturevalue(f'{task}_teacher_ckpt')
    root = tmp_path / 'digits'  # a copy: the significance goes to its default place inside
    shutil.copytree(digits_root, root)
    overrides = {'model.teacher_ckpt': ckpt}
    if uses_subset(config):
        run_tool('significance.py', config, ckpt,
                 '--cfg-options', f'train_dataloader.dataset.data_root={root}/')
        default = ('annotations/instances_train.significance.json' if task == 'det'
                   else 'images/train.significance.json')
        assert osp.isfile(root / default)
        # tools/train.py checks the wrapped dataset's COCO file at its own data_root
        overrides['train_dataloader.dataset.dataset.data_root'] = f'{root}/'
    run_tool('train.py', tiny_config(config, root, tmp_path / 'work', iters=2, **overrides))

    log = open(next(osp.join(r, f) for r, _, fs in os.walk(tmp_path / 'work') for f in fs
                    if f.endswith('.log'))).read()
    loss = 'loss_kd_cls' if task == 'det' else 'loss_kd_logits'
    assert re.search(rf'selfreg_skipped\.{loss}: [\d.]+ +selfreg_weight\.{loss}: [\d.]+', log)
    assert re.search(rf'distill\.{loss}: [\d.]+', log)
    if uses_subset(config):  # ceil(0.3 * 16) = 5
        assert 'SignificanceSubset: training on 5 of 16 images (budget 0.3' in log
    else:
        assert 'SignificanceSubset' not in log
