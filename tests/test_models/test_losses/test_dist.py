import math

import numpy as np
import pytest
import torch

from mmkd.models.losses.dense_head_kd import DenseHeadLogitLoss
from mmkd.models.losses.dist import DISTLoss, dist_terms, pearson_correlation
from mmkd.registry import build_component


def np_probs(z, tau=1.0, mode='softmax'):
    z = np.asarray(z, dtype=np.float64) / tau
    if mode == 'sigmoid':
        return 1 / (1 + np.exp(-z))
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def np_inter(p_S, p_T):
    """1 - mean over rows of the Pearson correlation (np.corrcoef, an independent formula)."""
    return 1 - np.mean([np.corrcoef(p_S[p], p_T[p])[0, 1] for p in range(len(p_S))])


def np_intra(p_S, p_T):
    """1 - mean over classes (columns) of the Pearson correlation."""
    return np_inter(p_S.T, p_T.T)


def np_terms(z_S, z_T, tau=1.0, mode='softmax'):
    """Inter / intra terms from (P, C) logits."""
    p_S, p_T = np_probs(z_S, tau, mode), np_probs(z_T, tau, mode)
    return np_inter(p_S, p_T), np_intra(p_S, p_T)


def np_dist(z_S, z_T, beta=1.0, gamma=1.0, tau=1.0, mode='softmax'):
    inter, intra = np_terms(z_S, z_T, tau, mode)
    return tau**2 * (beta * inter + gamma * intra)


def flat(x):
    """(N, C, H, W) -> (N*H*W, C) by explicit indexing (rows n, h, w)."""
    N, C, H, W = x.shape
    return torch.stack([x[n, :, h, w] for n in range(N) for h in range(H) for w in range(W)])


def test_two_classes_swapped_rows_by_hand():
    # Each row of the teacher is the student's reversed, each column too: every correlation
    # is -1, so inter = intra = 2 and the loss is 4 (up to eps = 1e-8).
    s = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    t = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    assert float(DISTLoss()(s, t)) == pytest.approx(4.0, abs=1e-5)
    inter, intra = dist_terms(s.softmax(1), t.softmax(1))
    assert float(inter) == pytest.approx(2.0, abs=1e-5)
    assert float(intra) == pytest.approx(2.0, abs=1e-5)


@pytest.mark.parametrize('mode', ['softmax', 'sigmoid'])
def test_matches_numpy_corrcoef(mode):
    g = torch.Generator().manual_seed(0)
    s = torch.randn(7, 5, generator=g, dtype=torch.float64) * 2
    t = torch.randn(7, 5, generator=g, dtype=torch.float64) * 2
    expected = np_dist(s.numpy(), t.numpy(), mode=mode)
    assert float(DISTLoss(mode=mode)(s, t)) == pytest.approx(expected, abs=1e-6)
    # in float32 too
    assert float(DISTLoss(mode=mode)(s.float(), t.float())) == pytest.approx(expected, abs=1e-5)
    inter, intra = np_terms(s.numpy(), t.numpy(), mode=mode)
    got = dist_terms(*(torch.from_numpy(np_probs(z.numpy(), mode=mode)) for z in (s, t)))
    assert [float(v) for v in got] == pytest.approx([inter, intra], abs=1e-6)


def test_pearson_correlation_matches_corrcoef_and_constant_row_is_zero():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 6, generator=g, dtype=torch.float64)
    y = torch.randn(4, 6, generator=g, dtype=torch.float64)
    expected = [np.corrcoef(x[i].numpy(), y[i].numpy())[0, 1] for i in range(4)]
    assert pearson_correlation(x, y).tolist() == pytest.approx(expected, abs=1e-7)  # eps
    const = torch.ones(1, 6, dtype=torch.float64)
    assert pearson_correlation(const, y[:1]).tolist() == [0.0]


def test_identical_inputs_give_zero():
    g = torch.Generator().manual_seed(2)
    z = torch.randn(2, 6, 4, 5, generator=g)
    for loss in (DISTLoss(), DISTLoss(tau=4.0, beta=2.0, gamma=2.0), DISTLoss(mode='sigmoid')):
        # 0 up to eps = 1e-8 in the correlations' denominators (relative to each term's
        # variance, so a little more at tau = 4, where the probabilities are near-uniform).
        scale = loss.tau**2 * (loss.beta + loss.gamma)
        assert 0 <= float(loss(z, z)) / scale < 1e-5
        assert 0 <= float(loss(flat(z), flat(z))) / scale < 1e-5
    # and a different student is not zero
    assert float(DISTLoss()(torch.randn(2, 6, 4, 5, generator=g), z)) > 0.1


def test_beta_gamma_tau_loss_weight_are_respected():
    g = torch.Generator().manual_seed(3)
    s = torch.randn(9, 4, generator=g, dtype=torch.float64) * 3
    t = torch.randn(9, 4, generator=g, dtype=torch.float64) * 3
    for tau in (1.0, 3.0):
        inter, intra = np_terms(s.numpy(), t.numpy(), tau=tau)
        assert abs(inter - intra) > 1e-3        # the terms are told apart
        for beta, gamma, w in ((1.0, 1.0, 1.0), (0.3, 2.0, 0.7), (0.0, 1.0, 1.0),
                               (1.0, 0.0, 2.5)):
            loss = DISTLoss(beta=beta, gamma=gamma, tau=tau, loss_weight=w)
            expected = w * tau**2 * (beta * inter + gamma * intra)
            assert float(loss(s, t)) == pytest.approx(expected, abs=1e-6)
    # tau changes the distributions (not only the tau**2 factor)
    assert float(DISTLoss(tau=3.0)(s, t)) / 9 != pytest.approx(float(DISTLoss()(s, t)),
                                                              abs=1e-3)


def test_dense_maps_equal_flattened_rows():
    g = torch.Generator().manual_seed(4)
    s, t = torch.randn(2, 5, 3, 4, generator=g), torch.randn(2, 5, 3, 4, generator=g)
    loss = DISTLoss(tau=2.0)
    torch.testing.assert_close(loss(s, t), loss(flat(s), flat(t)))
    expected = np_dist(flat(s).numpy(), flat(t).numpy(), tau=2.0)
    assert float(loss(s, t)) == pytest.approx(expected, abs=1e-5)


def test_ignore_index_rows_are_left_out():
    g = torch.Generator().manual_seed(5)
    s, t = torch.randn(2, 4, 3, 4, generator=g), torch.randn(2, 4, 3, 4, generator=g)
    low = torch.randint(4, (2, 3, 4), generator=g)
    low[0, 0] = 255
    low[1, :, 1] = 255
    kept = low.reshape(-1) != 255
    expected = DISTLoss()(flat(s)[kept], flat(t)[kept])
    # labels at the logits' resolution, at 2x (as mmseg's gt_sem_seg) and flat (M,)
    full = low.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)
    for labels in (low, full):
        torch.testing.assert_close(DISTLoss()(s, t, labels=labels), expected)
    torch.testing.assert_close(DISTLoss()(flat(s), flat(t), labels=low.reshape(-1)), expected)
    # without labels every row counts (the published loss), which differs here
    assert float(DISTLoss()(s, t)) != pytest.approx(float(expected), abs=1e-4)
    # another ignore_index
    other = torch.where(low == 255, torch.tensor(-1), low)
    torch.testing.assert_close(DISTLoss(ignore_index=-1)(s, t, labels=other), expected)
    # the kept rows also match the numpy reference
    assert float(expected) == pytest.approx(
        np_dist(flat(s)[kept].numpy(), flat(t)[kept].numpy()), abs=1e-5)


def test_weight_mask_and_integer_weights_equal_repeated_rows():
    g = torch.Generator().manual_seed(6)
    s = torch.randn(6, 4, generator=g, dtype=torch.float64)
    t = torch.randn(6, 4, generator=g, dtype=torch.float64)
    mask = torch.tensor([True, False, True, True, False, True])
    loss = DISTLoss()
    torch.testing.assert_close(loss(s, t, weight=mask), loss(s[mask], t[mask]))
    # An integer weight k counts a row k times (weighted means and correlations).
    w = torch.tensor([1.0, 0.0, 2.0, 3.0, 1.0, 0.0])
    rep = torch.repeat_interleave(torch.arange(6), w.long())
    expected = np_dist(s[rep].numpy(), t[rep].numpy())
    assert float(loss(s, t, weight=w)) == pytest.approx(expected, abs=1e-6)
    assert float(loss(s, t, weight=w)) != pytest.approx(float(loss(s, t, weight=w > 0)),
                                                        abs=1e-4)
    # dense (N, H, W) weight
    sd, td = torch.randn(2, 4, 3, 3, generator=g), torch.randn(2, 4, 3, 3, generator=g)
    m = torch.rand(2, 3, 3, generator=g) > 0.3
    torch.testing.assert_close(loss(sd, td, weight=m),
                               loss(flat(sd)[m.reshape(-1)], flat(td)[m.reshape(-1)]))


def test_gradient_reaches_student_not_teacher():
    g = torch.Generator().manual_seed(7)
    s = torch.randn(2, 5, 4, 4, generator=g).requires_grad_()
    t = torch.randn(2, 5, 4, 4, generator=g).requires_grad_()
    labels = torch.randint(5, (2, 16, 16), generator=g)
    labels[:, :4] = 255
    DISTLoss(tau=2.0)(s, t, labels=labels).backward()
    assert s.grad is not None and torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0
    assert t.grad is None
    # ignored pixels get no gradient
    ignored = (labels[:, ::4, ::4] == 255)
    assert float(s.grad.permute(0, 2, 3, 1)[ignored].abs().sum()) == 0.0


def test_bf16_inputs_computed_in_float32():
    g = torch.Generator().manual_seed(8)
    s = torch.randn(2, 6, 4, 4, generator=g).bfloat16().requires_grad_()
    t = torch.randn(2, 6, 4, 4, generator=g).bfloat16()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = DISTLoss()(s, t)
    assert out.dtype == torch.float32 and torch.isfinite(out)
    torch.testing.assert_close(out, DISTLoss()(s.detach().float(), t.float()))
    out.backward()
    assert s.grad is not None and s.grad.dtype == torch.bfloat16
    assert torch.isfinite(s.grad.float()).all()


def test_constant_columns_and_rows_give_no_nan():
    # Teacher: class 2 has the same logit-sum structure at every row, so its probability is
    # (nearly) constant over the rows; student all zeros: every row uniform (constant rows and
    # columns). eps keeps every correlation finite, and 0 where a side is constant.
    t = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    s = torch.zeros(3, 3, requires_grad=True)
    out = DISTLoss()(s, t)
    assert torch.isfinite(out)
    assert float(out.detach()) == pytest.approx(2.0, abs=1e-5)   # every correlation is 0
    out.backward()
    assert torch.isfinite(s.grad).all()
    s2 = torch.randn(3, 3, generator=torch.Generator().manual_seed(11), requires_grad=True)
    out2 = DISTLoss()(s2, t)
    out2.backward()
    assert torch.isfinite(out2) and torch.isfinite(s2.grad).all()
    # An exactly constant teacher column contributes rho = 0: intra = 1 - (r0 + r1 + 0) / 3.
    p_T = torch.tensor([[0.5, 0.3, 0.2], [0.3, 0.5, 0.2], [0.6, 0.2, 0.2]])
    p_S = s2.detach().softmax(1)
    r = [np.corrcoef(p_S[:, c].double().numpy(), p_T[:, c].double().numpy())[0, 1]
         for c in range(2)]
    _, intra = dist_terms(p_S, p_T)
    assert float(intra) == pytest.approx(1 - sum(r) / 3, abs=1e-5)


def test_too_few_rows_or_classes():
    g = torch.Generator().manual_seed(9)
    s = torch.randn(1, 4, generator=g, requires_grad=True)
    t = torch.randn(1, 4, generator=g)
    # One row: the intra term is undefined and contributes 0; the inter term still counts.
    inter = np_inter(np_probs(s.detach().numpy()), np_probs(t.numpy()))
    out = DISTLoss(beta=1.0, gamma=5.0)(s, t)
    assert float(out.detach()) == pytest.approx(inter, abs=1e-5)
    out.backward()
    assert torch.isfinite(s.grad).all()
    # No kept row: a zero that keeps the graph.
    s4 = torch.randn(2, 4, 3, 3, generator=g, requires_grad=True)
    empty = DISTLoss()(s4, torch.randn(2, 4, 3, 3, generator=g),
                       labels=torch.full((2, 3, 3), 255))
    assert float(empty.detach()) == 0.0 and empty.requires_grad
    empty.backward()
    assert float(s4.grad.abs().sum()) == 0.0
    # One class: the softmax is constant -> a clear error; sigmoid: inter undefined, 0.
    with pytest.raises(ValueError, match="at least 2 classes, or use mode='sigmoid'"):
        DISTLoss()(torch.randn(5, 1), torch.randn(5, 1))
    z_S, z_T = torch.randn(6, 1, generator=g), torch.randn(6, 1, generator=g)
    intra = np_intra(np_probs(z_S.numpy(), mode='sigmoid'), np_probs(z_T.numpy(), mode='sigmoid'))
    assert float(DISTLoss(mode='sigmoid')(z_S, z_T)) == pytest.approx(intra, abs=1e-5)


def test_constructor_and_shape_errors():
    with pytest.raises(ValueError, match='positive temperature'):
        DISTLoss(tau=0.0)
    with pytest.raises(ValueError, match='mode'):
        DISTLoss(mode='sparsemax')
    with pytest.raises(ValueError, match='beta'):
        DISTLoss(beta=-1.0)
    with pytest.raises(TypeError, match='gamma'):
        DISTLoss(gamma='1')
    with pytest.raises(ValueError, match='DISTLoss needs student and teacher logits of one'):
        DISTLoss()(torch.randn(2, 4, 3, 3), torch.randn(2, 5, 3, 3))
    with pytest.raises(ValueError, match='DISTLoss: labels must lie in'):
        DISTLoss()(torch.randn(4, 3), torch.randn(4, 3), labels=torch.tensor([0, 1, 7, 2]))
    assert DISTLoss.requires_same_shape and DISTLoss.requires_equal_num_classes


def test_registry_build_and_arguments():
    loss = build_component(dict(type='DISTLoss', beta=2.0, gamma=2.0, tau=4.0,
                                loss_weight=0.4))
    assert isinstance(loss, DISTLoss)
    assert (loss.beta, loss.gamma, loss.tau, loss.loss_weight) == (2.0, 2.0, 4.0, 0.4)
    assert loss.argument_names() == ['preds_S', 'preds_T', 'labels', 'weight']
    assert loss.required_arguments() == ['preds_S', 'preds_T']


def test_inner_loss_of_dense_head_logit_loss():
    C = 4
    g = torch.Generator().manual_seed(10)
    shapes = ((8, 8), (4, 4))
    s = [torch.randn(2, C, h, w, generator=g).requires_grad_() for h, w in shapes]
    t = [torch.randn(2, C, h, w, generator=g).requires_grad_() for h, w in shapes]
    labels = [torch.full((2, h * w), C) for h, w in shapes]      # C = background
    labels[0][0, :12] = torch.arange(12) % C
    labels[1][1, 3:9] = torch.arange(6) % C
    loss_fn = DenseHeadLogitLoss(loss=dict(type='DISTLoss', mode='sigmoid'), num_classes=C,
                                 select='positive', max_locations=None)
    assert isinstance(loss_fn.loss, DISTLoss)
    out = loss_fn(s, t, labels)
    assert out.shape == () and torch.isfinite(out) and float(out.detach()) > 0
    assert loss_fn.num_selected == 18
    out.backward()
    assert all(x.grad is not None and torch.isfinite(x.grad).all() for x in s)
    assert s[0].grad.abs().sum() > 0 and s[1].grad.abs().sum() > 0
    assert all(x.grad is None for x in t)
    # It is DIST on the 18 positive rows.
    rows_S = torch.cat([flat(x.detach()) for x in s])
    rows_T = torch.cat([flat(x.detach()) for x in t])
    pos = torch.cat([x.reshape(-1) for x in labels]) < C
    torch.testing.assert_close(out.detach(), DISTLoss(mode='sigmoid')(rows_S[pos], rows_T[pos]))
    # With the default (softmax) DIST and confident locations too: the background rows reach
    # DIST labelled ignore_index and are left out, so only the positives count again.
    loss_fn = DenseHeadLogitLoss(loss=dict(type='DISTLoss'), num_classes=C, score_thr=0.5,
                                 max_locations=None)
    out = loss_fn(s, t, labels)
    assert loss_fn.num_selected > 18 and torch.isfinite(out)
    torch.testing.assert_close(out.detach(), DISTLoss()(rows_S[pos], rows_T[pos]))
    # pass_labels=False distils the confident background locations as well.
    loss_fn = DenseHeadLogitLoss(loss=dict(type='DISTLoss'), num_classes=C, score_thr=0.5,
                                 max_locations=None, pass_labels=False)
    out = loss_fn(s, t, labels)
    out.backward()
    assert torch.isfinite(out) and float(out.detach()) > 0
    assert not math.isclose(float(out.detach()), float(DISTLoss()(rows_S[pos], rows_T[pos])),
                            abs_tol=1e-4)
