import pytest
import torch

from mmkd.models.losses.ssim import SSIMLoss, shrunk_window, ssim_map_loss
from mmkd.registry import MODELS


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(0)


def test_identical_is_zero_and_different_is_positive(gen):
    t = torch.randn(2, 3, 20, 24, generator=gen)
    assert SSIMLoss()(t.clone(), t).item() == pytest.approx(0.0, abs=1e-6)
    s = torch.randn(2, 3, 20, 24, generator=gen)
    value = ssim_map_loss(s, t).item()
    assert 0.1 < value < 1.0
    # a constant channel (zero range) stays finite
    t[:, 0] = 5.0
    assert torch.isfinite(SSIMLoss()(s, t))


def test_known_value_for_a_shift(gen):
    # SSIM (and its min-max normalisation) does not ignore a spatial shift
    t = torch.randn(1, 2, 16, 16, generator=gen)
    assert ssim_map_loss(torch.roll(t, 3, dims=3), t).item() > 0.05


def test_invariant_to_affine_student_intensity(gen):
    s = torch.randn(2, 3, 16, 16, generator=gen)
    t = torch.randn(2, 3, 16, 16, generator=gen)
    scale = torch.tensor([0.5, 3.0, 20.0]).view(1, 3, 1, 1)
    shift = torch.tensor([-4.0, 0.0, 7.0]).view(1, 3, 1, 1)
    base = ssim_map_loss(s, t).item()
    assert ssim_map_loss(s * scale + shift, t).item() == pytest.approx(base, abs=1e-5)
    assert ssim_map_loss(t * scale + shift, t).item() == pytest.approx(0.0, abs=1e-5)
    # a non-affine change is not ignored
    assert abs(ssim_map_loss(s.pow(3), t).item() - base) > 1e-3


@pytest.mark.parametrize('size', [(4, 4), (4, 9), (1, 5), (2, 2)])
def test_window_shrinks_on_small_levels(size, gen):
    t = torch.randn(2, 3, *size, generator=gen)
    s = torch.randn(2, 3, *size, generator=gen)
    value = SSIMLoss()(s, t)
    assert torch.isfinite(value) and value.item() > 0.01
    assert SSIMLoss()(t, t).item() == pytest.approx(0.0, abs=1e-6)


def test_shrunk_window_rule():
    assert shrunk_window(64, 100, 11, 1.5) == (11, 1.5)
    assert shrunk_window(11, 100, 11, 1.5) == (11, 1.5)
    size, sigma = shrunk_window(4, 4, 11, 1.5)
    assert size == 3 and sigma == pytest.approx(1.5 * 3 / 11)
    assert shrunk_window(10, 7, 11, 1.5)[0] == 7


def test_gradients_reach_student_only(gen):
    s = torch.randn(2, 3, 12, 12, generator=gen, requires_grad=True)
    t = torch.randn(2, 3, 12, 12, generator=gen, requires_grad=True)
    SSIMLoss()(s, t).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0 and torch.isfinite(s.grad).all()
    assert t.grad is None


def test_half_inputs_and_loss_weight(gen):
    s = torch.randn(2, 3, 16, 16, generator=gen)
    t = torch.randn(2, 3, 16, 16, generator=gen)
    base = SSIMLoss(loss_weight=1.0)(s, t)
    half = SSIMLoss(loss_weight=1.0)(s.half(), t.half())
    assert half.dtype == torch.float32
    assert half.item() == pytest.approx(base.item(), abs=1e-2)
    assert SSIMLoss()(s, t).item() == pytest.approx(2 * base.item(), rel=1e-6)  # default 2.0
    assert SSIMLoss(loss_weight=3.5)(s, t).item() == pytest.approx(3.5 * base.item(), rel=1e-6)


def test_adapter(gen):
    loss = SSIMLoss(adapter_in_channels=8, adapter_out_channels=3)
    assert not loss.requires_same_shape and SSIMLoss().requires_same_shape
    s = torch.randn(2, 8, 12, 12, generator=gen, requires_grad=True)
    value = loss(s, torch.randn(2, 3, 12, 12, generator=gen))
    value.backward()
    assert value.item() > 0
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert loss.adapter.weight.grad is not None and loss.adapter.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match='adapter_in_channels=4'):
        loss(torch.randn(2, 4, 12, 12), torch.randn(2, 3, 12, 12))
    with pytest.raises(ValueError, match='give both'):
        SSIMLoss(adapter_in_channels=8)


def test_errors():
    with pytest.raises(ValueError, match='ConvConnector'):
        SSIMLoss()(torch.randn(2, 8, 12, 12), torch.randn(2, 3, 12, 12))
    with pytest.raises(ValueError, match='odd'):
        SSIMLoss(window_size=10)


def test_build_from_registry(gen):
    loss = MODELS.build(dict(type='SSIMLoss', _scope_='mmkd', loss_weight=4.0))
    assert isinstance(loss, SSIMLoss) and loss.loss_weight == 4.0
    # the built module computes the weighted SSIM loss (not just accepts the argument)
    s = torch.randn(2, 3, 12, 12, generator=gen)
    t = torch.randn(2, 3, 12, 12, generator=gen)
    expected = 4.0 * ssim_map_loss(s, t).item()
    assert expected > 0.4 and loss(s, t).item() == pytest.approx(expected, rel=1e-6)


def _reference_ssim_loss(s, t, window_size=11, sigma=1.5, eps=1e-6):
    """Three-factor l * c * s SSIM with C3 = C2 / 2, a full 2-D kernel and one conv per map."""
    import torch.nn.functional as F

    def norm(x):
        low, high = x.amin(dim=(2, 3), keepdim=True), x.amax(dim=(2, 3), keepdim=True)
        return (x - low) / (high - low + eps)

    s, t = norm(s), norm(t)
    size, sig = shrunk_window(s.shape[2], s.shape[3], window_size, sigma)
    g = torch.exp(-(torch.arange(size, dtype=s.dtype) - size // 2)**2 / (2 * sig**2))
    kernel = torch.outer(g, g) / g.sum()**2
    weight = kernel.expand(s.shape[1], 1, size, size)

    def blur(x):
        p = size // 2
        return F.conv2d(F.pad(x, (p, p, p, p), mode='reflect'), weight, groups=x.shape[1])

    c1, c2 = 0.01**2, 0.03**2
    c3 = c2 / 2
    mu_s, mu_t = blur(s), blur(t)
    sd_s = (blur(s * s) - mu_s**2).clamp_min(0).sqrt()
    sd_t = (blur(t * t) - mu_t**2).clamp_min(0).sqrt()
    cov = blur(s * t) - mu_s * mu_t
    lum = (2 * mu_s * mu_t + c1) / (mu_s**2 + mu_t**2 + c1)
    con = (2 * sd_s * sd_t + c2) / (sd_s**2 + sd_t**2 + c2)
    struct = (cov + c3) / (sd_s * sd_t + c3)
    return ((1 - lum * con * struct) / 2).mean()


@pytest.mark.parametrize('size', [(16, 20), (5, 8)])
def test_matches_three_factor_reference(size, gen):
    s = torch.randn(2, 3, *size, generator=gen, dtype=torch.float64)
    t = torch.randn(2, 3, *size, generator=gen, dtype=torch.float64) + 0.5 * s
    expected = _reference_ssim_loss(s, t)
    assert ssim_map_loss(s, t).item() == pytest.approx(expected.item(), rel=1e-9)
    assert SSIMLoss(loss_weight=1.0)(s, t).item() == pytest.approx(expected.item(), rel=1e-9)


@pytest.mark.parametrize('chunk_numel', [1, 2 * 16 * 20 * 2, 2**18])
def test_gradient_matches_reference_whatever_the_chunking(chunk_numel, gen):
    # chunk_numel=1 gives one channel per chunk, the middle value 2 channels, the default one
    s = torch.randn(2, 5, 16, 20, generator=gen, dtype=torch.float64, requires_grad=True)
    t = torch.randn(2, 5, 16, 20, generator=gen, dtype=torch.float64) + 0.5 * s.detach()
    (expected, ) = torch.autograd.grad(_reference_ssim_loss(s, t), s)
    value = ssim_map_loss(s, t, chunk_numel=chunk_numel)
    (grad, ) = torch.autograd.grad(3.0 * value, s)
    assert value.item() == pytest.approx(_reference_ssim_loss(s, t).item(), rel=1e-9)
    torch.testing.assert_close(grad, 3.0 * expected, rtol=1e-7, atol=1e-12)


def test_no_gradient_work_without_grad(gen):
    s = torch.randn(2, 3, 12, 12, generator=gen)
    t = torch.randn(2, 3, 12, 12, generator=gen)
    with torch.no_grad():
        value = ssim_map_loss(s.requires_grad_(), t)
    assert not value.requires_grad
    assert ssim_map_loss(s.detach(), t).item() == pytest.approx(value.item())
