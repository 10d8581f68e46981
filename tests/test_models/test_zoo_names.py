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


def _installed_zoo_files(package):
    """Every ``.py`` under the installed package's model-zoo configs, found on disk."""
    import os
    import os.path as osp

    from mmengine.utils import get_installed_path
    root = osp.join(get_installed_path(package), '.mim', 'configs')
    for folder, _, names in os.walk(root):
        for name in names:
            if name.endswith('.py'):
                path = osp.join(folder, name)
                yield osp.relpath(path, root).replace(os.sep, '/'), path


@pytest.mark.parametrize('package, scope', [('mmdet', 'mmdet'), ('mmsegmentation', 'mmseg')])
def test_every_installed_model_zoo_name_resolves_to_its_file(package, scope):
    """Names only, nothing built: what mmkd reads for each name (zoo_config_file), and
    whether mmengine's own parser takes it (mmengine_reads, for `_base_`)."""
    import os.path as osp

    from mmengine.config.utils import _get_package_and_cfg_path

    from mmkd.models.distillers.zoo_names import mmengine_reads, zoo_config_file
    unparsed = []
    files = list(_installed_zoo_files(package))
    assert len(files) > 700
    for rel, path in files:
        name = f'{scope}::{rel}'
        assert resolve_zoo_config(name) == name
        assert zoo_config_file(name) == path and osp.isfile(path)
        try:
            _get_package_and_cfg_path(name)
            parsed = True
        except ValueError:
            parsed = False
        assert mmengine_reads(name) == parsed, name
        unparsed += [] if parsed else [rel]
    if scope == 'mmdet':  # the names mmengine rejects, which mmkd reads all the same
        assert 'gn+ws/faster-rcnn_r50_fpn_gn-ws-all_1x_coco.py' in unparsed
        assert {rel.split('/')[0] for rel in unparsed} == {'gn+ws', 'legacy_1.x'}


def test_a_name_mmengine_rejects_loads_as_a_model_config():
    from mmkd.models.distillers.model_config import load_model_file
    cfg = load_model_file('mmdet::gn+ws/faster-rcnn_r50_fpn_gn-ws-all_1x_coco.py')
    assert cfg.model.type == 'FasterRCNN' and cfg.model.backbone.conv_cfg.type == 'ConvWS'
    model_cfg, _ = resolve_model_cfg(
        dict(cfg_path='mmdet::gn+ws/faster-rcnn_r50_fpn_gn-ws-all_1x_coco.py'), 'student')
    assert model_cfg._scope_ == 'mmdet' and model_cfg.neck.norm_cfg.type == 'GN'
