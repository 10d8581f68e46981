"""CrossKD losses against direct computations of the published formulas
(jbwang1997/CrossKD, mmdet/models/detectors/crosskd_{retinanet,gfl}.py, losses/kd_loss.py)."""
import math

import pytest
import torch
import torch.nn.functional as F
from mmdet.models.task_modules.coders import DeltaXYWHBBoxCoder

from mmkd.models.losses import CrossKDBoxLoss, CrossKDClsLoss, CrossKDDistributionLoss

A, C = 3, 4  # anchors per location, classes


def levels(gen, channels, sizes=((4, 4), (2, 2)), n=2):
    return [torch.randn(n, channels, h, w, generator=gen) for h, w in sizes]


def rows(maps, width):
    return torch.cat([m.permute(0, 2, 3, 1).reshape(-1, width) for m in maps])


def targets(gen, sizes=((4, 4), (2, 2)), n=2):
    labels = [torch.randint(0, C + 1, (n, h * w * A), generator=gen) for h, w in sizes]
    weights = [(torch.rand(n, h * w * A, generator=gen) > 0.2).float() for h, w in sizes]
    return labels, weights


def test_cls_loss_by_hand():
    # one location, one class: z_S = 0 (score 0.5), teacher score 0.75, no positive (P = 1)
    s, t = torch.zeros(1, 1, 1, 1), torch.full((1, 1, 1, 1), math.log(3.0))
    loss = CrossKDClsLoss(beta=1.0)([s], [t], [torch.ones(1, 1, dtype=torch.long)])
    assert float(loss) == pytest.approx(math.log(2.0) * 0.25, rel=1e-5)  # BCE(0, .75) |.5-.75|


@pytest.mark.parametrize('beta', [1.0, 2.0])
def test_cls_loss_equals_direct_computation(beta):
    gen = torch.Generator().manual_seed(0)
    s, t = levels(gen, A * C), levels(gen, A * C)
    labels, weights = targets(gen)
    loss = CrossKDClsLoss(beta=beta, loss_weight=2.0)(s, t, labels, weights)

    z_S, q_T = rows(s, C), torch.sigmoid(rows(t, C))
    lw = torch.cat([w.reshape(-1) for w in weights])
    flat_labels = torch.cat([x.reshape(-1) for x in labels])
    num_pos = float(((flat_labels >= 0) & (flat_labels < C)).sum())
    bce = -(q_T * F.logsigmoid(z_S) + (1 - q_T) * F.logsigmoid(-z_S))
    direct = (lw[:, None] * bce * (torch.sigmoid(z_S) - q_T).abs() ** beta).sum() / num_pos
    torch.testing.assert_close(loss, 2.0 * direct, rtol=1e-5, atol=1e-6)


def giou_by_hand(a, b):
    area = lambda x: (x[:, 2] - x[:, 0]).clamp(min=0) * (x[:, 3] - x[:, 1]).clamp(min=0)
    lt, rb = torch.max(a[:, :2], b[:, :2]), torch.min(a[:, 2:], b[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=1)
    union = area(a) + area(b) - inter
    hull = (torch.max(a[:, 2:], b[:, 2:]) - torch.min(a[:, :2], b[:, :2])).clamp(min=0).prod(1)
    return inter / union - (hull - union) / hull


def test_box_loss_equals_direct_computation():
    gen = torch.Generator().manual_seed(1)
    s, t = levels(gen, A * 4), levels(gen, A * 4)
    cls_T = levels(gen, A * C)
    labels, weights = targets(gen)
    priors = []
    for (h, w) in ((4, 4), (2, 2)):
        xy = torch.rand(h * w * A, 2, generator=gen) * 50
        wh = 5 + torch.rand(h * w * A, 2, generator=gen) * 20
        priors.append(torch.cat([xy, xy + wh], dim=1).repeat(2, 1))  # the same anchors per image
    coder = DeltaXYWHBBoxCoder()
    loss = CrossKDBoxLoss(iou='giou')(s, t, cls_T, priors, coder, labels, weights)

    flat_priors = torch.cat(priors)
    boxes_S = coder.decode(flat_priors, rows(s, 4))
    boxes_T = coder.decode(flat_priors, rows(t, 4))
    score = torch.sigmoid(rows(cls_T, C).max(dim=1).values)
    score[torch.cat([w.reshape(-1) for w in weights]) == 0] = 0
    flat_labels = torch.cat([x.reshape(-1) for x in labels])
    num_pos = float(((flat_labels >= 0) & (flat_labels < C)).sum())
    direct = (score * (1 - giou_by_hand(boxes_S, boxes_T))).sum() / num_pos
    torch.testing.assert_close(loss, direct, rtol=1e-5, atol=1e-6)


def test_distribution_loss_equals_direct_computation():
    gen = torch.Generator().manual_seed(2)
    bins = 5
    sizes = ((4, 4), (2, 2))
    s, t = levels(gen, 4 * bins, sizes), levels(gen, 4 * bins, sizes)
    cls_T = levels(gen, C, sizes)
    weights = [(torch.rand(2, h * w, generator=gen) > 0.3).float() for h, w in sizes]
    loss = CrossKDDistributionLoss(loss_weight=4.0)(s, t, cls_T, weights)

    # published: per level loss_weight * sum(w * KL over the 4 side rows) / 4, summed over
    # levels and divided by the sum of the weights of all levels
    p_S = F.log_softmax(rows(s, bins), dim=1)
    p_T = F.softmax(rows(t, bins), dim=1)
    kl = (p_T * (p_T.log() - p_S)).sum(dim=1)
    score = torch.sigmoid(rows(cls_T, C).max(dim=1).values)
    score[torch.cat([w.reshape(-1) for w in weights]) == 0] = 0
    direct = 4.0 * (score.repeat_interleave(4) * kl).sum() / 4.0 / score.sum()
    torch.testing.assert_close(loss, direct, rtol=1e-5, atol=1e-6)


def test_equal_predictions_give_zero_and_student_gets_gradient():
    gen = torch.Generator().manual_seed(3)
    t = levels(gen, A * C)
    labels, weights = targets(gen)
    s = [x.clone().requires_grad_(True) for x in t]
    zero = CrossKDClsLoss()(s, t, labels, weights).detach()
    assert float(zero) == pytest.approx(0.0, abs=1e-7)
    shifted = [(x + 1).detach().requires_grad_(True) for x in t]
    CrossKDClsLoss()(shifted, t, labels, weights).backward()
    assert all(x.grad is not None and bool(x.grad.abs().sum() > 0) for x in shifted)


def test_box_loss_refuses_distributions():
    gen = torch.Generator().manual_seed(4)
    s = levels(gen, 4 * 17, ((2, 2), ))
    labels = [torch.zeros(2, 4, dtype=torch.long)]
    with pytest.raises(ValueError, match='CrossKDDistributionLoss'):
        CrossKDBoxLoss()(s, s, levels(gen, C, ((2, 2), )), [torch.zeros(8, 4)],
                         DeltaXYWHBBoxCoder(), labels)


@pytest.mark.parametrize('cls, kwargs', [(CrossKDClsLoss, dict(beta=-1.0)),
                                         (CrossKDBoxLoss, dict(iou='diou')),
                                         (CrossKDDistributionLoss, dict(tau=0.0))])
def test_bad_settings_raise(cls, kwargs):
    with pytest.raises(ValueError, match=cls.__name__):
        cls(**kwargs)
