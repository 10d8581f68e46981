import pytest
import torch
import torch.nn.functional as F

from mmkd.models.losses.at import ATLoss, attention_map, attention_transfer_loss
from mmkd.registry import build_component


def test_at_known_value_on_hand_built_maps():
    s = torch.ones(1, 3, 2, 2)  # map (1, 1, 1, 1) -> normalised (.5, .5, .5, .5)
    t = torch.zeros(1, 8, 2, 2)
    t[0, :, 0, 0] = 2.0  # map (4, 0, 0, 0) -> normalised (1, 0, 0, 0)
    # differences (-.5, .5, .5, .5): mean of squares .25
    assert float(ATLoss()(s, t)) == pytest.approx(0.25, abs=1e-7)
    # p = 1 on signed values: |F| is used, so negating the student changes nothing.
    assert float(ATLoss(p=1)(-s, t)) == pytest.approx(0.25, abs=1e-7)


def test_at_matches_formula_and_zero_for_identical_maps():
    torch.manual_seed(0)
    s, t = torch.randn(2, 4, 3, 5), torch.randn(2, 6, 3, 5)
    a_s = F.normalize(s.pow(2).mean(1).reshape(2, -1), dim=1)
    a_t = F.normalize(t.pow(2).mean(1).reshape(2, -1), dim=1)
    expected = float((a_s - a_t).pow(2).mean())
    assert float(attention_transfer_loss(s, t)) == pytest.approx(expected, rel=1e-6)
    assert attention_map(s).shape == (2, 1, 3, 5)
    # Identical attention maps: same feature with more (repeated) channels, or scaled.
    assert float(ATLoss()(s, torch.cat([s, s], dim=1))) == pytest.approx(0.0, abs=1e-7)
    assert float(ATLoss()(3 * s, s)) == pytest.approx(0.0, abs=1e-7)


def test_at_resizes_student_map():
    s = torch.ones(1, 2, 2, 2)
    t = torch.ones(1, 5, 4, 4)
    assert float(ATLoss()(s, t)) == pytest.approx(0.0, abs=1e-7)
    assert ATLoss()(torch.randn(2, 2, 3, 3), torch.randn(2, 2, 6, 6)).shape == ()


def test_at_gradients_half_and_weight():
    s = torch.randn(2, 3, 4, 4, requires_grad=True)
    t = torch.randn(2, 5, 4, 4, requires_grad=True)
    ATLoss()(s, t).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None
    out = ATLoss()(s.detach().half(), t.detach().half())
    assert out.dtype == torch.float32
    base = ATLoss()(s, t).item()
    assert ATLoss(loss_weight=1000.0)(s, t).item() == pytest.approx(1000 * base, rel=1e-6)


def test_at_errors_and_registry():
    with pytest.raises(ValueError, match='same batch size'):
        ATLoss()(torch.rand(2, 2, 4, 4), torch.rand(3, 2, 4, 4))
    with pytest.raises(ValueError, match='positive exponent'):
        ATLoss(p=0)
    assert isinstance(build_component(dict(type='ATLoss', p=2)), ATLoss)
