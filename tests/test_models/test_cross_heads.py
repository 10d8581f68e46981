"""Cross heads (CrossKD, mmkd/models/distillers/cross_heads.py): the teacher's head on the
student's normalised head features, gradient to the student only."""
import copy
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config

from mmkd.models.distillers.cross_heads import align_to_teacher
from mmkd.testing import build_random_distiller, det_batch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DIGITS = osp.join(REPO, 'configs', 'distill', 'crosskd',
                  'crosskd_head_retina-r18_retina-r18w32_digits.py')


def test_align_to_teacher_equals_the_published_formula():
    gen = torch.Generator().manual_seed(0)
    s = torch.randn(2, 3, 4, 5, generator=gen)
    t = 3 + 2 * torch.randn(2, 3, 4, 5, generator=gen)
    # published align_scale: channels as rows, torch.std (unbiased), eps on the student's std
    s_rows, t_rows = s.permute(1, 0, 2, 3).reshape(3, -1), t.permute(1, 0, 2, 3).reshape(3, -1)
    normed = (s_rows - s_rows.mean(1, keepdim=True)) / (s_rows.std(1, keepdim=True) + 1e-6)
    direct = (normed * t_rows.std(1, keepdim=True) + t_rows.mean(1, keepdim=True))
    direct = direct.reshape(3, 2, 4, 5).permute(1, 0, 2, 3)
    torch.testing.assert_close(align_to_teacher(s, t), direct)
    one = torch.randn(1, 3, 1, 1)  # one value per channel: the teacher's mean, not NaN
    torch.testing.assert_close(align_to_teacher(one, t[:1, :, :1, :1]), t[:1, :, :1, :1])


@pytest.fixture(scope='module')
def stepped():
    """The digits CrossKD distiller after one loss step, with its records and cross-head
    outputs kept (a step normally clears them)."""
    torch.manual_seed(0)
    model = build_random_distiller(Config.fromfile(DIGITS))
    model.train()
    for manager in model.recorders.values():
        manager.reset = lambda: None  # keep this step's records
    model.stages['CrossHeads'].reset = lambda: None
    batch = model.data_preprocessor(det_batch(size=64), True)
    losses = model(**batch, mode='loss')
    return model, batch, losses


def test_cross_head_equals_the_teacher_layers_run_by_hand(stepped):
    model, batch, _ = stepped
    head_S, head_T = model.student.bbox_head, model.teacher.bbox_head
    outputs = model.stages['CrossHeads'].outputs['crosskd']
    with torch.no_grad():
        feats_S = model.student.extract_feat(batch['inputs'])  # train-mode BN: the same batch
        feats_T = model.teacher.extract_feat(batch['inputs'])
    for level, (x_S, x_T) in enumerate(zip(feats_S, feats_T)):
        for branch, predictor in (('cls', head_T.retina_cls), ('reg', head_T.retina_reg)):
            pre_S = getattr(head_S, f'{branch}_convs')[0].conv(x_S)  # conv 1, before the ReLU
            pre_T = getattr(head_T, f'{branch}_convs')[0].conv(x_T)
            recorded = model.student_recorders[f'crosskd_{branch}'].data_buffer[level]
            torch.testing.assert_close(recorded, pre_S, rtol=1e-4, atol=1e-5)
            assert bool((recorded < 0).any()), 'recorded after the in-place ReLU'
            x = F.relu(align_to_teacher(pre_S, pre_T))
            x = getattr(head_T, f'{branch}_convs')[1](x)  # the teacher's remaining conv
            key = 'cls_score' if branch == 'cls' else 'bbox_pred'
            torch.testing.assert_close(outputs[key][level], predictor(x), rtol=1e-4, atol=1e-5)
    sizes = [score.shape[-2:] for score in outputs['cls_score']]
    anchors = head_T.prior_generator.grid_priors(sizes, device='cpu')
    for priors, level_anchors in zip(outputs['priors'], anchors):
        torch.testing.assert_close(priors, level_anchors.repeat(2, 1))
    assert outputs['bbox_coder'] is head_T.bbox_coder


def test_gradient_reaches_the_student_and_not_the_teacher(stepped):
    model, _, losses = stepped
    distill = losses['distill.loss_crosskd_cls'] + losses['distill.loss_crosskd_box']
    distill.backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    head_S = model.student.bbox_head
    # up to the crossing (conv 1 and everything before it) the student learns ...
    for module in (head_S.cls_convs[0], head_S.reg_convs[0], model.student.neck,
                   model.student.backbone):
        grads = [p.grad for p in module.parameters()]
        assert all(g is not None for g in grads) and any(bool(g.abs().sum() > 0) for g in grads)
    # ... its own later layers get nothing from the cross-head losses
    for module in (head_S.cls_convs[1], head_S.retina_cls, head_S.retina_reg):
        assert all(p.grad is None for p in module.parameters())


def build_with(**cross_head):
    cfg = Config.fromfile(DIGITS)
    cfg.model.cross_heads = dict(crosskd=cross_head)
    return build_random_distiller(cfg, device='meta')


def test_build_errors_name_the_fix():
    with pytest.raises(ValueError, match='outside \\[0, 2\\]'):
        build_with(reused_teacher_head_idx=3)
    with pytest.raises(KeyError, match='reused_teacher_head_idx'):
        build_with(head='bbox_head')
    with pytest.raises(KeyError, match='closest|Closest'):
        build_with(head='bbox_hed', reused_teacher_head_idx=1)
    cfg = Config.fromfile(DIGITS)
    cfg.model.student = dict(cfg_path=cfg.model.student.cfg_path,
                             cfg_options={'model.bbox_head.feat_channels': 64})
    with pytest.raises(ValueError, match='64 channels and the teacher\'s 128'):
        build_random_distiller(cfg, device='meta')
    cfg = Config.fromfile(DIGITS)
    cfg.model.student_recorders['crosskd_cls'] = dict(type='ModuleOutputsRecorder',
                                                      source='neck')
    with pytest.raises(KeyError, match='rename one'):
        build_random_distiller(cfg, device='meta')


def test_idx_0_runs_the_whole_teacher_head_on_the_aligned_fpn_levels():
    cfg = Config.fromfile(DIGITS)
    cfg.model.cross_heads.crosskd.reused_teacher_head_idx = 0
    torch.manual_seed(0)
    model = build_random_distiller(cfg)
    model.train()
    model.stages['CrossHeads'].reset = lambda: None
    batch = model.data_preprocessor(det_batch(size=64), True)
    model(**batch, mode='loss')
    with torch.no_grad():
        feats_S = model.student.extract_feat(batch['inputs'])
        feats_T = model.teacher.extract_feat(batch['inputs'])
        by_hand = model.teacher.bbox_head.forward(
            [align_to_teacher(s, t) for s, t in zip(feats_S, feats_T)])
    outputs = model.stages['CrossHeads'].outputs['crosskd']
    for key, expected in zip(('cls_score', 'bbox_pred'), by_hand):
        for got, want in zip(outputs[key], expected):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
