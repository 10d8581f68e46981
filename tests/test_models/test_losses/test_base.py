"""The loss contract (mmkd/models/losses/base.py): weights validated at build, float32 with
autocast off, the teacher's side detached, requirements declared, wrapped losses checked."""
import math

import pytest
import torch

from mmkd.models.losses import (BaseDistillLoss, DenseHeadLogitLoss, KDLoss, MSEFeatureLoss,
                                PKDLoss, SignificanceWeightedLoss, build_wrapped_loss)
from mmkd.registry import MODELS


@pytest.mark.parametrize('loss_type', ['PKDLoss', 'CWDLoss', 'KDLoss', 'MSEFeatureLoss',
                                       'ATLoss', 'CKALoss', 'SSIMLoss', 'TopKDLoss'])
def test_loss_weight_must_be_a_finite_number_at_least_0(loss_type):
    with pytest.raises(TypeError, match=r"loss_weight must be a number, got '6' \(str\)\. "
                                        r"Write loss_weight=6\.0"):
        MODELS.build(dict(type=loss_type, _scope_='mmkd', loss_weight='6'))
    with pytest.raises(ValueError, match='finite number >= 0, got -6.0.*maximise'):
        MODELS.build(dict(type=loss_type, _scope_='mmkd', loss_weight=-6.0))
    for bad in (math.inf, math.nan):
        with pytest.raises(ValueError, match='finite number >= 0'):
            MODELS.build(dict(type=loss_type, _scope_='mmkd', loss_weight=bad))
    with pytest.raises(TypeError, match='must be a number'):
        MODELS.build(dict(type=loss_type, _scope_='mmkd', loss_weight=True))
    assert MODELS.build(dict(type=loss_type, _scope_='mmkd', loss_weight=0)).loss_weight == 0.0


def test_every_registered_distillation_loss_follows_the_contract():
    import mmkd.models.losses as losses
    for name in losses.__all__:
        obj = getattr(losses, name)
        if isinstance(obj, type) and name.endswith('Loss') and obj is not BaseDistillLoss:
            assert issubclass(obj, BaseDistillLoss), name
            assert obj.compute is not BaseDistillLoss.compute, name
            assert obj.forward is BaseDistillLoss.forward, f'{name} overrides forward'


def test_half_inputs_are_computed_in_float32_with_autocast_off():
    s = torch.randn(2, 4, 6, 6).bfloat16()
    t = torch.randn(2, 4, 6, 6).bfloat16()
    seen = {}

    class Probe(BaseDistillLoss):
        def compute(self, preds_S, preds_T):
            seen.update(dtypes=(preds_S.dtype, preds_T.dtype),
                        autocast=torch.is_autocast_enabled('cpu'))
            return (preds_S - preds_T).pow(2).mean()

    with torch.autocast('cpu', dtype=torch.bfloat16):
        value = Probe(loss_weight=2.0)(s, t)
    assert seen == dict(dtypes=(torch.float32, torch.float32), autocast=False)
    assert value.dtype == torch.float32
    expected = 2.0 * (s.float() - t.float()).pow(2).mean()
    assert torch.allclose(value, expected)
    # float64 reaches compute as float64 (gradient checks)
    Probe()(torch.randn(1, 2, dtype=torch.float64), torch.randn(1, 2, dtype=torch.float64))
    assert seen['dtypes'] == (torch.float64, torch.float64)


def test_teacher_side_is_detached_also_inside_lists():
    s = [torch.randn(2, 9 * 3, 4, 4, requires_grad=True)]
    t = [torch.randn(2, 9 * 3, 4, 4, requires_grad=True)]
    loss = DenseHeadLogitLoss(num_classes=3, select='confident', score_thr=0.0)
    loss(s, t).backward()
    assert s[0].grad is not None and s[0].grad.abs().sum() > 0
    assert t[0].grad is None

    feat_S = torch.randn(2, 4, 5, 5, requires_grad=True)
    feat_T = torch.randn(2, 4, 5, 5, requires_grad=True)
    MSEFeatureLoss()(preds_S=feat_S, preds_T=feat_T).backward()
    assert feat_S.grad is not None and feat_T.grad is None


def test_weight_multiplies_compute_and_arguments_are_introspected():
    s, t = torch.randn(6, 5), torch.randn(6, 5)
    plain, weighted = KDLoss(tau=2.0), KDLoss(loss_weight=3.0, tau=2.0)
    assert torch.equal(weighted(s, t), 3.0 * plain.compute(s, t))
    assert plain.argument_names() == ['preds_S', 'preds_T', 'weight']
    assert plain.required_arguments() == ['preds_S', 'preds_T']
    assert plain.accepts('weight') and not plain.accepts('labels')
    wrapper = SignificanceWeightedLoss(dict(type='KDLoss'))
    assert wrapper.accepts('anything')  # forwards **loss_inputs to the wrapped loss
    assert wrapper.requires_equal_num_classes and not wrapper.requires_same_shape


def test_wrapped_losses_must_follow_the_contract():
    with pytest.raises(TypeError, match=r"dict\(type='MSEFeatureLoss'\)"):
        build_wrapped_loss('MSEFeatureLoss', 'Owner')
    with pytest.raises(TypeError, match='Owner wraps ReLU, which is not a distillation loss'):
        build_wrapped_loss(dict(type='ReLU', _scope_='mmengine'), 'Owner')
    assert isinstance(build_wrapped_loss(dict(type='PKDLoss'), 'Owner'), PKDLoss)
