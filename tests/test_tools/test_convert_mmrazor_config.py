import pytest
import torch
from mmengine.config import Config

from model_steps import train_step_losses
from tool_runs import CONFIGS, load_tool, run_tool, tiny_config

from mmkd.testing import build_random_distiller, det_batch, seg_batch

convert_mmrazor_config = load_tool('convert_mmrazor_config.py')

# An MMRazor 1.x config in MMRazor's own words (as in its configs/distill/mmdet/*), on the
# embedded-dataset models: MGD (its connector holds the generator), CWD and FGD on three levels.
MMRAZOR_CONFIG = f'''
_base_ = ['{CONFIGS}/_base_/datasets/digits_detection.py',
          '{CONFIGS}/_base_/schedules/adamw_600it.py', '{CONFIGS}/_base_/det_runtime.py']
custom_imports = dict(imports=['mmrazor'], allow_failed_imports=False)
model = dict(
    _scope_='mmrazor',
    type='FpnTeacherDistill',
    architecture=dict(cfg_path='{CONFIGS}/digits/retinanet_r18-w32_digits.py',
                      pretrained=False),
    teacher=dict(cfg_path='{CONFIGS}/digits/retinanet_r18_digits.py', pretrained=False),
    teacher_ckpt=None,
    distiller=dict(
        type='ConfigurableDistiller',
        student_recorders=dict(fpn=dict(type='ModuleOutputs', source='neck')),
        teacher_recorders=dict(fpn=dict(type='ModuleOutputs', source='neck')),
        connectors=dict(
            mgd0=dict(type='MGDConncetor', student_channels=128, teacher_channels=128,
                      lambda_mgd=0.65),
            conv1=dict(type='ConvModuleConnector', in_channel=128, out_channel=128,
                       norm_cfg=dict(type='BN'))),
        distill_losses=dict(
            loss_mgd0=dict(type='MGDLoss', alpha_mgd=2e-5),
            loss_cwd1=dict(type='ChannelWiseDivergence', tau=1, loss_weight=5),
            loss_fgd2=dict(type='FGDLoss', in_channels=128, temp=0.8, alpha_fgd=1e-3)),
        loss_forward_mappings=dict(
            loss_mgd0=dict(
                preds_S=dict(from_student=True, recorder='fpn', data_idx=0, connector='mgd0'),
                preds_T=dict(from_student=False, recorder='fpn', data_idx=0)),
            loss_cwd1=dict(
                preds_S=dict(from_student=True, recorder='fpn', data_idx=1, connector='conv1'),
                preds_T=dict(from_student=False, recorder='fpn', data_idx=1)),
            loss_fgd2=dict(
                preds_S=dict(from_student=True, recorder='fpn', data_idx=2),
                preds_T=dict(from_student=False, recorder='fpn', data_idx=2)))))
find_unused_parameters = True
val_cfg = dict(_delete_=True, type='mmrazor.SingleTeacherDistillValLoop')
'''


@pytest.fixture
def mmrazor_config(tmp_path):
    path = tmp_path / 'mgd_cwd_fgd_mmrazor.py'
    path.write_text(MMRAZOR_CONFIG)
    return path


def test_converts_every_part(mmrazor_config, tmp_path):
    out = tmp_path / 'converted.py'
    cfg = convert_mmrazor_config.main([str(mmrazor_config), str(out)])
    model = Config.fromfile(str(out)).model
    assert model.type == 'Distiller' and model._scope_ == 'mmkd'
    assert model.student_recorders.fpn.type == 'ModuleOutputsRecorder'
    assert model.distill_losses.loss_mgd0 == dict(
        type='MGDLoss', loss_weight=2e-5, student_channels=128, teacher_channels=128,
        lambda_mgd=0.65)
    assert 'connector' not in model.loss_forward_mappings.loss_mgd0.preds_S
    assert model.distill_losses.loss_cwd1 == dict(type='CWDLoss', tau=1, loss_weight=5)
    assert model.connectors == dict(conv1=dict(type='ConvConnector', in_channels=128,
                                               out_channels=128, norm_cfg=dict(type='BN')))
    assert model.distill_losses.loss_fgd2.student_channels == 128
    fgd = model.distill_losses.loss_fgd2
    assert fgd.tau == 0.8 and 'temp' not in fgd  # one name per concept
    assert model.loss_forward_mappings.loss_fgd2.data_samples == dict(from_data='data_samples')
    assert cfg.val_cfg.type == 'mmkd.DistillValLoop'
    assert 'find_unused_parameters' not in cfg
    assert cfg.custom_imports.imports == ['mmkd']


def test_converted_config_trains(mmrazor_config, digits_root, det_teacher_ckpt, tmp_path):
    out = tmp_path / 'converted.py'
    convert_mmrazor_config.main([str(mmrazor_config), str(out)])
    cfg = tiny_config(str(out), digits_root, tmp_path / 'work', iters=2,
                      **{'model.teacher_ckpt': det_teacher_ckpt})
    result = run_tool('train.py', cfg)
    text = result.stdout + result.stderr
    for name in ('loss_mgd0', 'loss_cwd1', 'loss_fgd2'):
        assert f'distill.{name}' in text
    state = torch.load(tmp_path / 'work' / 'iter_2.pth', map_location='cpu', weights_only=False)
    assert not any(k.startswith('teachers.') for k in state['state_dict'])


@pytest.mark.parametrize('edit, message', [
    (("type='ChannelWiseDivergence'", "type='OFDLoss'"), "MMRazor loss 'OFDLoss'"),
    (("type='ModuleOutputs'", "type='FunctionOutputs'"), "recorder 'FunctionOutputs'"),
    (("norm_cfg=dict(type='BN')", "groups=2"), 'groups=2'),
    (("teacher_ckpt=None,", "teacher_ckpt=None, teacher_trainable=True,"), 'teacher_trainable'),
])
def test_unknown_parts_fail_with_what_is_known(edit, message, tmp_path):
    path = tmp_path / 'bad.py'
    path.write_text(MMRAZOR_CONFIG.replace(*edit))
    with pytest.raises(ValueError, match=message):
        convert_mmrazor_config.main([str(path), str(tmp_path / 'out.py')])


@pytest.mark.parametrize('edit, message', [
    (("imports=['mmrazor']", "imports=['mmrazor', 'mmyolo.models']"),
     r"cfg\.custom_imports \('mmyolo'\) needs the package 'mmyolo', which mmkd does not "
     "install: remove it from the config or install mmyolo"),
    (("teacher=dict(cfg_path='{CONFIGS}/digits/retinanet_r18_digits.py', pretrained=False)",
      "teacher=dict(_scope_='mmyolo', type='YOLODetector')"),
     r"cfg\.model\.teacher \('YOLODetector'\) needs the package 'mmyolo'"),
    (("find_unused_parameters = True", "default_hooks = dict(vis=dict(type='mmrazor.RazorVisua"
      "lizationHook'))"), r"default_hooks\.vis .* needs the package 'mmrazor'.* its algorithms"),
])
def test_parts_of_packages_mmkd_does_not_install_fail_naming_them(edit, message, tmp_path):
    text = MMRAZOR_CONFIG.replace(edit[0].format(CONFIGS=CONFIGS), edit[1])
    assert text != MMRAZOR_CONFIG
    with pytest.raises(ValueError, match=message):
        _convert(text, tmp_path)


def test_teacher_ckpt_option_replaces_the_configs(tmp_path):
    (tmp_path / 'in.py').write_text(MMRAZOR_CONFIG)
    cfg = convert_mmrazor_config.main([str(tmp_path / 'in.py'), str(tmp_path / 'out.py'),
                                       '--teacher-ckpt', 'teacher.pth'])
    assert cfg.model.teacher_ckpt == 'teacher.pth'
    assert Config.fromfile(str(tmp_path / 'out.py')).model.teacher_ckpt == 'teacher.pth'


def test_pretrained_false_keeps_the_models_own_initialisation(tmp_path):
    # MMRazor's pretrained=False is mmengine.hub.get_model's: the config as it is (ImageNet
    # backbone init_cfg included), which is mmkd's default; mmkd's pretrained=False drops it
    model = _convert(MMRAZOR_CONFIG, tmp_path).model
    assert 'pretrained' not in model.student and 'pretrained' not in model.teacher
    assert model.teacher_ckpt is None


def test_pretrained_true_on_a_config_file_fails(tmp_path):
    text = MMRAZOR_CONFIG.replace("retinanet_r18_digits.py', pretrained=False",
                                  "retinanet_r18_digits.py', pretrained=True")
    assert text != MMRAZOR_CONFIG
    with pytest.raises(ValueError, match="works on 'package::' config names only"):
        _convert(text, tmp_path)


def test_a_pretrained_teacher_without_teacher_ckpt_loads_its_model_zoo_checkpoint(tmp_path):
    text = MMRAZOR_CONFIG.replace(
        f"teacher=dict(cfg_path='{CONFIGS}/digits/retinanet_r18_digits.py', pretrained=False)",
        "teacher=dict(cfg_path='mmdet::retinanet/retinanet_r50_fpn_1x_coco.py', pretrained=True)")
    assert text != MMRAZOR_CONFIG
    assert _convert(text, tmp_path).model.teacher_ckpt == (
        'https://download.openmmlab.com/mmdetection/v2.0/retinanet/retinanet_r50_fpn_1x_coco/'
        'retinanet_r50_fpn_1x_coco_20200130-c2398f9e.pth')


# The published PCKA code's configs (https://github.com/Klayand/PCKA, an MMRazor fork:
# configs/distill/mmdet/... GFL R101 -> R50 and configs/distill/mmseg/... PSPNet R101 -> R18)
# in their own structure and names, on the embedded-dataset models: the digits RetinaNet has 3
# FPN levels where GFL has 5 (the published config distills the first 4). The intra-only form
# (its RepPoints config: intra_weight=10, no inter_weight) is the second case.
PCKA_DET_CONFIG = f'''
_base_ = ['{CONFIGS}/_base_/datasets/digits_detection.py',
          '{CONFIGS}/_base_/schedules/adamw_600it.py', '{CONFIGS}/_base_/det_runtime.py']
model = dict(
    _scope_='mmrazor',
    type='FpnTeacherDistill',
    architecture=dict(cfg_path='{CONFIGS}/digits/retinanet_r18-w32_digits.py',
                      pretrained=False),
    teacher=dict(cfg_path='{CONFIGS}/digits/retinanet_r18_digits.py', pretrained=False),
    teacher_ckpt=None,
    distiller=dict(
        type='ConfigurableDistiller',
        student_recorders=dict(fpn=dict(type='ModuleOutputs', source='neck')),
        teacher_recorders=dict(fpn=dict(type='ModuleOutputs', source='neck')),
        distill_losses=dict(
            loss_cwd_fpn0=dict(
                type='CenterKernelAlignmentRKD', intra_weight=10, inter_weight=10),
            loss_cwd_fpn1=dict(
                type='CenterKernelAlignmentRKD', intra_weight=10, inter_weight=10),
            loss_cwd_fpn2=dict(
                type='CenterKernelAlignmentRKD', intra_weight=10, inter_weight=10)),
        loss_forward_mappings=dict(
            loss_cwd_fpn0=dict(
                student_logits=dict(from_student=True, recorder='fpn', data_idx=0),
                teacher_logits=dict(from_student=False, recorder='fpn', data_idx=0)),
            loss_cwd_fpn1=dict(
                student_logits=dict(from_student=True, recorder='fpn', data_idx=1),
                teacher_logits=dict(from_student=False, recorder='fpn', data_idx=1)),
            loss_cwd_fpn2=dict(
                student_logits=dict(from_student=True, recorder='fpn', data_idx=2),
                teacher_logits=dict(from_student=False, recorder='fpn', data_idx=2)))))
'''
PCKA_SEG_CONFIG = f'''
_base_ = ['{CONFIGS}/_base_/datasets/digits_segmentation.py',
          '{CONFIGS}/_base_/schedules/adamw_600it.py', '{CONFIGS}/_base_/seg_runtime.py']
teacher_ckpt = None
model = dict(
    _scope_='mmrazor',
    type='SingleTeacherDistill',
    architecture=dict(cfg_path='{CONFIGS}/digits/semfpn_r18-w32_digits.py', pretrained=False),
    teacher=dict(cfg_path='{CONFIGS}/digits/semfpn_r18_digits.py', pretrained=False),
    teacher_ckpt=teacher_ckpt,
    distiller=dict(
        type='ConfigurableDistiller',
        distill_losses=dict(
            loss_cwd=dict(type='CenterKernelAlignmentSeg', intra_weight=10, inter_weight=10)),
        student_recorders=dict(
            logits=dict(type='ModuleOutputs', source='decode_head.conv_seg')),
        teacher_recorders=dict(
            logits=dict(type='ModuleOutputs', source='decode_head.conv_seg')),
        loss_forward_mappings=dict(
            loss_cwd=dict(
                student_logits=dict(from_student=True, recorder='logits'),
                teacher_logits=dict(from_student=False, recorder='logits')))))

find_unused_parameters = True

val_cfg = dict(_delete_=True, type='mmrazor.SingleTeacherDistillValLoop')
'''
INTRA_ONLY = ("intra_weight=10, inter_weight=10", "intra_weight=10")


def _convert(text: str, tmp_path) -> Config:
    (tmp_path / 'published.py').write_text(text)
    convert_mmrazor_config.main([str(tmp_path / 'published.py'), str(tmp_path / 'out.py')])
    return Config.fromfile(str(tmp_path / 'out.py'))


def _one_step(cfg: Config, batch: dict) -> dict:
    model = build_random_distiller(cfg)
    losses = {k: v for k, v in train_step_losses(model, batch).items()
              if k.startswith('distill.')}
    total = sum(losses.values())
    assert torch.isfinite(total) and total > 0
    total.backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    return losses


# the digits levels are smaller than a 16-cell patch: several are a single upsampled patch
@pytest.mark.filterwarnings('ignore:PCKALoss intra term:UserWarning')
@pytest.mark.parametrize('edit', [None, INTRA_ONLY])
def test_published_pcka_detection_config_converts_and_trains(edit, tmp_path):
    text = PCKA_DET_CONFIG.replace(*edit) if edit else PCKA_DET_CONFIG
    cfg = _convert(text, tmp_path)
    loss = cfg.model.distill_losses.loss_cwd_fpn0
    assert loss == dict(type='PCKALoss', patch_size=16, centered=False, small_levels='upsample',
                        loss_weight=10, intra_weight=1.0, inter_weight=0.0 if edit else 1.0)
    assert cfg.model.loss_forward_mappings.loss_cwd_fpn2 == dict(
        preds_S=dict(from_student=True, recorder='fpn', data_idx=2),
        preds_T=dict(from_student=False, recorder='fpn', data_idx=2))
    losses = _one_step(cfg, det_batch((128, 160)))
    assert sorted(losses) == [f'distill.loss_cwd_fpn{i}' for i in range(3)]


def test_published_pcka_segmentation_config_converts_and_trains(tmp_path):
    cfg = _convert(PCKA_SEG_CONFIG, tmp_path)
    assert cfg.model.distill_losses.loss_cwd == dict(
        type='CKALoss', feature_weight=0.0, centered=False, logit_terms='published',
        loss_weight=10, intra_weight=1.0, inter_weight=1.0)
    assert set(cfg.model.loss_forward_mappings.loss_cwd) == {'preds_S', 'preds_T'}
    assert cfg.val_cfg.type == 'mmkd.DistillValLoop'
    losses = _one_step(cfg, seg_batch(64, n=2, num_classes=11))
    assert list(losses) == ['distill.loss_cwd']


@pytest.mark.parametrize('edit, message', [
    (("inter_weight=10),\n            loss_cwd_fpn1", "inter_weight=10, with_l2_norm=True),\n"
      "            loss_cwd_fpn1"), 'with_l2_norm=True has no mmkd equivalent'),
    (("inter_weight=10),\n            loss_cwd_fpn1", "inter_weight=10, combined_KD=True),\n"
      "            loss_cwd_fpn1"), 'combined_KD=True'),
    (("inter_weight=10),\n            loss_cwd_fpn1", "inter_weight=10, tau=2),\n"
      "            loss_cwd_fpn1"), "argument 'tau' has no mmkd equivalent"),
])
def test_published_pcka_options_without_equivalent_fail(edit, message, tmp_path):
    text = PCKA_DET_CONFIG.replace(*edit)
    assert text != PCKA_DET_CONFIG
    with pytest.raises(ValueError, match=message):
        _convert(text, tmp_path)


def test_mmdet2_model_zoo_names_become_mmdet3_files(tmp_path):
    # MMRazor's Faster R-CNN configs name the mmdet 2 file
    text = MMRAZOR_CONFIG.replace(f"cfg_path='{CONFIGS}/digits/retinanet_r18_digits.py'",
                                  "cfg_path='mmdet::faster_rcnn/faster_rcnn_r50_fpn_1x_coco.py'")
    assert text != MMRAZOR_CONFIG
    cfg = _convert(text, tmp_path)
    assert cfg.model.teacher.cfg_path == 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'


# MMRazor's FBKD config (open-mmlab/mmrazor, configs/distill/mmdet/fbkd/
# fbkd_fpn_faster-rcnn_r101_faster-rcnn_r50_1x_coco.py) in its structure and names (recorders
# on neck.fpn_convs.i.conv, s_input / t_input, nonloacl_weight), on the digits RetinaNets:
# 3 FPN levels where Faster R-CNN distills 4, its connector settings per level (maxpool_stride
# 8, 4, default).
FBKD_LEVELS = [dict(reduction=4, maxpool_stride=8), dict(reduction=4, maxpool_stride=4), {}]


def _fbkd_connector(kind: str, extra: dict) -> str:
    args = ''.join(f', {k}={v!r}' for k, v in extra.items())
    return f"dict(type='{kind}', in_channels=128, mode='dot_product', sub_sample=True{args})"


FBKD_CONFIG = f'''
_base_ = ['{CONFIGS}/_base_/datasets/digits_detection.py',
          '{CONFIGS}/_base_/schedules/adamw_600it.py', '{CONFIGS}/_base_/det_runtime.py']
fpn = {{f'neck_s{{i}}': dict(type='ModuleOutputs', source=f'neck.fpn_convs.{{i}}.conv')
       for i in range(3)}}
model = dict(
    _scope_='mmrazor',
    type='SingleTeacherDistill',
    architecture=dict(cfg_path='{CONFIGS}/digits/retinanet_r18-w32_digits.py',
                      pretrained=False),
    teacher=dict(cfg_path='{CONFIGS}/digits/retinanet_r18_digits.py', pretrained=False),
    teacher_ckpt=None,
    distiller=dict(
        type='ConfigurableDistiller',
        student_recorders=fpn,
        teacher_recorders=fpn,
        distill_losses=dict(
            loss_s0=dict(type='FBKDLoss'),
            loss_s1=dict(type='FBKDLoss'),
            loss_s2=dict(type='FBKDLoss', nonloacl_weight=1e-4)),
        connectors=dict(
            {''.join(f"""
            loss_s{i}_sfeat={_fbkd_connector('FBKDStudentConnector', extra)},
            loss_s{i}_tfeat={_fbkd_connector('FBKDTeacherConnector', extra)},"""
                     for i, extra in enumerate(FBKD_LEVELS))}),
        loss_forward_mappings={{
            f'loss_s{{i}}': dict(
                s_input=dict(from_student=True, recorder=f'neck_s{{i}}',
                             connector=f'loss_s{{i}}_sfeat'),
                t_input=dict(from_student=False, recorder=f'neck_s{{i}}',
                             connector=f'loss_s{{i}}_tfeat'))
            for i in range(3)}}))
find_unused_parameters = True
val_cfg = dict(_delete_=True, type='mmrazor.SingleTeacherDistillValLoop')
'''


def test_mmrazor_fbkd_config_converts_and_trains(tmp_path):
    cfg = _convert(FBKD_CONFIG, tmp_path)
    losses = cfg.model.distill_losses
    assert losses.loss_s0 == dict(
        type='FBKDLoss', student_channels=128, teacher_channels=128, reduction=4,
        mode='dot_product', sub_sample=True, maxpool_stride=8, norm_cfg=dict(type='BN'),
        spatial_temperature=0.5)
    assert losses.loss_s2.nonlocal_weight == 1e-4 and losses.loss_s2.maxpool_stride == 2
    assert 'connectors' not in cfg.model
    assert cfg.model.loss_forward_mappings.loss_s1 == dict(
        preds_S=dict(from_student=True, recorder='neck_s1'),
        preds_T=dict(from_student=False, recorder='neck_s1'))
    losses = _one_step(cfg, det_batch(128))
    assert sorted(losses) == [f'distill.loss_s{i}' for i in range(3)]


def test_fbkd_connectors_that_disagree_fail(tmp_path):
    text = FBKD_CONFIG.replace("FBKDTeacherConnector', in_channels=128, mode='dot_product', "
                               "sub_sample=True, reduction=4, maxpool_stride=8",
                               "FBKDTeacherConnector', in_channels=128, mode='dot_product', "
                               "sub_sample=True, reduction=2, maxpool_stride=8")
    assert text != FBKD_CONFIG
    with pytest.raises(ValueError, match='set reduction to 4 and 2'):
        _convert(text, tmp_path)
