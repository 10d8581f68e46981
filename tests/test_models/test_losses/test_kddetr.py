"""KD-DETR losses (mmkd/models/losses/kddetr.py): hand-made cases and direct computations."""
import math

import pytest
import torch
import torch.nn.functional as F

from mmkd.models.losses import KDDETRBoxLoss, KDDETRClsLoss, kddetr_box_loss, kddetr_cls_loss


def binary_kl(p: float, q: float) -> float:
    return p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q))


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_sigmoid_cls_loss_equals_a_direct_computation():
    """Two student layers, one image, two points, two classes, written out number by number."""
    z_T = torch.tensor([[[[0.0, 2.0], [-1.0, -3.0]]]])  # (1 layer, 1 image, 2 points, 2 classes)
    z_S = torch.tensor([[[[1.0, 0.0], [0.5, -1.0]]], [[[-2.0, 2.0], [0.0, 0.0]]]])
    weights = [sigmoid(2.0), sigmoid(-1.0)]  # the teacher's best class score per point
    expected = 0.0
    for layer in range(2):
        per_point = [sum(binary_kl(sigmoid(float(z_T[0, 0, i, k])),
                                   sigmoid(float(z_S[layer, 0, i, k]))) for k in range(2))
                     for i in range(2)]
        expected += sum(w * d for w, d in zip(weights, per_point)) / sum(weights)
    assert float(kddetr_cls_loss(z_S, z_T)) == pytest.approx(expected, rel=1e-6)
    assert float(KDDETRClsLoss(loss_weight=3.0)(z_S, z_T)) == pytest.approx(3 * expected, rel=1e-6)
    # the last layer only: layer 1 alone
    last = float(kddetr_cls_loss(z_S, z_T, student_layers='last'))
    assert last == pytest.approx(float(kddetr_cls_loss(z_S[1:], z_T)), rel=1e-6)


def test_only_the_teachers_last_layer_is_the_target():
    z_T = torch.randn(3, 2, 5, 4)
    z_S = torch.randn(2, 2, 5, 4)
    changed = z_T.clone()
    changed[:2] = torch.randn(2, 2, 5, 4)  # the teacher's earlier layers do not count
    assert torch.equal(kddetr_cls_loss(z_S, z_T), kddetr_cls_loss(z_S, changed))
    assert float(kddetr_cls_loss(z_T[-1:], z_T)) == 0.0


def test_softmax_mode_is_the_published_loss_up_to_its_normalisation():
    """The published term (KDCriterion.loss_kl_div: KL of softmax(z / T), T = 10, averaged
    over the classes, times T^2, summed over the points with the teacher's confidence) equals
    ours times sum(weights) / C, as the module docstring says."""
    gen = torch.Generator().manual_seed(0)
    z_T = torch.randn(1, 2, 6, 5, generator=gen) * 3
    z_S = torch.randn(1, 2, 6, 5, generator=gen) * 3
    tau = 10.0
    pred, soft = z_S.flatten(0, 2), z_T.flatten(0, 2)
    weight = soft.sigmoid().max(1)[0]
    published = F.kl_div(F.log_softmax(pred / tau, dim=1), F.softmax(soft / tau, dim=1),
                         reduction='none').mean(1) * tau * tau
    published = (published * weight).sum()
    ours = kddetr_cls_loss(z_S, z_T, mode='softmax', tau=tau)
    torch.testing.assert_close(ours * weight.sum() / 5, published)


def test_box_losses_on_hand_made_boxes():
    # point 0: the same centre, the student's box twice as wide: L1 0.2 / 4, IoU = GIoU = 1/2
    # point 1: disjoint boxes of 0.1 x 0.1 whose hull is 0.6 x 0.1: IoU 0, GIoU = -(0.06 -
    # 0.02) / 0.06 = -2/3, so 1 - GIoU = 5/3; L1 (0.5) / 4
    boxes_T = torch.tensor([[[0.5, 0.5, 0.2, 0.2], [0.25, 0.5, 0.1, 0.1]]])
    boxes_S = torch.tensor([[[0.5, 0.5, 0.4, 0.2], [0.75, 0.5, 0.1, 0.1]]])
    logits_T = torch.tensor([[[0.0, -4.0], [math.log(3.0), 0.0]]])  # confidences 1/2, 3/4
    l1 = float(kddetr_box_loss(boxes_S, boxes_T, logits_T, 'l1'))
    giou = float(kddetr_box_loss(boxes_S, boxes_T, logits_T, 'giou'))
    assert l1 == pytest.approx((0.5 * 0.05 + 0.75 * 0.125) / 1.25, rel=1e-5)
    assert giou == pytest.approx((0.5 * 0.5 + 0.75 * 5 / 3) / 1.25, rel=1e-5)
    layers = torch.stack([boxes_S, boxes_T])  # layer 0 off, layer 1 exact
    assert float(KDDETRBoxLoss('giou', loss_weight=2.0)(layers, boxes_T[None], logits_T[None])) \
        == pytest.approx(2 * giou, rel=1e-5)
    assert float(KDDETRBoxLoss('l1', student_layers='last')(layers, boxes_T, logits_T)) == 0.0


def test_gradient_reaches_the_student_only():
    z_S = torch.randn(2, 1, 4, 3, requires_grad=True)
    b_S = torch.rand(2, 1, 4, 4, requires_grad=True)
    z_T = torch.randn(2, 1, 4, 3, requires_grad=True)
    b_T = torch.rand(2, 1, 4, 4, requires_grad=True)
    total = KDDETRClsLoss()(z_S, z_T) + KDDETRBoxLoss('giou')(b_S, b_T, z_T)
    total.backward()
    assert z_S.grad.abs().sum() > 0 and b_S.grad.abs().sum() > 0
    assert z_T.grad is None and b_T.grad is None


def test_errors_name_the_fix():
    with pytest.raises(ValueError, match="mode must be one of"):
        KDDETRClsLoss(mode='kl')
    with pytest.raises(ValueError, match='positive temperature'):
        KDDETRClsLoss(tau=0)
    with pytest.raises(ValueError, match="metric must be one of"):
        KDDETRBoxLoss(metric='iou')
    with pytest.raises(ValueError, match='same distill_points'):
        KDDETRClsLoss()(torch.randn(2, 1, 5, 3), torch.randn(2, 1, 6, 3))
    with pytest.raises(ValueError, match=r'\(L, N, K, D\)'):
        KDDETRClsLoss()(torch.randn(5, 3), torch.randn(5, 3))
    with pytest.raises(ValueError, match='expected 4'):
        KDDETRBoxLoss()(torch.rand(1, 5, 3), torch.rand(1, 5, 3), torch.randn(1, 5, 2))
