"""tools/distill.py: the config it writes, --dry-run, and a few training iterations."""
import os.path as osp

import pytest
from mmengine.config import Config
from tool_runs import CONFIGS, load_tool, run_tool

from mmkd.apis.distill import default_place
from mmkd.models.distillers.zoo_names import zoo_config_file

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
    printed = capsys.readouterr().out
    assert text in printed and model.recipe_explicit_config in printed
    assert "loss_pkd_fpn2=dict(type='PKDLoss', loss_weight=10.0)" in printed
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
    with pytest.raises(ValueError, match="PKD cannot read on='seg_logits'"):
        tool.main([SEG_STUDENT, SEG_TEACHER_CFG, 't.pth', '--method', 'pkd', '--on',
                   'seg_logits', '--out', str(tmp_path / 'y.py')])
    assert not (tmp_path / 'x.py').exists() and not (tmp_path / 'y.py').exists()


@pytest.mark.slow  # the issue pairs train in-process in the default suite
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


# The issue's pairs, as model-zoo configs at their training sizes: built on the meta device
# (shapes only, no weights, no download), so the pairing is checked in seconds.
ZOO_PAIRS = {
    'same family, R101 -> R50': (
        'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py',
        'mmdet::retinanet/retinanet_r101_fpn_1x_coco.py', 'pkd',
        [f'loss_pkd_fpn{i}' for i in range(4)], {}, "fpn4 (stride 128) is not in PKD's"),
    'DETR-family teacher, one-stage student: DINO -> RTMDet-tiny': (
        'mmdet::rtmdet/rtmdet_tiny_8xb32-300e_coco.py',
        'mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py', 'pkd',
        [f'loss_pkd_fpn{i}' for i in range(3)],
        {f'pkd_fpn{i}_conv': dict(type='ConvConnector', in_channels=96, out_channels=256)
         for i in range(3)},
        'teacher level fpn3 (stride 64, 256x10x10) has no student level of its stride'),
    'transformer teacher, CNN student: Swin-T -> R50': (
        'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py',
        'mmdet::swin/retinanet_swin-t-p4-w7_fpn_1x_coco.py', 'cwd',
        [f'loss_cwd_fpn{i}' for i in range(5)], {}, None),
    'SegFormer-B2 -> PSPNet-R18 (logits at stride 4 and 8)': (
        'mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py',
        'mmseg::segformer/segformer_mit-b2_8xb1-160k_cityscapes-1024x1024.py', 'cwd',
        ['loss_cwd_logits'], {'cwd_logits_resize': dict(type='ResizeConnector')}, None),
}


@pytest.mark.parametrize('pair', list(ZOO_PAIRS))
def test_dry_run_pairs_the_issues_model_zoo_pairs(pair, tmp_path):
    student, teacher, method, losses, connectors, note = ZOO_PAIRS[pair]
    model = load_tool('distill.py').main([student, teacher, 'teacher.pth', '--method', method,
                                          '--out', str(tmp_path / 'cfg.py'), '--dry-run'])
    assert sorted(model.distill_losses) == losses
    assert sorted(model.connectors) == sorted(connectors)
    for name, cfg in connectors.items():
        module = model.connectors[name]
        assert type(module).__name__ == cfg['type']
        if 'in_channels' in cfg:
            conv = module.conv.conv
            assert (conv.in_channels, conv.out_channels) == (cfg['in_channels'],
                                                             cfg['out_channels'])
    table = model.recipe_table
    assert (note is None and 'dropped' not in table) or (note is not None and note in table)


BN = dict(type='BN', requires_grad=True)
#: Per pair: the student's and the teacher's cfg_options for a CPU step on 64 px images (plain
#: BN instead of SyncBN, mmseg's fixed input size).
SMALL = {
    'same family, R101 -> R50': ({}, {}),
    'DETR-family teacher, one-stage student: DINO -> RTMDet-tiny': (
        {f'model.{part}.norm_cfg': BN for part in ('backbone', 'neck', 'bbox_head')}, {}),
    'transformer teacher, CNN student: Swin-T -> R50': ({}, {}),
    'SegFormer-B2 -> PSPNet-R18 (logits at stride 4 and 8)': (
        {'model.data_preprocessor.size': (64, 64),
         **{f'model.{part}.norm_cfg': BN
            for part in ('backbone', 'decode_head', 'auxiliary_head')}},
        {'model.data_preprocessor.size': (64, 64), 'model.decode_head.norm_cfg': BN}),
}


@pytest.mark.parametrize('pair', list(ZOO_PAIRS))
def test_the_issues_pairs_train_from_the_written_config(pair, tmp_path):
    """The config tools/distill.py writes, with random weights on 64 px images: two
    optimizer steps of the student and the connectors, every distillation loss finite."""
    import torch
    from model_steps import train_steps

    from mmkd.testing import build_random_distiller, det_batch, seg_batch
    student, teacher, method, losses, connectors, _ = ZOO_PAIRS[pair]
    tool = load_tool('distill.py')
    config = tool.write_config(tool.parse_args([
        student, teacher, 'teacher.pth', '--method', method, '--out', str(tmp_path / 'c.py')]))
    cfg = Config.fromfile(config)
    cfg.model.student.cfg_options, cfg.model.teacher.cfg_options = SMALL[pair]
    model = build_random_distiller(cfg)
    seg = student.startswith('mmseg::')
    batch = seg_batch(64, num_classes=19) if seg else det_batch(64)
    watched = (model.connectors[sorted(connectors)[0]] if connectors and 'in_channels' in
               next(iter(connectors.values())) else model.student.backbone)
    before = [p.detach().clone() for p in watched.parameters()]
    for log in train_steps(model, batch):
        assert sorted(k for k in log if k.startswith('distill.')) == [
            f'distill.{name}' for name in losses]
        assert all(torch.isfinite(torch.as_tensor(v)) for v in log.values())
    assert any(not torch.equal(b, p) for b, p in zip(before, watched.parameters()))


# Issue 24: model-zoo configs that the dry run could not take (mmcv's SyncBN without a process
# group; a name mmengine's parser rejects).
ZOO_DRY_RUNS = {
    'MMSyncBN student, one process': (
        'mmdet::strong_baselines/mask-rcnn_r50_fpn_rpn-2conv_4conv1fc_syncbn-all_lsj-100e_coco.py',
        'mmdet::mask_rcnn/mask-rcnn_r101_fpn_1x_coco.py'),
    "'+' in the names": ('mmdet::gn+ws/faster-rcnn_r50_fpn_gn-ws-all_1x_coco.py',
                         'mmdet::gn+ws/faster-rcnn_r101_fpn_gn-ws-all_1x_coco.py'),
}


@pytest.mark.parametrize('pair', list(ZOO_DRY_RUNS))
def test_dry_run_takes_sync_bn_and_names_mmengine_rejects(pair, tmp_path):
    student, teacher = ZOO_DRY_RUNS[pair]
    out = tmp_path / 'cfg.py'
    model = load_tool('distill.py').main([student, teacher, 'teacher.pth', '--method', 'pkd',
                                          '--out', str(out), '--dry-run'])
    assert sorted(model.distill_losses) == [f'loss_pkd_fpn{i}' for i in range(4)]
    cfg = Config.fromfile(str(out))  # the written config reads back
    assert cfg.model.student.cfg_path == student and cfg.model.teacher.cfg_path == teacher
    own = Config.fromfile(zoo_config_file(student)).train_dataloader  # the student's, _base_
    assert (cfg.train_dataloader.dataset.type, cfg.train_dataloader.batch_size) == (
        own.dataset.type, own.batch_size)
    text = out.read_text()
    if '+' in student:  # mmengine cannot parse the name: the installed file, named
        assert (f'# {student} (mmengine cannot parse this model-zoo name: its installed '
                f"file)\n_base_ = '{zoo_config_file(student)}'\n") in text
    else:
        assert f"\n_base_ = '{student}'\n" in text


MASK2FORMER = 'mmseg::mask2former/mask2former_r50_8xb2-160k_ade20k-512x512.py'


def test_written_config_keeps_the_custom_imports_of_both_configs(tmp_path):
    """The student's imports written as a string (mmseg's Mask2Former: 'mmdet.models'), the
    teacher's as a list with one more module; one list, in order, once each, plus mmkd."""
    assert Config.fromfile(osp.join(
        __import__('mmseg').__path__[0], '.mim', 'configs', 'mask2former',
        osp.basename(MASK2FORMER))).custom_imports.imports == 'mmdet.models'
    teacher = tmp_path / 'teacher.py'
    teacher.write_text(f"_base_ = '{SEG_TEACHER_CFG}'\ncustom_imports = dict(imports="
                       "['mmseg.models', 'mmdet.models'], allow_failed_imports=False)\n")
    tool = load_tool('distill.py')
    out = tool.write_config(tool.parse_args([MASK2FORMER, str(teacher), 't.pth', '--method',
                                             'cwd', '--on', 'seg_logits', '--out',
                                             str(tmp_path / 'cwd.py')]))
    written = ("custom_imports = dict(imports=['mmdet.models', 'mmseg.models', 'mmkd'], "
               'allow_failed_imports=False)')
    assert written in open(out).read()
    assert Config.fromfile(out).custom_imports == dict(
        imports=['mmdet.models', 'mmseg.models', 'mmkd'], allow_failed_imports=False)


def test_custom_imports_merge_every_form_mmengine_accepts():
    from mmkd.apis.distill import merged_custom_imports
    student = Config(dict(custom_imports=dict(imports='mmdet.models')))
    teacher = Config(dict(custom_imports=dict(imports=['mmpretrain.models', 'mmdet.models'],
                                              allow_failed_imports=True)))
    assert merged_custom_imports([('s', student), ('t', teacher)]) == dict(
        imports=['mmdet.models', 'mmpretrain.models', 'mmkd'], allow_failed_imports=True)
    assert merged_custom_imports([('s', Config()), ('t', None)]) == dict(
        imports=['mmkd'], allow_failed_imports=False)
    with pytest.raises(TypeError, match=r"t: custom_imports.imports must be a module name or "
                       r"a list of them \(e.g. imports=\['mmpretrain.models'\]\), got 3"):
        merged_custom_imports([('t', Config(dict(custom_imports=dict(imports=3))))])


def test_a_config_that_needs_a_missing_package_fails_before_anything_is_written(tmp_path):
    student = tmp_path / 'student.py'
    student.write_text(f"_base_ = '{DET_STUDENT}'\n"
                       "custom_imports = dict(imports=['mmkd_absent_pkg.models'])\n")
    out = tmp_path / 'out.py'
    with pytest.raises(ModuleNotFoundError, match=r"needs the package 'mmkd_absent_pkg', which "
                       r'is not installed: install it with `pip install mmkd_absent_pkg`'):
        load_tool('distill.py').main([str(student), DET_TEACHER_CFG, 't.pth', '--method', 'pkd',
                                      '--out', str(out), '--dry-run'])
    assert not out.exists()
