"""MasKD (mmkd/models/losses/maskd.py): the tokens' masks, the stage-1 objective (CE of the
masked logits + Dice diversity) and the stage-2 loss, against explicit loops; the tokens file."""
import math

import pytest
import torch
import torch.nn.functional as F

from mmkd.models.losses.maskd import (MasKDLoss, dice_diversity, init_tokens,
                                      load_maskd_tokens, masked_logit_distance,
                                      receptive_masks, token_objective)
from mmkd.registry import build_component


def _sigmoid(x):
    return 1 / (1 + math.exp(-x))


def _reference_masks(tokens, z):
    N, C, H, W = z.shape
    T = tokens.shape[0]
    masks = torch.zeros(N, T, H, W, dtype=torch.float64)
    for n in range(N):
        for t in range(T):
            for h in range(H):
                for w in range(W):
                    dot = sum(float(tokens[t, c]) * float(z[n, c, h, w]) for c in range(C))
                    masks[n, t, h, w] = _sigmoid(dot)
    return masks


def _reference_maskd(s, z, tokens, eps=1e-5):
    """mean over n, t, c of sum_p M^2 (s - z)^2 / (sum_p M + eps), by loops."""
    masks = _reference_masks(tokens, z)
    N, C, H, W = z.shape
    T = tokens.shape[0]
    total = 0.0
    for n in range(N):
        for t in range(T):
            area = sum(float(masks[n, t, h, w]) for h in range(H) for w in range(W))
            for c in range(C):
                num = sum(float(masks[n, t, h, w])**2 * (float(s[n, c, h, w])
                                                         - float(z[n, c, h, w]))**2
                          for h in range(H) for w in range(W))
                total += num / (area + eps)
    return total / (N * T * C)


def _reference_dice(masks):
    """mean over n and ordered pairs t != t' of 2 sum M_t M_t' / (sum M_t^2 + sum M_t'^2)."""
    N, T = masks.shape[:2]
    flat = masks.reshape(N, T, -1)
    values = []
    for n in range(N):
        for t in range(T):
            for u in range(T):
                if t != u:
                    a, b = flat[n, t].tolist(), flat[n, u].tolist()
                    num = 2 * sum(x * y for x, y in zip(a, b))
                    den = sum(x * x for x in a) + sum(y * y for y in b)
                    values.append(num / den)
    return sum(values) / len(values)


def test_masks_are_the_sigmoid_of_token_logit_products():
    torch.manual_seed(0)
    tokens, z = torch.randn(3, 4), torch.randn(2, 4, 3, 2)
    masks = receptive_masks(tokens, z)
    assert masks.shape == (2, 3, 3, 2)
    assert torch.allclose(masks.double(), _reference_masks(tokens, z), atol=1e-6)
    with pytest.raises(ValueError, match=r'\(3, 4\).*C = 4.*\(2, 5, 3, 2\).*maskd_tokens\.py'):
        receptive_masks(tokens, torch.randn(2, 5, 3, 2))


def test_init_tokens_are_small_normal():
    tokens = init_tokens(8, 500, torch.Generator().manual_seed(0))
    assert tokens.shape == (8, 500)
    assert abs(float(tokens.std()) - 0.01) < 0.001 and abs(float(tokens.mean())) < 0.001
    assert torch.equal(tokens, init_tokens(8, 500, torch.Generator().manual_seed(0)))


@pytest.mark.parametrize('eps', [1e-5, 0.5])
def test_stage2_loss_matches_loops(eps):
    torch.manual_seed(1)
    tokens = torch.randn(3, 4)
    s, z = torch.randn(2, 4, 3, 3), torch.randn(2, 4, 3, 3)
    expected = _reference_maskd(s, z, tokens, eps)
    assert float(masked_logit_distance(s, z, tokens, eps)) == pytest.approx(expected, rel=1e-5)
    loss = MasKDLoss(tokens=tokens, eps=eps)
    assert loss.loss_weight == 0.5
    assert float(loss(s, z)) == pytest.approx(0.5 * expected, rel=1e-5)
    assert float(MasKDLoss(tokens, loss_weight=2.0, eps=eps)(s, z)) == pytest.approx(
        2 * expected, rel=1e-5)


def test_stage2_loss_zero_for_identical_logits_and_uses_the_teacher_masks():
    torch.manual_seed(2)
    tokens = torch.randn(8, 5)
    z = torch.randn(2, 5, 4, 4)
    assert float(MasKDLoss(tokens)(z, z.clone())) == 0.0
    # masks come from the teacher: swapping the arguments changes the value
    s = torch.randn(2, 5, 4, 4)
    assert float(MasKDLoss(tokens)(s, z)) != pytest.approx(float(MasKDLoss(tokens)(z, s)),
                                                           rel=1e-3)


def test_gradients_reach_the_student_only():
    torch.manual_seed(3)
    loss = MasKDLoss(torch.randn(4, 3))
    s = torch.randn(2, 3, 4, 4, requires_grad=True)
    t = torch.randn(2, 3, 4, 4, requires_grad=True)
    loss(s, t).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None
    assert not loss.tokens.requires_grad and loss.tokens.grad is None
    assert list(loss.parameters()) == []
    # a persistent buffer: distillation checkpoints hold the tokens they were trained with
    assert set(loss.state_dict()) == {'tokens'}
    out = loss(s.detach().half(), t.detach().half())
    assert out.dtype == torch.float32 and torch.isfinite(out)


def test_dice_diversity_matches_loops():
    torch.manual_seed(4)
    masks = torch.rand(2, 3, 4, 5)
    assert float(dice_diversity(masks)) == pytest.approx(_reference_dice(masks), rel=1e-5)
    # identical masks: 1; disjoint masks: 0; a single token has no pair
    same = torch.rand(1, 1, 3, 3).expand(1, 4, 3, 3)
    assert float(dice_diversity(same)) == pytest.approx(1.0, rel=1e-5)
    disjoint = torch.eye(3).reshape(1, 3, 3, 1)
    assert float(dice_diversity(disjoint)) == 0.0
    assert float(dice_diversity(torch.rand(2, 1, 3, 3))) == 0.0


def test_stage1_objective_is_ce_of_the_summed_masked_logits_plus_dice():
    torch.manual_seed(5)
    tokens, z = torch.randn(3, 4), torch.randn(2, 4, 2, 3)
    labels = torch.randint(0, 4, (2, 4, 6))
    labels[0, 0, :] = 255
    total, ce, dice = token_objective(tokens, z, labels, align_corners=True)
    masks = _reference_masks(tokens, z).float()
    out = sum(masks[:, t:t + 1] * z for t in range(3))        # sum_t M_t * z_T
    up = F.interpolate(out, (4, 6), mode='bilinear', align_corners=True)
    # CE averaged over the labelled pixels, by a loop
    terms = [-float(F.log_softmax(up[n, :, h, w], 0)[labels[n, h, w]])
             for n in range(2) for h in range(4) for w in range(6) if labels[n, h, w] != 255]
    assert float(ce) == pytest.approx(sum(terms) / len(terms), rel=1e-5)
    assert float(dice) == pytest.approx(_reference_dice(masks), rel=1e-5)
    assert float(total) == pytest.approx(float(ce) + float(dice), rel=1e-6)
    # no labelled pixel: the CE is 0 (not nan)
    _, ce, _ = token_objective(tokens, z, torch.full((2, 4, 6), 255))
    assert float(ce) == 0.0


def test_stage1_objective_decreases_under_sgd_on_the_tokens():
    """Synthetic teacher: logits favour the label with noise; the tokens learn to widen the
    masks where the teacher is right and make them differ."""
    g = torch.Generator().manual_seed(6)
    labels = torch.randint(0, 5, (4, 8, 8), generator=g)
    z = 2 * F.one_hot(labels, 5).permute(0, 3, 1, 2).float() + torch.randn(4, 5, 8, 8,
                                                                           generator=g)
    tokens = init_tokens(4, 5, g).requires_grad_(True)
    optimizer = torch.optim.SGD([tokens], lr=0.1, momentum=0.9)
    losses, dices = [], []
    for _ in range(50):
        total, _, dice = token_objective(tokens, z, labels)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        losses.append(total.item())
        dices.append(dice.item())
    # near-equal initial tokens give near-equal masks (Dice about 1); SGD breaks the symmetry
    assert dices[0] > 0.99 and dices[-1] < 0.8
    assert losses[-1] < losses[0] - 0.2
    assert z.grad is None


def test_tokens_file_and_build_errors(tmp_path):
    tokens = torch.randn(8, 11)
    path = tmp_path / 'teacher.maskd_tokens.pth'
    torch.save(dict(tokens=tokens, num_classes=11, meta=dict(iters=3)), path)
    loss = build_component(dict(type='MasKDLoss', tokens=str(path)))
    assert isinstance(loss, MasKDLoss) and torch.equal(loss.tokens, tokens)
    assert MasKDLoss.requires_same_shape and MasKDLoss.requires_equal_num_classes
    # the official stage-1 file: the mask module's state dict
    official = tmp_path / 'official.pth'
    torch.save({'mask_token': tokens}, official)
    assert torch.equal(load_maskd_tokens(str(official)), tokens)

    with pytest.raises(FileNotFoundError,
                       match=r"'missing\.pth' does not exist.*python tools/maskd_tokens\.py "
                             r'CONFIG \[CHECKPOINT\] --out PATH'):
        MasKDLoss(tokens='missing.pth')
    corrupt = tmp_path / 'corrupt.pth'
    corrupt.write_bytes(b'not a torch file')
    with pytest.raises(ValueError, match=r'(?s)could not be read.*maskd_tokens\.py'):
        MasKDLoss(tokens=str(corrupt))
    other = tmp_path / 'other.pth'
    torch.save(dict(weights=tokens), other)
    with pytest.raises(ValueError, match=r"no \(T, C\) tensor.*\['weights'\]"):
        MasKDLoss(tokens=str(other))
    with pytest.raises(TypeError, match='path of the file'):
        MasKDLoss(tokens=[[0.0]])
    with pytest.raises(ValueError, match=r'\(T, C\) tensor, got shape \(11,\)'):
        MasKDLoss(tokens=torch.zeros(11))
    with pytest.raises(ValueError, match='eps > 0'):
        MasKDLoss(tokens, eps=0)
    with pytest.raises(ValueError, match='inf / nan'):
        MasKDLoss(torch.full((2, 3), math.nan))
    # tokens of another class count: named with the logits' shape
    with pytest.raises(ValueError, match=r'\(8, 11\) have C = 11.*\(2, 19, 4, 4\).*another '
                                         r'teacher.*maskd_tokens\.py'):
        loss(torch.randn(2, 19, 4, 4), torch.randn(2, 19, 4, 4))
