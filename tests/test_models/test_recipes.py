"""Recipes (mmkd/models/distillers/recipes.py, expansion.py, probe.py: one feature, tested
together): expansion into the explicit wiring on tiny stand-in models, stride pairing, the
probe, errors, the published settings, and identity with the written-out configs (digits
pairs, random init)."""
import copy
import json
import os.path as osp
import types

import pytest
import torch
import torch.nn.functional as F
from config_fingerprint import FIXTURE, with_defaults
from mmengine.config import Config
from model_steps import train_step_losses
from torch import nn

from mmkd.models.distillers import expansion as expansion_module
from mmkd.models.distillers import recipes as recipes_module
from mmkd.models.distillers.expansion import expand_recipes, pair_levels
from mmkd.models.distillers.loss_inputs import LossInputs
from mmkd.models.distillers.probe import choose_input_size, training_input_size
from mmkd.models.distillers.recipes import parse_recipe
from mmkd.models.recorders import RecorderManager
from mmkd.registry import build_component
from mmkd.testing import build_random_distiller, det_batch, seg_batch

CONFIGS = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs')


# ---------------------------------------------------------------------- tiny stand-in models
class TinyNeck(nn.Module):
    """Levels of the given strides (ceil pooling, as convolutions round) and channels."""

    def __init__(self, channels, strides):
        super().__init__()
        channels = [channels] * len(strides) if isinstance(channels, int) else channels
        self.strides = strides
        self.convs = nn.ModuleList(nn.Conv2d(3, c, 1) for c in channels)

    def forward(self, x):
        return tuple(conv(F.avg_pool2d(x, s, ceil_mode=True))
                     for conv, s in zip(self.convs, self.strides))


class TinyDecodeHead(nn.Module):

    def __init__(self, num_classes, stride):
        super().__init__()
        self.stride = stride
        self.conv_seg = nn.Conv2d(3, num_classes, 1)

    def forward(self, x):
        return self.conv_seg(F.avg_pool2d(x, self.stride, ceil_mode=True))


class TinyModel(nn.Module):
    """What the probe needs of an mmdet / mmseg model: extract_feat, _forward, a padding
    data preprocessor, and a neck or a decode head."""

    def __init__(self, channels=8, strides=(8, 16, 32), pad=1, num_classes=None, seg_stride=4):
        super().__init__()
        if num_classes is None:
            self.neck = TinyNeck(channels, strides)
        else:
            self.decode_head = TinyDecodeHead(num_classes, seg_stride)
        self.data_preprocessor = types.SimpleNamespace(pad_size_divisor=pad)

    def extract_feat(self, x):
        return self.neck(x) if hasattr(self, 'neck') else x

    def _forward(self, x):
        feats = self.extract_feat(x)
        return self.decode_head(feats) if hasattr(self, 'decode_head') else feats


class TinyBackboneModel(TinyModel):
    """Levels from a backbone (the strides and channels given); ``neck=True`` adds a neck
    that passes them on."""

    def __init__(self, channels=8, strides=(8, 16, 32), neck=False):
        nn.Module.__init__(self)
        self.backbone = TinyNeck(channels, strides)
        if neck:
            self.neck = nn.Identity()
        self.data_preprocessor = types.SimpleNamespace(pad_size_divisor=1)

    def extract_feat(self, x):
        feats = self.backbone(x)
        return self.neck(feats) if hasattr(self, 'neck') else feats


def expand(recipes, student, teacher, input_size=(128, 128), **explicit):
    return expand_recipes(recipes, student, teacher, explicit, input_size)


def run_wiring(out, student, teacher, size=(128, 128)):
    """Build what the expansion names and compute every loss on one random image, through
    the distiller's own recorders and LossInputs."""
    recorders = dict(student=RecorderManager(out.student_recorders),
                     teacher=RecorderManager(out.teacher_recorders))
    recorders['student'].attach(student, 'student')
    recorders['teacher'].attach(teacher, 'teacher')
    connectors = nn.ModuleDict({k: build_component(v) for k, v in out.connectors.items()})
    losses = nn.ModuleDict({k: build_component(v) for k, v in out.distill_losses.items()})
    inputs = LossInputs(out.loss_forward_mappings, losses, recorders, connectors)
    image = torch.rand(2, 3, *size)
    for side, model in (('student', student), ('teacher', teacher)):
        with recorders[side].recording():
            model._forward(image)
    values = {}
    for name, loss in losses.items():
        kwargs = inputs.gather(name, dict(inputs=image, data_samples=None), {}, None)
        inputs.check_shapes(name, loss, kwargs)
        values[name] = loss(**kwargs)
    return values


def neck_mapping(i, j=None, connector=None):
    preds_S = dict(from_student=True, recorder='fpn', data_idx=i)
    if connector:
        preds_S['connector'] = connector
    return dict(preds_S=preds_S,
                preds_T=dict(from_student=False, recorder='fpn', data_idx=i if j is None else j))


NECK = dict(type='ModuleOutputsRecorder', source='neck')


# ---------------------------------------------------------------------- pairing by stride
def test_pair_levels_pairs_equal_strides_and_reports_the_rest():
    pairs, lone_s, lone_t = pair_levels([(8, 8), (4, 4), (2, 2)], [(16, 16), (8, 8), (4, 4)],
                                        (64, 64), (64, 64))
    assert pairs == [(0, 1), (1, 2)] and lone_s == [2] and lone_t == [0]


def test_pair_levels_follows_each_sides_input_and_tolerates_rounding():
    # 800x1344 at stride 128 gives a 7x11 level (ceil): still stride 128, not 64.
    pairs, lone_s, lone_t = pair_levels([(100, 168), (7, 11)], [(100, 168), (13, 21), (7, 11)],
                                        (800, 1344), (800, 1344))
    assert pairs == [(0, 0), (1, 2)] and lone_s == [] and lone_t == [1]
    # The teacher sees an input twice as large: its stride-8 level is the 2x larger map.
    assert pair_levels([(8, 8)], [(8, 8), (16, 16)], (64, 64), (128, 128))[0] == [(0, 1)]
    assert pair_levels([(8, 8)], [(4, 4)], (64, 64), (64, 64)) == ([], [0], [0])


# ---------------------------------------------------------------------- expansion
def test_same_width_pair_expands_to_the_explicit_pkd_wiring():
    out = expand([dict(type='PKD', on='neck')], TinyModel(8), TinyModel(8))
    assert out.student_recorders == out.teacher_recorders == dict(fpn=NECK)
    assert out.connectors == {}
    assert out.distill_losses == {f'loss_pkd_fpn{i}': dict(type='PKDLoss', loss_weight=10.0)
                                  for i in range(3)}
    assert out.loss_forward_mappings == {f'loss_pkd_fpn{i}': neck_mapping(i) for i in range(3)}
    assert [row[1:4] for row in out.rows] == [('fpn0', 'fpn0', '8'), ('fpn1', 'fpn1', '16'),
                                              ('fpn2', 'fpn2', '32')]
    assert out.notes == []


def test_different_width_pair_gets_a_conv_connector_per_level_and_trains():
    student, teacher = TinyModel(4), TinyModel(8)
    out = expand([dict(type='FitNet', on='neck', loss_weight=2.0)], student, teacher)
    assert out.connectors == {
        f'fitnet_fpn{i}_conv': dict(type='ConvConnector', in_channels=4, out_channels=8)
        for i in range(3)}
    assert out.loss_forward_mappings['loss_fitnet_fpn1'] == neck_mapping(
        1, connector='fitnet_fpn1_conv')
    assert out.distill_losses['loss_fitnet_fpn1'] == dict(type='MSEFeatureLoss', loss_weight=2.0)
    assert 'ConvConnector(4->8)' in out.table() and '2' in out.rows[0][-1]
    values = run_wiring(out, student, teacher)
    assert set(values) == {f'loss_fitnet_fpn{i}' for i in range(3)}
    assert all(torch.isfinite(v) and v > 0 for v in values.values())


def test_partly_overlapping_strides_pair_the_common_ones_and_report_the_dropped():
    student, teacher = TinyModel(8, (16, 32, 64)), TinyModel(8, (8, 16, 32))
    out = expand([dict(type='CWD', on='neck')], student, teacher)
    assert out.loss_forward_mappings == {'loss_cwd_fpn0': neck_mapping(0, 1),
                                         'loss_cwd_fpn1': neck_mapping(1, 2)}
    assert out.distill_losses['loss_cwd_fpn0'] == dict(type='CWDLoss', loss_weight=10.0, tau=1.0)
    notes = '\n'.join(out.notes)
    assert 'student level fpn2 (stride 64, 8x2x2) has no teacher level' in notes
    assert 'teacher level fpn0 (stride 8, 8x16x16) has no student level' in notes
    assert all(f'  {note}' in out.table() for note in out.notes)
    assert all(torch.isfinite(v) for v in run_wiring(out, student, teacher).values())


def test_sizes_that_differ_get_a_resize_connector_unless_the_loss_resizes():
    # The teacher pads 100 px to 128, the student does not: 13x13 against 16x16 at stride 8.
    student, teacher = TinyModel(4, (8, 16)), TinyModel(8, (8, 16), pad=32)
    out = expand([dict(type='CWD', on='neck'), dict(type='PKD', on='neck')], student, teacher,
                 input_size=(100, 100))
    assert out.connectors['cwd_fpn0_resize'] == dict(type='ResizeConnector')
    assert out.loss_forward_mappings['loss_cwd_fpn0']['preds_S']['connector'] == [
        'cwd_fpn0_conv', 'cwd_fpn0_resize']
    assert 'pkd_fpn0_resize' not in out.connectors  # PKDLoss resizes the student itself
    assert out.loss_forward_mappings['loss_pkd_fpn0']['preds_S']['connector'] == 'pkd_fpn0_conv'
    assert '(loss resizes)' in out.table()
    values = run_wiring(out, student, teacher, size=(100, 100))
    assert len(values) == 4 and all(torch.isfinite(v) for v in values.values())


def test_default_levels_leave_out_the_coarsest_and_say_so():
    out = expand([dict(type='PKD')], TinyModel(8, (4, 8, 16, 32, 64)),
                 TinyModel(8, (4, 8, 16, 32, 64)))
    assert sorted(out.distill_losses) == [f'loss_pkd_fpn{i}' for i in range(4)]
    assert any("fpn4 (stride 64) is not in PKD's default levels (0, 1, 2, 3)" in n
               for n in out.notes)
    out = expand([dict(type='PKD', levels=[1])], TinyModel(8), TinyModel(8))
    assert list(out.distill_losses) == ['loss_pkd_fpn1']


def test_losses_that_align_channels_get_them_and_no_connector():
    out = expand([dict(type='MGD'), dict(type='FGD')], TinyModel(4), TinyModel(8))
    assert out.connectors == {}
    assert out.distill_losses['loss_mgd_fpn0'] == dict(
        type='MGDLoss', loss_weight=2e-5, lambda_mgd=0.65, student_channels=4,
        teacher_channels=8)
    assert out.distill_losses['loss_fgd_fpn2'] == dict(type='FGDLoss', student_channels=4,
                                                       teacher_channels=8)
    assert out.loss_forward_mappings['loss_fgd_fpn0']['data_samples'] == dict(
        from_data='data_samples')


def test_gkd_maps_both_task_gradients_and_the_raw_student_feature_behind_a_connector():
    out = expand([dict(type='GKD', levels=(0, ))], TinyModel(4), TinyModel(8))
    mapping = out.loss_forward_mappings['loss_gkd_fpn0']
    raw = dict(from_student=True, recorder='fpn', data_idx=0)
    assert mapping == dict(
        preds_S=dict(raw, connector='gkd_fpn0_conv'),
        preds_T=dict(from_student=False, recorder='fpn', data_idx=0),
        grads_S=dict(raw, gradient=True),
        grads_T=dict(from_student=False, recorder='fpn', data_idx=0, gradient=True),
        feats_S=raw)
    # not a detector: no GT boxes, so neither BMFI nor data_samples
    assert out.distill_losses['loss_gkd_fpn0'] == dict(type='GKDLoss', loss_weight=1.0,
                                                       double_backward=False)


def test_sokd_gets_each_levels_stride_and_name_and_adapts_channels_itself():
    out = expand([dict(type='SoKD', on='neck', num_areas=4)], TinyModel(4, (8, 16)),
                 TinyModel(8, (8, 16)))
    assert out.connectors == {}
    assert out.distill_losses['loss_sokd_fpn1'] == dict(
        type='SoKDLoss', loss=dict(type='MSEFeatureLoss'), num_areas=4, loss_weight=1.0,
        student_channels=4, teacher_channels=8, stride=16, name='fpn1')
    assert 'data_samples' not in out.loss_forward_mappings['loss_sokd_fpn1']  # no boxes
    with pytest.raises(TypeError, match=r"unknown keys \['stride'\]"):
        parse_recipe(0, dict(type='SoKD', on='neck', stride=8))


def test_selfreg_wraps_the_loss_and_regulates_on_the_students_own_logits():
    student, teacher = TinyModel(num_classes=5), TinyModel(num_classes=5)
    out = expand([dict(type='KD', on='seg_logits', selfreg=dict(mode='hybrid', conf_thr=0.7))],
                 student, teacher)
    assert out.distill_losses['loss_kd_logits'] == dict(
        type='SignificanceWeightedLoss', name='loss_kd_logits', min_weight=0.1, conf_thr=0.7,
        handled_ratio=0.9, mode='hybrid',
        loss=dict(type='KDLoss', mode='softmax', tau=1.0, loss_weight=1.0))
    logits = dict(from_student=True, recorder='logits')
    assert out.loss_forward_mappings['loss_kd_logits'] == dict(
        preds_S=logits, preds_T=dict(from_student=False, recorder='logits'),
        data_samples=dict(from_data='data_samples'), student_logits=logits)
    out = expand([dict(type='CWD', on='neck', selfreg='significance')], TinyModel(8),
                 TinyModel(8))
    assert out.distill_losses['loss_cwd_fpn2']['loss'] == dict(type='CWDLoss', loss_weight=10.0,
                                                               tau=1.0)
    assert 'student_logits' not in out.loss_forward_mappings['loss_cwd_fpn2']


def test_logit_recipes_read_the_places_labels():
    out = expand([dict(type='DKD', on='seg_logits'), dict(type='TopKD', on='seg_logits')],
                 TinyModel(num_classes=5), TinyModel(num_classes=5))
    for name in ('loss_dkd_logits', 'loss_topkd_logits'):
        assert out.loss_forward_mappings[name]['labels'] == dict(from_data='gt_sem_seg')
    assert out.distill_losses['loss_dkd_logits'] == dict(type='DKDLoss', alpha=1.0, beta=8.0,
                                                         tau=4.0, warmup_iters=1000)
    # the inner loss's own arguments go inside
    assert parse_recipe(0, dict(type='TopKD', on='dense_cls_logits', k=3)).loss['loss'] == dict(
        type='TopKDLoss', mode='sigmoid', centre=True, k=3)


def test_seg_logits_recipe_resizes_the_student_and_shares_an_explicit_recorder():
    student, teacher = TinyModel(num_classes=5, seg_stride=8), TinyModel(num_classes=5)
    logits = dict(type='ModuleOutputsRecorder', source='decode_head.conv_seg')
    out = expand([dict(type='KD', on='seg_logits', tau=2.0)], student, teacher,
                 student_recorders=dict(logits=logits))
    assert out.student_recorders == out.teacher_recorders == dict(logits=logits)
    assert out.distill_losses == dict(loss_kd_logits=dict(type='KDLoss', mode='softmax',
                                                          tau=2.0, loss_weight=1.0))
    assert out.loss_forward_mappings == dict(loss_kd_logits=dict(
        preds_S=dict(from_student=True, recorder='logits', connector='kd_logits_resize'),
        preds_T=dict(from_student=False, recorder='logits')))
    assert torch.isfinite(run_wiring(out, student, teacher)['loss_kd_logits'])


def test_backbone_stages_expand_as_neck_levels_do():
    """One code path: the same strides and channels on a backbone give the neck's wiring,
    table and notes, named stage<i> and read from the recorder 'backbone'."""
    recipe = dict(type='PKD', levels=(1, 3))
    neck = expand([dict(recipe, on='neck')], TinyModel(4, (4, 8, 16, 32)),
                  TinyModel(8, (8, 16, 32, 64)))
    stages = expand([dict(recipe, on='backbone')], TinyBackboneModel(4, (4, 8, 16, 32)),
                    TinyBackboneModel(8, (8, 16, 32, 64)))
    assert stages.student_recorders == stages.teacher_recorders == dict(
        backbone=dict(type='ModuleOutputsRecorder', source='backbone'))

    def renamed(out):
        text = json.dumps([out.connectors, out.distill_losses, out.loss_forward_mappings,
                           out.rows, out.notes])
        return text.replace('"recorder": "fpn"', '"recorder": "backbone"').replace(
            'fpn', 'stage').replace('on neck', 'on backbone')

    assert renamed(neck) == renamed(stages)
    assert sorted(stages.distill_losses) == ['loss_pkd_stage1', 'loss_pkd_stage3']
    assert stages.connectors['pkd_stage1_conv'] == dict(type='ConvConnector', in_channels=4,
                                                        out_channels=8)
    assert 'PKD on backbone  stage3   stage2   32' in stages.table()
    assert 'student level stage0 (stride 4, 4x32x32) has no teacher level' in stages.table()
    with pytest.raises(ValueError, match=r'no student and teacher backbone stages have the same '
                       r"stride.*student strides \['64'\], teacher strides \['8'\]"):
        expand([dict(type='CWD', on='backbone')], TinyBackboneModel(8, (64, )),
               TinyBackboneModel(8, (8, )))
    with pytest.raises(ValueError, match=r'levels \[2\] are not paired student backbone stages'):
        expand([dict(type='CWD', on='backbone', levels=2)], TinyBackboneModel(8, (8, 16, 64)),
               TinyBackboneModel(8))


def test_a_recipe_without_on_reads_the_backbone_where_a_model_has_no_neck():
    backbone = dict(backbone=dict(type='ModuleOutputsRecorder', source='backbone'))
    out = expand([dict(type='FitNet')], TinyBackboneModel(4), TinyBackboneModel(8, neck=True))
    assert out.student_recorders == out.teacher_recorders == backbone
    assert sorted(out.distill_losses) == [f'loss_fitnet_stage{i}' for i in range(3)]
    assert ("FitNet on backbone: the student (TinyBackboneModel) has no neck, so the recipe (no "
            "on=) reads the backbone's stages, paired by stride as neck levels are "
            "(on='backbone')") in out.table()
    out = expand([dict(type='FitNet')], TinyBackboneModel(8, neck=True),
                 TinyBackboneModel(8, neck=True))
    assert out.student_recorders == dict(fpn=NECK) and out.notes == []  # both have a neck
    with pytest.raises(ValueError, match=r"\(FitNet on neck\): the student \(TinyBackboneModel\) "
                       r"has no neck; .* Read its backbone's stages with on='backbone'"):
        expand([dict(type='FitNet', on='neck')], TinyBackboneModel(4),
               TinyBackboneModel(8, neck=True))


def test_every_method_that_reads_the_neck_reads_the_backbone_with_the_same_setting():
    for name, method in recipes_module.RECIPES.items():
        # (Af-DCD reads the backbone's last stage with a setting of its own)
        assert ('backbone' in method.places) == ('neck' in method.settings
                                                 or 'backbone' in method.settings), name
        if 'neck' in method.settings:
            assert method.setting('backbone') is method.settings['neck']
            assert parse_recipe(0, dict(type=name, on='backbone')).loss == parse_recipe(
                0, dict(type=name, on='neck')).loss
    recipe = parse_recipe(0, dict(type='PKD', on='backbone', levels=1))
    assert recipe.levels == (1, ) and recipe.label == 'PKD on backbone' and recipe.on_given
    assert not parse_recipe(0, dict(type='PKD')).on_given


def test_the_probe_leaves_train_flags_and_random_state_as_they_were():
    student, teacher = TinyModel(8), TinyModel(8)
    teacher.eval()
    state = torch.get_rng_state()
    expand([dict(type='PKD')], student, teacher)
    assert all(m.training for m in student.modules())
    assert not any(m.training for m in teacher.modules())
    assert torch.equal(torch.get_rng_state(), state)
    assert not student.neck._forward_hooks  # the probe's recorders are detached


class ValueDependentModel(TinyModel):
    """Reads a value in its forward (as drop-path schedules or DETR masks do): no meta run."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.devices = []

    def extract_feat(self, x):
        self.devices.append(x.device.type)
        assert x.sum().item() == 0  # .item() raises on meta tensors
        return super().extract_feat(x)


def test_the_probe_runs_on_meta_stand_ins_and_falls_back_to_real_tensors():
    student, teacher = ValueDependentModel(4), TinyModel(8)
    out = expand([dict(type='FitNet')], student, teacher)
    assert student.devices == ['meta', 'cpu']  # tried on meta, then computed
    assert len(out.connectors) == 3
    assert all(p.device.type == 'cpu' for p in student.parameters())  # real weights are back
    assert all(p.device.type == 'cpu' for p in teacher.parameters())


# ---------------------------------------------------------------------- errors
@pytest.mark.parametrize('recipe, error, match', [
    (dict(type='Magic', on='neck'), KeyError,
     r"Unknown recipe type .*Magic.*Known recipe types: .*CWD.*PKD"),
    (dict(type='CWD'), ValueError,
     r"recipe CWD needs on=: one of \['backbone', 'neck', 'seg_logits'\]"),
    (dict(type='PKD', on='seg_logits'), ValueError, r"PKD cannot read on='seg_logits'; it reads "
     r"\['backbone', 'neck'\]. Recipes on 'seg_logits': "),
    (dict(type='PKD', on='head'), ValueError,
     r"Places: \['aux_logits', 'backbone', 'dense_cls_logits', 'neck'"),
    (dict(type='KD', on='backbone'), ValueError,
     r"KD cannot read on='backbone'.*Recipes on 'backbone': \['PKD', 'CWD'"),
    (dict(type='CWD', on='neck', tua=2.0), TypeError,
     r"unknown keys \['tua'\].*arguments of CWDLoss: \['loss_weight', 'tau'\]"),
    (dict(type='KD', on='seg_logits', levels=(0, 1)), ValueError, 'Remove levels'),
    (dict(type='PKD', levels='all'), TypeError, 'levels must be student neck level indices'),
    ('PKD', TypeError, r"must be a dict with a type"),
    (dict(type='KD', on='seg_logits', selfreg='always'), ValueError,
     r"selfreg is a mode of SignificanceWeightedLoss, one of \['significance', 'regulated', "),
    (dict(type='KD', on='seg_logits', selfreg=dict(mode='hybrid', name='x')), TypeError,
     r"selfreg got unknown keys \['name'\]"),
    (dict(type='CWD', on='neck', selfreg='hybrid'), ValueError,
     r"judged on its own class logits, which recipe CWD on='neck' does not read: use it on "
     r"\['seg_logits', 'aux_logits', 'dense_cls_logits'\], or selfreg='significance'"),
])
def test_bad_recipes_fail_naming_the_problem_and_the_fix(recipe, error, match):
    with pytest.raises(error, match=match):
        parse_recipe(0, recipe)


def test_recipe_types_ignore_case_and_accept_aliases():
    assert parse_recipe(0, dict(type='mse')).type == 'FitNet'
    assert parse_recipe(0, dict(type='pcka')).loss == dict(
        type='PCKALoss', loss_weight=10.0, patch_size=16, centered=False)
    inner = parse_recipe(0, dict(type='KD', on='dense_cls_logits', tau=2.0)).loss['loss']
    assert inner == dict(type='KDLoss', mode='sigmoid', tau=2.0)


def test_models_without_the_place_or_common_strides_fail_at_expansion():
    seg = TinyModel(num_classes=5)
    with pytest.raises(ValueError, match=r"the student \(TinyModel\) has no neck; its top-level "
                       r"modules: \['decode_head'\]. Recipe PKD also reads \['backbone'\]. Read "
                       r"its backbone's stages with on='backbone'"):
        expand([dict(type='PKD', on='neck')], seg, TinyModel(8))
    with pytest.raises(ValueError, match=r"\(PKD on backbone\): the student \(TinyModel\) has "
                       r"no backbone; .* Recipe PKD also reads \['neck'\]. Or record"):
        expand([dict(type='PKD')], seg, TinyModel(8))  # no neck: the backbone by default
    with pytest.raises(ValueError, match=r"no student and teacher neck levels have the same "
                       r"stride.*student strides \['64', '128'\], teacher strides \['8', '16'\]"):
        expand([dict(type='PKD')], TinyModel(8, (64, 128)), TinyModel(8, (8, 16)))
    with pytest.raises(ValueError, match=r'levels \[2\] are not paired.*paired ones are \[0, 1\]'):
        expand([dict(type='PKD', levels=(0, 2))], TinyModel(8, (16, 32, 64)), TinyModel(8))
    with pytest.raises(ValueError, match='the student has 5 channels and the teacher 7'):
        expand([dict(type='CWD', on='seg_logits')], seg, TinyModel(num_classes=7))


def test_name_clashes_with_the_explicit_config_fail():
    with pytest.raises(ValueError, match=r"defines distill_losses\['loss_pkd_fpn0'\].*name="):
        expand([dict(type='PKD')], TinyModel(8), TinyModel(8),
               distill_losses=dict(loss_pkd_fpn0=dict(type='PKDLoss')))
    other = dict(type='ModuleOutputsRecorder', source='backbone')
    with pytest.raises(ValueError, match=r"config defines teacher_recorders\['fpn'\]"):
        expand([dict(type='PKD')], TinyModel(8), TinyModel(8), teacher_recorders=dict(fpn=other))
    out = expand([dict(type='PKD'), dict(type='PKD', name='pkd6', loss_weight=6.0)],
                 TinyModel(8), TinyModel(8))
    assert out.distill_losses['loss_pkd6_fpn0'] == dict(type='PKDLoss', loss_weight=6.0)


# ---------------------------------------------------------------------- published settings
SETTINGS = [(name, place) for name, method in recipes_module.RECIPES.items()
            for place in method.settings]


@pytest.mark.parametrize('name, place', SETTINGS)
def test_recipe_defaults_are_those_of_the_config_they_cite(name, place):
    """Each setting names the shipped config it comes from, whose first comment cites the
    paper: that config is the recipe with nothing overridden, so the two cannot drift apart
    (test_config_identity.py checks that the configs still build the explicit models they
    replaced, the losses with these settings)."""
    setting = recipes_module.RECIPES[name].settings[place]
    assert set(setting.inputs) <= set(recipes_module.INPUTS)
    assert set(setting.pair_args) <= {'stride', 'name', 'num_classes'}
    path = osp.join(osp.dirname(CONFIGS), setting.source.split(':')[0])
    model = Config.fromfile(path).model
    # the recipe as it is, but for the arguments it must be given (MasKD's tokens file); a
    # published setting of several places or methods (DIST's main and auxiliary heads, CIRKD
    # with KD on the logits) cites one config of several recipes
    required = recipes_module._required_arguments(setting.loss['type'], setting.pair_args)
    mine = [{k: v for k, v in r.items() if k not in required} for r in model.recipes
            if r['type'] == name and r['on'] == place]
    assert mine == [dict(type=name, on=place)]
    assert not model.get('distill_losses')


def test_selfreg_defaults_are_those_of_the_config_they_cite():
    path = osp.join(osp.dirname(CONFIGS), recipes_module.SELFREG_SOURCE.split(':')[0])
    model = Config.fromfile(path).model
    assert model.recipes == [dict(type='KD', on='dense_cls_logits', selfreg='hybrid')]
    with open(FIXTURE) as f:  # the loss that config was written out with before
        loss = json.load(f)[osp.relpath(path, f'{CONFIGS}/distill')]['wiring'][
            'distill_losses']['loss_kd_cls']
    assert {k: loss[k] for k in recipes_module.SELFREG} == recipes_module.SELFREG


# ---------------------------------------------------------------------- input size
def test_training_input_size_reads_the_preprocessor_then_the_pipeline():
    det = Config(dict(train_dataloader=dict(dataset=dict(type='RepeatDataset', dataset=dict(
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='RandomChoiceResize', scales=[(1333, 640), (1333, 800)])])))))
    assert training_input_size(det, {}) == ((800, 1333), "the student's training pipeline")
    seg = Config(dict(train_pipeline=[dict(type='RandomResize', scale=(2048, 1024)),
                                      dict(type='RandomCrop', crop_size=(512, 1024))]))
    assert training_input_size(seg, {})[0] == (512, 1024)
    assert training_input_size(seg, dict(data_preprocessor=dict(size=(64, 96))))[0] == (64, 96)
    assert training_input_size(None, {}) is None
    assert choose_input_size(96, [('student', None, {})]) == ((96, 96), 'input_size')
    size, origin = choose_input_size(None, [('student', None, {}), ('teacher', seg, {})])
    assert size == (512, 1024) and origin == "the teacher's training pipeline"
    assert 'set the Distiller\'s input_size' in choose_input_size(None, [])[1]


# ---------------------------------------------------------------------- identity with configs
def _identical(path, batch, monkeypatch):
    """The recipe config at ``path`` and its explicit form (the recipes replaced by the wiring
    stored from the explicit file it replaced, tests/config_fingerprint.py) build the same
    model: same modules, same weights, same losses on ``batch``."""
    logged = []
    monkeypatch.setattr(expansion_module, 'print_log', lambda msg, **kw: logged.append(msg))
    recipe_cfg = Config.fromfile(path)
    with open(FIXTURE) as f:
        wiring = json.load(f)[osp.relpath(path, f'{CONFIGS}/distill')]['wiring']
    explicit_cfg = copy.deepcopy(recipe_cfg)
    explicit_cfg.model.pop('recipes')
    explicit_cfg.model.update(wiring)
    explicit = build_random_distiller(explicit_cfg, seed=3)
    recipe = build_random_distiller(recipe_cfg, seed=3)
    assert explicit.recipe_table is None and logged == [recipe.recipe_table]
    written_out = {}
    exec(recipe.recipe_explicit_config, written_out)  # the wiring as config text
    for key in ('connectors', 'distill_losses', 'loss_forward_mappings'):
        assert json.loads(json.dumps(with_defaults(written_out['model'][key]))) == wiring[key]
    assert [n for n, _ in explicit.named_modules()] == [n for n, _ in recipe.named_modules()]
    state_e, state_r = explicit.state_dict(), recipe.state_dict()
    assert list(state_e) == list(state_r)
    assert all(torch.equal(state_e[k], state_r[k]) for k in state_e)
    torch.manual_seed(5)
    losses_e = train_step_losses(explicit, batch)
    torch.manual_seed(5)
    losses_r = train_step_losses(recipe, batch)
    assert set(losses_e) == set(losses_r) and any(k.startswith('distill.') for k in losses_e)
    for key, value in losses_e.items():
        value = torch.stack(value) if isinstance(value, list) else value
        other = torch.stack(losses_r[key]) if isinstance(losses_r[key], list) else losses_r[key]
        assert torch.equal(value, other), key
    return recipe


def test_pkd_recipe_builds_the_model_of_the_explicit_digits_config(monkeypatch):
    # The recipe example of docs/en/user_guides/distill_your_own_model.md: the base's fpn
    # recorders are shared by the recipe.
    model = _identical(f'{CONFIGS}/distill/pkd/pkd_fpn_retina-r18_retina-r18w32_digits.py',
                       det_batch(128), monkeypatch)
    assert sorted(model.distill_losses) == [f'loss_pkd_fpn{i}' for i in range(3)]
    assert 'from the student\'s training pipeline' in model.recipe_table  # 128 px


def test_cwd_recipe_builds_the_model_of_the_explicit_digits_seg_config(monkeypatch):
    model = _identical(f'{CONFIGS}/distill/cwd/cwd_logits_semfpn-r18_semfpn-r18w32_digits.py',
                       seg_batch(128, num_classes=11), monkeypatch)
    assert model.teacher_forward_mode == 'tensor'


def test_kd_recipe_builds_the_model_of_the_explicit_dense_head_config(monkeypatch):
    _identical(f'{CONFIGS}/distill/kd/kd_logits_retina-r18_retina-r18w32_digits.py',
               det_batch(128), monkeypatch)


@pytest.mark.parametrize('name, batch', [
    ('gkd/gkd_fpn_retina-r18_retina-r18w32_digits.py', det_batch(128)),  # gradients, BMFI
    ('sokd/sokd_mse_fpn_semfpn-r18_semfpn-r18w32_digits.py', seg_batch(128, num_classes=11)),
    ('selfreg/selfreg-regulated_kd-logits_semfpn-r18_semfpn-r18w32_digits.py',
     seg_batch(128, num_classes=11)),
    ('topkd/topkd_logits_retina-r18_retina-r18w32_digits.py', det_batch(128)),
])
def test_recipes_of_the_other_methods_build_the_models_of_their_explicit_configs(
        name, batch, monkeypatch):
    _identical(f'{CONFIGS}/distill/{name}', batch, monkeypatch)


def test_roi_recipe_replays_the_teachers_roi_head_and_trains():
    # the digits Mask R-CNN pair: its RoI heads classify 10 digits + background
    cfg = Config.fromfile(f'{CONFIGS}/distill/maskkd/maskkd_mask-head_mask-rcnn-r18_mask-rcnn-'
                          'r18w32_digits.py')
    cfg.model = dict(cfg.model, recipes=[dict(type='DKD', on='roi_cls_logits',
                                              warmup_iters=0)])
    model = build_random_distiller(cfg)
    written_out = {}
    exec(model.recipe_explicit_config, written_out)
    replays = written_out['model']['teacher_replays']
    assert replays['roi'] == recipes_module.ROI_REPLAY['teacher_replays']['roi']
    assert set(replays) == {'mask', 'roi'}  # the config's own replay is kept
    assert written_out['model']['loss_forward_mappings']['loss_dkd_roi']['labels'] == dict(
        from_student=True, recorder='targets', data_idx=['bbox_targets', 0])
    assert 'roi_out' in model.recipe_table
    losses = train_step_losses(model, det_batch(128, masks=True))
    assert torch.isfinite(losses['distill.loss_dkd_roi']) and losses['distill.loss_dkd_roi'] > 0
    losses['distill.loss_dkd_roi'].backward()
    assert model.student.roi_head.bbox_head.fc_cls.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.teacher.parameters())


def test_roi_recipe_needs_the_same_classes():
    cfg = Config.fromfile(f'{CONFIGS}/distill/maskkd/maskkd_mask-head_mask-rcnn-r18_mask-rcnn-'
                          'r18w32_digits.py')
    cfg.model = dict(cfg.model, recipes=[dict(type='KD', on='roi_cls_logits')])
    cfg.model.student = dict(cfg.model.student,
                             cfg_options={'model.roi_head.bbox_head.num_classes': 7})
    with pytest.raises(ValueError, match=r"the student's RoI head has 7 classes and the "
                       r"teacher's 10"):
        build_random_distiller(cfg, device='meta')


def test_kd_recipe_reads_the_labels_where_each_dense_head_returns_them():
    # GFLHead.get_targets returns (anchors, labels, ...), RetinaHead's (labels, ...): the
    # recipe wires what the GFL config wrote by hand before it became a recipe.
    with open(FIXTURE) as f:
        stored = json.load(f)
    for pair, index in (('gfl-r101_gfl-r50', 1), ('retina-x101_retina-r50', 0)):
        name = f'kd/kd_logits_{pair}_8xb2-2x_coco.py'
        written_out = {}
        cfg = Config.fromfile(f'{CONFIGS}/distill/{name}')
        exec(build_random_distiller(cfg, device='meta').recipe_explicit_config, written_out)
        labels = written_out['model']['loss_forward_mappings']['loss_kd_cls']['labels']
        assert labels == stored[name]['wiring']['loss_forward_mappings']['loss_kd_cls'][
            'labels'] == dict(from_student=True, recorder='targets', data_idx=index)


def test_input_size_without_recipes_is_an_error():
    cfg = Config.fromfile(f'{CONFIGS}/distill/fitnet/fitnet_fpn_retina-r18_retina-r18w32_digits.py')
    cfg.model.input_size = 128
    with pytest.raises(ValueError, match='input_size sets the size of the recipes\' probe only'):
        build_random_distiller(cfg)


def test_a_narrower_student_neck_trains_through_the_inserted_connectors():
    from mmengine.registry import init_default_scope

    from mmkd.registry import MODELS
    narrow = {'model.neck.out_channels': 64, 'model.bbox_head.in_channels': 64,
              'model.bbox_head.feat_channels': 64}
    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = MODELS.build(dict(
        _scope_='mmkd', type='Distiller',
        student=dict(cfg_path=f'{CONFIGS}/digits/retinanet_r18-w32_digits.py', cfg_options=narrow),
        teacher=dict(cfg_path=f'{CONFIGS}/digits/retinanet_r18_digits.py'),
        recipes=[dict(type='CWD', on='neck', levels=(0, 1))]))
    assert sorted(model.connectors) == ['cwd_fpn0_conv', 'cwd_fpn1_conv']
    assert 'fpn2 (stride 32) is not in levels (0, 1): left out' in model.recipe_table
    losses = train_step_losses(model, det_batch(128))
    total = losses['distill.loss_cwd_fpn0'] + losses['distill.loss_cwd_fpn1']
    assert torch.isfinite(total) and total > 0
    total.backward()
    assert model.connectors['cwd_fpn0_conv'].conv.conv.weight.grad.abs().sum() > 0
    assert model.student.neck.fpn_convs[0].conv.weight.grad.abs().sum() > 0
