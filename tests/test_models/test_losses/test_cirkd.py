import math
import os
import socket
import time

import pytest
import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp

from mmkd.models.losses.cirkd import CIRKDLoss, memory_entries, sample_keys
from mmkd.registry import build_component

# ---------------------------------------------------------------- independent hand computations


def _unit(x, n, y, xx):
    v = [float(a) for a in x[n, :, y, xx]]
    norm = max(math.sqrt(sum(a * a for a in v)), 1e-12)   # F.normalize's eps
    return [a / norm for a in v]


def _dot(u, v):
    return sum(a * b for a, b in zip(u, v))


def _softmax(logits):
    m = max(logits)
    e = [math.exp(z - m) for z in logits]
    total = sum(e)
    return [a / total for a in e]


def _kl(logits_T, logits_S):
    p, q = _softmax(logits_T), _softmax(logits_S)
    return sum(a * (math.log(a) - math.log(b)) for a, b in zip(p, q) if a > 0)


def hand_minibatch(s, t, tau):
    N, _, h, w = s.shape
    pixels = [(y, x) for y in range(h) for x in range(w)]
    total = 0.0
    for i in range(N):
        for j in range(N):
            for (py, px) in pixels:
                a_S, a_T = _unit(s, i, py, px), _unit(t, i, py, px)
                row_S = [_dot(a_S, _unit(s, j, qy, qx)) / tau for (qy, qx) in pixels]
                row_T = [_dot(a_T, _unit(t, j, qy, qx)) / tau for (qy, qx) in pixels]
                total += _kl(row_T, row_S)
    return total / (N * N * len(pixels))


def hand_memory(proj_s, t, labels, keys, tau, ignore=255):
    """labels at the features' size; keys a list of vectors."""
    N, _, h, w = t.shape
    total, anchors = 0.0, 0
    for n in range(N):
        for y in range(h):
            for x in range(w):
                if int(labels[n, y, x]) == ignore:
                    continue
                a_S, a_T = _unit(proj_s, n, y, x), _unit(t, n, y, x)
                total += _kl([_dot(a_T, k) / tau for k in keys],
                             [_dot(a_S, k) / tau for k in keys])
                anchors += 1
    return total / anchors


def _normalised(v):
    norm = math.sqrt(sum(a * a for a in v))
    return [a / norm for a in v]


def hand_entries(t, labels, num_classes, ignore=255):
    """Every labelled normalised teacher pixel per class, and per (image, class) the
    normalised mean of the normalised pixels."""
    N, _, h, w = t.shape
    pixels = {c: [] for c in range(num_classes)}
    regions = {c: [] for c in range(num_classes)}
    for n in range(N):
        per_class = {}
        for y in range(h):
            for x in range(w):
                c = int(labels[n, y, x])
                if c != ignore:
                    per_class.setdefault(c, []).append(_unit(t, n, y, x))
        for c in sorted(per_class):
            pixels[c] += per_class[c]
            vs = per_class[c]
            regions[c].append(_normalised([sum(col) / len(vs) for col in zip(*vs)]))
    return pixels, regions


def memory_only(**kwargs):
    cfg = dict(student_channels=3, teacher_channels=4, num_classes=3, minibatch_weight=0.0,
               pixel_weight=1.0, region_weight=1.0)
    cfg.update(kwargs)
    return CIRKDLoss(**cfg)


def upsample(labels, k):
    return labels.repeat_interleave(k, dim=1).repeat_interleave(k, dim=2)


# ---------------------------------------------------------------- (b) mini-batch term


@pytest.mark.parametrize('tau', [0.1, 0.5])
def test_minibatch_term_matches_explicit_loops_with_different_channels(tau):
    torch.manual_seed(0)
    s, t = torch.randn(3, 3, 2, 3), torch.randn(3, 5, 2, 3)
    loss = CIRKDLoss(3, 5, num_classes=2, loss_weight=2.0, pixel_weight=0.0,
                     region_weight=0.0, tau=tau)
    assert loss.projector is None and not hasattr(loss, 'pixel_queue')
    value = loss(s, t)    # no labels needed without the memory terms
    assert value.item() == pytest.approx(2.0 * hand_minibatch(s, t, tau), rel=1e-4)
    assert float(loss.last_terms['minibatch']) == pytest.approx(hand_minibatch(s, t, tau),
                                                                rel=1e-4)
    # Invariant to a positive scale per pixel (normalised), zero when the relations agree.
    scale = torch.rand(3, 1, 2, 3) + 0.5
    assert float(loss(s * scale, t)) == pytest.approx(value.item(), rel=1e-5)
    same = CIRKDLoss(3, 6, num_classes=2, pixel_weight=0.0, region_weight=0.0)
    assert abs(float(same(s, 3.0 * s.repeat(1, 2, 1, 1)))) < 1e-5


def hand_avg_pool_2x2_ceil(x):
    """2x2 mean pooling, stride 2, ceil mode: a window at the border averages its pixels
    inside the map."""
    N, C, h, w = x.shape
    out = torch.zeros(N, C, (h + 1) // 2, (w + 1) // 2)
    for y in range(out.shape[2]):
        for xx in range(out.shape[3]):
            out[:, :, y, xx] = x[:, :, 2 * y:2 * y + 2, 2 * xx:2 * xx + 2].mean((2, 3))
    return out


def test_pooling_relates_the_2x2_means_as_the_official_option():
    torch.manual_seed(3)
    s, t = torch.randn(2, 3, 3, 4), torch.randn(2, 5, 3, 4)   # odd height: a ceil window
    loss = CIRKDLoss(3, 5, num_classes=2, pixel_weight=0.0, region_weight=0.0, pooling=True)
    expected = hand_minibatch(hand_avg_pool_2x2_ceil(s), hand_avg_pool_2x2_ceil(t), 0.1)
    assert float(loss(s, t)) == pytest.approx(expected, rel=1e-4)
    plain = CIRKDLoss(3, 5, num_classes=2, pixel_weight=0.0, region_weight=0.0)
    assert float(plain(s, t)) == pytest.approx(hand_minibatch(s, t, 0.1), rel=1e-4)
    assert float(plain(s, t)) != pytest.approx(expected, rel=1e-2)
    s.requires_grad_(True)
    loss(s, t).backward()
    assert s.grad.abs().sum() > 0
    with pytest.raises(ValueError, match='pooling must be True or False'):
        CIRKDLoss(3, 5, num_classes=2, pooling=2)


# ---------------------------------------------------------------- (c) memory terms


def test_memory_terms_against_a_fixed_queue_use_the_filled_slots_only():
    torch.manual_seed(1)
    loss = memory_only(pixel_memory_size=4, region_memory_size=2, pixel_contrast_size=4,
                       region_contrast_size=2, contrast_tau=0.2, pixel_weight=0.3,
                       region_weight=0.7).eval()                     # eval: no enqueue
    pixel = torch.nn.functional.normalize(torch.randn(3, 4, 4), dim=2)
    region = torch.nn.functional.normalize(torch.randn(3, 2, 4), dim=2)
    loss.pixel_queue.copy_(pixel)
    loss.region_queue.copy_(region)
    loss.pixel_queue_filled.copy_(torch.tensor([4, 0, 2]))     # class 1 empty, class 2 half
    loss.region_queue_filled.copy_(torch.tensor([1, 2, 0]))
    s, t = torch.randn(2, 3, 2, 3), torch.randn(2, 4, 2, 3)
    labels = torch.tensor([[[0, 1, 255], [2, 2, 0]], [[255, 255, 1], [0, 1, 2]]])
    value = loss(s, t, upsample(labels, 4))                    # labels at the input size
    with torch.no_grad():
        proj = loss.projector(s)
    pixel_keys = [pixel[0, i].tolist() for i in range(4)] + [pixel[2, i].tolist()
                                                             for i in range(2)]
    region_keys = [region[0, 0].tolist(), region[1, 0].tolist(), region[1, 1].tolist()]
    expected_pixel = hand_memory(proj, t, labels, pixel_keys, 0.2)
    expected_region = hand_memory(proj, t, labels, region_keys, 0.2)
    assert float(loss.last_terms['pixel']) == pytest.approx(expected_pixel, rel=1e-4)
    assert float(loss.last_terms['region']) == pytest.approx(expected_region, rel=1e-4)
    assert value.item() == pytest.approx(0.3 * expected_pixel + 0.7 * expected_region, rel=1e-4)
    # Eval mode leaves the memory as it is.
    assert loss.pixel_queue_filled.tolist() == [4, 0, 2] and torch.equal(loss.pixel_queue, pixel)


def test_training_step_enqueues_before_the_loss():
    torch.manual_seed(2)
    loss = memory_only(pixel_memory_size=64, region_memory_size=8, pixel_contrast_size=64,
                       region_contrast_size=8, pixels_per_class=64)
    s, t = torch.randn(2, 3, 3, 3), torch.randn(2, 4, 3, 3)
    labels = torch.tensor([[[0, 0, 1], [1, 255, 2], [2, 2, 0]],
                           [[1, 1, 1], [255, 255, 0], [1, 0, 0]]])
    value = loss(s, t, labels, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        proj = loss.projector(s)                  # train-mode BN: the same batch statistics
    pixels, regions = hand_entries(t, labels, 3)
    pixel_keys = [k for c in range(3) for k in pixels[c]]
    region_keys = [k for c in range(3) for k in regions[c]]
    assert loss.pixel_queue_filled.tolist() == [len(pixels[c]) for c in range(3)] == [6, 6, 3]
    assert loss.region_queue_filled.tolist() == [2, 2, 1]
    expected = hand_memory(proj, t, labels, pixel_keys, 0.1) + hand_memory(
        proj, t, labels, region_keys, 0.1)
    assert value.item() == pytest.approx(expected, rel=1e-4)
    # Regions in the order image, class; the exact normalised means.
    for c in range(3):
        got = loss.region_queue[c, :len(regions[c])]
        assert torch.allclose(got, torch.tensor(regions[c]), atol=1e-6)


def test_sample_keys_draws_distinct_filled_slots_per_class_seeded():
    queue = torch.arange(3 * 6, dtype=torch.float32).reshape(3, 6, 1)   # value = slot id
    filled = torch.tensor([3, 0, 6])
    seen = {0: set(), 2: set()}
    for seed in range(40):
        keys = sample_keys(queue, filled, 2, torch.Generator().manual_seed(seed)).flatten()
        assert keys.numel() == 4
        ids = [int(k) for k in keys]
        cls0, cls2 = ids[:2], ids[2:]
        assert len(set(cls0)) == 2 and set(cls0) <= {0, 1, 2}
        assert len(set(cls2)) == 2 and set(cls2) <= set(range(12, 18))
        seen[0] |= set(cls0)
        seen[2] |= set(cls2)
    assert seen[0] == {0, 1, 2} and seen[2] == set(range(12, 18))
    a = sample_keys(queue, filled, 2, torch.Generator().manual_seed(7))
    assert torch.equal(a, sample_keys(queue, filled, 2, torch.Generator().manual_seed(7)))
    # More wanted than filled: every filled slot, once.
    keys = sample_keys(queue, filled, 10).flatten().tolist()
    assert sorted(keys) == [0.0, 1.0, 2.0] + [float(v) for v in range(12, 18)]


def test_seeded_sampling_makes_the_loss_reproducible():
    torch.manual_seed(3)
    s, t = torch.randn(2, 3, 4, 4), torch.randn(2, 4, 4, 4)
    labels = torch.randint(0, 3, (2, 4, 4))
    values = []
    for seed in (0, 0, 1):
        torch.manual_seed(0)   # the same projector
        loss = memory_only(pixel_memory_size=20, region_memory_size=4, pixel_contrast_size=3,
                           region_contrast_size=1, pixels_per_class=2)
        values.append(loss(s, t, labels, generator=torch.Generator().manual_seed(seed)))
    assert torch.equal(values[0], values[1]) and not torch.equal(values[0], values[2])


# ---------------------------------------------------------------- queues


def _rows(*values):
    return torch.tensor([[float(v), 0.0, 0.0, 0.0] for v in values])


def test_push_is_fifo_and_wraps_around():
    loss = memory_only(pixel_memory_size=5, region_memory_size=2)
    first = lambda c: loss.pixel_queue[c, :, 0].tolist()  # noqa: E731
    loss.push('pixel', _rows(1, 2, 3), torch.tensor([0, 0, 0]))
    assert first(0) == [1, 2, 3, 0, 0] and loss.pixel_queue_ptr[0] == 3
    assert loss.pixel_queue_filled.tolist() == [3, 0, 0]
    loss.push('pixel', _rows(4, 5, 6), torch.tensor([0, 0, 0]))
    assert first(0) == [6, 2, 3, 4, 5] and loss.pixel_queue_ptr[0] == 1
    assert loss.pixel_queue_filled.tolist() == [5, 0, 0]
    # More than the queue at once: the newest 5 stay, the oldest of them at the pointer.
    loss.push('pixel', _rows(*range(7, 14)), torch.zeros(7, dtype=torch.long))
    assert first(0) == [11, 12, 13, 9, 10] and loss.pixel_queue_ptr[0] == 3
    # Classes interleaved: each class keeps its own order and pointer.
    loss.push('pixel', _rows(20, 30, 21, 31, 22), torch.tensor([2, 1, 2, 1, 2]))
    assert first(1) == [30, 31, 0, 0, 0] and first(2) == [20, 21, 22, 0, 0]
    assert loss.pixel_queue_ptr.tolist() == [3, 2, 3] and first(0) == [11, 12, 13, 9, 10]
    # Region queue: one slot per entry, wrapping too.
    loss.push('region', _rows(1, 2, 3), torch.tensor([1, 1, 1]))
    assert loss.region_queue[1, :, 0].tolist() == [3, 2]
    assert loss.region_queue_ptr.tolist() == [0, 1, 0]
    assert loss.region_queue_filled.tolist() == [0, 2, 0]


def test_only_labelled_classes_enqueue_and_ignored_pixels_are_left_out():
    torch.manual_seed(4)
    loss = memory_only(pixel_memory_size=50, region_memory_size=5, pixels_per_class=3)
    t = torch.rand(2, 4, 4, 4)
    t[:, 3] = 0.0
    labels = torch.full((2, 4, 4), 255)
    labels[0, :2] = 1          # 8 pixels of class 1 in image 0
    labels[1, 3, :2] = 1       # 2 pixels in image 1
    t[:, 3][labels == 255] = 1000.0    # ignored pixels point along channel 3
    loss(torch.randn(2, 3, 4, 4), t, labels, generator=torch.Generator().manual_seed(0))
    assert loss.pixel_queue_filled.tolist() == [0, 3 + 2, 0]
    assert loss.region_queue_filled.tolist() == [0, 2, 0]
    assert not loss.pixel_queue[[0, 2]].any() and not loss.region_queue[[0, 2]].any()
    assert not loss.pixel_queue[1, :, 3].any() and not loss.region_queue[1, :, 3].any()
    unit = torch.nn.functional.normalize(t, dim=1)
    labelled = [unit[n, :, y, x] for n in range(2) for y in range(4) for x in range(4)
                if labels[n, y, x] == 1]
    entries = loss.pixel_queue[1, :5]
    for e in entries:      # every entry is one labelled pixel, none twice
        assert sum(bool(torch.allclose(e, p, atol=1e-6)) for p in labelled) == 1
    assert len({tuple(e.tolist()) for e in entries}) == 5
    for n in range(2):
        mean = unit[n].permute(1, 2, 0)[labels[n] == 1].mean(0)
        assert torch.allclose(loss.region_queue[1, n],
                              torch.nn.functional.normalize(mean, dim=0), atol=1e-6)


def test_memory_entries_pick_random_pixels_per_image_and_class():
    t = torch.nn.functional.normalize(torch.randn(1, 2, 4, 4), dim=1)
    labels = torch.zeros(1, 4, 4, dtype=torch.long)
    chosen = set()
    for seed in range(20):
        feats, classes = memory_entries(t, labels, 2, 3, generator=torch.Generator()
                                        .manual_seed(seed))['pixel']
        assert feats.shape == (3, 2) and classes.tolist() == [0, 0, 0]
        chosen |= {tuple(f.tolist()) for f in feats}
    assert len(chosen) > 10   # not always the same pixels


def test_a_step_without_labelled_pixels_is_zero_and_still_enqueues_nothing():
    loss = memory_only(pixel_memory_size=8, region_memory_size=2)
    s = torch.randn(2, 3, 2, 2, requires_grad=True)
    value = loss(s, torch.randn(2, 4, 2, 2), torch.full((2, 2, 2), 255))
    assert value.item() == 0.0 and torch.isfinite(value)
    value.backward()
    assert loss.pixel_queue_filled.sum() == 0 and loss.region_queue_filled.sum() == 0


# ---------------------------------------------------------------- gradients and state


@pytest.mark.parametrize('minibatch_weight', [1.0, 0.0])
def test_gradients_reach_the_student_and_projector_never_the_teacher(minibatch_weight):
    torch.manual_seed(5)
    loss = CIRKDLoss(3, 4, num_classes=3, minibatch_weight=minibatch_weight,
                     pixel_memory_size=16, region_memory_size=4)
    s = torch.randn(2, 3, 4, 4, requires_grad=True)
    t = torch.randn(2, 4, 4, 4, requires_grad=True)
    labels = torch.randint(0, 3, (2, 16, 16))
    loss(s, t, labels).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0 and torch.isfinite(s.grad).all()
    assert t.grad is None
    for name, param in loss.projector.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    assert not loss.pixel_queue.requires_grad and loss.pixel_queue.grad_fn is None


def test_queues_are_persistent_buffers_restored_by_load_state_dict():
    torch.manual_seed(6)
    loss = CIRKDLoss(3, 4, num_classes=3, pixel_memory_size=16, region_memory_size=4)
    s, t = torch.randn(2, 3, 4, 4), torch.randn(2, 4, 4, 4)
    labels = torch.randint(0, 3, (2, 4, 4))
    for _ in range(3):
        loss(s, t, labels)
    state = loss.state_dict()
    for kind in ('pixel', 'region'):
        for suffix in ('', '_ptr', '_filled'):
            assert f'{kind}_queue{suffix}' in state
    assert dict(loss.named_buffers())['pixel_queue'].shape == (3, 16, 4)
    assert state['region_queue'].shape == (3, 4, 4)
    fresh = CIRKDLoss(3, 4, num_classes=3, pixel_memory_size=16, region_memory_size=4)
    assert fresh.pixel_queue_filled.sum() == 0
    fresh.load_state_dict(state)
    for name, value in state.items():
        assert torch.equal(fresh.state_dict()[name], value), name
    # The restored loss continues exactly as the original does.
    loss(s, t, labels, generator=torch.Generator().manual_seed(0))
    fresh(s, t, labels, generator=torch.Generator().manual_seed(0))
    for name, value in loss.state_dict().items():
        assert torch.equal(fresh.state_dict()[name], value), name


def test_zero_weights_skip_terms_and_their_queues():
    torch.manual_seed(7)
    s, t = torch.randn(2, 3, 3, 3), torch.randn(2, 4, 3, 3)
    labels = torch.randint(0, 3, (2, 3, 3))
    cfg = dict(student_channels=3, teacher_channels=4, num_classes=3, pixel_memory_size=40,
               region_memory_size=4, pixel_contrast_size=40, region_contrast_size=4,
               pixels_per_class=40)   # every key used: no randomness in the value
    weights = dict(minibatch_weight=1.0, pixel_weight=0.1, region_weight=0.1)
    parts = {}
    for term in weights:
        only = {k: (v if k == term else 0.0) for k, v in weights.items()}
        torch.manual_seed(0)
        loss = CIRKDLoss(**cfg, **only)
        parts[term] = loss(s, t, labels).item()
        assert list(loss.last_terms) == [term.split('_')[0]]
        buffers = {name for name, _ in loss.named_buffers() if 'queue' in name}
        kind = term.split('_')[0]
        assert buffers == ({f'{kind}_queue', f'{kind}_queue_ptr', f'{kind}_queue_filled'}
                           if kind != 'minibatch' else set())
        assert (loss.projector is None) == (kind == 'minibatch')
    torch.manual_seed(0)
    full = CIRKDLoss(**cfg, **weights)
    assert full(s, t, labels).item() == pytest.approx(sum(parts.values()), rel=1e-5)
    assert all(v > 0 for v in parts.values())


def test_built_from_the_registry():
    loss = build_component(dict(type='CIRKDLoss', student_channels=8, teacher_channels=16,
                                num_classes=19, pixel_memory_size=10, region_memory_size=2))
    assert isinstance(loss, CIRKDLoss)
    assert loss.contrast_sizes == {'pixel': 216, 'region': 54}
    assert loss.weights == {'minibatch': 1.0, 'pixel': 0.1, 'region': 0.1}
    assert loss.tau == 0.1 and loss.contrast_tau == 0.1 and loss.pixels_per_class == 16
    assert loss.pixel_queue.shape == (19, 10, 16)
    assert loss.accepts('labels') and loss.required_arguments() == ['preds_S', 'preds_T']


# ---------------------------------------------------------------- errors


def test_errors_name_the_fix():
    loss = CIRKDLoss(3, 4, num_classes=3, pixel_memory_size=8, region_memory_size=2)
    s, t = torch.randn(2, 3, 4, 4), torch.randn(2, 4, 4, 4)
    labels = torch.zeros(2, 4, 4, dtype=torch.long)
    with pytest.raises(ValueError, match='student_channels=3'):
        loss(torch.randn(2, 5, 4, 4), t, labels)
    with pytest.raises(ValueError, match='teacher_channels=4'):
        loss(s, torch.randn(2, 3, 4, 4), labels)
    with pytest.raises(ValueError, match='ResizeConnector'):
        loss(torch.randn(2, 3, 2, 2), t, labels)
    with pytest.raises(ValueError, match='ResizeConnector'):
        loss(torch.randn(1, 3, 4, 4), t, labels)
    with pytest.raises(ValueError, match="from_data='gt_sem_seg'"):
        loss(s, t)
    with pytest.raises(ValueError, match="N=2"):
        loss(s, t, labels[:1])
    with pytest.raises(ValueError, match='integer'):
        loss(s, t, labels.float())
    with pytest.raises(ValueError, match=r'num_classes=3\).*\[3, 7\]'):
        loss(s, t, labels + torch.tensor([3, 7])[:, None, None])
    with pytest.raises(ValueError, match='all 0'):
        CIRKDLoss(3, 4, num_classes=3, minibatch_weight=0, pixel_weight=0, region_weight=0)
    with pytest.raises(ValueError, match='finite number >= 0'):
        CIRKDLoss(3, 4, num_classes=3, pixel_weight=-1)
    with pytest.raises(ValueError, match='temperature'):
        CIRKDLoss(3, 4, num_classes=3, tau=0)
    with pytest.raises(ValueError, match='pixel_memory_size'):
        CIRKDLoss(3, 4, num_classes=3, pixel_memory_size=0)
    with pytest.raises(ValueError, match='num_classes'):
        CIRKDLoss(3, 4, num_classes=2.5)
    # No labels needed without memory terms; ignore_index values pass.
    CIRKDLoss(3, 4, num_classes=3, pixel_weight=0, region_weight=0)(s, t)
    loss(s, t, torch.full((2, 4, 4), 255))


# ---------------------------------------------------------------- two processes


def _ddp_worker(rank: int, port: int, out: dict) -> None:
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.set_num_threads(1)
    torch_dist.init_process_group('gloo', rank=rank, world_size=2)
    try:
        torch.manual_seed(0)    # the same projector on both ranks
        loss = CIRKDLoss(4, 6, num_classes=3, pixel_memory_size=40, region_memory_size=5,
                         pixel_contrast_size=8, region_contrast_size=3, pixels_per_class=3)
        g = torch.Generator().manual_seed(100 + rank)
        N = 2 + rank            # the ranks hold different numbers of images and entries
        classes = (0, 1) if rank == 0 else (1, 2)
        for _ in range(3):
            s = torch.randn(N, 4, 4, 4, generator=g)
            t = torch.rand(N, 6, 4, 4, generator=g)
            t[:, rank] += 5.0   # the entries of rank r point mostly along channel r
            labels = torch.tensor(classes)[torch.randint(0, 2, (N, 4, 4), generator=g)]
            labels[:, 0, 0], labels[:, 0, 1] = classes   # both classes in every image
            labels[:, 3, 3] = 255
            value = loss(s, t, labels, generator=g)
            value.backward()
        out[rank] = ({k: v.clone() for k, v in loss.state_dict().items() if 'queue' in k},
                     value.item())
    finally:
        torch_dist.destroy_process_group()


@pytest.mark.slow  # two processes importing mmkd: about 40 s here
def test_two_processes_hold_identical_queues_with_each_others_entries():
    start = time.time()
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(_ddp_worker, args=(port, out), nprocs=2)
        results = dict(out)
    (state0, value0), (state1, value1) = results[0], results[1]
    assert math.isfinite(value0) and math.isfinite(value1)
    assert set(state0) == set(state1) and len(state0) == 6
    for name in state0:
        assert torch.equal(state0[name], state1[name]), name
    origin = lambda rows: rows[:, :2].argmax(1).tolist()  # noqa: E731  (0: rank 0, 1: rank 1)
    filled = state0['pixel_queue_filled'].tolist()
    # Class 0 only on rank 0, class 2 only on rank 1, class 1 on both: 3 pixels per image and
    # class (every image has >= 3 pixels of each class but a 4 x 4 image might not: >= 1).
    assert filled[0] > 0 and filled[2] > 0 and filled[1] > 0
    assert set(origin(state0['pixel_queue'][0, :filled[0]])) == {0}
    assert set(origin(state1['pixel_queue'][2, :filled[2]])) == {1}   # rank 1's, on rank 0 too
    assert set(origin(state0['pixel_queue'][2, :filled[2]])) == {1}
    assert set(origin(state0['pixel_queue'][1, :filled[1]])) == {0, 1}
    # Regions of class 1: 3 steps x (2 + 3) images = 15 entries into 5 slots; the last step's
    # entries in rank order: rank 0's 2 images, then rank 1's 3.
    assert state0['region_queue_filled'].tolist() == [5, 5, 5]
    assert state0['region_queue_ptr'].tolist() == [6 % 5, 15 % 5, 9 % 5]
    assert origin(state0['region_queue'][1]) == [0, 0, 1, 1, 1]
    print(f'two-process CIRKD test: {time.time() - start:.1f} s')
