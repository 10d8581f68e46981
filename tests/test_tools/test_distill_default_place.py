"""tools/distill.py's default place (mmkd/apis/distill.py ``default_place``) for model-zoo
families without a neck: the backbone's stages."""
from mmengine.config import Config
from tool_runs import load_tool

from mmkd.apis.distill import default_place, load_config

PSP = 'mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py'  # no neck
CORNERNET = 'mmdet::cornernet/cornernet_hourglass104_8xb6-210e-mstest_coco.py'  # no neck
RETINA = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'


def test_default_place_is_the_backbone_when_either_model_has_no_neck():
    with_neck, without = load_config(RETINA), load_config(CORNERNET)
    assert default_place('PKD', 'det', with_neck, with_neck) == 'neck'
    assert default_place('PKD', 'det', with_neck, without) == 'backbone'
    assert default_place('CWD', 'det', without, with_neck) == 'backbone'
    assert default_place('KD', 'det', without, without) == 'dense_cls_logits'  # not the neck
    psp = load_config(PSP)
    assert default_place('PKD', 'seg', psp, psp) == 'backbone'
    assert default_place('CWD', 'seg', psp, psp) == 'seg_logits'
    assert default_place('PKD', 'seg') == 'neck'  # no configs: as before
    assert default_place('FitNet', 'seg', Config(dict(model=dict(neck=dict(type='FPN')))),
                         Config(dict(model=dict(neck=None)))) == 'backbone'


def test_distill_tool_writes_the_backbone_recipe_for_a_neckless_pair(tmp_path):
    tool = load_tool('distill.py')
    out = tmp_path / 'pkd.py'
    args = tool.parse_args([PSP, PSP, 'teacher.pth', '--method', 'PKD', '--out', str(out)])
    assert tool.write_config(args) == str(out)
    assert "recipes=[dict(type='PKD', on='backbone')])" in out.read_text()
    assert args.work_dir.endswith('pkd_backbone_pspnet_r18-d8_4xb2-80k_cityscapes-512x1024_'
                                  'pspnet_r18-d8_4xb2-80k_cityscapes-512x1024')
