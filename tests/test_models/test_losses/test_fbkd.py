import math

import pytest
import torch

from mmkd.models.losses import FBKDLoss
from mmkd.registry import MODELS


def _identity_adapters(loss: FBKDLoss, channels: int) -> None:
    eye = torch.eye(channels)
    with torch.no_grad():
        for conv in (loss.feature_adapt, loss.relation_adapt):
            conv.weight.copy_(eye.reshape(channels, channels, 1, 1))
            conv.bias.zero_()
        loss.channel_adapt.weight.copy_(eye)
        loss.channel_adapt.bias.zero_()
        loss.spatial_adapt.weight.zero_()
        loss.spatial_adapt.weight[0, 0, 1, 1] = 1.0
        loss.spatial_adapt.bias.zero_()


def test_hand_computed_case():
    # Teacher 0, student 3 everywhere (N=1, C=2, 2x2): both spatial masks are uniform (= 1),
    # the adapters are the identity and the non-local blocks start as the identity, so
    # feature term ||3||  over 8 cells = 3 sqrt(8); channel term over 2 means = 3 sqrt(2);
    # spatial term over 4 cells = 3 sqrt(4); relation term = 3 sqrt(8).
    loss = FBKDLoss(2, 2, loss_weight=2.0, mask_l2_weight=1.0, channel_weight=1.0,
                    spatial_weight=1.0, nonlocal_weight=1.0)
    _identity_adapters(loss, 2)
    value = loss(torch.full((1, 2, 2, 2), 3.0), torch.zeros(1, 2, 2, 2))
    expected = 2.0 * (3 * math.sqrt(8) + 3 * math.sqrt(2) + 3 * 2 + 3 * math.sqrt(8))
    assert value.item() == pytest.approx(expected, rel=1e-6)
    # the published weights scale each term
    loss.weights.update(mask_l2_weight=7e-5, channel_weight=4e-3, spatial_weight=4e-3,
                        nonlocal_weight=7e-5)
    value = loss(torch.full((1, 2, 2, 2), 3.0), torch.zeros(1, 2, 2, 2))
    expected = 2.0 * (7e-5 * 6 * math.sqrt(8) + 4e-3 * (3 * math.sqrt(2) + 6))
    assert value.item() == pytest.approx(expected, rel=1e-6)


def test_equal_maps_give_zero_and_finite_gradients():
    loss = FBKDLoss(2, 2, mask_l2_weight=1.0, nonlocal_weight=1.0)
    _identity_adapters(loss, 2)
    t = torch.randn(2, 2, 4, 4)
    s = t.clone().requires_grad_(True)
    value = loss(s, t)
    assert value.item() == pytest.approx(0.0, abs=1e-6)
    value.backward()
    assert torch.isfinite(s.grad).all()


def test_gradients_train_the_adapters_and_both_non_local_blocks_not_the_teacher():
    gen = torch.Generator().manual_seed(0)
    loss = FBKDLoss(4, 8, sub_sample=True, maxpool_stride=2, reduction=4)
    s = torch.randn(2, 4, 16, 16, generator=gen, requires_grad=True)
    t = torch.randn(2, 8, 16, 16, generator=gen, requires_grad=True)
    loss(s, t).backward()
    assert t.grad is None and s.grad.abs().sum() > 0
    for part in ('feature_adapt', 'channel_adapt', 'spatial_adapt', 'relation_adapt',
                 'student_non_local', 'teacher_non_local'):
        grads = [p.grad for p in getattr(loss, part).parameters() if p.grad is not None]
        assert grads and any(g.abs().sum() > 0 for g in grads), part


def test_bad_settings_name_the_fix():
    with pytest.raises(ValueError, match='student_channels to its channel count'):
        FBKDLoss(4, 4)(torch.randn(1, 8, 4, 4), torch.randn(1, 4, 4, 4))
    with pytest.raises(ValueError, match='ResizeConnector'):
        FBKDLoss(4, 4)(torch.randn(1, 4, 8, 8), torch.randn(1, 4, 4, 4))
    with pytest.raises(ValueError, match="sub_sample=True needs mode"):
        FBKDLoss(4, 4, mode='gaussian', sub_sample=True)
    with pytest.raises(ValueError, match='mask_l2_weight'):
        FBKDLoss(4, 4, mask_l2_weight=-1.0)
    assert isinstance(MODELS.build(dict(type='FBKDLoss', _scope_='mmkd', student_channels=4,
                                        teacher_channels=4)), FBKDLoss)


def test_maps_too_small_for_the_sub_sampling_name_the_limit():
    # MMRazor's Faster R-CNN FBKD level 0: maxpool_stride=8, so 16 cells a side at least
    loss = FBKDLoss(4, 4, sub_sample=True, maxpool_stride=8)
    assert torch.isfinite(loss(torch.randn(2, 4, 16, 16), torch.randn(2, 4, 16, 16)))
    with pytest.raises(ValueError, match=r'\(8, 16\) feature map is too small .* >= 16 cells'):
        loss(torch.randn(2, 4, 8, 16), torch.randn(2, 4, 8, 16))
    assert torch.isfinite(FBKDLoss(4, 4)(torch.randn(2, 4, 1, 1), torch.randn(2, 4, 1, 1)))
