import pytest
import torch
from model_steps import fit_loss_values
from torch import nn

from mmkd.models.losses.mgd import MGDLoss, masked_generative_loss
from mmkd.registry import build_component


def test_mgd_identity_generator_without_mask_is_summed_squared_error_over_n():
    s, t = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    value = masked_generative_loss(s, t, nn.Identity(), lambda_mgd=0.0)
    assert float(value) == pytest.approx(float((s - t).pow(2).sum() / 2), rel=1e-6)


def test_mgd_masks_positions_with_probability_lambda():
    # Identity generator, student ones, teacher zeros: loss * N / C = number of kept cells.
    s, t = torch.ones(2, 3, 50, 50), torch.zeros(2, 3, 50, 50)
    g = torch.Generator().manual_seed(0)
    kept = float(masked_generative_loss(s, t, nn.Identity(), 0.65, generator=g)) * 2 / 3
    assert kept / (2 * 50 * 50) == pytest.approx(0.35, abs=0.02)
    # Whole positions are masked: every channel of a position is kept or dropped together.
    seen = {}

    def record(x):
        seen['x'] = x
        return x
    g = torch.Generator().manual_seed(1)
    masked_generative_loss(s, t, record, 0.5, generator=g)
    per_position = seen['x'].sum(dim=1)
    assert set(per_position.unique().tolist()) <= {0.0, 3.0}
    assert float(masked_generative_loss(s, t, nn.Identity(), 1.0)) == 0.0


def test_mgd_deterministic_with_seeded_generator():
    loss = MGDLoss(4, 8)
    s, t = torch.randn(2, 4, 6, 6), torch.randn(2, 8, 6, 6)
    a = loss(s, t, generator=torch.Generator().manual_seed(3))
    b = loss(s, t, generator=torch.Generator().manual_seed(3))
    c = loss(s, t, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    torch.manual_seed(5)
    d = loss(s, t)
    torch.manual_seed(5)
    assert torch.equal(d, loss(s, t))
    assert loss.align is not None and MGDLoss(8, 8).align is None


def test_mgd_generator_learns_toward_fixed_teacher():
    torch.manual_seed(0)
    loss = MGDLoss(4, 4, loss_weight=1.0, lambda_mgd=0.5)
    s, t = torch.randn(2, 4, 5, 5), torch.randn(2, 4, 5, 5)
    values = fit_loss_values(loss, s, t, steps=15)
    assert values[-1] < 0.7 * values[0]


def test_mgd_gradients_half_and_weight():
    loss = MGDLoss(3, 5)
    s = torch.randn(2, 3, 4, 4, requires_grad=True)
    t = torch.randn(2, 5, 4, 4, requires_grad=True)
    loss(s, t, generator=torch.Generator().manual_seed(0)).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None
    assert loss.align.weight.grad is not None and loss.generation[0].weight.grad is not None
    out = loss(s.detach().half(), t.detach().half())
    assert out.dtype == torch.float32 and out.shape == ()
    base = loss(s, t, generator=torch.Generator().manual_seed(1))
    loss.loss_weight = 2e-5 * 4
    scaled = loss(s, t, generator=torch.Generator().manual_seed(1))
    assert scaled.item() == pytest.approx(4 * base.item(), rel=1e-6)


def test_mgd_errors_and_registry():
    with pytest.raises(ValueError, match=r'student_channels=4.*\(1, 3, 4, 4\)'):
        MGDLoss(4, 8)(torch.rand(1, 3, 4, 4), torch.rand(1, 8, 4, 4))
    with pytest.raises(ValueError, match='ResizeConnector'):
        MGDLoss(4, 8)(torch.rand(1, 4, 4, 4), torch.rand(1, 8, 8, 8))
    with pytest.raises(ValueError, match=r'lambda_mgd.*\[0, 1\]'):
        MGDLoss(4, 8, lambda_mgd=1.5)
    built = build_component(dict(type='MGDLoss', student_channels=4, teacher_channels=8))
    assert isinstance(built, MGDLoss) and built.loss_weight == 2e-5
