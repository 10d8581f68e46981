import math

import pytest
import torch
from model_steps import fit_loss_values
import torch.nn.functional as F
from torch import nn

from mmkd.models.losses.afdcd import (AfDCDLoss, EnhancedProjector, contrast_geometry,
                                      dense_contrastive_loss)
from mmkd.registry import build_component


def _reference_contrast(s, t, num_groups, tau, kernel, patch_h, patch_w):
    """Explicit loops over images, patches, positions and groups (float64, plain Python
    log-sum-exp); ``kernel`` and the patch are given by hand, not by contrast_geometry."""
    s, t = s.double(), t.double()
    if kernel > 1:
        s, t = F.max_pool2d(s, kernel), F.max_pool2d(t, kernel)
    N, C, H, W = s.shape
    used_h, used_w = H - H % patch_h, W - W % patch_w
    d = C // num_groups
    total = 0.0
    for n in range(N):
        for top in range(0, used_h, patch_h):
            for left in range(0, used_w, patch_w):
                cells = [(top + a, left + b) for a in range(patch_h) for b in range(patch_w)]
                for (y, x) in cells:
                    for g in range(num_groups):
                        token = s[n, g * d:(g + 1) * d, y, x]

                        def logit(y2, x2, g2):
                            other = t[n, g2 * d:(g2 + 1) * d, y2, x2]
                            return -float((token - other).abs().sum()) / tau
                        logits = [logit(y, x, g)] + [logit(y2, x2, g2) for (y2, x2) in cells
                                                     for g2 in range(num_groups) if g2 != g]
                        top_logit = max(logits)
                        lse = top_logit + math.log(sum(math.exp(v - top_logit)
                                                       for v in logits))
                        total += lse - logits[0]
    return total / (N * used_h * used_w)


class _Record(nn.Module):
    """Identity projector that keeps its input."""

    def forward(self, x):
        self.seen = x
        return x


def test_geometry_by_hand():
    assert contrast_geometry(64, 128, 4, (4, 4)) == (4, 4, 4, 16, 32)   # official Cityscapes
    assert contrast_geometry(66, 130, 4, (4, 4)) == (4, 4, 4, 16, 32)   # pooling floors
    assert contrast_geometry(4, 4, 4, (4, 4)) == (1, 4, 4, 4, 4)        # 128 px, stride 32
    assert contrast_geometry(8, 8, 4, (4, 4)) == (2, 4, 4, 4, 4)        # stride 16
    assert contrast_geometry(1, 1, 4, (4, 4)) == (1, 1, 1, 1, 1)
    assert contrast_geometry(3, 5, 4, (4, 4)) == (1, 3, 4, 3, 4)
    assert contrast_geometry(5, 7, 1, (2, 3)) == (1, 2, 3, 4, 6)
    assert contrast_geometry(9, 40, 4, (4, 4)) == (2, 4, 4, 4, 20)


@pytest.mark.parametrize('shape, groups, pool, patch, kernel', [
    ((2, 6, 8, 8), 3, 2, (2, 2), 2),     # pooled 4x4, four 2x2 patches
    ((1, 4, 5, 7), 2, 1, (2, 3), 1),     # remainder row and column dropped
    ((2, 8, 4, 4), 4, 4, (4, 4), 1),     # 128 px case: kernel clipped to 1, one patch
    ((1, 6, 1, 1), 3, 4, (4, 4), 1),     # a single position
])
def test_contrastive_term_matches_loops(shape, groups, pool, patch, kernel):
    torch.manual_seed(0)
    s, t = torch.randn(shape), torch.randn(shape)
    tau = 0.5
    _, patch_h, patch_w, _, _ = contrast_geometry(shape[2], shape[3], pool, patch)
    expected = _reference_contrast(s, t, groups, tau, kernel, patch_h, patch_w)
    value = dense_contrastive_loss(s, t, groups, tau, pool, patch)
    assert float(value) == pytest.approx(expected, rel=1e-5)


def test_contrastive_positives_and_negatives():
    # Two groups of one channel on a 1x2 map; the student equals the teacher.
    t = torch.tensor([[[[0.0, 0.0]], [[100.0, 100.0]]]])
    # Negatives are the other group (100 away): the loss vanishes. Were the same group at the
    # other position (distance 0) a negative, each token's loss would be log 2.
    assert float(dense_contrastive_loss(t, t, num_groups=2, tau=0.07, pool_size=1,
                                        patch_size=(1, 2))) == pytest.approx(0.0, abs=1e-6)
    # The other group at the same and the other position are negatives: a student group-0
    # token equal to the teacher's group 1 has three equally good candidates, one positive.
    s = torch.tensor([[[[5.0, 5.0]], [[5.0, 5.0]]]])
    t = torch.tensor([[[[0.0, 0.0]], [[5.0, 5.0]]]])
    value = dense_contrastive_loss(s, t, num_groups=2, tau=1.0, pool_size=1, patch_size=(1, 2))
    group_0 = -math.log(math.exp(-5) / (math.exp(-5) + 2))      # positive 5 away, 2 negs at 0
    group_1 = -math.log(1 / (1 + 2 * math.exp(-5)))             # positive at 0, 2 negs 5 away
    assert float(value) == pytest.approx(group_0 + group_1, rel=1e-6)  # / 2 positions * 2


def test_feature_term_without_mask_by_hand():
    torch.manual_seed(0)
    loss = AfDCDLoss(4, 8, feature_weight=1.0, contrast_weight=0.0, mask_ratio=0.0,
                     num_groups=2)
    s, t = torch.randn(2, 4, 5, 6), torch.randn(2, 8, 5, 6)
    with torch.no_grad():
        regenerated = loss.projector[2](torch.relu(loss.projector[0](loss.align(s))))
        expected = float((regenerated - t).pow(2).sum() / 2)
    assert float(loss(s, t).detach()) == pytest.approx(expected, rel=1e-5)
    # Identity projector, equal channels: the plain summed squared error over N.
    plain = AfDCDLoss(8, 8, feature_weight=1.0, contrast_weight=0.0, mask_ratio=0.0,
                      num_groups=2)
    plain.projector = nn.Identity()
    t2 = torch.randn(2, 8, 5, 6)
    assert plain.align is None
    assert float(plain(t2, t)) == pytest.approx(float((t2 - t).pow(2).sum() / 2), rel=1e-6)


def test_total_combines_both_terms_and_loss_weight():
    torch.manual_seed(1)
    kwargs = dict(feature_weight=0.3, contrast_weight=0.7, mask_ratio=0.0, num_groups=4,
                  tau=0.5, pool_size=2, patch_size=2)
    loss = AfDCDLoss(4, 8, loss_weight=2.0, **kwargs)
    s, t = torch.randn(2, 4, 8, 8), torch.randn(2, 8, 8, 8)
    with torch.no_grad():
        regenerated, loss_fd = loss.regenerate_and_imitate(s, t)
    assert float(loss_fd) == pytest.approx(float((regenerated - t).pow(2).sum() / 2), rel=1e-5)
    ctr = _reference_contrast(regenerated, t, 4, 0.5, kernel=2, patch_h=2, patch_w=2)
    expected = 2.0 * (0.3 * float(loss_fd) + 0.7 * ctr)
    assert loss(s, t).item() == pytest.approx(expected, rel=1e-5)


def test_identical_regenerated_and_teacher_give_zero_feature_term():
    loss = AfDCDLoss(8, 8, mask_ratio=0.0, num_groups=2)
    loss.projector = nn.Identity()
    t = torch.randn(2, 8, 6, 6)
    regenerated, loss_fd = loss.regenerate_and_imitate(t.clone(), t)
    assert torch.equal(regenerated, t) and float(loss_fd) == 0.0
    only_fd = AfDCDLoss(8, 8, mask_ratio=0.0, num_groups=2, contrast_weight=0.0)
    only_fd.projector = nn.Identity()
    assert float(only_fd(t.clone(), t)) == 0.0


def test_random_mask_zeroes_about_mask_ratio_of_whole_positions():
    loss = AfDCDLoss(4, 4, mask_ratio=0.75, num_groups=2)
    loss.projector = _Record()
    s, t = torch.ones(2, 4, 50, 50), torch.zeros(2, 4, 50, 50)
    loss(s, t, generator=torch.Generator().manual_seed(0))
    per_position = loss.projector.seen.sum(dim=1)
    assert set(per_position.unique().tolist()) <= {0.0, 4.0}      # all channels together
    assert float((per_position == 0).float().mean()) == pytest.approx(0.75, abs=0.02)
    # Reproducible with a seeded generator, different across seeds.
    first = loss.projector.seen.clone()
    loss(s, t, generator=torch.Generator().manual_seed(0))
    assert torch.equal(first, loss.projector.seen)
    loss(s, t, generator=torch.Generator().manual_seed(1))
    assert not torch.equal(first, loss.projector.seen)


def test_center_mask_is_the_middle_third_block():
    loss = AfDCDLoss(4, 4, mask_mode='center', num_groups=2)
    loss.projector = _Record()
    loss(torch.ones(2, 4, 9, 6), torch.zeros(2, 4, 9, 6))
    expected = torch.ones(9, 6)
    expected[3:6, 2:4] = 0
    for n in range(2):
        for c in range(4):
            assert torch.equal(loss.projector.seen[n, c], expected)


@pytest.mark.parametrize('enhanced', [False, True])
def test_gradients_reach_student_and_modules_not_teacher(enhanced):
    torch.manual_seed(0)
    loss = AfDCDLoss(4, 8, num_groups=4, enhanced_projector=enhanced, feature_weight=1.0,
                     contrast_weight=1.0)
    assert isinstance(loss.projector, EnhancedProjector) == enhanced
    s = torch.randn(2, 4, 8, 8, requires_grad=True)
    t = torch.randn(2, 8, 8, 8, requires_grad=True)
    loss(s, t).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None
    for name, param in loss.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_contrastive_gradient_alone_reaches_student():
    torch.manual_seed(0)
    loss = AfDCDLoss(4, 8, num_groups=4, feature_weight=0.0, contrast_weight=1.0)
    s = torch.randn(1, 4, 4, 4, requires_grad=True)
    loss(s, torch.randn(1, 8, 4, 4)).backward()
    assert s.grad.abs().sum() > 0 and loss.align.weight.grad.abs().sum() > 0


@pytest.mark.parametrize('size', [(1, 1), (3, 5), (4, 4), (2, 9), (8, 8)])
@pytest.mark.parametrize('mask_mode', ['random', 'center'])
def test_small_maps_are_finite(size, mask_mode):
    torch.manual_seed(0)
    loss = AfDCDLoss(8, 32, mask_mode=mask_mode, feature_weight=1.0, contrast_weight=1.0)
    s = torch.randn(2, 8, *size, requires_grad=True)
    value = loss(s, torch.randn(2, 32, *size))
    assert torch.isfinite(value) and value.item() > 0
    value.backward()
    assert torch.isfinite(s.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in loss.parameters())


def test_fully_masked_student_is_finite():
    loss = AfDCDLoss(4, 8, mask_ratio=1.0, num_groups=2)
    assert torch.isfinite(loss(torch.randn(1, 4, 4, 4), torch.randn(1, 8, 4, 4)))


def test_bfloat16_inputs():
    torch.manual_seed(0)
    loss = AfDCDLoss(4, 8, num_groups=4, mask_ratio=0.0, feature_weight=1.0,
                     contrast_weight=1.0)
    s, t = torch.randn(2, 4, 8, 8).bfloat16(), torch.randn(2, 8, 8, 8).bfloat16()
    value = loss(s, t)
    assert value.dtype == torch.float32 and torch.isfinite(value)
    assert value.item() == pytest.approx(loss(s.float(), t.float()).item(), rel=1e-6)
    s.requires_grad_(True)
    loss(s, t).backward()
    assert s.grad.dtype == torch.bfloat16 and torch.isfinite(s.grad.float()).all()


def test_errors_name_the_fix():
    with pytest.raises(ValueError, match='ResizeConnector'):
        AfDCDLoss(4, 8, num_groups=4)(torch.randn(1, 4, 8, 8), torch.randn(1, 8, 4, 4))
    with pytest.raises(ValueError, match='student_channels'):
        AfDCDLoss(4, 8, num_groups=4)(torch.randn(1, 6, 8, 8), torch.randn(1, 8, 8, 8))
    with pytest.raises(ValueError, match='teacher_channels'):
        AfDCDLoss(4, 8, num_groups=4)(torch.randn(1, 4, 8, 8), torch.randn(1, 16, 8, 8))
    with pytest.raises(ValueError, match=r'divisor of 24 \(e.g. num_groups=12\)'):
        AfDCDLoss(4, 24)
    with pytest.raises(ValueError, match='contrast_weight=0'):
        AfDCDLoss(4, 8, num_groups=1)
    with pytest.raises(ValueError, match='mask_mode'):
        AfDCDLoss(4, 8, num_groups=4, mask_mode='block')
    with pytest.raises(ValueError, match=r'\[0, 1\]'):
        AfDCDLoss(4, 8, num_groups=4, mask_ratio=1.5)
    with pytest.raises(ValueError, match='tau'):
        AfDCDLoss(4, 8, num_groups=4, tau=0.0)
    with pytest.raises(ValueError, match='pool_size'):
        AfDCDLoss(4, 8, num_groups=4, pool_size=0)
    with pytest.raises(ValueError, match='patch_size'):
        AfDCDLoss(4, 8, num_groups=4, patch_size=(0, 4))
    with pytest.raises(ValueError, match='feature_weight'):
        AfDCDLoss(4, 8, num_groups=4, feature_weight=-1.0)
    with pytest.raises(TypeError, match='contrast_weight'):
        AfDCDLoss(4, 8, num_groups=4, contrast_weight='0.005')


def test_registry_builds_with_published_defaults():
    loss = build_component(dict(type='AfDCDLoss', student_channels=512, teacher_channels=2048))
    assert isinstance(loss, AfDCDLoss)
    assert (loss.feature_weight, loss.contrast_weight, loss.mask_ratio, loss.mask_mode,
            loss.num_groups, loss.tau, loss.pool_size, loss.patch_size, loss.loss_weight) == (
        2e-6, 0.005, 0.75, 'random', 16, 0.07, 4, (4, 4), 1.0)
    assert isinstance(loss.projector, nn.Sequential) and len(loss.projector) == 3


def test_projector_learns_toward_fixed_teacher():
    torch.manual_seed(0)
    loss = AfDCDLoss(4, 8, num_groups=4, mask_ratio=0.5, feature_weight=1.0,
                     contrast_weight=1.0, pool_size=1, patch_size=2)
    s, t = torch.randn(2, 4, 4, 4), torch.randn(2, 8, 4, 4)
    values = fit_loss_values(loss, s, t, steps=20)
    assert values[-1] < 0.7 * values[0]
