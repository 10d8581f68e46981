import pytest

from mmkd.models.distillers.model_config import resolve_model_cfg
from mmkd.models.distillers.zoo_names import resolve_zoo_config


@pytest.mark.parametrize('old, new', [
    # mmdet 2 -> 3: '_' became '-' (the name MMRazor's Faster R-CNN configs use)
    ('mmdet::faster_rcnn/faster_rcnn_r50_fpn_1x_coco.py',
     'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'),
    ('mmdet::cascade_rcnn/cascade_mask_rcnn_x101_64x4d_fpn_20e_coco.py',
     'mmdet::cascade_rcnn/cascade-mask-rcnn_x101-64x4d_fpn_20e_coco.py'),
    ('mmdet::gfl/gfl_r101_fpn_mstrain_2x_coco.py', 'mmdet::gfl/gfl_r101_fpn_ms-2x_coco.py'),
    # mmseg 0.x -> 1: GPUs x batch added, the crop size moved to the end
    ('mmseg::pspnet/pspnet_r18-d8_512x1024_80k_cityscapes.py',
     'mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py'),
    # the published PCKA configs name their own copy of mmdet's configs
    ('mmdet::/root/mmrazor/configs/mmdet/faster_rcnn/faster-rcnn_r50_fpn_2x_coco.py',
     'mmdet::faster_rcnn/faster-rcnn_r50_fpn_2x_coco.py'),
    ('mmdet::/root/mmrazor/configs/mmdet/cascade_rcnn/cascade-mask-rcnn_x101-64x4d_fpn_20e_coco.py',
     'mmdet::cascade_rcnn/cascade-mask-rcnn_x101-64x4d_fpn_20e_coco.py'),
    # existing files and plain paths are left alone
    ('mmdet::retinanet/retinanet_r50_fpn_1x_coco.py',
     'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'),
    ('configs/digits/retinanet_r18_digits.py', 'configs/digits/retinanet_r18_digits.py'),
])
def test_old_model_zoo_names_map_to_the_installed_files(old, new):
    assert resolve_zoo_config(old) == new


def test_distiller_entry_with_an_mmdet2_name_resolves():
    model_cfg, _ = resolve_model_cfg(
        dict(cfg_path='mmdet::faster_rcnn/faster_rcnn_r50_fpn_1x_coco.py', pretrained=False),
        'teacher')
    assert model_cfg.type == 'FasterRCNN' and model_cfg._scope_ == 'mmdet'


def test_unknown_or_ambiguous_names_fail_naming_the_closest_files():
    with pytest.raises(FileNotFoundError,
                       match=r"(?s)`teacher.cfg_path`.*closest existing files: \["
                             r"'mmdet::faster_rcnn/faster-rcnn_r50_fpn_2x_coco.py'"):
        resolve_model_cfg(dict(cfg_path='mmdet::faster_rcnn/faster_rcnn_r50_fpn_7x_coco.py'),
                          'teacher')
    # two mmseg 1 files differ only in GPUs x batch: the old name could be either
    with pytest.raises(FileNotFoundError, match=r"could be any of \[.*4xb2.*4xb4.*\]"):
        resolve_zoo_config('mmseg::fastfcn/fastfcn_r50-d32_jpu_aspp_512x1024_80k_cityscapes.py')


def test_a_package_that_is_not_installed_is_named():
    with pytest.raises(FileNotFoundError, match="'mmyolo' is not installed"):
        resolve_zoo_config('mmyolo::yolov5/yolov5_s-v61_syncbn_8xb16-300e_coco.py')
