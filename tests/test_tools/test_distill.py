"""tools/distill.py: the config it writes, --dry-run, and a few training iterations."""
import os.path as osp

import pytest
from mmengine.config import Config
from tool_runs import CONFIGS, load_tool, run_tool

from mmkd.apis.distill import default_place

DET_STUDENT = f'{CONFIGS}/digits/retinanet_r18-w32_digits.py'
DET_TEACHER_CFG = f'{CONFIGS}/digits/retinanet_r18_digits.py'
SEG_STUDENT = f'{CONFIGS}/digits/semfpn_r18-w32_digits.py'
SEG_TEACHER_CFG = f'{CONFIGS}/digits/semfpn_r18_digits.py'


def test_default_places_follow_the_task():
    assert default_place('PKD', 'det') == default_place('pkd', 'seg') == 'neck'
    assert default_place('KD', 'det') == 'dense_cls_logits'
    assert default_place('CWD', 'seg') == default_place('KD', 'seg') == 'seg_logits'
    assert default_place('CWD', 'det') == 'neck'


def test_dry_run_writes_a_readable_config_and_builds_its_pairing(tmp_path, capsys):
    out = tmp_path / 'cfg' / 'pkd.py'
    model = load_tool('distill.py').main([DET_STUDENT, DET_TEACHER_CFG, 'teacher.pth',
                                          '--method', 'PKD', '--out', str(out), '--dry-run'])
    assert sorted(model.distill_losses) == [f'loss_pkd_fpn{i}' for i in range(3)]
    assert 'PKD on neck  fpn2' in model.recipe_table
    text = out.read_text()
    assert text in capsys.readouterr().out
    assert f"_base_ = '{DET_STUDENT}'" in text
    assert "recipes=[dict(type='PKD', on='neck')])" in text
    cfg = Config.fromfile(str(out))
    assert cfg.model.type == 'Distiller' and 'data_preprocessor' not in cfg.model
    assert cfg.model.teacher == dict(cfg_path=DET_TEACHER_CFG, pretrained=False)
    assert cfg.model.teacher_ckpt == 'teacher.pth'  # not a file here: kept as given
    assert cfg.train_dataloader.batch_size == Config.fromfile(DET_STUDENT).train_dataloader.\
        batch_size  # the student's data and schedule
    assert cfg.val_cfg == dict(type='mmkd.DistillValLoop')


def test_seg_pair_defaults_to_the_logits_and_an_unknown_method_lists_the_known(tmp_path):
    tool = load_tool('distill.py')
    model = tool.main([SEG_STUDENT, SEG_TEACHER_CFG, 't.pth', '--method', 'cwd',
                       '--out', str(tmp_path / 'cwd.py'), '--dry-run'])
    assert list(model.distill_losses) == ['loss_cwd_logits']
    with pytest.raises(KeyError, match='Known recipe types'):
        tool.main([SEG_STUDENT, SEG_TEACHER_CFG, 't.pth', '--method', 'fbkd', '--dry-run',
                   '--out', str(tmp_path / 'x.py')])


def test_distill_trains_a_few_iterations(digits_root, det_teacher_ckpt, tmp_path):
    root = str(digits_root).rstrip('/') + '/'
    work_dir = tmp_path / 'pkd'
    run_tool('distill.py', DET_STUDENT, DET_TEACHER_CFG, det_teacher_ckpt, '--method', 'pkd',
             '--work-dir', work_dir, '--cfg-options',
             *(f'{key}.dataset.data_root={root}'
               for key in ('train_dataloader', 'val_dataloader', 'test_dataloader')),
             f'val_evaluator.ann_file={root}annotations/instances_val.json',
             f'test_evaluator.ann_file={root}annotations/instances_val.json',
             'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
             'default_hooks.checkpoint.interval=2', 'default_hooks.logger.interval=1',
             'train_dataloader.batch_size=2', 'val_dataloader.batch_size=4')
    assert osp.exists(str(work_dir) + '.py')  # the config, next to the work dir
    assert osp.exists(work_dir / 'iter_2.pth')
    log = open(next(str(p) for p in work_dir.rglob('*.log'))).read()
    assert 'distill.loss_pkd_fpn0' in log and 'PKD on neck  fpn0' in log
