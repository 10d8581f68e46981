"""The segmentation recipes of DIST, CIRKD, Af-DCD and MasKD and their places: the auxiliary
head's logits (``aux_logits``) and the feature the decode head classifies (``seg_feat``).

Each recipe is compared with the same wiring written out by hand on the digits Semantic FPN
pair (given an FCN auxiliary head on the neck's third level for ``aux_logits``): same modules,
same weights, same losses on one batch."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from model_steps import train_step_losses

from mmkd.apis import CONFIGS
from mmkd.models.distillers.teacher_runner import forward_to_head, head_forward
from mmkd.testing import TEST_TOKENS, build_random_distiller, seg_batch

DIGITS = f'{CONFIGS}/distill/cwd/cwd_logits_semfpn-r18_semfpn-r18w32_digits.py'
TOKENS = osp.join(osp.dirname(CONFIGS), TEST_TOKENS.format(11))
#: an FCN auxiliary head on the third neck level (128 channels on both digits models)
AUX = {'model.auxiliary_head': dict(
    type='FCNHead', in_channels=128, in_index=2, channels=32, num_convs=1, concat_input=False,
    dropout_ratio=0.1, num_classes=11, norm_cfg=dict(type='BN', requires_grad=True),
    align_corners=False, loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False,
                                          loss_weight=0.4))}
LABELS = dict(from_data='gt_sem_seg')


def _digits(recipes=None, aux=False, **explicit):
    cfg = Config.fromfile(DIGITS)
    cfg.model.pop('recipes')
    if recipes is not None:
        cfg.model.recipes = recipes
    cfg.model.update(explicit)
    if aux:
        for side in ('student', 'teacher'):
            cfg.model[side].cfg_options = dict(AUX)
    return cfg


def _logits(source, data_idx=None):
    spec = dict(type='ModuleOutputsRecorder', source=source)
    return dict(type='ModuleInputsRecorder', source=source) if data_idx is not None else spec


def _same_model_and_losses(recipe_cfg, explicit_cfg):
    recipe = build_random_distiller(recipe_cfg, seed=3)
    explicit = build_random_distiller(explicit_cfg, seed=3)
    assert [n for n, _ in explicit.named_modules()] == [n for n, _ in recipe.named_modules()]
    state_e, state_r = explicit.state_dict(), recipe.state_dict()
    assert list(state_e) == list(state_r)
    assert all(torch.equal(state_e[k], state_r[k]) for k in state_e)
    batch = seg_batch(128, n=2, num_classes=11)
    torch.manual_seed(5)
    losses_e = train_step_losses(explicit, batch)
    torch.manual_seed(5)
    losses_r = train_step_losses(recipe, batch)
    assert set(losses_e) == set(losses_r)
    for key in losses_e:
        if key.startswith('distill.'):
            assert torch.equal(losses_e[key], losses_r[key]), key
            assert torch.isfinite(losses_r[key]) and losses_r[key] > 0, key
    return recipe, losses_r


def test_dist_on_both_heads_is_the_explicit_wiring_and_the_teacher_runs_its_aux_head():
    recipes = [dict(type='DIST', on='seg_logits'), dict(type='DIST', on='aux_logits')]
    dist = dict(type='DISTLoss', beta=1.0, gamma=1.0, tau=1.0)
    explicit = dict(
        student_recorders=dict(logits=_logits('decode_head.conv_seg'),
                               aux_logits=_logits('auxiliary_head.conv_seg')),
        teacher_recorders=dict(logits=_logits('decode_head.conv_seg'),
                               aux_logits=_logits('auxiliary_head.conv_seg')),
        distill_losses=dict(loss_dist_logits=dict(dist, loss_weight=1.0),
                            loss_dist_aux=dict(dist, loss_weight=0.4)),
        loss_forward_mappings={
            f'loss_dist_{k}': dict(preds_S=dict(from_student=True, recorder=r),
                                   preds_T=dict(from_student=False, recorder=r))
            for k, r in (('logits', 'logits'), ('aux', 'aux_logits'))})
    model, losses = _same_model_and_losses(_digits(recipes, aux=True),
                                           _digits(aux=True, **explicit))
    assert model.teacher_forward_mode == 'tensor'
    # mmseg's 'tensor' mode runs the decode head only: the runner adds the auxiliary head
    assert model.teacher_runner.head_forward is not None
    assert head_forward(model.teacher) is None
    losses['distill.loss_dist_aux'].backward()
    assert model.student.auxiliary_head.conv_seg.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.teacher.parameters())


def test_forward_to_head_runs_the_auxiliary_heads_only_when_asked():
    model = build_random_distiller(_digits([dict(type='DIST', on='seg_logits')],
                                           aux=True)).teacher
    calls = []
    model.auxiliary_head.conv_seg.register_forward_hook(lambda *args: calls.append(1))
    with torch.no_grad():
        out = forward_to_head(model, torch.zeros(1, 3, 64, 64))
        assert calls == [] and out.shape[1] == 11
        out_aux = forward_to_head(model, torch.zeros(1, 3, 64, 64), auxiliary=True)
    assert calls == [1] and torch.equal(out, out_aux)


def test_cirkd_reads_the_classifiers_input_with_the_labels_and_class_count():
    recipes = [dict(type='CIRKD', on='seg_feat', pixel_memory_size=64,
                    region_memory_size=8, pixel_contrast_size=8, region_contrast_size=4),
               dict(type='KD', on='seg_logits')]
    feat = dict(type='ModuleInputsRecorder', source='decode_head.conv_seg')
    explicit = dict(
        student_recorders=dict(feat=feat, logits=_logits('decode_head.conv_seg')),
        teacher_recorders=dict(feat=feat, logits=_logits('decode_head.conv_seg')),
        distill_losses=dict(
            loss_cirkd_feat=dict(type='CIRKDLoss', loss_weight=1.0, minibatch_weight=1.0,
                                 pixel_weight=0.1, region_weight=0.1, pixel_memory_size=64,
                                 region_memory_size=8, pixel_contrast_size=8,
                                 region_contrast_size=4, student_channels=64,
                                 teacher_channels=64, num_classes=11),
            loss_kd_logits=dict(type='KDLoss', mode='softmax', tau=1.0, loss_weight=1.0)),
        loss_forward_mappings=dict(
            loss_cirkd_feat=dict(preds_S=dict(from_student=True, recorder='feat', data_idx=0),
                                 preds_T=dict(from_student=False, recorder='feat', data_idx=0),
                                 labels=LABELS),
            loss_kd_logits=dict(preds_S=dict(from_student=True, recorder='logits'),
                                preds_T=dict(from_student=False, recorder='logits'))))
    model, losses = _same_model_and_losses(_digits(recipes), _digits(**explicit))
    loss = model.distill_losses['loss_cirkd_feat']
    assert 'pixel_queue' in dict(loss.named_buffers())
    assert 'the input of' not in model.recipe_table  # a plain decode head's conv_seg


def test_afdcd_reads_the_last_stage_and_adapts_channels_itself():
    model = build_random_distiller(_digits([dict(type='AfDCD', on='backbone')]))
    assert list(model.distill_losses) == ['loss_afdcd_stage3']
    loss = model.distill_losses['loss_afdcd_stage3']
    assert (loss.student_channels, loss.teacher_channels) == (256, 512)
    assert not model.connectors  # the loss's own 1x1 align, not a ConvConnector
    losses = train_step_losses(model, seg_batch(128, n=2, num_classes=11))
    assert torch.isfinite(losses['distill.loss_afdcd_stage3'])


def test_maskd_needs_its_tokens_file_and_reads_it():
    with pytest.raises(TypeError, match=r"needs \['tokens'\].*tools/maskd_tokens.py"):
        build_random_distiller(_digits([dict(type='MasKD', on='seg_logits')]))
    model = build_random_distiller(_digits([dict(type='MasKD', on='seg_logits',
                                                 tokens=TOKENS)]))
    assert model.distill_losses['loss_maskd_logits'].loss_weight == 0.5
    losses = train_step_losses(model, seg_batch(128, n=2, num_classes=11))
    assert torch.isfinite(losses['distill.loss_maskd_logits'])


@pytest.mark.parametrize('on, match', [
    ('aux_logits', "has no auxiliary_head.*on='seg_logits'"),
])
def test_places_a_model_lacks_fail_naming_the_fix(on, match):
    with pytest.raises(ValueError, match=match):
        build_random_distiller(_digits([dict(type='DIST', on=on)]))
