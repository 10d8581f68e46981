import math

import pytest
import torch
import torch.nn.functional as F

from mmkd.models.losses.kd import KDLoss, flatten_logits, kd_loss, weighted_mean
from mmkd.registry import build_component


def test_kd_softmax_hand_computed_2x3():
    # Row 0: p_T = (1/2, 1/4, 1/4), p_S = (1/3, 1/3, 1/3):
    #   KL = 0.5 ln 1.5 + 2 * 0.25 ln 0.75 = 0.5 ln(9/8) = 0.0588915...
    # Row 1: identical logits, KL = 0. Mean over the two rows: 0.0294457...
    s = torch.tensor([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]])
    t = torch.tensor([[math.log(2.0), 0.0, 0.0], [1.0, 2.0, 3.0]])
    assert 0.5 * math.log(9 / 8) == pytest.approx(0.0588915, abs=1e-7)
    assert float(kd_loss(s, t)) == pytest.approx(0.0294458, abs=1e-6)
    per_sample = kd_loss(s, t, reduction='none')
    assert per_sample.tolist() == pytest.approx([0.0588915, 0.0], abs=1e-6)
    assert float(kd_loss(s, t, reduction='sum')) == pytest.approx(0.0588915, abs=1e-6)
    # tau = 2 on doubled logits gives the same distributions, times tau^2 = 4.
    assert float(kd_loss(s * 2, t * 2, tau=2.0)) == pytest.approx(4 * 0.0294458, abs=1e-5)


@pytest.mark.parametrize('tau', [1.0, 4.0])
def test_kd_softmax_matches_torch_kl_div(tau):
    torch.manual_seed(0)
    s, t = torch.randn(5, 7), torch.randn(5, 7)
    expected = F.kl_div(F.log_softmax(s / tau, 1), F.softmax(t / tau, 1),
                        reduction='batchmean') * tau**2
    assert float(KDLoss(tau=tau)(s, t)) == pytest.approx(float(expected), rel=1e-5)


@pytest.mark.parametrize('tau', [1.0, 2.0])
def test_kd_sigmoid_matches_manual_binary_kl(tau):
    torch.manual_seed(1)
    s, t = torch.randn(3, 4) * 3, torch.randn(3, 4) * 3
    total = 0.0
    for m in range(3):
        for k in range(4):
            q_t = 1 / (1 + math.exp(-float(t[m, k]) / tau))
            q_s = 1 / (1 + math.exp(-float(s[m, k]) / tau))
            total += q_t * math.log(q_t / q_s) + (1 - q_t) * math.log((1 - q_t) / (1 - q_s))
    expected = total / 3 * tau**2        # summed over classes, averaged over samples
    assert float(kd_loss(s, t, tau, mode='sigmoid')) == pytest.approx(expected, rel=1e-5)
    assert float(KDLoss(mode='sigmoid', tau=tau)(t, t)) == pytest.approx(0.0, abs=1e-7)


def test_kd_sigmoid_stable_for_saturated_logits():
    s, t = torch.tensor([[-80.0, 80.0]]), torch.tensor([[80.0, -80.0]])
    out = kd_loss(s, t, mode='sigmoid')
    assert torch.isfinite(out) and float(out) > 100


@pytest.mark.parametrize('mode', ['softmax', 'sigmoid'])
def test_kd_dense_with_mask_equals_flattened_kept_pixels(mode):
    torch.manual_seed(2)
    s, t = torch.randn(2, 5, 3, 4), torch.randn(2, 5, 3, 4)
    mask = torch.rand(2, 3, 4) > 0.4
    flat_s = s.permute(0, 2, 3, 1)[mask]
    flat_t = t.permute(0, 2, 3, 1)[mask]
    loss = KDLoss(tau=2.0, mode=mode)
    assert float(loss(s, t, weight=mask)) == pytest.approx(float(loss(flat_s, flat_t)),
                                                           rel=1e-6)
    # A 0/1 float weight is the same selection; a flat (M,) mask works too.
    assert float(loss(s, t, weight=mask.float())) == pytest.approx(
        float(loss(flat_s, flat_t)), rel=1e-6)
    assert float(loss(s, t, weight=mask.flatten())) == pytest.approx(
        float(loss(flat_s, flat_t)), rel=1e-6)


def test_kd_float_weights_and_empty_mask():
    torch.manual_seed(3)
    s, t = torch.randn(4, 3, requires_grad=True), torch.randn(4, 3)
    w = torch.tensor([1.0, 2.0, 0.0, 3.0])
    per = kd_loss(s.detach(), t, reduction='none')
    assert float(kd_loss(s.detach(), t, weight=w)) == pytest.approx(
        float((per * w).sum() / w.sum()), rel=1e-6)
    empty = KDLoss()(s, t, weight=torch.zeros(4, dtype=torch.bool))
    assert float(empty.detach()) == 0.0
    empty.backward()
    assert s.grad is not None and float(s.grad.abs().sum()) == 0.0
    assert float(weighted_mean(torch.tensor([1.0, 3.0]), torch.tensor([3.0, 1.0]))) == 1.5


@pytest.mark.parametrize('mode', ['softmax', 'sigmoid'])
def test_kd_gradients_half_and_loss_weight(mode):
    s = torch.randn(2, 4, 3, 3, requires_grad=True)
    t = torch.randn(2, 4, 3, 3, requires_grad=True)
    KDLoss(tau=2.0, mode=mode)(s, t).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None
    out = KDLoss(mode=mode)(s.detach().half(), t.detach().half())
    assert out.dtype == torch.float32 and torch.isfinite(out)
    s, t = s.detach(), t.detach()
    base = float(KDLoss(mode=mode)(s, t))
    assert float(KDLoss(loss_weight=2.5, mode=mode)(s, t)) == pytest.approx(2.5 * base,
                                                                             rel=1e-6)


def test_kd_flatten_order_and_detach():
    s = torch.arange(24.0).reshape(1, 2, 3, 4)
    t = torch.zeros(1, 2, 3, 4, requires_grad=True)
    flat_s, flat_t, labels, weight = flatten_logits(s, t)
    assert flat_s.shape == (12, 2) and labels is None and weight is None
    assert flat_s[5].tolist() == [5.0, 17.0]          # pixel (h=1, w=1): both channels
    assert not flat_t.requires_grad


def test_kd_errors_and_registry():
    with pytest.raises(ValueError, match=r'one shape.*same classes'):
        KDLoss()(torch.rand(4, 10), torch.rand(4, 80))
    with pytest.raises(ValueError, match=r'one shape'):
        KDLoss()(torch.rand(4, 10, 2), torch.rand(4, 10, 2))
    with pytest.raises(ValueError, match=r'weight must have one entry per sample.*\(2, 3, 3\)'):
        KDLoss()(torch.rand(2, 4, 3, 3), torch.rand(2, 4, 3, 3), weight=torch.ones(2, 1, 3, 3))
    with pytest.raises(ValueError, match='positive temperature'):
        KDLoss(tau=0)
    with pytest.raises(ValueError, match="'softmax' or 'sigmoid'"):
        KDLoss(mode='softplus')
    with pytest.raises(ValueError, match="'mean' or 'sum'"):
        KDLoss(reduction='none')
    assert KDLoss.requires_equal_num_classes is True
    built = build_component(dict(type='KDLoss', tau=4.0, mode='sigmoid'))
    assert isinstance(built, KDLoss) and built.tau == 4.0 and built.mode == 'sigmoid'


def test_full_resolution_segmentation_labels_follow_the_logits_resolution():
    from mmkd.models.losses import flatten_logits
    s, t = torch.randn(1, 3, 2, 2), torch.randn(1, 3, 2, 2)
    labels = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 255, 255], [2, 2, 255, 255]])
    _, _, kept, _ = flatten_logits(s, t, labels=labels[None])
    assert kept.tolist() == [0, 1, 2]  # the ignored cell is dropped
