import math

import pytest
import torch
from torch.distributions import Categorical, kl_divergence

from mmkd.models.losses.cwd import CWDLoss, channel_wise_divergence
from mmkd.registry import build_component


def _reference_cwd(s, t, tau):
    """Explicit loops over (n, c) with torch.distributions."""
    N, C = s.shape[:2]
    total = 0.0
    for n in range(N):
        for c in range(C):
            p_t = Categorical(logits=t[n, c].flatten().double() / tau)
            p_s = Categorical(logits=s[n, c].flatten().double() / tau)
            total += float(kl_divergence(p_t, p_s))
    return total * tau**2 / (N * C)


@pytest.mark.parametrize('tau', [1.0, 4.0])
def test_cwd_matches_per_channel_kl(tau):
    torch.manual_seed(0)
    s, t = torch.randn(2, 3, 4, 5), torch.randn(2, 3, 4, 5)
    expected = _reference_cwd(s, t, tau)
    assert float(channel_wise_divergence(s, t, tau)) == pytest.approx(expected, rel=1e-5)
    assert float(CWDLoss(loss_weight=3.0, tau=tau)(s, t)) == pytest.approx(3 * expected,
                                                                           rel=1e-5)


def test_cwd_direction_is_kl_teacher_to_student():
    s, t = torch.zeros(1, 1, 1, 2), torch.tensor([[[[0.0, 100.0]]]])
    # KL(T || S) = log 2 here, while KL(S || T) would be about 50.
    assert float(channel_wise_divergence(s, t)) == pytest.approx(math.log(2), abs=1e-5)


def test_cwd_zero_for_identical_inputs_and_linear_weight():
    x = torch.randn(2, 3, 4, 4)
    assert float(CWDLoss(tau=2.0)(x, x.clone())) == pytest.approx(0.0, abs=1e-7)
    s = torch.randn(2, 3, 4, 4)
    base = CWDLoss()(s, x)
    assert float(CWDLoss(loss_weight=7.5)(s, x)) == pytest.approx(7.5 * float(base), rel=1e-6)


def test_cwd_gradients_reach_student_only_and_half_gives_float32():
    s = torch.randn(2, 3, 4, 4, requires_grad=True)
    t = torch.randn(2, 3, 4, 4, requires_grad=True)
    CWDLoss()(s, t).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None
    out = CWDLoss()(s.detach().half(), t.detach().half())
    assert out.dtype == torch.float32 and torch.isfinite(out)


def test_cwd_errors_and_registry():
    with pytest.raises(ValueError, match=r'equal shape.*ConvConnector'):
        CWDLoss()(torch.rand(1, 2, 4, 4), torch.rand(1, 3, 4, 4))
    with pytest.raises(ValueError, match='positive temperature'):
        CWDLoss(tau=0)
    assert CWDLoss.requires_same_shape
    assert isinstance(build_component(dict(type='CWDLoss', tau=2.0)), CWDLoss)
