import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.logging import MessageHub
from mmengine.structures import InstanceData
from torch import nn

from mmkd.engine import DistillOptimWrapperConstructor
from mmkd.models.losses.sokd import (DistinctiveAreaModule, FeatureRefiner, SoKDLoss,
                                     attention_target, box_center_targets,
                                     dam_supervision_loss, mutual_interest_masks)
from mmkd.registry import build_component

ONLY = {'identity': 0, 'mask': 1, 'noise': 2, 'scale': 3}


def det_sample(boxes, input_size=64):
    sample = DetDataSample(metainfo=dict(batch_input_shape=(input_size, input_size)))
    boxes = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    sample.gt_instances = InstanceData(bboxes=boxes, labels=torch.zeros(len(boxes)).long())
    return sample


def force_operation(refiner, name):
    """Logits that make the Gumbel-softmax always pick ``name``."""
    with torch.no_grad():
        refiner.op_logits.fill_(-1e4)
        refiner.op_logits[ONLY[name]] = 0.0


# ---------------------------------------------------------------- refiner (DAFA)
def test_refiner_magnitudes_stay_within_bounds_after_steps_pushing_them_out():
    refiner = FeatureRefiner(4, max_drop=0.2, max_noise=0.1, max_scale=0.25)
    optim = torch.optim.SGD(refiner.parameters(), lr=50.0)
    for _ in range(100):
        s = refiner.scale_factors
        push_out = -(refiner.drop_probability + refiner.noise_std + s[:2].sum() - s[2:].sum())
        optim.zero_grad()
        push_out.backward()
        optim.step()
    p, sigma, s = refiner.drop_probability, refiner.noise_std, refiner.scale_factors
    assert 0.19 < p <= 0.2 and 0.09 < sigma <= 0.1  # pushed to the bound, not past it
    assert (s[:2] <= 1.25).all() and (s[:2] > 1.24).all()
    assert (s[2:] >= 0.75).all() and (s[2:] < 0.76).all()
    # what the operation does obeys the same bounds
    force_operation(refiner, 'scale')
    t = torch.rand(2, 4, 5, 5) + 0.5
    ratio = refiner(t) / t
    assert ratio.min() >= 0.75 - 1e-6 and ratio.max() <= 1.25 + 1e-6


def test_refiner_moves_toward_the_student_but_cannot_collapse_onto_it():
    # Teacher 3 everywhere, student 0: the closest any operation can get is the smallest scale
    # factor (mask keeps >= 80 %, noise on a constant map is 0): 0.5 * (3 * 0.75)^2.
    torch.manual_seed(0)
    refiner = FeatureRefiner(4, max_drop=0.2, max_noise=0.5, max_scale=0.25)
    t, s = torch.full((8, 4, 6, 6), 3.0), torch.zeros(8, 4, 6, 6)
    optim = torch.optim.Adam(refiner.parameters(), lr=0.2)
    values = []
    for _ in range(150):
        loss_aug = 0.5 * (refiner(t) - s).pow(2).mean()
        optim.zero_grad()
        loss_aug.backward()
        optim.step()
        values.append(loss_aug.item())
    floor = 0.5 * (3 * 0.75) ** 2
    assert min(values) >= floor - 1e-4
    assert sum(values[-10:]) / 10 < 0.7 * values[0]  # it learned: picks 'scale', factors -> 0.75
    assert values[-1] == pytest.approx(floor, rel=0.05)


def test_refiner_operations_and_per_image_choice():
    torch.manual_seed(0)
    t = torch.randn(4, 3, 40, 40)
    refiner = FeatureRefiner(3, max_drop=0.5, max_noise=0.4, max_scale=0.5)
    assert torch.equal(refiner.eval()(t), t)  # eval: identity
    refiner.train()
    force_operation(refiner, 'identity')
    assert torch.equal(refiner(t), t)
    force_operation(refiner, 'scale')
    with torch.no_grad():
        refiner.scale_logits.copy_(torch.tensor([-1.0, 0.0, 2.0]))
    torch.testing.assert_close(refiner(t), t * refiner.scale_factors.view(1, 3, 1, 1))
    force_operation(refiner, 'mask')  # whole positions are dropped with probability p = 0.25
    kept = (refiner(t) != 0).float()
    assert set(kept.sum(dim=1).unique().tolist()) <= {0.0, 3.0}
    assert 1 - kept.mean() == pytest.approx(0.25, abs=0.02)
    force_operation(refiner, 'noise')  # std = 0.2 x the map's std per image and channel
    spatial_std = t.std(dim=(2, 3), keepdim=True, correction=0)
    assert float(((refiner(t) - t) / spatial_std).std().detach()) == pytest.approx(0.2, rel=0.05)
    # uniform logits: each image gets one operation; with mask and noise off, T or s * T
    refiner = FeatureRefiner(3, max_drop=0.0, max_noise=0.0, max_scale=0.5)
    with torch.no_grad():
        refiner.scale_logits.fill_(20.0)  # factors 1.5
    t = torch.rand(64, 3, 4, 4) + 0.5
    out = refiner(t)
    scaled = torch.isclose(out, 1.5 * t).flatten(1).all(dim=1)
    # one operation for the whole image, exactly (no other operation leaks in)
    assert torch.equal(out[~scaled], t[~scaled]) and 0 < scaled.sum() < 64


# ---------------------------------------------------------------- gradient isolation
def test_refiner_gets_gradients_only_from_l_aug_and_the_teacher_none():
    torch.manual_seed(0)
    loss = SoKDLoss(dict(type='MSEFeatureLoss'), student_channels=4, teacher_channels=6,
                    num_areas=3)
    s = torch.randn(32, 4, 6, 6, requires_grad=True)
    t = torch.randn(32, 6, 6, 6, requires_grad=True)
    refiner = list(loss.refiner.parameters())
    adapter = list(loss.adapter.parameters())
    dam = list(loss.dam.parameters())
    terms = loss.compute_terms(s, t)
    assert 0 < terms['mask'].mean() < 1

    def grads(term, params):
        found = torch.autograd.grad(term, params, retain_graph=True, allow_unused=True)
        return [g is not None and bool(g.abs().sum() > 0) for g in found]

    # the masked distillation term: student and adapter, never refiner, DAM or teacher
    assert all(grads(terms['distill'], [s, *adapter]))
    assert not any(grads(terms['distill'], [t, *refiner, *dam]))
    # L_aug: every refiner parameter (each operation was picked by some image), nothing else
    assert all(grads(terms['aug'], refiner))
    assert not any(grads(terms['aug'], [s, t, *adapter, *dam]))
    # DAM consistency: student, adapter and DAM through the student branch
    assert all(grads(terms['consistency'], [s, *adapter, loss.dam.conv.weight]))
    assert not any(grads(terms['consistency'], [t, *refiner]))
    # DAM supervision: on the detached refined teacher, so the DAM only
    assert all(grads(terms['supervision'], [loss.dam.conv.weight,
                                            loss.dam.heatmap_head.weight]))
    assert not any(grads(terms['supervision'], [s, t, *adapter, *refiner]))
    loss(s, t).backward()
    assert t.grad is None and s.grad is not None


# ---------------------------------------------------------------- masks (DAM)
def test_mask_of_a_known_peak_is_a_known_rectangle():
    heat = torch.full((1, 1, 6, 8), 0.1)
    heat[0, 0, 3, 4], heat[0, 0, 3, 5] = 0.9, 0.8  # (3, 5) is no peak: its neighbour is higher
    heat[0, 0, 0, 7] = 0.5  # a second, lower peak
    size, offset = torch.zeros(1, 2, 6, 8), torch.zeros(1, 2, 6, 8)
    size[0, :, 3, 4], offset[0, :, 3, 4] = torch.tensor([3.0, 2.0]), 0.5  # x 3..5, y 2..4
    size[0, :, 0, 7] = torch.tensor([-2.0, 0.3])  # below 1 cell: the peak's cell only,
    offset[0, :, 0, 7] = 0.5  # when centred in it; a centre on a cell edge (offset 0) ...
    expected = torch.zeros(6, 8)
    expected[2:5, 3:6] = 1
    one = mutual_interest_masks(heat, heat, size, offset, num_areas=1)
    assert torch.equal(one[0, 0], expected)
    expected[0, 7] = 1
    two = mutual_interest_masks(heat, heat, size, offset, num_areas=2)
    assert torch.equal(two[0, 0], expected)
    # more areas than peaks, one-cell boxes: the background plateau cells are peaks too (3x3
    # maxima), but cells next to a higher one never are
    cells = mutual_interest_masks(heat, heat, torch.ones_like(size), torch.full_like(offset, .5),
                                  num_areas=48)[0, 0]
    assert cells[3, 4] == 1 and cells[0, 7] == 1 and cells[5, 0] == 1
    assert cells[3, 5] == 0 and cells[2:5, 3:6].sum() == 1 and cells[:2, 6:].sum() == 1
    # min_box_size: 3x3 cells around the second peak's centre (7.0, 0.0), clamped to the map
    edge = mutual_interest_masks(heat, heat, size, torch.zeros_like(offset), num_areas=2)
    assert edge[0, 0, 0, 6:].tolist() == [1, 1] and edge[0, 0, 1:, 6:].sum() == 0  # ... 2 cells
    boxes = mutual_interest_masks(heat, heat, torch.zeros_like(size), torch.full_like(offset, .5),
                                  num_areas=2, min_box_size=3)
    assert boxes[0, 0, 2:5, 3:6].sum() == 9 and boxes[0, 0, :2, 6:].sum() == 4  # clamped
    assert boxes[0, 0].sum() == 9 + 4


def test_masks_follow_mutual_interest_not_one_side():
    heat_S, heat_T = torch.full((1, 1, 8, 8), 0.1), torch.full((1, 1, 8, 8), 0.1)
    heat_S[0, 0, 1, 1] = 0.9  # only the student finds (1, 1) interesting
    heat_S[0, 0, 5, 6], heat_T[0, 0, 5, 6] = 0.6, 0.6  # both find (5, 6) interesting
    size = torch.ones(1, 2, 8, 8)
    mask = mutual_interest_masks(heat_S, heat_T, size, torch.full_like(size, 0.5), num_areas=1)
    assert mask[0, 0, 5, 6] == 1 and mask.sum() == 1


@pytest.mark.parametrize('wrapped', [dict(type='MSEFeatureLoss'),
                                     dict(type='CKALoss'),
                                     dict(type='CKALoss', centered=False)],
                         ids=['mse', 'cka', 'cka-uncentered'])
def test_all_ones_mask_equals_the_plain_wrapped_loss(wrapped):
    torch.manual_seed(0)
    # boxes of at least 100 cells cover the whole 7x9 map; eval mode: no augmentation
    loss = SoKDLoss(wrapped, student_channels=4, teacher_channels=6, num_areas=1,
                    min_box_size=100).eval()
    s, t = torch.randn(4, 4, 7, 9), torch.randn(4, 6, 7, 9)
    terms = loss.compute_terms(s, t)
    plain = build_component(wrapped)(loss.adapter(s), t)
    assert torch.equal(terms['mask'], torch.ones(4, 1, 7, 9))
    torch.testing.assert_close(terms['distill'], plain)
    assert terms['aug'] == 0
    # a partial mask: the wrapped loss sees exactly the masked maps
    loss.min_box_size, loss.num_areas = 1.0, 3
    terms = loss.compute_terms(s, t)
    mask = terms['mask']
    assert 0 < mask.mean() < 1
    torch.testing.assert_close(terms['distill'],
                               build_component(wrapped)(loss.adapter(s) * mask, t * mask))


# ---------------------------------------------------------------- DAM targets
def test_box_targets_peak_at_the_box_centres():
    samples = [det_sample([[16, 8, 48, 36]]), det_sample([[0, 0, 16, 16], [40, 40, 64, 64]])]
    targets = box_center_targets(samples, (8, 8), stride=8)
    heat = targets['heatmap'][:, 0]
    assert heat.shape == (2, 8, 8) and heat.max() == 1
    assert divmod(int(heat[0].argmax()), 8) == (2, 4)  # centre (4, 2.75) cells
    assert torch.equal(targets['size'][0, :, 2, 4], torch.tensor([4.0, 3.5]))
    torch.testing.assert_close(targets['offset'][0, :, 2, 4], torch.tensor([0.0, 0.75]))
    assert heat[1, 1, 1] == 1 and heat[1, 6, 6] == 1  # centres (1, 1) and (6.5, 6.5)
    assert torch.equal(targets['offset'][1, :, 6, 6], torch.tensor([0.5, 0.5]))
    assert targets['weight'].sum() == 3 and (heat == 1).sum() == 3
    # a Gaussian of mmdet's radius around each centre: 20x20 cells give radius 4
    heat = box_center_targets([det_sample([[0, 0, 40, 40]])], (32, 32), stride=2)['heatmap']
    row = heat[0, 0, 10, 10:16].tolist()
    assert row[0] == 1 and all(a > b for a, b in zip(row[:5], row[1:5])) and row[5] == 0


def test_attention_target_is_the_normalised_channel_mean_of_abs():
    feat = torch.zeros(1, 2, 4, 4)
    feat[0, 0, 1, 2], feat[0, 1, 1, 2] = -4.0, 2.0  # mean |.| = 3, the peak
    feat[0, 0, 3, 3] = 1.5  # mean |.| = 0.75
    heat = attention_target(feat)['heatmap']
    assert heat[0, 0, 1, 2] == 1 and heat[0, 0, 3, 3] == 0.25 and heat.min() == 0


def test_dam_supervision_drives_the_heatmap_to_the_box_centre():
    torch.manual_seed(0)
    samples = [det_sample([[24, 16, 48, 40]])]  # cells x 3..5, y 2..4: centre cell (4, 3)
    feat = torch.zeros(1, 4, 8, 8)
    feat[0, :, 2:5, 3:6] = 1.0  # the box's cells: only the centre sees ones all around
    targets = box_center_targets(samples, feat.shape, stride=8)
    dam = DistinctiveAreaModule(4, feat_channels=16)
    optim = torch.optim.Adam(dam.parameters(), lr=2e-2)
    for _ in range(60):
        loss = dam_supervision_loss(dam(feat), targets)
        optim.zero_grad()
        loss.backward()
        optim.step()
    out = dam(feat)
    assert divmod(int(out['heatmap'][0, 0].argmax()), 8) == (3, 4)
    assert out['size'][0, :, 3, 4].tolist() == pytest.approx([3.0, 3.0], abs=0.5)


def test_gt_boxes_or_attention_supervise_the_heatmap():
    torch.manual_seed(0)
    loss = SoKDLoss(dict(type='MSEFeatureLoss'), 4, 4, stride=8)
    feat = torch.randn(1, 4, 8, 8)
    from_boxes = loss._targets(feat, [det_sample([[16, 8, 48, 40]])])
    assert set(from_boxes) == {'heatmap', 'size', 'offset', 'weight'}
    assert from_boxes['heatmap'][0, 0, 3, 4] == 1
    assert set(loss._targets(feat, None)) == {'heatmap'}  # no boxes: the teacher's attention
    with pytest.raises(ValueError, match=r'stride=8 does not fit.*set stride to about 16'):
        loss._targets(feat, [det_sample([[0, 0, 8, 8]], input_size=128)])


# ---------------------------------------------------------------- the loss as a whole
def test_coverage_is_logged_every_training_call():
    hub = MessageHub.get_current_instance()
    key = 'train/sokd_coverage.test_fpn0'
    loss = SoKDLoss(dict(type='MSEFeatureLoss'), 4, 4, num_areas=2, name='test_fpn0')
    s, t = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    torch.manual_seed(1)
    loss(s, t)
    torch.manual_seed(1)
    expected = float(loss.compute_terms(s, t)['mask'].mean())
    assert hub.get_scalar(key).current() == pytest.approx(expected)
    assert 2 / 64 <= expected < 1
    count = len(hub.get_scalar(key).data[0])
    loss(s, t)
    assert len(hub.get_scalar(key).data[0]) == count + 1
    loss.eval()(s, t)  # not logged outside training
    assert len(hub.get_scalar(key).data[0]) == count + 1
    assert SoKDLoss(dict(type='MSEFeatureLoss'), 4, 4, stride=16).name == 'stride16'


@pytest.mark.parametrize('wrapped', ['MSEFeatureLoss', 'CKALoss', 'SSIMLoss', 'PKDLoss'])
@pytest.mark.parametrize('with_boxes', [True, False], ids=['det', 'seg'])
def test_builds_from_the_registry_around_feature_losses(wrapped, with_boxes):
    torch.manual_seed(0)
    loss = build_component(dict(type='SoKDLoss', loss=dict(type=wrapped), student_channels=4,
                                teacher_channels=8, stride=8, num_areas=4))
    assert isinstance(loss, SoKDLoss) and type(loss.wrapped_loss).__name__ == wrapped
    s = torch.randn(3, 4, 8, 8, requires_grad=True)
    samples = [det_sample([[8, 8, 40, 32]]) for _ in range(3)] if with_boxes else None
    value = loss(s, torch.randn(3, 8, 8, 8), samples)
    assert value.shape == () and value.dtype == torch.float32 and torch.isfinite(value)
    value.backward()
    assert s.grad.abs().sum() > 0
    assert all(p.grad is not None for p in loss.refiner.parameters())


def test_weights_combine_the_terms():
    torch.manual_seed(0)
    loss = SoKDLoss(dict(type='MSEFeatureLoss', loss_weight=2.0), 4, 4, loss_weight=3.0,
                    aug_weight=0.5, dam_weight=0.25)
    s, t = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    torch.manual_seed(2)
    value = loss(s, t)
    torch.manual_seed(2)
    terms = loss.compute_terms(s, t)
    torch.testing.assert_close(value, 3.0 * terms['distill'] + 0.5 * terms['aug']
                               + 0.25 * (terms['consistency'] + terms['supervision']))


def test_refiner_gets_its_own_param_group():
    model = nn.Module()
    model.distill_losses = nn.ModuleDict(
        dict(loss_sokd_fpn0=SoKDLoss(dict(type='MSEFeatureLoss'), 4, 8)))
    constructor = DistillOptimWrapperConstructor(
        dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05)),
        dict(custom_keys={'.refiner.': dict(lr_mult=0.5, decay_mult=0.0)}))
    groups = constructor(model).optimizer.param_groups
    refiner_ids = {id(p) for p in model.distill_losses.loss_sokd_fpn0.refiner.parameters()}
    refiner_groups = [g for g in groups if id(g['params'][0]) in refiner_ids]
    assert len(refiner_groups) == 4
    assert all(g['lr'] == 5e-4 and g['weight_decay'] == 0 for g in refiner_groups)
    assert all(g['lr'] == 1e-3 and g['weight_decay'] == 0.05 for g in groups
               if id(g['params'][0]) not in refiner_ids)


def test_errors_name_the_problem_and_the_fix():
    loss = SoKDLoss(dict(type='MSEFeatureLoss'), 4, 8)
    with pytest.raises(ValueError, match=r'student_channels=4.*\(2, 3, 8, 8\).*set '
                                         'student_channels'):
        loss(torch.randn(2, 3, 8, 8), torch.randn(2, 8, 8, 8))
    with pytest.raises(ValueError, match=r'teacher_channels=8'):
        loss(torch.randn(2, 4, 8, 8), torch.randn(2, 6, 8, 8))
    with pytest.raises(ValueError, match='ResizeConnector'):
        loss(torch.randn(2, 4, 8, 8), torch.randn(2, 8, 16, 16))
    with pytest.raises(ValueError, match='one data sample per image'):
        loss(torch.randn(2, 4, 8, 8), torch.randn(2, 8, 8, 8), [det_sample([[0, 0, 8, 8]])])
    with pytest.raises(ValueError, match='no stride.*set stride='):
        loss(torch.randn(1, 4, 8, 8), torch.randn(1, 8, 8, 8), [det_sample([[0, 0, 8, 8]])])
    with pytest.raises(ValueError, match=r'loss\(preds_S, preds_T\).*FGDLoss'):
        SoKDLoss(dict(type='FGDLoss', student_channels=8, teacher_channels=8), 4, 8)
    with pytest.raises(TypeError, match="dict\\(type='MSEFeatureLoss'\\)"):
        SoKDLoss('MSEFeatureLoss', 4, 8)
    with pytest.raises(ValueError, match=r'max_drop and max_scale must lie in \[0, 1\)'):
        SoKDLoss(dict(type='MSEFeatureLoss'), 4, 8, max_drop=1.0)
    with pytest.raises(ValueError, match='num_areas must be a positive int'):
        SoKDLoss(dict(type='MSEFeatureLoss'), 4, 8, num_areas=0)
    with pytest.raises(ValueError, match='min_box_size is in cells'):
        SoKDLoss(dict(type='MSEFeatureLoss'), 4, 8, min_box_size=0.5)
