import math

import pytest
import torch
from mmengine.registry import init_default_scope
from model_steps import train_step_losses

from mmkd.models.losses.dense_head_kd import (DenseHeadLogitLoss, flatten_dense_labels,
                                              flatten_dense_logits, select_dense_locations)
from mmkd.models.losses.kd import kd_loss
from mmkd.registry import MODELS, build_component
from mmkd.testing import det_batch

C = 4  # classes; label C is the background


def dense_maps(shapes=((8, 8), (4, 4)), anchors=3, n=2, seed=0, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, anchors * C, h, w, generator=g).requires_grad_(requires_grad)
            for h, w in shapes]


def manual_rows(maps):
    """Rows in the order level, n, h, w, a, by explicit loops (the layout mmdet documents)."""
    rows = []
    for m in maps:
        N, AC, H, W = m.shape
        for n in range(N):
            for h in range(H):
                for w in range(W):
                    for a in range(AC // C):
                        rows.append(m[n, a * C:(a + 1) * C, h, w])
    return torch.stack(rows)


def test_flatten_matches_manual_layout_and_detaches_teacher():
    s, t = dense_maps(requires_grad=True), dense_maps(seed=1, requires_grad=True)
    rows_S, rows_T, per_level = flatten_dense_logits(s, t, C)
    assert per_level == [2 * 64 * 3, 2 * 16 * 3]
    assert torch.equal(rows_S, manual_rows(s)) and torch.equal(rows_T, manual_rows(t))
    assert rows_S.requires_grad and not rows_T.requires_grad
    labels = [torch.arange(n).reshape(2, -1) for n in per_level]       # (N, H*W*A) per level
    flat = flatten_dense_labels(labels, per_level)
    assert torch.equal(flat, torch.cat([x.reshape(-1) for x in labels]))
    fcos_style = [x.reshape(-1) for x in labels]                        # (N*H*W,) per level
    assert torch.equal(flatten_dense_labels(fcos_style, per_level), flat)
    assert torch.equal(flatten_dense_labels(flat, per_level), flat)     # already concatenated


def test_selection_caps_and_prefers_positives_then_confident():
    # Teacher scores (sigmoid of the max logit) per location; labels C = background.
    scores = torch.tensor([0.9, 0.2, 0.95, 0.6, 0.6, 0.1, 0.99, 0.3, 0.6, 0.8])
    logits_T = torch.full((10, C), -20.0)
    logits_T[:, 1] = torch.logit(scores)
    labels = torch.full((10, ), C)
    labels[[1, 5, 7]] = torch.tensor([0, 3, 2])                          # low-score positives
    both = select_dense_locations(logits_T, labels, C, score_thr=0.5, max_locations=None)
    assert both.tolist() == list(range(10))                             # union: everything
    # Cap 6: the 3 positives, then the 3 most confident of the rest (0.99, 0.95, 0.9).
    capped = select_dense_locations(logits_T, labels, C, score_thr=0.5, max_locations=6)
    assert capped.tolist() == [0, 1, 2, 5, 6, 7]
    # Cap 8: then 0.8 (9) and one of the ties at 0.6 (3, 4, 8): the lowest index, 3.
    capped = select_dense_locations(logits_T, labels, C, score_thr=0.5, max_locations=8)
    assert capped.tolist() == [0, 1, 2, 3, 5, 6, 7, 9]
    # Cap below the positives: the most confident positives (0.3 at 7, 0.2 at 1).
    assert select_dense_locations(logits_T, labels, C, max_locations=2).tolist() == [1, 7]


def test_selection_positive_only_and_confident_only():
    logits_T = torch.full((6, C), -5.0)
    logits_T[[0, 3], 2] = 3.0                                            # confident
    labels = torch.tensor([C, 1, C, C, 0, C])                            # positives 1, 4
    assert select_dense_locations(logits_T, labels, C, select='positive').tolist() == [1, 4]
    assert select_dense_locations(logits_T, None, C, select=('confident', )).tolist() == [0, 3]
    assert select_dense_locations(logits_T, labels, C).tolist() == [0, 1, 3, 4]
    # A threshold above every score, only confident: nothing.
    assert select_dense_locations(logits_T, labels, C, select='confident',
                                  score_thr=0.99).numel() == 0


def test_selection_with_generator_is_reproducible_and_keeps_positives():
    logits_T = torch.randn(500, C) + 2.0                                 # mostly confident
    labels = torch.full((500, ), C)
    labels[::50] = 1                                                     # 10 positives
    pick = [select_dense_locations(logits_T, labels, C, max_locations=40,
                                   generator=torch.Generator().manual_seed(3)) for _ in range(2)]
    assert torch.equal(pick[0], pick[1]) and pick[0].numel() == 40
    assert set(range(0, 500, 50)) <= set(pick[0].tolist())
    by_score = select_dense_locations(logits_T, labels, C, max_locations=40)
    assert not torch.equal(pick[0], by_score)


def test_loss_equals_kd_sigmoid_on_the_gathered_rows():
    s, t = dense_maps(requires_grad=True), dense_maps(seed=1)
    per_level = [2 * 64 * 3, 2 * 16 * 3]
    g = torch.Generator().manual_seed(2)
    labels = [torch.where(torch.rand(n, generator=g) < 0.05, torch.randint(C, (n, ), generator=g),
                          torch.full((n, ), C)).reshape(2, -1) for n in per_level]
    loss_fn = DenseHeadLogitLoss(num_classes=C, score_thr=0.9, max_locations=30,
                                 loss_weight=2.0, loss=dict(type='KDLoss', mode='sigmoid',
                                                            tau=2.0))
    loss = loss_fn(s, t, labels)
    rows_S, rows_T = manual_rows(s), manual_rows(t)
    flat = torch.cat([x.reshape(-1) for x in labels])
    idx = select_dense_locations(rows_T, flat, C, score_thr=0.9, max_locations=30)
    assert loss_fn.num_selected == idx.numel() == 30
    expected = 2.0 * kd_loss(rows_S[idx], rows_T[idx], tau=2.0, mode='sigmoid')
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert s[0].grad is not None and s[0].grad.abs().sum() > 0


def test_nothing_selected_gives_zero_with_a_gradient_path():
    s = dense_maps(requires_grad=True)
    t = [torch.full_like(x, -10.0) for x in s]                           # scores ~ 4.5e-5
    labels = [torch.full((2, x.shape[2] * x.shape[3] * 3), C) for x in s]
    loss_fn = DenseHeadLogitLoss(num_classes=C)
    loss = loss_fn(s, t, labels)
    assert loss_fn.num_selected == 0 and float(loss.detach()) == 0.0 and loss.requires_grad
    loss.backward()
    assert all(x.grad is not None and float(x.grad.abs().sum()) == 0.0 for x in s)


def test_one_tensor_input_and_registry_build():
    loss_fn = build_component(dict(type='DenseHeadLogitLoss', num_classes=C,
                                   select='confident', score_thr=0.0, max_locations=None))
    s, t = torch.randn(2, C, 4, 4), torch.randn(2, C, 4, 4)
    torch.testing.assert_close(loss_fn(s, t), kd_loss(s, t, mode='sigmoid'))
    assert loss_fn.num_selected == 32


class _Spy:
    def __init__(self, module):
        self.kwargs = None
        module.register_forward_pre_hook(self, with_kwargs=True)

    def __call__(self, module, args, kwargs):
        self.args, self.kwargs = args, dict(kwargs)


def test_label_aware_inner_loss_gets_background_as_ignore_index():
    s, t = dense_maps(requires_grad=True), dense_maps(seed=1)
    per_level = [2 * 64 * 3, 2 * 16 * 3]
    labels = [torch.full((2, n // 2), C) for n in per_level]
    labels[0][0, :6] = torch.tensor([0, 1, 2, 3, 0, 1])
    cfg = dict(type='TopKDLoss', mode='sigmoid', k=2)
    loss_fn = DenseHeadLogitLoss(cfg, num_classes=C, score_thr=0.8, max_locations=20)
    spy = _Spy(loss_fn.loss)
    loss = loss_fn(s, t, labels)
    assert torch.isfinite(loss) and loss > 0
    passed = spy.kwargs['labels']
    assert passed.numel() == 20 and (passed == 255).sum() == 14        # 6 positives first
    assert sorted(passed[passed != 255].tolist()) == [0, 0, 1, 1, 2, 3]
    # pass_labels=False: TopKD sees every selected location, without ground truth.
    loss_fn = DenseHeadLogitLoss(cfg, num_classes=C, score_thr=0.8, max_locations=20,
                                 pass_labels=False)
    spy = _Spy(loss_fn.loss)
    loss_fn(s, t, labels)
    assert 'labels' not in spy.kwargs and spy.args[0].shape == (20, C)
    # KDLoss takes no labels: none are passed.
    loss_fn = DenseHeadLogitLoss(num_classes=C)
    spy = _Spy(loss_fn.loss)
    loss_fn(s, t, labels)
    assert 'labels' not in spy.kwargs


def test_dkd_inner_loss_runs_on_positives_and_needs_labels():
    s, t = dense_maps(requires_grad=True), dense_maps(seed=1)
    labels = [torch.full((2, 192), C), torch.full((2, 48), C)]
    labels[1][1, :3] = torch.tensor([2, 0, 3])
    loss_fn = DenseHeadLogitLoss(dict(type='DKDLoss'), num_classes=C)
    loss = loss_fn(s, t, labels)
    assert torch.isfinite(loss) and loss > 0
    with pytest.raises(ValueError, match='DKDLoss needs labels'):
        DenseHeadLogitLoss(dict(type='DKDLoss'), num_classes=C, select='confident')(s, t)
    with pytest.raises(ValueError, match='keep pass_labels=True'):
        DenseHeadLogitLoss(dict(type='DKDLoss'), num_classes=C, pass_labels=False)
    with pytest.raises(ValueError, match='ignore_index=2 is a class index'):
        DenseHeadLogitLoss(dict(type='DKDLoss', ignore_index=2), num_classes=C)


def test_errors_name_the_problem():
    s, t = dense_maps(), dense_maps(seed=1)
    loss_fn = DenseHeadLogitLoss(num_classes=C)
    labels = [torch.full((2, 192), C), torch.full((2, 48), C)]
    with pytest.raises(ValueError, match='student has 2 levels and the teacher 1'):
        loss_fn(s, t[:1], labels)
    with pytest.raises(ValueError, match='level 1 has student shape .* same anchors'):
        loss_fn(s, [t[0], torch.randn(2, 2 * C, 4, 4)], labels)
    with pytest.raises(ValueError, match='not a multiple of num_classes=5'):
        DenseHeadLogitLoss(num_classes=5)(s, t, labels)
    with pytest.raises(ValueError, match='data_idx=1 for GFL'):
        loss_fn(s, t, [labels[0][:, :100], labels[1]])
    with pytest.raises(ValueError, match='integer class indices.*data_idx=1 for GFL'):
        loss_fn(s, t, [x.float() for x in labels])
    with pytest.raises(ValueError, match='list of per-level label tensors'):
        loss_fn(s, t, (labels, labels))                                  # the whole tuple
    with pytest.raises(ValueError, match="select=\\('positive', ...\\) needs the assigned"):
        loss_fn(s, t)
    with pytest.raises(ValueError, match='non-empty subset'):
        DenseHeadLogitLoss(num_classes=C, select=('positive', 'all'))
    with pytest.raises(ValueError, match='max_locations must be >= 1'):
        DenseHeadLogitLoss(num_classes=C, max_locations=0)


# --- real mmdet heads through the Distiller -------------------------------------------------

BOXES = ([2.0, 30.0, 26.0, 62.0], [34.0, 2.0, 62.0, 30.0])  # image 0 bottom-left, 1 top-right


HEADS = {
    'retinanet': ('mmdet::retinanet/retinanet_r18_fpn_1x_coco.py',
                  'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py', 0),
    'fcos': ('mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py',
             'mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py', 0),
    'gfl': ('mmdet::gfl/gfl_r50_fpn_1x_coco.py', 'mmdet::gfl/gfl_r50_fpn_1x_coco.py', 1),
}


@pytest.mark.parametrize('head', sorted(HEADS))
def test_real_dense_heads_through_the_distiller(head):
    student, teacher, labels_idx = HEADS[head]
    init_default_scope('mmdet')
    model = MODELS.build(dict(
        _scope_='mmkd', type='Distiller',
        student=dict(cfg_path=student, pretrained=False),
        teacher=dict(cfg_path=teacher, pretrained=False),
        student_recorders=dict(
            cls=dict(type='MethodOutputsRecorder', source='bbox_head.forward'),
            targets=dict(type='MethodOutputsRecorder', source='bbox_head.get_targets')),
        teacher_recorders=dict(cls=dict(type='MethodOutputsRecorder', source='bbox_head.forward')),
        distill_losses=dict(loss_kd=dict(type='DenseHeadLogitLoss', num_classes=80,
                                         select=('positive', ), max_locations=100)),
        loss_forward_mappings=dict(loss_kd=dict(
            preds_S=dict(from_student=True, recorder='cls', data_idx=0),
            preds_T=dict(from_student=False, recorder='cls', data_idx=0),
            labels=dict(from_student=True, recorder='targets', data_idx=labels_idx)))))
    loss_module = model.distill_losses['loss_kd']
    spy = _Spy(loss_module)
    losses = train_step_losses(
        model, det_batch(boxes=[[box] for box in BOXES], labels=[[1], [2]]))
    value = losses['distill.loss_kd']
    assert value.dim() == 0 and math.isfinite(float(value)) and float(value) > 0

    # The recorded labels line up with the flattened logits: every positive row is a prior
    # whose centre lies in its own image's box, with that image's label.
    preds_S, labels = spy.kwargs['preds_S'], spy.kwargs['labels']
    _, _, per_level = flatten_dense_logits(preds_S, spy.kwargs['preds_T'], 80)
    flat = flatten_dense_labels(labels, per_level)
    positive = (flat >= 0) & (flat < 80)
    assert 0 < int(positive.sum()) and loss_module.num_selected == min(int(positive.sum()), 100)
    head_module = model.student.bbox_head
    priors = head_module.prior_generator.grid_priors([p.shape[-2:] for p in preds_S],
                                                     device='cpu')
    centres, images = [], []
    for level_priors in priors:
        centre = level_priors[:, :2] if level_priors.shape[1] == 2 else \
            (level_priors[:, :2] + level_priors[:, 2:]) / 2
        centres.append(centre.repeat(len(BOXES), 1))
        images.append(torch.arange(len(BOXES)).repeat_interleave(len(level_priors)))
    centres, images = torch.cat(centres), torch.cat(images)
    assert len(centres) == len(flat)
    boxes = torch.tensor(BOXES)[images[positive]]
    c = centres[positive]
    inside = ((c[:, 0] >= boxes[:, 0]) & (c[:, 0] <= boxes[:, 2]) & (c[:, 1] >= boxes[:, 1])
              & (c[:, 1] <= boxes[:, 3]))
    assert bool(inside.all())
    assert torch.equal(flat[positive], images[positive] + 1)

    value.backward()
    conv_cls = {'retinanet': 'retina_cls', 'fcos': 'conv_cls', 'gfl': 'gfl_cls'}[head]
    grad = getattr(head_module, conv_cls).weight.grad
    assert grad is not None and float(grad.abs().sum()) > 0
