import numpy as np
import pytest
import torch

from mmkd.models.losses.pkd import PKDLoss, pearson_kd_loss
from mmkd.registry import build_component


def _reference_pkd(s, t):
    """Mean over channels of 1 - Pearson r, with numpy.corrcoef."""
    s, t = s.double().numpy(), t.double().numpy()
    rs = [np.corrcoef(s[:, c].ravel(), t[:, c].ravel())[0, 1] for c in range(s.shape[1])]
    return float(np.mean(1 - np.array(rs)))


def test_pkd_equals_one_minus_pearson_r():
    torch.manual_seed(0)
    t = torch.randn(2, 4, 5, 6)
    s = 0.5 * t + torch.randn(2, 4, 5, 6)  # correlated, r around 0.45
    expected = _reference_pkd(s, t)
    assert 0.2 < expected < 0.9
    assert float(pearson_kd_loss(s, t)) == pytest.approx(expected, abs=1e-5)
    assert float(PKDLoss(loss_weight=6.0)(s, t)) == pytest.approx(6 * expected, abs=1e-4)


def test_pkd_invariant_to_positive_per_channel_affine_student():
    torch.manual_seed(1)
    s, t = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    scale = torch.tensor([0.5, 3.0, 50.0]).view(1, 3, 1, 1)
    shift = torch.tensor([-2.0, 0.0, 7.0]).view(1, 3, 1, 1)
    base = float(PKDLoss()(s, t))
    assert float(PKDLoss()(s * scale + shift, t)) == pytest.approx(base, abs=1e-5)
    assert float(PKDLoss()(t * scale + shift, t)) == pytest.approx(0.0, abs=1e-5)


def test_pkd_resizes_student_or_teacher():
    torch.manual_seed(2)
    s, t = torch.randn(1, 2, 4, 4), torch.randn(1, 2, 8, 8)
    up = torch.nn.functional.interpolate(s, size=(8, 8), mode='bilinear', align_corners=False)
    assert float(PKDLoss()(s, t)) == pytest.approx(float(pearson_kd_loss(up, t)), abs=1e-6)
    down = torch.nn.functional.interpolate(t, size=(4, 4), mode='bilinear',
                                           align_corners=False)
    assert float(PKDLoss(resize_stu=False)(s, t)) == pytest.approx(
        float(pearson_kd_loss(s, down)), abs=1e-6)


def test_pkd_gradients_half_and_weight():
    s = torch.randn(2, 3, 4, 4, requires_grad=True)
    t = torch.randn(2, 3, 4, 4, requires_grad=True)
    PKDLoss()(s, t).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None
    out = PKDLoss()(s.detach().half(), t.detach().half())
    assert out.dtype == torch.float32 and torch.isfinite(out)
    base = PKDLoss()(s, t).item()
    assert PKDLoss(loss_weight=10.0)(s, t).item() == pytest.approx(10 * base, rel=1e-6)


def test_pkd_errors_and_registry():
    with pytest.raises(ValueError, match=r'equal N and C.*ConvConnector'):
        PKDLoss()(torch.rand(1, 2, 4, 4), torch.rand(1, 3, 4, 4))
    with pytest.raises(ValueError, match='positive eps'):
        PKDLoss(eps=0)
    assert not PKDLoss.requires_same_shape
    assert isinstance(build_component(dict(type='PKDLoss')), PKDLoss)
