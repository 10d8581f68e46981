import pytest
import torch
import torch.nn.functional as F

from mmkd.models.losses.kd import kd_divergence
from mmkd.models.losses.topkd import (TopKDLoss, batch_contrastive_loss, sample_rows,
                                      top_k_decoupled_terms, top_k_scaling)
from mmkd.registry import build_component


def test_scaling_changes_only_top_k_and_ground_truth():
    torch.manual_seed(0)
    z = torch.randn(6, 12)
    k = 3
    top = z.topk(k, dim=1).indices
    labels = torch.tensor([int(top[0, 0]), 0, 1, 2, 3, 4])     # sample 0: gt inside the top-k
    out = top_k_scaling(z, labels, k=k, gamma=0.5, delta_scale=0.2)
    expected_changed = torch.zeros_like(z, dtype=torch.bool).scatter(1, top, True)
    expected_changed[torch.arange(6), labels] = True
    assert torch.equal(out[~expected_changed], z[~expected_changed])       # bit-identical
    assert bool((out[expected_changed] != z[expected_changed]).all())
    assert torch.equal(top_k_scaling(z, None, k, 0.5, 0.2)[~expected_changed],
                       z[~expected_changed])


def test_scaling_rank_weights_decrease_and_gt_outside_gets_rank_k():
    z = torch.tensor([[9.0, 7.0, 5.0, 3.0, 1.0, 0.5, 0.25]])
    gamma, k = 0.6, 4
    out = top_k_scaling(z, torch.tensor([5]), k=k, gamma=gamma, delta_scale=0.0)
    w = (out / z)[0]
    expected = [1 + gamma * (k - r + 1) / k for r in range(1, k + 1)]   # 1.6, 1.45, 1.3, 1.15
    assert w[:k].tolist() == pytest.approx(expected, rel=1e-6)
    assert all(a > b for a, b in zip(w[:k].tolist(), w[1:k].tolist()))
    assert float(w[5]) == pytest.approx(1 + gamma / k, rel=1e-6)        # gt at rank k
    assert w[4].item() == 1.0 and w[6].item() == 1.0


def test_scaling_delta_is_gap_between_top_and_rest_means():
    torch.manual_seed(1)
    z = torch.randn(4, 9)
    k, d = 3, 0.3
    out = top_k_scaling(z, k=k, gamma=0.0, delta_scale=d)
    top_vals, top_idx = z.topk(k, dim=1)
    rest_mean = (z.sum(1) - top_vals.sum(1)) / (9 - k)
    delta = d * (top_vals.mean(1) - rest_mean)
    torch.testing.assert_close(out.gather(1, top_idx) - top_vals,
                               delta[:, None].expand(4, k))
    # k equal to the class count: no rest, no shift.
    torch.testing.assert_close(top_k_scaling(z, k=9, gamma=0.0, delta_scale=d), z)


def test_tdl_zero_for_identical_logits_and_positive_otherwise():
    torch.manual_seed(2)
    z = torch.randn(5, 20)
    assert float(top_k_decoupled_terms(z, z, k=5).abs().max()) < 1e-6
    assert bool((top_k_decoupled_terms(torch.randn(5, 20), z, k=5) > 0).all())
    torch.testing.assert_close(top_k_decoupled_terms(-z, z, k=5), torch.full((5, ), 2.0))
    # A positive rescale of every group leaves the cosines at 1.
    assert float(top_k_decoupled_terms(3 * z, z, k=5).abs().max()) < 1e-6


def test_tdl_groups_by_teacher_and_weights():
    t = torch.tensor([[5.0, 4.0, 0.0, 0.5, -3.0, -4.0]])     # P = {0, 1}, N = {4, 5}, R = {2, 3}
    s = torch.tensor([[1.0, 2.0, 1.0, 1.0, -4.0, -3.0]])
    a, b = 2.0, 0.5

    def cos(x, y):
        return float(F.cosine_similarity(torch.tensor([x], dtype=torch.float),
                                         torch.tensor([y], dtype=torch.float)))

    expected = 1 - (a * cos([1, 2], [5, 4]) + b * cos([-3, -4], [-4, -3]) +
                    cos([1, 1], [0, 0.5])) / (a + b + 1)
    out = top_k_decoupled_terms(s, t, k=2, pos_weight=a, neg_weight=b)
    assert float(out) == pytest.approx(expected, rel=1e-6)
    # 2k >= C: the negative group shrinks to C - k classes, the empty rest drops out.
    t4, s4 = t[:, :4], s[:, :4]                                # P = {0, 1}, N = {3, 2}
    expected4 = 1 - (a * cos([1, 2], [5, 4]) + b * cos([1, 1], [0.5, 0.0])) / (a + b)
    assert float(top_k_decoupled_terms(s4, t4, 2, a, b)) == pytest.approx(expected4, rel=1e-6)
    assert float(top_k_decoupled_terms(s4, t4, 4, a, b)) == pytest.approx(
        1 - cos(s4[0].tolist(), t4[0].tolist()), rel=1e-6)


def test_topkd_loss_zero_when_student_equals_scaled_teacher():
    torch.manual_seed(3)
    t = torch.randn(7, 10)
    labels = torch.randint(10, (7, ))
    loss = TopKDLoss(mode='sigmoid')                            # raw logits, no centring
    student = top_k_scaling(t, labels, loss.k, loss.scale_gamma, loss.scale_delta)
    assert float(loss(student, t, labels)) == pytest.approx(0.0, abs=1e-6)
    assert float(loss(t, t, labels)) > 1e-4                     # the target is the scaled one
    # Without scaling, identical logits give 0 in both modes.
    for mode in ('softmax', 'sigmoid'):
        plain = TopKDLoss(scale_gamma=0.0, scale_delta=0.0, mode=mode)
        assert float(plain(t, t, labels)) == pytest.approx(0.0, abs=1e-6)


def test_topkd_softmax_mode_ignores_per_sample_logit_shift():
    torch.manual_seed(4)
    s, t = torch.randn(5, 8), torch.randn(5, 8)
    shift = torch.randn(5, 1) * 10
    loss = TopKDLoss(k=3, contrastive_weight=0.5, kd_weight=1.0)
    assert float(loss(s + shift, t - shift, generator=0)) == pytest.approx(
        float(loss(s, t, generator=0)), rel=1e-4)


def test_contrastive_term_respects_cap():
    # No timing here (tools/benchmark_losses.py times TopKD with the cap on dense maps): the
    # capped value must equal the InfoNCE of the sampled rows alone, so nothing else entered
    # the similarity matrix.
    torch.manual_seed(5)
    s, t = torch.randn(20000, 10), torch.randn(20000, 10)
    rows = sample_rows(20000, 64, torch.Generator().manual_seed(7))
    assert rows.shape == (64, ) and rows.unique().numel() == 64
    assert sample_rows(64, 64) is None
    capped = batch_contrastive_loss(s, t, 0.1, max_samples=64,
                                    generator=torch.Generator().manual_seed(7))
    explicit = batch_contrastive_loss(s[rows], t[rows], 0.1, max_samples=64)
    assert float(capped) == pytest.approx(float(explicit), rel=1e-6)
    # Through the module, on a dense map of 20000 locations, seeded: the same 64 locations.
    dense_s, dense_t = torch.randn(2, 10, 100, 100), torch.randn(2, 10, 100, 100)
    loss = TopKDLoss(tdl_weight=0.0, contrastive_weight=1.0, max_contrastive_samples=64)
    first = loss(dense_s, dense_t, generator=3)
    rows = sample_rows(20000, 64, torch.Generator().manual_seed(3))
    flat_s, flat_t = (x.permute(0, 2, 3, 1).reshape(-1, 10)[rows] for x in (dense_s, dense_t))
    assert float(first) == pytest.approx(float(loss(flat_s, flat_t)), rel=1e-5)
    assert float(first) == float(loss(dense_s, dense_t, generator=3))
    assert float(first) != float(loss(dense_s, dense_t, generator=4))


def test_contrastive_term_values():
    emb = torch.randn(6, 5)
    matched = float(batch_contrastive_loss(emb, emb, tau=0.05))
    shuffled = float(batch_contrastive_loss(emb, emb[torch.tensor([1, 2, 3, 4, 5, 0])], 0.05))
    assert matched < shuffled
    # InfoNCE of one sample against itself only: log(1) = 0.
    assert float(batch_contrastive_loss(emb[:1], torch.randn(1, 5))) == pytest.approx(0.0)


def test_topkd_kd_term_uses_scaled_teacher():
    torch.manual_seed(6)
    s, t = torch.randn(4, 6), torch.randn(4, 6)
    loss = TopKDLoss(k=2, tdl_weight=0.0, kd_weight=1.0, kd_tau=2.0, mode='sigmoid')
    expected = kd_divergence(s, top_k_scaling(t, None, 2, 0.5, 0.1), 2.0, 'sigmoid').mean()
    assert float(loss(s, t)) == pytest.approx(float(expected), rel=1e-6)


@pytest.mark.parametrize('mode', ['softmax', 'sigmoid'])
def test_topkd_dense_with_mask_equals_flattened_kept_pixels(mode):
    torch.manual_seed(7)
    s, t = torch.randn(2, 8, 3, 4), torch.randn(2, 8, 3, 4)
    labels = torch.randint(8, (2, 3, 4))
    labels[1, 2] = 255
    mask = torch.rand(2, 3, 4) > 0.3
    keep = mask & (labels != 255)
    flat_s, flat_t = s.permute(0, 2, 3, 1)[keep], t.permute(0, 2, 3, 1)[keep]
    loss = TopKDLoss(k=3, contrastive_weight=0.5, kd_weight=0.5, mode=mode)
    assert float(loss(s, t, labels, weight=mask)) == pytest.approx(
        float(loss(flat_s, flat_t, labels[keep])), rel=1e-5)


def test_topkd_gradients_half_and_loss_weight():
    s = torch.randn(2, 10, 3, 3, requires_grad=True)
    t = torch.randn(2, 10, 3, 3, requires_grad=True)
    labels = torch.randint(10, (2, 3, 3))
    loss = TopKDLoss(contrastive_weight=0.5, kd_weight=0.5)
    loss(s, t, labels).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None
    out = loss(s.detach().half(), t.detach().half(), labels)
    assert out.dtype == torch.float32 and torch.isfinite(out)
    s, t = s.detach(), t.detach()
    base = float(loss(s, t, labels, generator=0))
    scaled = TopKDLoss(loss_weight=4.0, contrastive_weight=0.5, kd_weight=0.5)
    assert float(scaled(s, t, labels, generator=0)) == pytest.approx(4 * base, rel=1e-6)


def test_topkd_errors_and_registry():
    s, t = torch.rand(4, 10), torch.rand(4, 10)
    with pytest.raises(ValueError, match=r'one shape.*same classes'):
        TopKDLoss()(s, torch.rand(4, 20))
    with pytest.raises(ValueError, match=r'labels must have one entry per sample.*\(4,\)'):
        TopKDLoss()(s, t, torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match=r'k=5 must lie in \[1, 3\].*set k <= 3'):
        TopKDLoss()(torch.rand(4, 3), torch.rand(4, 3))
    with pytest.raises(ValueError, match=r'labels must have shape \(4,\)'):
        top_k_scaling(t, torch.zeros(3, dtype=torch.long), k=2)
    with pytest.raises(ValueError, match=r'k >= 1'):
        TopKDLoss(k=0)
    with pytest.raises(ValueError, match="'softmax' or 'sigmoid'"):
        TopKDLoss(mode='relu')
    with pytest.raises(ValueError, match=r'centre=True changes sigmoid.*kd_weight=0 or centre'):
        TopKDLoss(mode='sigmoid', centre=True, kd_weight=1.0)
    with pytest.raises(ValueError, match='positive temperatures'):
        TopKDLoss(contrastive_tau=0.0)
    assert TopKDLoss.requires_equal_num_classes is True
    built = build_component(dict(type='TopKDLoss', k=3, contrastive_weight=0.1))
    assert isinstance(built, TopKDLoss) and built.k == 3 and built.contrastive_weight == 0.1


def test_sigmoid_mode_gradient_is_weak_at_a_shared_prior_offset_and_centring_restores_it():
    """The hand-made case of the docstring: a RetinaNet-style prior (-4.6) shared by every
    logit makes raw logit vectors nearly parallel whatever the classes; centring does not."""
    def case(**kwargs):
        s = torch.full((1, 10), -4.6)
        s[0, 3] = 2.0
        s.requires_grad_(True)
        t = torch.full((1, 10), -4.6)
        t[0, 7] = 2.0
        loss = TopKDLoss(k=5, **kwargs)(s, t)
        grad, = torch.autograd.grad(loss, s)
        return float(loss), float(grad.norm())

    raw, centred = case(mode='sigmoid'), case(mode='sigmoid', centre=True)
    assert raw == pytest.approx((0.378, 0.0638), abs=1e-3)
    assert centred == pytest.approx((1.283, 0.430), abs=1e-3)
    # Without a KD term the mode decides nothing but the default centring: the benchmark's
    # centred row was measured as mode='softmax'.
    assert case(mode='softmax') == centred
    assert case(mode='softmax', centre=False) == raw
    kd = kd_divergence(torch.tensor([[-4.6] * 3 + [2.0] + [-4.6] * 6], requires_grad=True),
                       torch.tensor([[-4.6] * 7 + [2.0] + [-4.6] * 2]), 1.0, 'sigmoid')
    assert float(kd.mean()) == pytest.approx(5.748, abs=1e-3)
