import math

import pytest
import torch
import torch.nn.functional as F
from mmengine.structures import InstanceData

from mmkd.models.losses.mask_kd import (MaskKDLoss, mask_kd_loss, positive_labels,
                                        select_mask_class)
from mmkd.registry import build_component


def binary_kl(q_T: float, q_S: float) -> float:
    return q_T * math.log(q_T / q_S) + (1 - q_T) * math.log((1 - q_T) / (1 - q_S))


def test_mask_kd_hand_computed():
    # 2 RoIs, 3 classes, 1x2 masks. RoI 0 has class 2, RoI 1 class 0; the other channels hold
    # large values that must not count. Student logits 0 (q_S = 1/2) on the selected channels;
    # teacher q_T = 3/4 and 1/2 (RoI 0), 1/4 and 1/2 (RoI 1).
    s = torch.full((2, 3, 1, 2), 9.0)
    t = torch.full((2, 3, 1, 2), -9.0)
    s[0, 2], s[1, 0] = 0.0, 0.0
    t[0, 2, 0] = torch.tensor([math.log(3.0), 0.0])
    t[1, 0, 0] = torch.tensor([-math.log(3.0), 0.0])
    labels = torch.tensor([2, 0])
    # KL(3/4 || 1/2) = KL(1/4 || 1/2) = 0.75 ln 1.5 + 0.25 ln 0.5 = 0.1308120; mean of 4 pixels
    expected = (2 * binary_kl(0.75, 0.5) + 2 * binary_kl(0.5, 0.5)) / 4
    assert binary_kl(0.75, 0.5) == pytest.approx(0.1308120, abs=1e-7)
    assert float(mask_kd_loss(s, t, labels)) == pytest.approx(expected, abs=1e-6)
    # the loss of the class-selected one-channel masks is the same (channel 0 = class-agnostic)
    picked = [s[[0, 1], [2, 0]][:, None], t[[0, 1], [2, 0]][:, None]]
    assert float(mask_kd_loss(*picked, torch.zeros(2, dtype=torch.long))) == pytest.approx(
        expected, abs=1e-6)


@pytest.mark.parametrize('tau', [1.0, 3.0])
def test_mask_kd_equals_direct_computation(tau):
    """tau^2 * mean over RoIs and pixels of BCE(q_T, q_S) - H(q_T) at each RoI's class."""
    torch.manual_seed(0)
    s, t = torch.randn(4, 5, 6, 6), 3 * torch.randn(4, 5, 6, 6)
    labels = torch.tensor([4, 0, 2, 4])
    z_S = torch.stack([s[i, c] for i, c in enumerate(labels.tolist())]) / tau
    q_T = torch.sigmoid(torch.stack([t[i, c] for i, c in enumerate(labels.tolist())]) / tau)
    bce = F.binary_cross_entropy_with_logits(z_S, q_T, reduction='mean')
    entropy = F.binary_cross_entropy(q_T, q_T, reduction='mean')
    expected = tau**2 * (bce - entropy)
    loss = MaskKDLoss(tau=tau, loss_weight=2.0)(
        s, t, [InstanceData(pos_gt_labels=labels[:3]), InstanceData(pos_gt_labels=labels[3:])])
    assert float(loss) == pytest.approx(2.0 * float(expected), rel=1e-5)


def test_mask_kd_gradient_to_student_only_and_zero_at_teacher():
    s = torch.randn(3, 2, 4, 4, requires_grad=True)
    t = torch.randn(3, 2, 4, 4, requires_grad=True)
    labels = torch.tensor([1, 0, 1])
    loss = mask_kd_loss(s, t, labels)
    loss.backward()
    assert t.grad is None or not t.grad.any()
    assert s.grad[[0, 1, 2], [1, 0, 1]].abs().sum() > 0
    assert not s.grad[[0, 1, 2], [0, 1, 0]].any(), 'only the class channel gets a gradient'
    assert float(mask_kd_loss(t.detach(), t, labels)) == pytest.approx(0.0, abs=1e-7)


def test_mask_kd_no_positive_roi_is_zero_with_graph():
    s = torch.zeros(0, 10, 28, 28, requires_grad=True)
    loss = MaskKDLoss()(s, torch.zeros(0, 10, 28, 28), [InstanceData(
        pos_gt_labels=torch.zeros(0, dtype=torch.long))])
    assert float(loss) == 0.0
    loss.backward()


def test_mask_kd_errors():
    s, t = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    with pytest.raises(ValueError, match='one shape'):
        mask_kd_loss(s, t[:, :2], torch.tensor([0, 1]))
    with pytest.raises(ValueError, match='one label per positive RoI'):
        mask_kd_loss(s, t, torch.tensor([0]))
    with pytest.raises(ValueError, match=r'labels must lie in \[0, 3\)'):
        select_mask_class(s, torch.tensor([0, 3]))
    with pytest.raises(TypeError, match="roi_head.mask_loss"):
        positive_labels(torch.tensor([0, 1]))
    with pytest.raises(ValueError, match='positive temperature'):
        MaskKDLoss(tau=0)


def test_mask_kd_builds_from_config():
    loss = build_component(dict(type='MaskKDLoss', tau=2.0, loss_weight=3.0))
    assert isinstance(loss, MaskKDLoss) and loss.tau == 2.0 and loss.loss_weight == 3.0
    assert loss.requires_equal_num_classes
