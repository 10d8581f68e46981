import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData

from mmkd.models.losses.fgd import (FGDLoss, GlobalContextBlock, fgd_attention,
                                    fgd_attention_loss, fgd_feature_loss, fgd_global_loss,
                                    gt_foreground_masks)
from mmkd.registry import build_component


def _sample(boxes, batch_input_shape=(64, 64), img_shape=None):
    s = DetDataSample(metainfo=dict(batch_input_shape=batch_input_shape,
                                    img_shape=img_shape or batch_input_shape))
    boxes = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    s.gt_instances = InstanceData(bboxes=boxes, labels=torch.zeros(len(boxes),
                                                                   dtype=torch.long))
    return s


@pytest.mark.parametrize('size, cells', [(16, (2, 5)), (8, (1, 2)), (4, (0, 1))])
def test_fgd_mask_places_one_over_area_at_the_strides_cells(size, cells):
    # Input 64x64: strides 4, 8, 16. Box (8, 8, 24, 24): cells floor(8/s) .. ceil(24/s) - 1.
    fg, bg = gt_foreground_masks([_sample([[8., 8., 24., 24.]])], (1, 256, size, size))
    lo, hi = cells
    n = hi - lo + 1
    expected = torch.zeros(size, size)
    expected[lo:hi + 1, lo:hi + 1] = 1.0 / (n * n)
    assert fg.shape == bg.shape == (1, size, size)
    assert torch.allclose(fg[0], expected)
    n_bg = size * size - n * n
    assert torch.allclose(bg[0], (expected == 0).float() / n_bg)


def test_fgd_mask_rows_are_y_columns_are_x_and_strides_per_axis():
    # Non-square input and box: x spans 0..32 (cols 0..3 at stride 8), y spans 16..24 (row 2).
    fg, _ = gt_foreground_masks([_sample([[0., 16., 32., 24.]], batch_input_shape=(32, 64))],
                                (4, 8))
    expected = torch.zeros(4, 8)
    expected[2, 0:4] = 1.0 / 4
    assert torch.allclose(fg[0], expected)
    # Unaligned box edges: (5, 3, 13, 9) at stride 4 -> cols 1..3, rows 0..2.
    fg, _ = gt_foreground_masks([_sample([[5., 3., 13., 9.]])], (16, 16))
    expected = torch.zeros(16, 16)
    expected[0:3, 1:4] = 1.0 / 9
    assert torch.allclose(fg[0], expected)


def test_fgd_mask_uses_padded_batch_input_shape_not_img_shape():
    # The image is 48x48 inside a 64x64 padded batch: stride is still 64 / 16 = 4.
    fg, _ = gt_foreground_masks(
        [_sample([[8., 8., 24., 24.]], batch_input_shape=(64, 64), img_shape=(48, 48))],
        (16, 16))
    assert fg[0, 2:6, 2:6].eq(1.0 / 16).all() and fg.gt(0).sum() == 16


def test_fgd_mask_overlaps_take_max_and_bg_is_uniform_outside():
    # Big box cells 0..3 (value 1/16) contains small box cells 1..2 (value 1/4).
    samples = [_sample([[0., 0., 32., 32.], [8., 8., 24., 24.]]), _sample([])]
    fg, bg = gt_foreground_masks(samples, (8, 8))
    assert fg.shape == (2, 8, 8)
    assert torch.allclose(fg[0, 1:3, 1:3], torch.full((2, 2), 0.25))
    assert torch.allclose(fg[0, 0, 0:4], torch.full((4, ), 1.0 / 16))
    assert fg[0].gt(0).sum() == 16 and fg[0, 4:].eq(0).all() and fg[0, :, 4:].eq(0).all()
    assert torch.allclose(bg[0][fg[0] == 0], torch.full((48, ), 1.0 / 48))
    assert bg[0][fg[0] > 0].eq(0).all()
    # No boxes: empty foreground, uniform background.
    assert fg[1].eq(0).all() and torch.allclose(bg[1], torch.full((8, 8), 1.0 / 64))


def test_fgd_attention_sums_and_feature_and_attention_parts_vanish_for_identical_inputs():
    torch.manual_seed(0)
    x = torch.randn(2, 6, 8, 8)
    spatial, channel = fgd_attention(x, 0.5)
    assert spatial.shape == (2, 8, 8) and channel.shape == (2, 6)
    assert torch.allclose(spatial.sum(dim=(1, 2)), torch.full((2, ), 64.0))
    assert torch.allclose(channel.sum(dim=1), torch.full((2, ), 6.0))
    fg, bg = gt_foreground_masks([_sample([[8., 8., 24., 24.]]), _sample([[0., 0., 64., 32.]])],
                                 x.shape)
    loss_fg, loss_bg = fgd_feature_loss(x, x.clone(), fg, bg, spatial, channel)
    assert float(loss_fg) == 0.0 and float(loss_bg) == 0.0
    assert float(fgd_attention_loss(spatial, channel, spatial, channel)) == 0.0


def test_fgd_feature_loss_matches_explicit_formula():
    torch.manual_seed(1)
    s, t = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    fg, bg = gt_foreground_masks([_sample([[0., 0., 32., 32.]]), _sample([[16., 0., 64., 16.]])],
                                 (4, 4))
    sp, ch = fgd_attention(t, 0.5)
    loss_fg, loss_bg = fgd_feature_loss(s, t, fg, bg, sp, ch)
    ref_fg = ref_bg = 0.0
    for n in range(2):
        for c in range(3):
            w = sp[n] * ch[n, c] * (s[n, c] - t[n, c]) ** 2
            ref_fg += float((w * fg[n]).sum()) / 2
            ref_bg += float((w * bg[n]).sum()) / 2
    assert float(loss_fg) == pytest.approx(ref_fg, rel=1e-5)
    assert float(loss_bg) == pytest.approx(ref_bg, rel=1e-5)


def test_fgd_global_block_starts_as_identity_and_global_loss_is_sse_over_n():
    torch.manual_seed(2)
    block_s, block_t = GlobalContextBlock(4), GlobalContextBlock(4)
    s, t = torch.randn(2, 4, 5, 5), torch.randn(2, 4, 5, 5)
    assert torch.allclose(block_s(s), s)
    assert fgd_global_loss(s, t, block_s, block_t).item() == pytest.approx(
        float((s - t).pow(2).sum() / 2), rel=1e-6)


def test_fgd_loss_gradients_half_weight_and_learnable_parts():
    torch.manual_seed(3)
    samples = [_sample([[8., 8., 24., 24.]]), _sample([[30., 2., 60., 40.]])]
    loss = FGDLoss(student_channels=4, teacher_channels=8)
    s = torch.randn(2, 4, 16, 16, requires_grad=True)
    t = torch.randn(2, 8, 16, 16, requires_grad=True)
    value = loss(s, t, samples)
    assert value.shape == () and value.dtype == torch.float32
    value.backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None
    assert loss.align.weight.grad is not None
    assert loss.context_S.channel_add_conv[-1].weight.grad is not None
    assert loss.context_T.channel_add_conv[-1].weight.grad is not None
    out = loss(s.detach().half(), t.detach().half(), samples)
    assert out.dtype == torch.float32 and torch.isfinite(out)
    base = loss(s, t, samples).item()
    loss.loss_weight = 3.0
    assert loss(s, t, samples).item() == pytest.approx(3 * base, rel=1e-6)


def test_fgd_loss_is_sum_of_weighted_parts():
    torch.manual_seed(4)
    samples = [_sample([[8., 8., 40., 24.]])]
    loss = FGDLoss(8, 8, loss_weight=2.0, alpha_fgd=1.0, beta_fgd=10.0, gamma_fgd=100.0,
                   lambda_fgd=1000.0)
    s, t = torch.randn(1, 8, 8, 8), torch.randn(1, 8, 8, 8)
    fg, bg = gt_foreground_masks(samples, s.shape)
    sp_t, ch_t = fgd_attention(t, 0.5)
    sp_s, ch_s = fgd_attention(s, 0.5)
    l_fg, l_bg = fgd_feature_loss(s, t, fg, bg, sp_t, ch_t)
    expected = 2.0 * (l_fg + 10 * l_bg + 100 * fgd_attention_loss(sp_s, ch_s, sp_t, ch_t)
                      + 1000 * fgd_global_loss(s, t, loss.context_S, loss.context_T))
    assert loss(s, t, samples).item() == pytest.approx(expected.item(), rel=1e-5)


def test_fgd_errors_and_registry():
    loss = FGDLoss(4, 8)
    samples = [_sample([[8., 8., 24., 24.]])]
    with pytest.raises(ValueError, match=r'student_channels=4.*\(1, 3, 8, 8\)'):
        loss(torch.rand(1, 3, 8, 8), torch.rand(1, 8, 8, 8), samples)
    with pytest.raises(ValueError, match='ResizeConnector'):
        loss(torch.rand(1, 4, 4, 4), torch.rand(1, 8, 8, 8), samples)
    with pytest.raises(ValueError, match=r"one data sample per image.*from_data"):
        loss(torch.rand(2, 4, 8, 8), torch.rand(2, 8, 8, 8), samples)
    bare = DetDataSample(metainfo=dict(img_shape=(64, 64)))
    bare.gt_instances = InstanceData(bboxes=torch.zeros(0, 4))
    with pytest.raises(ValueError, match='batch_input_shape'):
        gt_foreground_masks([bare], (8, 8))
    with pytest.raises(ValueError, match='gt_instances'):
        gt_foreground_masks([DetDataSample(metainfo=dict(batch_input_shape=(8, 8)))], (8, 8))
    with pytest.raises(ValueError, match='positive temperature'):
        FGDLoss(8, 8, tau=0)
    built = build_component(dict(type='FGDLoss', student_channels=8, teacher_channels=8))
    assert isinstance(built, FGDLoss) and built.gamma_fgd == 5e-4
