"""The mask replay (configs/distill/_base_/mask_replay.py): the teacher's mask head run on the
student's positive RoIs gives exactly the teacher's mask head run by hand on those RoIs, sends
no gradient into the teacher, and MaskKDLoss trains the student's mask head."""
import os.path as osp

import pytest
import torch
from mmdet.structures.bbox import bbox2roi
from mmengine.config import Config

from mmkd.testing import build_random_distiller, det_batch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(REPO, 'configs', 'distill', 'maskkd',
                  'maskkd_mask-head_mask-rcnn-r18_mask-rcnn-r18w32_digits.py')


@pytest.fixture(scope='module')
def step():
    """One loss step of the digits mask-KD Distiller (random init) on 2 images with 3 digits,
    the teacher's weights made trainable (so only the replay's no_grad keeps its gradient
    away), and the mask loss's arguments as it received them."""
    model = build_random_distiller(Config.fromfile(CONFIG))
    model.teacher.requires_grad_(True)
    model.train()
    batch = det_batch(128, boxes=([[4., 6., 50., 60.], [60., 60., 100., 120.]],
                                  [[10., 20., 60., 70.]]), labels=([3, 7], [9]), masks=True)
    received = {}
    model.distill_losses['loss_mask_kd'].register_forward_pre_hook(
        lambda _, args, kwargs: received.update(kwargs), with_kwargs=True)
    data = model.data_preprocessor(batch, True)
    losses = model(**data, mode='loss')
    return model, data, losses, received


def test_replayed_teacher_masks_equal_the_teacher_mask_head_by_hand(step):
    model, data, _, received = step
    results = received['sampling_results']
    rois = bbox2roi([r.pos_priors for r in results])
    assert rois.shape[0] == received['preds_S'].shape[0] > 0
    teacher = model.teacher
    with torch.no_grad():
        feats = teacher.extract_feat(data['inputs'])
        extractor = teacher.roi_head.mask_roi_extractor
        by_hand = teacher.roi_head.mask_head(extractor(feats[:extractor.num_inputs], rois))
    assert received['preds_T'].shape == by_hand.shape == (rois.shape[0], 10, 28, 28)
    torch.testing.assert_close(received['preds_T'], by_hand, rtol=0, atol=1e-6)
    # the student's own logits of those RoIs, for the classes its mask loss trains
    student = model.student
    with torch.no_grad():
        feats_S = student.extract_feat(data['inputs'])
        extractor = student.roi_head.mask_roi_extractor
        student_by_hand = student.roi_head.mask_head(extractor(feats_S[:extractor.num_inputs],
                                                               rois))
    torch.testing.assert_close(received['preds_S'].detach(), student_by_hand, rtol=0, atol=1e-5)
    labels = torch.cat([r.pos_gt_labels for r in results])
    assert set(labels.tolist()) <= {3, 7, 9}


def test_mask_kd_gradient_reaches_the_student_mask_head_not_the_teacher(step):
    model, _, losses, received = step
    assert not received['preds_T'].requires_grad
    loss = losses['distill.loss_mask_kd']
    assert float(loss.detach()) > 0
    head = model.student.roi_head.mask_head
    params = [head.conv_logits.weight, model.student.backbone.conv1.weight]
    grads = torch.autograd.grad(loss, params, retain_graph=True)
    assert all(bool(g.abs().sum() > 0) for g in grads)
    loss.backward()
    assert all(p.grad is None for p in model.teacher.parameters())
