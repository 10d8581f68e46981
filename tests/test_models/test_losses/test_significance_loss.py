"""SignificanceWeightedLoss: known weights per mode, self-regulation on constructed student
outputs, and equality with the wrapped loss when every image weighs the same."""
import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.structures import BaseDataElement, InstanceData, PixelData

from mmkd.models.losses import (CWDLoss, DenseHeadLogitLoss, KDLoss, MSEFeatureLoss,
                                SignificanceWeightedLoss, detection_handled,
                                segmentation_handled, significance_weights, split_per_image)


def samples(*significance, **fields):
    """Data samples with the given significances (None: not stamped)."""
    out = []
    for i, s in enumerate(significance):
        sample = BaseDataElement(metainfo={} if s is None else dict(significance=s))
        for name, values in fields.items():
            sample.set_field(values[i], name)
        out.append(sample)
    return out


def per_image_targets(*values):
    """Student zeros and teacher maps of constant ``values[i]``: MSE of image i = values[i]**2."""
    teacher = torch.stack([torch.full((2, 3, 3), float(v)) for v in values])
    return torch.zeros_like(teacher, requires_grad=True), teacher


# ---------------------------------------------------------------- weights
def test_significance_weights_known_values():
    weights = significance_weights(torch.tensor([0.0, 0.2, 0.6, 0.4]), min_weight=0.1)
    # floored: 0.1, 0.2, 0.6, 0.4 (sum 1.3), times 4 / 1.3
    assert weights.tolist() == pytest.approx([0.4 / 1.3, 0.8 / 1.3, 2.4 / 1.3, 1.6 / 1.3])
    assert float(weights.mean()) == pytest.approx(1.0)
    assert significance_weights(torch.zeros(3)).tolist() == [1.0, 1.0, 1.0]


def test_significance_mode_weights_each_image():
    s, t = per_image_targets(1.0, 2.0, 3.0)           # per-image MSE 1, 4, 9
    loss = SignificanceWeightedLoss(dict(type='MSEFeatureLoss'), mode='significance',
                                    min_weight=0.1)
    value = loss(samples(0.0, 0.5, 0.5), preds_S=s, preds_T=t)
    # weights 0.1, 0.5, 0.5 -> * 3 / 1.1
    expected = (0.1 * 1 + 0.5 * 4 + 0.5 * 9) * 3 / 1.1 / 3
    assert float(value) == pytest.approx(expected, rel=1e-6)
    assert loss.last_weights.tolist() == pytest.approx([0.3 / 1.1, 1.5 / 1.1, 1.5 / 1.1])


@pytest.mark.parametrize('make', [
    lambda: (KDLoss(tau=2.0), dict(type='KDLoss', tau=2.0), torch.randn(3, 5, 4, 4)),
    lambda: (CWDLoss(tau=1.0), dict(type='CWDLoss', tau=1.0), torch.randn(3, 5, 4, 4)),
    lambda: (MSEFeatureLoss(), dict(type='MSEFeatureLoss'), torch.randn(3, 5, 4, 4)),
])
@pytest.mark.parametrize('significance', [(0.4, 0.4, 0.4), (None, None, None)])
def test_equal_significance_is_the_plain_wrapped_loss(make, significance):
    torch.manual_seed(0)
    plain, cfg, preds_S = make()
    preds_T = torch.randn_like(preds_S)
    wrapped = SignificanceWeightedLoss(cfg, mode='significance')
    value = wrapped(samples(*significance), preds_S=preds_S, preds_T=preds_T)
    assert float(value) == pytest.approx(float(plain(preds_S, preds_T)), rel=1e-5)


def test_dense_head_lists_are_cut_per_level():
    torch.manual_seed(1)
    preds_S = [torch.randn(2, 8, 4, 4), torch.randn(2, 8, 2, 2)]    # 2 anchors x 4 classes
    preds_T = [torch.randn(2, 8, 4, 4) * 3, torch.randn(2, 8, 2, 2) * 3]
    plain = DenseHeadLogitLoss(num_classes=4, select='confident', max_locations=None)
    wrapped = SignificanceWeightedLoss(dict(type='DenseHeadLogitLoss', num_classes=4,
                                            select='confident', max_locations=None))
    per_image = [float(plain([p[i:i + 1] for p in preds_S], [p[i:i + 1] for p in preds_T]))
                 for i in range(2)]
    value = wrapped(samples(0.2, 0.6), preds_S=preds_S, preds_T=preds_T)
    assert float(value) == pytest.approx((0.5 * per_image[0] + 1.5 * per_image[1]) / 2,
                                         rel=1e-5)


# ---------------------------------------------------------------- self-regulation
def seg_case():
    """Image 0 is segmented confidently by the student, image 1 is not."""
    labels = torch.ones(2, 1, 8, 8, dtype=torch.long)
    labels[:, :, :, :2] = 255                         # two unlabelled columns
    logits = torch.zeros(2, 3, 4, 4)                  # logits at 1/2 of the labels' size
    logits[0, 1] = 6.0                                # image 0: class 1 at p = 0.995
    logits[1, 1, :2] = 6.0                            # image 1: only the upper half
    data_samples = samples(0.2, 0.6, gt_sem_seg=[PixelData(data=x) for x in labels])
    return data_samples, logits


def test_segmentation_handled_counts_labelled_pixels_only():
    data_samples, logits = seg_case()
    labels = torch.stack([s.gt_sem_seg.data[0] for s in data_samples])
    assert segmentation_handled(logits, labels).tolist() == [True, False]
    # image 1 handles half of its pixels: enough at handled_ratio 0.5
    assert segmentation_handled(logits, labels, handled_ratio=0.5).tolist() == [True, True]
    # p = 0.995 is not enough at conf_thr 0.999
    assert segmentation_handled(logits, labels, conf_thr=0.999).tolist() == [False, False]
    assert segmentation_handled(logits, torch.full_like(labels, 255)).tolist() == [True, True]


def test_segmentation_handled_ignores_confident_unlabelled_pixels():
    labels = torch.ones(1, 4, 4, dtype=torch.long)
    labels[0, 0] = 255
    logits = torch.zeros(1, 3, 4, 4)
    logits[0, 0, 0] = 6.0       # unlabelled row: confident class 0 (the masked label's stand-in)
    logits[0, 1, 1] = 6.0       # 4 of the 12 labelled pixels confident
    assert segmentation_handled(logits, labels, handled_ratio=0.5).tolist() == [False]
    assert segmentation_handled(logits, labels, handled_ratio=0.3).tolist() == [True]


@pytest.mark.parametrize('mode, weights', [
    ('regulated', [0.0, 1.0]),
    ('hybrid', [0.0, 1.5]),           # significance 0.2, 0.6 -> 0.5, 1.5, gated by 0, 1
    ('significance', [0.5, 1.5]),
])
def test_modes_skip_the_confident_image_and_keep_the_other(mode, weights):
    data_samples, student_logits = seg_case()
    preds_S, preds_T = per_image_targets(1.0, 2.0)       # per-image MSE 1, 4
    loss = SignificanceWeightedLoss(dict(type='MSEFeatureLoss'), mode=mode)
    value = loss(data_samples, student_logits=student_logits, preds_S=preds_S, preds_T=preds_T)
    assert loss.last_weights.tolist() == pytest.approx(weights)
    assert float(value) == pytest.approx((weights[0] * 1 + weights[1] * 4) / 2)
    value.backward()
    grad_norms = preds_S.grad.flatten(1).norm(dim=1)
    assert [bool(g > 0) for g in grad_norms] == [w > 0 for w in weights]


def test_every_image_skipped_gives_a_zero_that_backpropagates():
    data_samples, logits = seg_case()
    logits[1, 1] = 6.0                                   # now both are handled
    preds_S, preds_T = per_image_targets(1.0, 2.0)
    value = SignificanceWeightedLoss(dict(type='MSEFeatureLoss'), mode='regulated')(
        data_samples, student_logits=logits, preds_S=preds_S, preds_T=preds_T)
    assert float(value) == 0.0
    value.backward()
    assert float(preds_S.grad.abs().sum()) == 0.0


def det_scores():
    """Two levels of (2 images, 2 anchors x 3 classes) maps for a 32 x 32 batch; all unsure."""
    return [torch.full((2, 6, 4, 4), -6.0), torch.full((2, 6, 2, 2), -6.0)]


def test_detection_handled_reads_the_gt_class_at_the_centre_cell():
    boxes = [torch.tensor([[0., 0., 8., 8.], [16., 16., 32., 32.]]),   # centres (4, 4), (24, 24)
             torch.tensor([[0., 0., 8., 8.]])]
    labels = [torch.tensor([2, 0]), torch.tensor([1])]
    scores = det_scores()
    scores[0][0, 3 + 2, 0, 0] = 6.0    # image 0, anchor 1, class 2 at level 0 cell (0, 0)
    assert detection_handled(scores, boxes, labels, (32, 32), 3).tolist() == [False, False]
    scores[1][0, 0, 1, 1] = 6.0        # image 0, anchor 0, class 0 at level 1 cell (1, 1)
    assert detection_handled(scores, boxes, labels, (32, 32), 3).tolist() == [True, False]
    scores[0][1, 2, 0, 0] = 6.0        # image 1: class 2 at its centre, but its object is 1
    scores[0][1, 1, 1, 1] = 6.0        # and class 1 at the wrong cell
    assert detection_handled(scores, boxes, labels, (32, 32), 3).tolist() == [True, False]
    scores[0][1, 3 + 1, 0, 0] = 6.0    # class 1 (anchor 1) at its centre cell
    assert detection_handled(scores, boxes, labels, (32, 32), 3).tolist() == [True, True]
    # rows are y, columns x: centre (28, 4) lies in row 0, column 3 of level 0
    corner = [torch.tensor([[24., 0., 32., 8.]])]
    scores = det_scores()
    scores[0][0, 1, 3, 0] = 6.0        # class 1 at row 3, column 0: the transposed cell
    assert detection_handled(scores, corner * 2, [torch.tensor([1])] * 2, (32, 32),
                             3).tolist() == [False, False]
    scores[0][0, 1, 0, 3] = 6.0
    assert detection_handled(scores, corner * 2, [torch.tensor([1])] * 2, (32, 32),
                             3).tolist() == [True, False]
    no_objects = [torch.zeros(0, 4)] * 2
    assert detection_handled(det_scores(), no_objects, [torch.zeros(0)] * 2, (32, 32),
                             3).tolist() == [True, True]


def test_detection_regulation_through_the_loss():
    scores = det_scores()
    scores[0][1, 1, 0, 0] = 6.0        # image 1 finds its class-1 object at cell (0, 0)
    gt = [InstanceData(bboxes=torch.tensor([[0., 0., 8., 8.]]), labels=torch.tensor([1]))] * 2
    data_samples = samples(0.5, 0.5, gt_instances=gt)
    for sample in data_samples:
        sample.set_metainfo(dict(batch_input_shape=(32, 32)))
    preds_S, preds_T = per_image_targets(1.0, 2.0)
    loss = SignificanceWeightedLoss(dict(type='MSEFeatureLoss'), mode='regulated',
                                    num_classes=3)
    value = loss(data_samples, student_logits=scores, preds_S=preds_S, preds_T=preds_T)
    assert loss.last_weights.tolist() == [1.0, 0.0] and float(value) == pytest.approx(0.5)


# ---------------------------------------------------------------- logging and errors
def test_logs_skipped_fraction_and_mean_weight():
    data_samples, logits = seg_case()
    preds_S, preds_T = per_image_targets(1.0, 2.0)
    hub = MessageHub.get_instance('test_selfreg_logging')
    loss = SignificanceWeightedLoss(dict(type='MSEFeatureLoss'), mode='hybrid', name='loss_x')
    loss(data_samples, student_logits=logits, preds_S=preds_S, preds_T=preds_T)
    assert hub.get_scalar('train/selfreg_skipped.loss_x').current() == 0.5
    assert hub.get_scalar('train/selfreg_weight.loss_x').current() == pytest.approx(0.75)


def test_split_per_image_rules():
    assert split_per_image(torch.arange(6).reshape(3, 2), 1, 3).tolist() == [[2, 3]]
    nested = split_per_image(([torch.zeros(3, 1)], torch.ones(3)), 2, 3)
    assert nested[0][0].shape == (1, 1) and nested[1].shape == (1, )
    assert split_per_image(None, 0, 3) is None and split_per_image(2.0, 0, 3) == 2.0
    with pytest.raises(ValueError, match=r'RoI-level tensors'):
        split_per_image(torch.zeros(1024, 81), 0, 2, 'preds_S')
    with pytest.raises(ValueError, match='list of 3 items for 2 images'):
        split_per_image(['a', 'b', 'c'], 0, 2, 'data_samples')


def test_errors_name_the_fix():
    preds_S, preds_T = per_image_targets(1.0, 2.0)
    with pytest.raises(ValueError, match='mode must be one of'):
        SignificanceWeightedLoss(dict(type='MSEFeatureLoss'), mode='teacher')
    with pytest.raises(ValueError, match='map student_logits'):
        SignificanceWeightedLoss(dict(type='MSEFeatureLoss'), mode='regulated')(
            samples(0.1, 0.2), preds_S=preds_S, preds_T=preds_T)
    with pytest.raises(ValueError, match='only some data samples'):
        SignificanceWeightedLoss(dict(type='MSEFeatureLoss'))(
            samples(0.1, None), preds_S=preds_S, preds_T=preds_T)
    with pytest.raises(KeyError, match=r"has no argument\(s\) \['labels'\]"):
        SignificanceWeightedLoss(dict(type='MSEFeatureLoss'))(
            samples(0.1, 0.2), preds_S=preds_S, preds_T=preds_T, labels=preds_T)
    with pytest.raises(KeyError, match=r"required argument\(s\) \['preds_T'\]"):
        SignificanceWeightedLoss(dict(type='MSEFeatureLoss'))(samples(0.1, 0.2), preds_S=preds_S)
    with pytest.raises(ValueError, match='needs num_classes'):
        gt = [InstanceData(bboxes=torch.zeros(0, 4), labels=torch.zeros(0))] * 2
        SignificanceWeightedLoss(dict(type='MSEFeatureLoss'), mode='hybrid')(
            samples(0.1, 0.2, gt_instances=gt), student_logits=det_scores(), preds_S=preds_S,
            preds_T=preds_T)


def test_wrapper_exposes_the_wrapped_loss_checks():
    wrapped = SignificanceWeightedLoss(dict(type='KDLoss'))
    assert wrapped.requires_equal_num_classes and not wrapped.requires_same_shape
    assert SignificanceWeightedLoss(dict(type='MSEFeatureLoss')).requires_same_shape
