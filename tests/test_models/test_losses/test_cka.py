import contextlib
import warnings

import pytest
import torch

from mmkd.models.losses.cka import (CKALoss, PCKALoss, batched_linear_cka, cka_loss,
                                    linear_cka, pcka_loss)
from mmkd.registry import MODELS
from mmkd.testing import (cka_seg_published_reference, pcka_loop_reference,
                          pcka_published_reference)


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(0)


@contextlib.contextmanager
def _no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        yield


def _orthogonal(d, gen):
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
    return q


@pytest.mark.parametrize('form', ['gram', 'cross', 'auto'])
@pytest.mark.parametrize('centered', [True, False])
def test_cka_of_itself_is_one(form, centered, gen):
    x = torch.randn(40, 12, generator=gen, dtype=torch.float64)
    assert linear_cka(x, x, centered, form=form).item() == pytest.approx(1.0, abs=1e-10)


@pytest.mark.parametrize('form', ['gram', 'cross'])
@pytest.mark.parametrize('centered', [True, False])
def test_cka_invariances(form, centered, gen):
    x = torch.randn(30, 6, generator=gen, dtype=torch.float64)
    y = x @ torch.randn(6, 9, generator=gen, dtype=torch.float64) + \
        0.5 * torch.randn(30, 9, generator=gen, dtype=torch.float64)
    ref = linear_cka(x, y, centered, form=form)
    assert 0.2 < ref < 0.99  # a non-trivial value, so the comparisons below mean something
    q_x, q_y = _orthogonal(6, gen), _orthogonal(9, gen)
    for x2, y2 in [(x @ q_x, y), (x, y @ q_y), (x @ q_x, y @ q_y), (7.5 * x, y), (x, 0.01 * y),
                   (-3 * x @ q_x, 40 * y @ q_y)]:
        assert linear_cka(x2, y2, centered, form=form) == pytest.approx(ref.item(), rel=1e-7)  # eps
    # a non-isotropic scaling changes it: the check above is not vacuous
    assert abs(linear_cka(x * torch.arange(1., 7., dtype=torch.float64), y, centered,
                          form=form) - ref) > 1e-3


def test_cka_of_independent_noise_is_near_zero(gen):
    x, y = torch.randn(2000, 10, generator=gen), torch.randn(2000, 10, generator=gen)
    assert linear_cka(x, y).item() < 0.05
    assert linear_cka(x, y, centered=False).item() < 0.05


@pytest.mark.parametrize('centered', [True, False])
@pytest.mark.parametrize('n,d1,d2', [(5, 30, 20), (50, 4, 7), (16, 16, 16)])
def test_gram_and_cross_forms_agree(n, d1, d2, centered, gen):
    x = torch.randn(3, n, d1, generator=gen, dtype=torch.float64) + 1.0
    y = torch.randn(3, n, d2, generator=gen, dtype=torch.float64) + x[..., :1]
    gram = batched_linear_cka(x, y, centered, form='gram')
    cross = batched_linear_cka(x, y, centered, form='cross')
    assert gram.shape == (3, )
    assert torch.allclose(gram, cross, rtol=1e-10, atol=0)
    assert torch.allclose(batched_linear_cka(x, y, centered), gram, rtol=1e-10, atol=0)
    single = torch.stack([linear_cka(a, b, centered) for a, b in zip(x, y)])
    assert torch.allclose(single, gram, rtol=1e-10, atol=0)


def test_centering_matters_for_nonzero_mean(gen):
    x = torch.randn(100, 5, generator=gen) + 3.0
    y = torch.randn(100, 5, generator=gen) + 3.0
    centered, uncentered = linear_cka(x, y).item(), linear_cka(x, y, centered=False).item()
    assert centered < 0.2 and uncentered > 0.8  # shared means look similar only uncentered


def test_cka_bad_shapes():
    with pytest.raises(ValueError, match='same n'):
        linear_cka(torch.randn(4, 3), torch.randn(5, 3))
    with pytest.raises(ValueError, match='form must be one of'):
        linear_cka(torch.randn(4, 3), torch.randn(4, 3), form='fast')


def test_cka_loss_different_channels_and_sizes(gen):
    s = torch.randn(4, 8, 6, 6, generator=gen)
    t = torch.randn(4, 16, 12, 12, generator=gen)
    loss = CKALoss()(s, t)
    assert loss.shape == () and 0 < loss.item() <= 1
    assert CKALoss()(t, t).item() == pytest.approx(0.0, abs=1e-6)
    assert CKALoss()(2 * t + 0.0, t).item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match='same N'):
        CKALoss()(torch.randn(3, 8, 6, 6), t)


def test_cka_loss_intra_inter_terms(gen):
    s = torch.randn(2, 5, 4, 6, generator=gen)
    t = torch.randn(2, 5, 4, 6, generator=gen)
    only_logits = CKALoss(feature_weight=0, intra_weight=1.0, inter_weight=0.5)
    value = only_logits(s, t)
    s_pix = s.permute(0, 2, 3, 1).reshape(-1, 5)
    t_pix = t.permute(0, 2, 3, 1).reshape(-1, 5)

    def norm(a):
        return a / a.norm(dim=1, keepdim=True)

    expected = (1 - linear_cka(norm(s_pix), norm(t_pix))) + \
        0.5 * (1 - linear_cka(norm(s_pix.t()), norm(t_pix.t())))
    assert value.item() == pytest.approx(expected.item(), rel=1e-5)
    assert only_logits(t, t).item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match='ResizeConnector'):
        only_logits(torch.randn(2, 5, 8, 12), t)


def test_cka_loss_warns_on_constant_batch():
    t = torch.randn(2, 4, 3, 3)
    with pytest.warns(UserWarning, match='constant'):
        assert CKALoss()(torch.randn(2, 4, 3, 3), t).item() == pytest.approx(0.0, abs=1e-5)


def _grad_check(loss_module, s, t):
    s, t = s.clone().requires_grad_(True), t.clone().requires_grad_(True)
    loss_module(s, t).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None


def test_gradients_reach_student_only(gen):
    _grad_check(CKALoss(intra_weight=1.0, inter_weight=1.0),
                torch.randn(4, 3, 5, 5, generator=gen), torch.randn(4, 3, 5, 5, generator=gen))
    _grad_check(PCKALoss(inter_weight=1.0, patch_size=4),
                torch.randn(2, 3, 10, 9, generator=gen), torch.randn(2, 3, 12, 12, generator=gen))


@pytest.mark.parametrize('loss_type', [CKALoss, PCKALoss])
def test_half_inputs_and_loss_weight(loss_type, gen):
    s = torch.randn(3, 4, 20, 20, generator=gen)
    t = torch.randn(3, 4, 20, 20, generator=gen)
    base = loss_type()(s, t)
    half = loss_type()(s.half(), t.half())
    assert half.dtype == torch.float32
    assert half.item() == pytest.approx(base.item(), abs=1e-2)
    assert loss_type(loss_weight=3.0)(s, t).item() == pytest.approx(3 * base.item(), rel=1e-6)
    assert loss_type(loss_weight=0.0)(s, t).item() == 0.0


@pytest.mark.parametrize('centered', [True, False])
@pytest.mark.parametrize('size_s,size_t,patch', [
    ((16, 16), (16, 16), 8),  # exact multiple
    ((13, 21), (13, 21), 8),  # non-multiples: resized up to 16 x 24
    ((20, 30), (10, 15), 4),  # student at another resolution
    ((6, 20), (6, 20), 8),    # a side shorter than a patch keeps its size
    ((5, 7), (5, 7), 16),     # one patch
])
@pytest.mark.parametrize('inter', [0.0, 0.7])
def test_pcka_batched_matches_loop_reference(size_s, size_t, patch, inter, centered, gen):
    s = torch.randn(2, 3, *size_s, generator=gen, dtype=torch.float64)
    t = torch.randn(2, 3, *size_t, generator=gen, dtype=torch.float64)
    kwargs = dict(patch_size=patch, intra_weight=1.3, inter_weight=inter, centered=centered)
    with pytest.warns(UserWarning) if size_t == (5, 7) else _no_warning():
        batched = pcka_loss(s, t, **kwargs)
    reference = pcka_loop_reference(s, t, **kwargs)
    assert torch.allclose(batched, reference, rtol=1e-9, atol=1e-12)
    module = PCKALoss(loss_weight=2.0, **kwargs)
    with pytest.warns(UserWarning) if size_t == (5, 7) else _no_warning():
        assert module(s, t).item() == pytest.approx(2 * reference.item(), rel=1e-9)


def test_pcka_identical_is_zero_and_nonzero_otherwise(gen):
    t = torch.randn(2, 4, 24, 40, generator=gen)
    assert PCKALoss(inter_weight=1.0)(t, t).item() == pytest.approx(0.0, abs=1e-6)
    assert PCKALoss(inter_weight=1.0)(torch.randn(2, 4, 24, 40, generator=gen), t).item() > 0.1


def test_pcka_needs_equal_channels():
    with pytest.raises(ValueError, match='ConvConnector'):
        PCKALoss()(torch.randn(2, 8, 16, 16), torch.randn(2, 4, 16, 16))
    with pytest.raises(ValueError, match='patch_size'):
        PCKALoss(patch_size=0)
    with pytest.raises(TypeError, match='loss_weight'):
        PCKALoss(loss_weight='10')


def test_build_from_registry():
    loss = MODELS.build(dict(type='CKALoss', _scope_='mmkd', loss_weight=2.0))
    assert isinstance(loss, CKALoss) and loss.loss_weight == 2.0 and not loss.requires_same_shape
    loss = MODELS.build(dict(type='PCKALoss', _scope_='mmkd', loss_weight=10.0, inter_weight=1.0))
    assert isinstance(loss, PCKALoss) and not loss.requires_same_shape


def test_functional_core_detaches_teacher(gen):
    s = torch.randn(4, 3, 5, 5, generator=gen, requires_grad=True)
    t = torch.randn(4, 3, 5, 5, generator=gen, requires_grad=True)
    assert cka_loss(s, t).requires_grad
    cka_loss(s, t).backward()
    assert t.grad is None


@pytest.mark.parametrize('size_s,size_t', [
    ((13, 21), (13, 21)),  # smaller than a patch on one side: upsampled to 16 x 32
    ((40, 36), (20, 18)),  # >= 16 a side, student at twice the resolution
])
@pytest.mark.parametrize('inter', [None, 10.0])
def test_pcka_upsample_is_the_published_loss(size_s, size_t, inter, gen):
    s = torch.randn(2, 3, *size_s, generator=gen, dtype=torch.float64)
    t = torch.randn(2, 3, *size_t, generator=gen, dtype=torch.float64)
    s_ours, s_pub = s.clone().requires_grad_(True), s.clone().requires_grad_(True)
    # what tools/convert_mmrazor_config.py makes of CenterKernelAlignmentRKD(intra_weight=10, ...)
    ours = PCKALoss(loss_weight=10.0, intra_weight=1.0, inter_weight=1.0 if inter else 0.0,
                    centered=False, eps=1e-300, small_levels='upsample')(s_ours, t)
    published = pcka_published_reference(s_pub, t, intra_weight=10.0, inter_weight=inter)
    # ours is 1 - CKA where the published code returns -CKA: the same up to a constant
    offset = 10.0 * (2 if inter else 1)
    assert ours.item() == pytest.approx(published.item() + offset, rel=1e-10, abs=1e-10)
    ours.backward()
    published.backward()
    assert torch.allclose(s_ours.grad, s_pub.grad, rtol=1e-8, atol=1e-14)
    # and the loop reference agrees with the batched code under the same option
    reference = pcka_loop_reference(s, t, 16, 1.0, 1.0 if inter else 0.0, False, 1e-300,
                                    small_levels='upsample')
    assert ours.item() == pytest.approx(10 * reference.item(), rel=1e-10)


def test_pcka_small_levels_differ_only_below_a_patch(gen):
    small = torch.randn(2, 3, 13, 21, generator=gen), torch.randn(2, 3, 13, 21, generator=gen)
    large = torch.randn(2, 3, 16, 40, generator=gen), torch.randn(2, 3, 16, 40, generator=gen)
    shrink = PCKALoss(inter_weight=1.0, centered=False)
    upsample = PCKALoss(inter_weight=1.0, centered=False, small_levels='upsample')
    assert shrink(*small).item() != pytest.approx(upsample(*small).item(), rel=1e-3)
    assert shrink(*large).item() == upsample(*large).item()
    with pytest.raises(ValueError, match="small_levels must be one of"):
        PCKALoss(small_levels='pad')


@pytest.mark.parametrize('inter', [None, 10.0])
def test_cka_published_logit_terms_are_the_published_seg_loss(inter, gen):
    s = torch.randn(2, 5, 6, 7, generator=gen, dtype=torch.float64)
    t = torch.randn(2, 5, 6, 7, generator=gen, dtype=torch.float64)
    s_ours, s_pub = s.clone().requires_grad_(True), s.clone().requires_grad_(True)
    # what tools/convert_mmrazor_config.py makes of CenterKernelAlignmentSeg(intra_weight=10)
    ours = CKALoss(loss_weight=10.0, feature_weight=0.0, intra_weight=1.0,
                   inter_weight=1.0 if inter else 0.0, centered=False, eps=1e-300,
                   logit_terms='published')(s_ours, t)
    published = cka_seg_published_reference(s_pub, t, intra_weight=10.0, inter_weight=inter)
    offset = 10.0 * (2 if inter else 1)
    assert ours.item() == pytest.approx(published.item() + offset, rel=1e-10, abs=1e-10)
    ours.backward()
    published.backward()
    assert torch.allclose(s_ours.grad, s_pub.grad, rtol=1e-8, atol=1e-14)
    with pytest.raises(ValueError, match='set centered=False'):
        CKALoss(logit_terms='published')
    with pytest.raises(ValueError, match='logit_terms must be one of'):
        CKALoss(logit_terms='images')
