"""MMRazor's own mmdet / mmseg distillation configs, vendored verbatim in
tests/data/mmrazor_configs: each converts with tools/convert_mmrazor_config.py, builds, and
trains two steps with random weights on small images; one that needs a package mmkd does not
install fails naming it. The COCO / Cityscapes models are shrunk by cfg options only."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from model_steps import train_steps
from tool_runs import REPO, load_tool

from mmkd.testing import build_random_distiller, det_batch, seg_batch

convert_mmrazor_config = load_tool('convert_mmrazor_config.py')
DATA = osp.join(REPO, 'tests', 'data', 'mmrazor_configs')
#: What MMRazor's cwd_fpn_retina teacher (pretrained=True) loads from the model zoo; its
#: teacher_ckpt, inherited from the Faster R-CNN config, is another model's file.
RETINA_R101 = ('https://download.openmmlab.com/mmdetection/v2.0/retinanet/'
               'retinanet_r101_fpn_2x_coco/retinanet_r101_fpn_2x_coco_20200131-5560aee8.pth')
BN = dict(type='BN', requires_grad=True)
#: mmseg's PSPNet on a CPU at 64 px: plain BN instead of SyncBN, the fixed input size.
SEG_OPTIONS = {'model.data_preprocessor.size': (64, 64),
               **{f'model.{part}.norm_cfg': BN
                  for part in ('backbone', 'decode_head', 'auxiliary_head')}}

#: config -> (loss type, number of losses, image side, converter arguments); a str: the error.
CASES = {
    'mmdet/cwd/cwd_cls_head_gfl_r101_fpn_gfl_r50_fpn_1x_coco.py': ('CWDLoss', 5, 64, ()),
    'mmdet/cwd/cwd_fpn_frcnn_r101_frcnn_r50_1x_coco.py': ('CWDLoss', 5, 64, ()),
    'mmdet/cwd/cwd_fpn_retina_r101_retina_r50_1x_coco.py': (
        'CWDLoss', 5, 64, ('--teacher-ckpt', RETINA_R101)),
    'mmdet/cwd/cwd_fpn_retina_r101_retina_r50_1x_coco_visualization.py':
        r"default_hooks\.visualization \('RazorVisualizationHook'\) needs the package "
        "'mmrazor', which mmkd does not install",
    # the non-local blocks pool level 0 by 16 (maxpool_stride=8), level 3 by 4: 128 px at least
    'mmdet/fbkd/fbkd_fpn_faster-rcnn_r101_faster-rcnn_r50_1x_coco.py': ('FBKDLoss', 4, 128, ()),
    'mmdet/mgd/mgd_fpn_retina_x101_retina_r50_2x_coco.py': ('MGDLoss', 5, 64, ()),
    'mmdet/pkd/pkd_fpn_faster-rcnn_r101_faster-rcnn_r50_2x_coco.py': ('PKDLoss', 4, 64, ()),
    'mmdet/pkd/pkd_fpn_fcos_x101_retina_r50_1x_coco.py': ('PKDLoss', 4, 64, ()),
    'mmdet/pkd/pkd_fpn_mask-rcnn_swin_retina_r50_2x_coco.py': ('PKDLoss', 4, 64, ()),
    # mmcv's deformable convolution needs inputs of at least its kernel (3) before padding:
    # stride-32 maps of 96 px images or more
    'mmdet/pkd/pkd_fpn_reppoints_x101-dcn_reppoints_r50_2x_coco.py': ('PKDLoss', 4, 128, ()),
    'mmdet/pkd/pkd_fpn_retina_x101_retina_r50_2x_coco.py': ('PKDLoss', 4, 64, ()),
    'mmseg/cwd/cwd_logits_pspnet_r101-d8_pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py': (
        'CWDLoss', 1, 64, ()),
}
#: Trained in the default suite (one per kind: a transformer teacher of another detector
#: family, FBKD's folded connectors with a pretrained=True student, segmentation); the others
#: build on the meta device there and train under -m slow.
DEFAULT_STEPS = ('mmdet/pkd/pkd_fpn_mask-rcnn_swin_retina_r50_2x_coco.py',
                 'mmdet/fbkd/fbkd_fpn_faster-rcnn_r101_faster-rcnn_r50_1x_coco.py',
                 'mmseg/cwd/cwd_logits_pspnet_r101-d8_pspnet_r18-d8_4xb2-80k_cityscapes-512x1024'
                 '.py')
TRAINABLE = [name for name, case in CASES.items() if not isinstance(case, str)]


def _convert(name: str, tmp_path, *args) -> Config:
    out = tmp_path / 'converted.py'
    convert_mmrazor_config.main([osp.join(DATA, name), str(out), *args])
    assert 'mmrazor' not in out.read_text()
    return Config.fromfile(str(out))


def _options(name: str) -> dict:
    return SEG_OPTIONS if name.startswith('mmseg/') else {}


@pytest.mark.parametrize('name', list(CASES))
def test_converts_and_builds(name, tmp_path):
    case = CASES[name]
    if isinstance(case, str):
        with pytest.raises(ValueError, match=case):
            _convert(name, tmp_path)
        return
    loss_type, num_losses, _, args = case
    cfg = _convert(name, tmp_path, *args)
    losses = cfg.model.distill_losses
    assert [loss.type for loss in losses.values()] == [loss_type] * num_losses
    assert cfg.val_cfg.type == 'mmkd.DistillValLoop'
    if name not in DEFAULT_STEPS:  # those build with real tensors in the step test
        model = build_random_distiller(cfg, _options(name), device='meta')
        assert sorted(model.distill_losses) == sorted(losses)


@pytest.mark.parametrize('name', [
    name if name in DEFAULT_STEPS else pytest.param(name, marks=pytest.mark.slow)
    for name in TRAINABLE])
def test_trains_two_steps(name, tmp_path):
    _, _, size, args = CASES[name]
    cfg = _convert(name, tmp_path, *args)
    model = build_random_distiller(cfg, _options(name))
    batch = seg_batch(size, num_classes=19) if name.startswith('mmseg/') else det_batch(size)
    for log in train_steps(model, batch):
        assert sorted(k for k in log if k.startswith('distill.')) == sorted(
            f'distill.{loss}' for loss in cfg.model.distill_losses)
        assert all(torch.isfinite(torch.as_tensor(v)) for v in log.values())
        assert sum(v for k, v in log.items() if k.startswith('distill.')) > 0


def test_a_teacher_checkpoint_that_is_not_the_pretrained_one_must_be_chosen(tmp_path):
    # cwd_fpn_retina's RetinaNet teacher: pretrained=True plus the Faster R-CNN config's file
    with pytest.raises(ValueError, match="retinanet_r101_fpn_2x_coco_20200131-5560aee8.pth'"
                       r".*faster_rcnn_r101_fpn_2x_coco_bbox_mAP.*--teacher-ckpt"):
        _convert('mmdet/cwd/cwd_fpn_retina_r101_retina_r50_1x_coco.py', tmp_path)


def test_pretrained_becomes_the_model_zoo_checkpoint_it_loads_in_mmrazor(tmp_path):
    # FBKD: pretrained=True student (MMRazor loads the trained Faster R-CNN R50), and a
    # pretrained=False teacher keeps its own initialisation (mmkd's pretrained default)
    model = _convert('mmdet/fbkd/fbkd_fpn_faster-rcnn_r101_faster-rcnn_r50_1x_coco.py',
                     tmp_path).model
    assert model.student == dict(
        cfg_path='mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py',
        cfg_options={'model.init_cfg': dict(
            type='Pretrained', checkpoint='https://download.openmmlab.com/mmdetection/v2.0/'
            'faster_rcnn/faster_rcnn_r50_fpn_1x_coco/'
            'faster_rcnn_r50_fpn_1x_coco_20200130-047c8118.pth')})
    assert model.teacher == dict(cfg_path='mmdet::faster_rcnn/faster-rcnn_r101_fpn_1x_coco.py')
    # GFL: a pretrained=True teacher whose teacher_ckpt is that same file
    model = _convert('mmdet/cwd/cwd_cls_head_gfl_r101_fpn_gfl_r50_fpn_1x_coco.py',
                     tmp_path).model
    assert model.teacher == dict(cfg_path='mmdet::gfl/gfl_r101_fpn_ms-2x_coco.py')
    assert model.teacher_ckpt.endswith('/gfl_r101_fpn_mstrain_2x_coco_20200629_200126-dd12f847.pth')
