import pytest
import torch
import torch.nn.functional as F
from mmengine.logging import MessageHub

from mmkd.models.losses.dkd import DKDLoss, dkd_loss, dkd_terms, dkd_warmup_factor
from mmkd.models.losses.kd import kd_loss
from mmkd.registry import build_component


def _official_dkd(logits_S, logits_T, target, alpha, beta, tau):
    """The published implementation (megvii-research/mdistiller), batch-mean reduced."""
    gt_mask = torch.zeros_like(logits_S).scatter_(1, target[:, None], 1).bool()
    other_mask = ~gt_mask
    p_S, p_T = F.softmax(logits_S / tau, 1), F.softmax(logits_T / tau, 1)

    def cat_mask(p):
        return torch.cat([(p * gt_mask).sum(1, keepdim=True),
                          (p * other_mask).sum(1, keepdim=True)], dim=1)

    tckd = F.kl_div(torch.log(cat_mask(p_S)), cat_mask(p_T), reduction='sum')
    p_T2 = F.softmax(logits_T / tau - 1000.0 * gt_mask, 1)
    log_p_S2 = F.log_softmax(logits_S / tau - 1000.0 * gt_mask, 1)
    nckd = F.kl_div(log_p_S2, p_T2, reduction='sum')
    return (alpha * tckd + beta * nckd) * tau**2 / target.shape[0]


@pytest.mark.parametrize('tau', [1.0, 3.0])
def test_kd_decomposes_into_tckd_and_nckd(tau):
    # The paper's Eq. 1: KD = TCKD + (1 - p_t^T) * NCKD, per sample.
    torch.manual_seed(0)
    s, t = torch.randn(8, 6) * 2, torch.randn(8, 6) * 2
    labels = torch.randint(6, (8, ))
    tckd, nckd = dkd_terms(s, t, labels, tau)
    p_t = F.softmax(t / tau, dim=1).gather(1, labels[:, None])[:, 0]
    kd = kd_loss(s, t, tau, reduction='none')
    torch.testing.assert_close(tckd + (1 - p_t) * nckd, kd, rtol=1e-5, atol=1e-6)
    assert bool((tckd >= 0).all()) and bool((nckd >= 0).all())


def test_dkd_matches_official_code():
    torch.manual_seed(1)
    s, t = torch.randn(6, 10), torch.randn(6, 10)
    labels = torch.randint(10, (6, ))
    expected = _official_dkd(s, t, labels, alpha=1.0, beta=8.0, tau=4.0)
    assert float(dkd_loss(s, t, labels)) == pytest.approx(float(expected), rel=1e-5)
    assert float(DKDLoss(alpha=0.5, beta=2.0, tau=2.0)(s, t, labels)) == pytest.approx(
        float(_official_dkd(s, t, labels, 0.5, 2.0, 2.0)), rel=1e-5)


def test_dkd_stable_when_target_probability_saturates():
    s = torch.tensor([[60.0, 0.0, 0.0]])            # student p_t = 1 in float32
    t = torch.tensor([[0.0, 1.0, 0.0]])
    out = DKDLoss()(s, t, torch.tensor([0]))
    assert torch.isfinite(out) and float(out) > 0


def test_dkd_warmup_is_linear():
    torch.manual_seed(2)
    s, t = torch.randn(4, 5), torch.randn(4, 5)
    labels = torch.tensor([0, 1, 2, 3])
    full = float(DKDLoss()(s, t, labels))
    loss = DKDLoss(warmup_iters=10)
    values = [float(loss(s, t, labels, iteration=i)) for i in (0, 2, 5, 10, 30)]
    assert values == pytest.approx([0.0, 0.2 * full, 0.5 * full, full, full], rel=1e-6)
    assert [dkd_warmup_factor(i, 4) for i in (0, 1, 3, 4, 9)] == [0.0, 0.25, 0.75, 1.0, 1.0]
    assert dkd_warmup_factor(0, 0) == 1.0


def test_dkd_warmup_reads_message_hub():
    torch.manual_seed(3)
    s, t, labels = torch.randn(3, 4), torch.randn(3, 4), torch.tensor([0, 1, 3])
    full = float(DKDLoss()(s, t, labels))
    hub = MessageHub.get_instance('test_dkd_warmup_reads_message_hub')
    hub.update_info('iter', 25)
    assert MessageHub.get_current_instance() is hub
    assert float(DKDLoss(warmup_iters=100)(s, t, labels)) == pytest.approx(0.25 * full,
                                                                           rel=1e-6)
    # An explicit iteration wins over the hub.
    assert float(DKDLoss(warmup_iters=100)(s, t, labels, iteration=50)) == pytest.approx(
        0.5 * full, rel=1e-6)


def test_dkd_ignore_index_and_dense_mask_equal_flattened():
    torch.manual_seed(4)
    s, t = torch.randn(2, 4, 3, 3), torch.randn(2, 4, 3, 3)
    labels = torch.randint(4, (2, 3, 3))
    labels[0, 0, :2] = 255
    mask = torch.rand(2, 3, 3) > 0.3
    keep = mask & (labels != 255)
    flat_s, flat_t = s.permute(0, 2, 3, 1)[keep], t.permute(0, 2, 3, 1)[keep]
    loss = DKDLoss(tau=2.0)
    assert float(loss(s, t, labels, weight=mask)) == pytest.approx(
        float(loss(flat_s, flat_t, labels[keep])), rel=1e-6)
    # Another ignore index, e.g. mmdet's background label num_classes.
    labels_bg = labels.clone()
    labels_bg[labels_bg == 255] = 4
    assert float(DKDLoss(tau=2.0, ignore_index=4)(s, t, labels_bg, weight=mask)) == \
        pytest.approx(float(loss(flat_s, flat_t, labels[keep])), rel=1e-6)


def test_dkd_gradients_half_and_loss_weight():
    s = torch.randn(6, 5, requires_grad=True)
    t = torch.randn(6, 5, requires_grad=True)
    labels = torch.randint(5, (6, ))
    DKDLoss()(s, t, labels).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None
    out = DKDLoss()(s.detach().half(), t.detach().half(), labels)
    assert out.dtype == torch.float32 and torch.isfinite(out)
    s = s.detach()
    base = float(DKDLoss()(s, t, labels))
    assert float(DKDLoss(loss_weight=3.0)(s, t, labels)) == pytest.approx(3 * base, rel=1e-6)


def test_dkd_errors_and_registry():
    s, t = torch.rand(4, 10), torch.rand(4, 10)
    with pytest.raises(ValueError, match=r'one shape.*same classes'):
        DKDLoss()(s, torch.rand(4, 80), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match=r'labels must have one entry per sample.*\(4,\)'):
        DKDLoss()(s, t, torch.zeros(4, 1, dtype=torch.long))
    with pytest.raises(ValueError, match=r'labels must lie in \[0, 10\).*ignore_index=10'):
        DKDLoss()(s, t, torch.tensor([0, 1, 10, 3]))
    with pytest.raises(ValueError, match='integer class indices'):
        DKDLoss()(s, t, torch.zeros(4))
    with pytest.raises(ValueError, match='needs the ground-truth class.*map labels'):
        dkd_loss(s, t, None)
    with pytest.raises(ValueError, match="at least 2 classes.*KDLoss"):
        DKDLoss()(torch.rand(3, 1), torch.rand(3, 1), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match='positive temperature'):
        DKDLoss(tau=-1.0)
    with pytest.raises(ValueError, match='warmup_iters'):
        DKDLoss(warmup_iters=-5)
    assert DKDLoss.requires_equal_num_classes is True
    built = build_component(dict(type='DKDLoss', beta=0.5, tau=1.0, warmup_iters=200))
    assert isinstance(built, DKDLoss) and built.beta == 0.5 and built.warmup_iters == 200
