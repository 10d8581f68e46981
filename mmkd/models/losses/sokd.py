r"""SoKD: student-oriented refinement of the teacher's feature, a plug-in around a feature loss.

Student-Oriented Teacher Knowledge Refinement for Knowledge Distillation (Shen et al., ACM MM
2024), https://arxiv.org/abs/2409.18785

On one feature level, with teacher feature :math:`T`, student feature :math:`S` (both
(N, C, H, W)), a 1x1 conv adapter :math:`f` on the student (identity when the channel counts
agree) and :math:`\mathrm{sg}` the stop-gradient:

* DAFA (:class:`FeatureRefiner`) refines the teacher with a learnable, bounded augmentation
  trained to move toward what the student can follow,
  :math:`L_{aug} = \tfrac12 \operatorname{mean}(\mathrm{aug}(T) - \mathrm{sg}[f(S)])^2`.
* DAM (:class:`DistinctiveAreaModule`), a small CenterNet-like head shared by :math:`f(S)`
  and :math:`\mathrm{sg}[\mathrm{aug}(T)]`, finds the areas both find interesting; its top
  peaks become box masks :math:`M` (:func:`mutual_interest_masks`), and the wrapped loss
  :math:`L_w` (MSE, CKA, SSIM, PKD ...) only sees those areas:

.. math::

    L_{SoKD} = w \, L_w\bigl(M \odot f(S),\ M \odot \mathrm{sg}[\mathrm{aug}(T)]\bigr)
             + \lambda_{aug} L_{aug} + \lambda_{DAM} (L_{cons} + L_{sup})

From the paper (its abstract; the full text was not available to us): a learnable feature
augmentation of the teacher that adapts it to the student during training, a distinctive area
detection module whose areas of mutual interest restrict distillation, and the plug-in use on
top of other distillation losses. Ours: the four operations and their bounds, the
Gumbel-softmax choice per image, the head's layout and losses (CenterNet's), the GT-box
supervision of the heatmap (or, without boxes, the teacher's attention), the box masks, the
one-pass "alternation" and every constant (P, weights, bounds): the paper's are not public.
"""
from typing import Dict, Optional, Sequence

import torch
import torch.nn.functional as F
from mmengine.logging import MessageHub
from torch import Tensor, nn

from mmkd.registry import MODELS
from .base import BaseDistillLoss, build_wrapped_loss, check_feature_channels, check_weight
from .utils import gt_boxes, spatial_min_max

#: CenterNet's heatmap bias: sigmoid(-2.19) = 0.1, the prior that a cell is a centre.
HEATMAP_BIAS_INIT = -2.19
#: CenterNet's weights of the size and offset L1 terms (mmdet ``CenterNetHead``).
SIZE_WEIGHT, OFFSET_WEIGHT = 0.1, 1.0
#: Tolerance, in feature cells, when a box edge falls on a cell edge (as in fgd.py).
_EDGE_TOL = 1e-4


def _straight_through(hard: Tensor, soft: Tensor) -> Tensor:
    """``hard`` in the forward pass, ``soft``'s gradient in the backward pass.

    Written ``hard + (soft - soft.detach())``: the bracket is exactly 0, so the forward value
    is exactly ``hard`` (``F.gumbel_softmax``'s ``hard - soft.detach() + soft`` can leave
    about 1e-8 where ``hard`` is 0, so an unchosen operation would leak into the output).
    """
    return hard + (soft - soft.detach())


class FeatureRefiner(nn.Module):
    r"""DAFA: a learnable, bounded, differentiable augmentation of a teacher feature.

    Every image gets one of four operations, picked by a hard (straight-through)
    Gumbel-softmax :math:`g` over learnable logits :math:`\pi` with temperature :math:`\tau`:

    .. math::

        \mathrm{aug}(T) = \sum_k g_k \, o_k(T), \qquad
        o_{id} = T, \quad o_{mask} = (1 - D) \odot T, \quad
        o_{noise} = T + \sigma \, \mathrm{std}_{hw}(T) \, \epsilon, \quad
        o_{scale} = s \odot T

    :math:`D` (N, 1, H, W) drops whole positions with probability :math:`p`, drawn as a
    straight-through relaxed Bernoulli (temperature :math:`\tau`) so that it is differentiable
    in :math:`p`; :math:`\epsilon \sim \mathcal{N}(0, 1)`; :math:`\mathrm{std}_{hw}(T)` is the
    (detached) spatial std of each image and channel; :math:`s` has one factor per channel.
    The magnitudes are bounded sigmoids of free parameters,
    :math:`p = p_{max}\sigma(a)`, :math:`\sigma = \sigma_{max}\sigma(b)`,
    :math:`s = 1 + s_{max}(2\sigma(c) - 1)`, so no optimizer step can take them out of
    :math:`[0, p_{max}]`, :math:`[0, \sigma_{max}]`, :math:`[1 - s_{max}, 1 + s_{max}]`: this
    is what keeps :math:`\mathrm{aug}(T)` from collapsing onto the student. They start at the
    middle of their range (factors at 1). In eval mode the refiner is the identity.

    Args:
        channels (int): C of the teacher feature (one scaling factor per channel).
        max_drop (float): Bound of the drop probability, in [0, 1). Defaults to 0.3.
        max_noise (float): Bound of the noise std, in units of the feature's spatial std per
            channel, >= 0. Defaults to 0.3.
        max_scale (float): Bound of the scaling factors' distance to 1, in [0, 1).
            Defaults to 0.3.
        tau (float): Gumbel-softmax and relaxed-Bernoulli temperature, > 0.
            Defaults to 1.0.

    Example:
        >>> import torch
        >>> refiner = FeatureRefiner(channels=8)
        >>> t = torch.randn(2, 8, 5, 5)
        >>> refiner(t).shape
        torch.Size([2, 8, 5, 5])
        >>> bool(torch.equal(refiner.eval()(t), t))
        True
    """
    OPERATIONS = ('identity', 'mask', 'noise', 'scale')

    def __init__(self, channels: int, max_drop: float = 0.3, max_noise: float = 0.3,
                 max_scale: float = 0.3, tau: float = 1.0):
        super().__init__()
        if not 0.0 <= max_drop < 1.0 or not 0.0 <= max_scale < 1.0 or not max_noise >= 0.0:
            raise ValueError(f'FeatureRefiner bounds: max_drop and max_scale must lie in [0, 1) '
                             f'and max_noise be >= 0, got max_drop={max_drop}, max_scale='
                             f'{max_scale}, max_noise={max_noise}.')
        if not tau > 0:
            raise ValueError(f'FeatureRefiner: the temperature tau must be > 0, got {tau}.')
        self.channels = channels
        self.max_drop, self.max_noise, self.max_scale = max_drop, max_noise, max_scale
        self.tau = tau
        self.op_logits = nn.Parameter(torch.zeros(len(self.OPERATIONS)))
        self.drop_logit = nn.Parameter(torch.zeros(()))
        self.noise_logit = nn.Parameter(torch.zeros(()))
        self.scale_logits = nn.Parameter(torch.zeros(channels))

    @property
    def drop_probability(self) -> Tensor:
        """p, in [0, max_drop]."""
        return self.max_drop * torch.sigmoid(self.drop_logit)

    @property
    def noise_std(self) -> Tensor:
        """sigma, in [0, max_noise]."""
        return self.max_noise * torch.sigmoid(self.noise_logit)

    @property
    def scale_factors(self) -> Tensor:
        """s, (C,), in [1 - max_scale, 1 + max_scale]."""
        return 1 + self.max_scale * (2 * torch.sigmoid(self.scale_logits) - 1)

    def keep_mask(self, feat: Tensor) -> Tensor:
        """(N, 1, H, W): 0 at dropped positions, 1 elsewhere (straight-through in p)."""
        N, _, H, W = feat.shape
        # clamped so that logit() stays finite; max_drop=0 still drops nothing (keeps at 0.5)
        p = self.drop_probability.clamp(1e-6, 1 - 1e-6)
        u = torch.rand(N, 1, H, W, device=feat.device, dtype=feat.dtype).clamp(1e-6, 1 - 1e-6)
        soft_keep = torch.sigmoid(-(torch.logit(p) + torch.logit(u)) / self.tau)
        return _straight_through((soft_keep >= 0.5).to(feat.dtype), soft_keep)

    def forward(self, feat: Tensor) -> Tensor:
        """feat: (N, channels, H, W). Returns aug(feat), the same shape (feat in eval mode)."""
        if not self.training:
            return feat
        N, C = feat.shape[:2]
        gumbels = -torch.empty(N, len(self.OPERATIONS), device=feat.device).exponential_().log()
        soft = torch.softmax((self.op_logits + gumbels) / self.tau, dim=1)
        hard = F.one_hot(soft.argmax(dim=1), len(self.OPERATIONS)).to(soft.dtype)
        choice = _straight_through(hard, soft).to(feat.dtype)[:, :, None, None, None]
        spatial_std = feat.detach().std(dim=(2, 3), keepdim=True, correction=0)
        # Every operation is evaluated: the straight-through gradient of an unchosen one's
        # logit needs its output. Summed one by one, no (N, K, C, H, W) stack is kept.
        out = choice[:, 0] * feat
        out = out + choice[:, 1] * (feat * self.keep_mask(feat))
        out = out + choice[:, 2] * (feat + self.noise_std * spatial_std * torch.randn_like(feat))
        out = out + choice[:, 3] * (feat * self.scale_factors.view(1, C, 1, 1))
        return out


class DistinctiveAreaModule(nn.Module):
    """DAM: a small CenterNet-like head (3x3 conv, ReLU, three 1x1 convs) on one level.

    Outputs per cell: a centre heatmap (sigmoid, clamped to [1e-4, 1 - 1e-4] as CenterNet
    does, its bias starting at -2.19), the box size (w, h) and the centre's sub-cell offset
    (x, y), both in feature cells. Shared by the adapted student and the refined teacher.

    Args:
        in_channels (int): Channels of the input (the teacher's).
        feat_channels (int): Channels of the hidden 3x3 conv. Defaults to 64 (CenterNet's).

    Example:
        >>> import torch
        >>> out = DistinctiveAreaModule(16)(torch.randn(2, 16, 8, 8))
        >>> {k: tuple(v.shape) for k, v in out.items()}
        {'heatmap': (2, 1, 8, 8), 'size': (2, 2, 8, 8), 'offset': (2, 2, 8, 8)}
    """

    def __init__(self, in_channels: int, feat_channels: int = 64):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, feat_channels, kernel_size=3, padding=1)
        self.heatmap_head = nn.Conv2d(feat_channels, 1, kernel_size=1)
        self.size_head = nn.Conv2d(feat_channels, 2, kernel_size=1)
        self.offset_head = nn.Conv2d(feat_channels, 2, kernel_size=1)
        nn.init.constant_(self.heatmap_head.bias, HEATMAP_BIAS_INIT)

    def forward(self, feat: Tensor) -> Dict[str, Tensor]:
        hidden = F.relu(self.conv(feat))
        # clamped so that the focal loss' logs stay finite (CenterNet's _sigmoid)
        heatmap = self.heatmap_head(hidden).sigmoid().clamp(1e-4, 1 - 1e-4)
        return dict(heatmap=heatmap, size=self.size_head(hidden),
                    offset=self.offset_head(hidden))


def box_center_targets(data_samples: Sequence, feat_shape: Sequence[int], stride: float,
                       min_overlap: float = 0.3,
                       device: Optional[torch.device] = None) -> Dict[str, Tensor]:
    """Class-agnostic CenterNet targets of one level from the GT boxes (mmdet's recipe).

    A box (pixels) divided by ``stride`` has centre (cx, cy) and size (w, h) in cells; the
    cell ``(int(cy), int(cx))`` gets heatmap 1 with a Gaussian around it of mmdet's
    ``gaussian_radius((h, w), min_overlap)``, size ``(w, h)``, offset
    ``(cx - int(cx), cy - int(cy))`` and weight 1.

    Args:
        data_samples (Sequence[DetDataSample]): One per image, with ``gt_instances.bboxes``.
        feat_shape (Sequence[int]): The level's shape; its last two entries are (H, W).
        stride (float): Pixels per feature cell.
        min_overlap (float): CenterNet's IoU for the Gaussian radius. Defaults to 0.3.
        device (torch.device, optional): Defaults to the boxes' device.

    Returns:
        dict: ``heatmap`` (N, 1, H, W), ``size`` and ``offset`` (N, 2, H, W), ``weight``
        (N, 1, H, W), all float32.

    Example:
        >>> import torch
        >>> from mmdet.structures import DetDataSample
        >>> from mmengine.structures import InstanceData
        >>> s = DetDataSample()
        >>> s.gt_instances = InstanceData(bboxes=torch.tensor([[16., 8., 48., 36.]]))
        >>> t = box_center_targets([s], (8, 8), stride=8)  # centre (4, 2.75) cells
        >>> t['heatmap'][0, 0, 2, 4], t['size'][0, :, 2, 4], t['offset'][0, :, 2, 4]
        (tensor(1.), tensor([4.0000, 3.5000]), tensor([0.0000, 0.7500]))
    """
    from mmdet.models.utils import gaussian_radius, gen_gaussian_target  # lazy: mmdet is heavy
    H, W = int(feat_shape[-2]), int(feat_shape[-1])
    all_boxes = [gt_boxes(sample, f'SoKDLoss heatmap targets: data_samples[{i}]')
                 for i, sample in enumerate(data_samples)]
    dev = device if device is not None else (all_boxes[0].device if all_boxes else None)
    N = len(data_samples)
    heatmap = torch.zeros(N, 1, H, W, device=dev)
    size = torch.zeros(N, 2, H, W, device=dev)
    offset = torch.zeros(N, 2, H, W, device=dev)
    weight = torch.zeros(N, 1, H, W, device=dev)
    for i, boxes in enumerate(all_boxes):
        for x1, y1, x2, y2 in (boxes / stride).tolist():
            cx, cy, w, h = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
            cx_int, cy_int = min(max(int(cx), 0), W - 1), min(max(int(cy), 0), H - 1)
            radius = max(0, int(gaussian_radius((h, w), min_overlap)))
            gen_gaussian_target(heatmap[i, 0], [cx_int, cy_int], radius)
            size[i, 0, cy_int, cx_int], size[i, 1, cy_int, cx_int] = w, h
            offset[i, 0, cy_int, cx_int] = min(max(cx - cx_int, 0.0), 1.0)
            offset[i, 1, cy_int, cx_int] = min(max(cy - cy_int, 0.0), 1.0)
            weight[i, 0, cy_int, cx_int] = 1.0
    return dict(heatmap=heatmap, size=size, offset=offset, weight=weight)


def attention_target(feat: Tensor, eps: float = 1e-6) -> Dict[str, Tensor]:
    """Heatmap target without boxes: the channel mean of ``|feat|`` min-max scaled to [0, 1]
    per image (its maximum is exactly 1, the focal loss' positive). Returns
    ``dict(heatmap=(N, 1, H, W))``; no size / offset targets."""
    attention = feat.detach().abs().mean(dim=1, keepdim=True)
    low, high = spatial_min_max(attention)
    return dict(heatmap=(attention - low) / (high - low).clamp(min=eps))


def dam_supervision_loss(outputs: Dict[str, Tensor], targets: Dict[str, Tensor]) -> Tensor:
    """CenterNet's loss: Gaussian focal loss of the heatmap (averaged over the positives) plus,
    when targets have them, 0.1 x L1 of the size and 1 x L1 of the offset at the centres."""
    from mmdet.models.losses import GaussianFocalLoss, l1_loss  # lazy: mmdet is heavy
    num_pos = max(1, int(targets['heatmap'].eq(1).sum()))
    loss = GaussianFocalLoss()(outputs['heatmap'], targets['heatmap'], avg_factor=num_pos)
    if 'size' in targets:
        weight = targets['weight'].expand_as(outputs['size'])
        num_coords = max(1.0, float(weight.sum()))
        loss = loss + SIZE_WEIGHT * l1_loss(outputs['size'], targets['size'], weight,
                                            avg_factor=num_coords)
        loss = loss + OFFSET_WEIGHT * l1_loss(outputs['offset'], targets['offset'], weight,
                                              avg_factor=num_coords)
    return loss


def dam_consistency_loss(outputs_S: Dict[str, Tensor], outputs_T: Dict[str, Tensor],
                         eps: float = 1e-6) -> Tensor:
    """The student branch follows the (detached) teacher branch: MSE of the heatmaps, plus L1
    of size (x 0.1) and offset weighted by the teacher heatmap (sizes mean something only near
    centres; elsewhere they are unsupervised and arbitrary)."""
    target = {key: value.detach() for key, value in outputs_T.items()}
    weight = target['heatmap']
    loss = F.mse_loss(outputs_S['heatmap'], weight)
    denom = (2 * weight.sum()).clamp(min=eps)
    for key, key_weight in (('size', SIZE_WEIGHT), ('offset', OFFSET_WEIGHT)):
        loss = loss + key_weight * (weight * (outputs_S[key] - target[key]).abs()).sum() / denom
    return loss


def mutual_interest_masks(heatmap_S: Tensor, heatmap_T: Tensor, size: Tensor, offset: Tensor,
                          num_areas: int, min_box_size: float = 1.0,
                          kernel: int = 3) -> Tensor:
    """Box masks of the top ``num_areas`` peaks of the mutual interest ``heatmap_S *
    heatmap_T``.

    Peaks are ``kernel`` x ``kernel`` local maxima (mmdet's ``get_local_maximum``). A peak at
    cell (y, x) with size (w, h) and offset (dx, dy) (offset clamped to [0, 1], sides to at
    least ``min_box_size`` cells) is the box centred at (x + dx, y + dy); it covers every cell
    whose span overlaps the box's interior, always the peak's own. The mask is the union.
    Call it without gradient.

    Args:
        heatmap_S, heatmap_T (Tensor): (N, 1, H, W), in (0, 1].
        size (Tensor): (N, 2, H, W), (w, h) in cells.
        offset (Tensor): (N, 2, H, W), (dx, dy) in cells.
        num_areas (int): P, peaks per image (fewer when the map has fewer peaks).
        min_box_size (float): Smallest box side, in cells. Defaults to 1.0.
        kernel (int): Side of the local-maximum window. Defaults to 3.

    Returns:
        Tensor: (N, 1, H, W), 1 inside the areas and 0 elsewhere, of the heatmaps' dtype.

    Example:
        >>> import torch
        >>> heat = torch.full((1, 1, 6, 8), 0.1)
        >>> heat[0, 0, 3, 4] = 0.9
        >>> size, offset = torch.zeros(1, 2, 6, 8), torch.zeros(1, 2, 6, 8)
        >>> size[0, :, 3, 4] = torch.tensor([3.0, 2.0])       # w = 3, h = 2 cells
        >>> offset[0, :, 3, 4] = 0.5                          # centre (4.5, 3.5)
        >>> mutual_interest_masks(heat, heat, size, offset, num_areas=1)[0, 0].int()
        tensor([[0, 0, 0, 0, 0, 0, 0, 0],
                [0, 0, 0, 0, 0, 0, 0, 0],
                [0, 0, 0, 1, 1, 1, 0, 0],
                [0, 0, 0, 1, 1, 1, 0, 0],
                [0, 0, 0, 1, 1, 1, 0, 0],
                [0, 0, 0, 0, 0, 0, 0, 0]], dtype=torch.int32)
    """
    from mmdet.models.utils import (get_local_maximum, get_topk_from_heatmap,
                                    transpose_and_gather_feat)  # lazy: mmdet is heavy
    N, _, H, W = heatmap_S.shape
    peaks = get_local_maximum(heatmap_S * heatmap_T, kernel=kernel)  # non-peaks are 0
    scores, inds, _, ys, xs = get_topk_from_heatmap(peaks, k=min(num_areas, H * W))
    box_size = transpose_and_gather_feat(size, inds).clamp(min=min_box_size)  # (N, P, 2)
    box_offset = transpose_and_gather_feat(offset, inds).clamp(0, 1)
    centre_x = xs.float() + box_offset[..., 0]
    centre_y = ys.float() + box_offset[..., 1]
    x_lo = torch.floor(centre_x - box_size[..., 0] / 2 + _EDGE_TOL).clamp(0, W - 1)
    x_hi = (torch.ceil(centre_x + box_size[..., 0] / 2 - _EDGE_TOL) - 1).clamp(max=W - 1)
    y_lo = torch.floor(centre_y - box_size[..., 1] / 2 + _EDGE_TOL).clamp(0, H - 1)
    y_hi = (torch.ceil(centre_y + box_size[..., 1] / 2 - _EDGE_TOL) - 1).clamp(max=H - 1)
    cols = torch.arange(W, device=heatmap_S.device, dtype=centre_x.dtype)
    rows = torch.arange(H, device=heatmap_S.device, dtype=centre_x.dtype)
    in_cols = (cols >= x_lo[..., None]) & (cols <= x_hi[..., None])  # (N, P, W)
    in_rows = (rows >= y_lo[..., None]) & (rows <= y_hi[..., None])  # (N, P, H)
    inside = in_rows[..., :, None] & in_cols[..., None, :] & (scores > 0)[..., None, None]
    return inside.any(dim=1, keepdim=True).to(heatmap_S.dtype)


@MODELS.register_module()
class SoKDLoss(BaseDistillLoss):
    r"""SoKD around a feature loss on one level: refined teacher, distinctive-area masks.

    See the module docstring for the formula. One call computes every term, and one backward
    pass trains each part only on its own objective (gradient isolation):

    * the refiner (:class:`FeatureRefiner`, parameters under ``.refiner.``) gets gradients
      only from :math:`L_{aug}`, whose student side is detached; everything else sees the
      refined teacher detached;
    * the student and the adapter get gradients from the masked wrapped loss and, through the
      student branch, from the DAM consistency; the teacher gets none;
    * the DAM gets them from the consistency and from its supervision on the (detached)
      teacher branch: CenterNet targets of the GT boxes at this level's ``stride`` when
      ``data_samples`` with ``gt_instances`` are given (detection; every box on every level,
      as single-level CenterNet, with no FPN scale assignment), else the refined
      teacher's normalised attention (:func:`attention_target`; then size and offset learn
      only from the consistency, so ``min_box_size`` sets the areas' extent);
    * the masks are computed without gradient, from the mean of the two branches' size and
      offset.

    The paper alternates refiner and student updates (bi-level). Here each optimizer step
    moves the refiner toward the current student and the student toward the current refined
    teacher, both from the same backward pass: an alternation at the granularity of one
    step, not a nested optimisation. Give the refiner its own parameter group in the config,
    e.g. ``optim_wrapper = dict(constructor='mmkd.DistillOptimWrapperConstructor',
    paramwise_cfg=dict(custom_keys={'.refiner.': dict(lr_mult=1.0, decay_mult=0.0)}))``
    (weight decay would pull every magnitude to the middle of its range). In eval mode the
    refiner is the identity; the masks still apply. Every training call logs the mask
    coverage (fraction of cells inside the areas) as ``train/sokd_coverage.<name>``.

    The returned value (logged as ``distill.<name>``) includes the DAM terms, which train
    only the DAM and (consistency) the student branch; :meth:`compute_terms` gives the parts.
    The DAM's gradients also count in ``clip_grad``'s global norm (on the digits detector they
    are most of it in the first steps), so clipping can shrink the student's step.

    Args:
        loss (dict): The wrapped loss, with ``forward(preds_S, preds_T)``, e.g.
            ``dict(type='MSEFeatureLoss')`` or ``dict(type='CKALoss')``; its own
            ``loss_weight`` multiplies in.
        student_channels (int): Channels of ``preds_S``.
        teacher_channels (int): Channels of ``preds_T``; a 1x1 conv adapts the student when
            they differ (trained with the student).
        stride (int, optional): Pixels per cell of this level, for the GT-box targets; needed
            when ``data_samples`` with boxes are passed. Defaults to None.
        num_areas (int): P, areas (peaks) per image. Defaults to 10.
        min_box_size (float): Smallest side of an area, in cells. Defaults to 1.0.
        max_drop (float): Refiner bound of the drop probability. Defaults to 0.3.
        max_noise (float): Refiner bound of the noise std (x the feature's std). Defaults
            to 0.3.
        max_scale (float): Refiner bound of the scaling factors' distance to 1. Defaults
            to 0.3.
        tau (float): Refiner's Gumbel-softmax temperature. Defaults to 1.0.
        dam_channels (int): Hidden channels of the DAM. Defaults to 64.
        min_overlap (float): CenterNet's IoU for the Gaussian radius. Defaults to 0.3.
        aug_weight (float): :math:`\lambda_{aug}`. Defaults to 1.0.
        dam_weight (float): :math:`\lambda_{DAM}`. Defaults to 1.0.
        loss_weight (float): :math:`w`, on the masked wrapped loss. Defaults to 1.0.
        name (str, optional): Suffix of the coverage log key; give each SoKD loss of a config
            its own (e.g. ``'fpn0'``). Defaults to ``'stride<stride>'`` or ``'feature'``.

    Example:
        >>> import torch
        >>> loss = SoKDLoss(dict(type='MSEFeatureLoss'), student_channels=8,
        ...                 teacher_channels=16, num_areas=4)
        >>> value = loss(torch.randn(2, 8, 12, 12), torch.randn(2, 16, 12, 12))
        >>> value.shape, value.dtype
        (torch.Size([]), torch.float32)
        >>> sorted(loss.compute_terms(torch.randn(2, 8, 12, 12), torch.randn(2, 16, 12, 12)))
        ['aug', 'consistency', 'distill', 'mask', 'supervision']
    """
    requires_same_shape = False  # channels are adapted here; sizes are checked here

    def __init__(self, loss: dict, student_channels: int, teacher_channels: int,
                 stride: Optional[int] = None, num_areas: int = 10, min_box_size: float = 1.0,
                 max_drop: float = 0.3, max_noise: float = 0.3, max_scale: float = 0.3,
                 tau: float = 1.0, dam_channels: int = 64, min_overlap: float = 0.3,
                 aug_weight: float = 1.0, dam_weight: float = 1.0, loss_weight: float = 1.0,
                 name: Optional[str] = None):
        super().__init__(loss_weight)
        for arg, value in (('student_channels', student_channels),
                           ('teacher_channels', teacher_channels), ('num_areas', num_areas),
                           ('dam_channels', dam_channels)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f'SoKDLoss: {arg} must be a positive int, got {value!r}.')
        if stride is not None and not stride > 0:
            raise ValueError(f'SoKDLoss: stride must be > 0 (pixels per feature cell), got '
                             f'{stride!r}.')
        if not min_box_size >= 1:
            raise ValueError(f'SoKDLoss: min_box_size is in cells and must be >= 1, got '
                             f'{min_box_size!r}.')
        aug_weight = check_weight('SoKDLoss', 'aug_weight', aug_weight)
        dam_weight = check_weight('SoKDLoss', 'dam_weight', dam_weight)
        self.wrapped_loss = build_wrapped_loss(loss, 'SoKDLoss')
        self._check_wrapped_loss(loss['type'])
        self.student_channels = student_channels
        self.teacher_channels = teacher_channels
        self.stride = stride
        self.num_areas = num_areas
        self.min_box_size = min_box_size
        self.min_overlap = min_overlap
        self.aug_weight, self.dam_weight = aug_weight, dam_weight
        self.name = name or (f'stride{stride}' if stride is not None else 'feature')
        self.adapter = (nn.Conv2d(student_channels, teacher_channels, kernel_size=1)
                        if student_channels != teacher_channels else None)
        self.refiner = FeatureRefiner(teacher_channels, max_drop, max_noise, max_scale,
                                      tau)
        self.dam = DistinctiveAreaModule(teacher_channels, dam_channels)

    def _check_wrapped_loss(self, type_name) -> None:
        params = self.wrapped_loss.argument_names()
        required = self.wrapped_loss.required_arguments()
        if 'preds_S' not in params or 'preds_T' not in params or set(required) - {
                'preds_S', 'preds_T'}:
            raise ValueError(f'SoKDLoss wraps losses called as loss(preds_S, preds_T), but '
                             f'{type_name}.forward takes {params}: wrap a feature loss '
                             "such as MSEFeatureLoss, CKALoss, SSIMLoss or PKDLoss.")

    def _check_inputs(self, preds_S: Tensor, preds_T: Tensor, data_samples) -> None:
        check_feature_channels('SoKDLoss', preds_S, preds_T, self.student_channels,
                               self.teacher_channels)
        if data_samples is not None and (not isinstance(data_samples, (list, tuple))
                                         or len(data_samples) != preds_S.shape[0]):
            got = (len(data_samples) if isinstance(data_samples, (list, tuple))
                   else type(data_samples).__name__)
            raise ValueError(f'SoKDLoss needs one data sample per image ({preds_S.shape[0]}), '
                             f"got {got}: map data_samples=dict(from_data='data_samples').")

    def _targets(self, refined_T: Tensor, data_samples) -> Dict[str, Tensor]:
        with_boxes = [s is not None and 'gt_instances' in s for s in (data_samples or [])]
        if not any(with_boxes):  # segmentation, or no data samples mapped
            return attention_target(refined_T)
        if not all(with_boxes):
            raise ValueError('SoKDLoss: some data samples have gt_instances and some do not; '
                             'pass detection samples for every image or none.')
        if self.stride is None:
            raise ValueError('SoKDLoss got GT boxes but no stride to map them to this level: '
                             'set stride= (e.g. 8 for the first FPN level of RetinaNet, 4 for '
                             "Faster R-CNN's), or do not map data_samples.")
        H, W = refined_T.shape[-2:]
        for i, sample in enumerate(data_samples):
            in_h, in_w = sample.metainfo.get('batch_input_shape', (None, None))[:2]
            # FPN sizes are ceil(input / stride) up to rounding of the padded input
            if in_h is not None and not (abs(in_h / self.stride - H) < 1
                                         and abs(in_w / self.stride - W) < 1):
                raise ValueError(f'SoKDLoss: stride={self.stride} does not fit this level: '
                                 f'input {in_h}x{in_w} px, feature {H}x{W} cells (data_samples'
                                 f'[{i}]); set stride to about {in_h / H:g}.')
        return box_center_targets(data_samples, refined_T.shape, self.stride, self.min_overlap,
                                  refined_T.device)

    def compute_terms(self, preds_S: Tensor, preds_T: Tensor,
                      data_samples: Optional[Sequence] = None) -> Dict[str, Tensor]:
        """The unweighted terms: ``distill`` (masked wrapped loss), ``aug`` (L_aug, 0 in eval
        mode), ``consistency``, ``supervision``, and the ``mask`` (N, 1, H, W).

        Calling the loss casts its inputs to float32 with autocast off and detaches the
        teacher (:class:`BaseDistillLoss`); called directly, this expects the same."""
        self._check_inputs(preds_S, preds_T, data_samples)
        adapted_S = preds_S
        if self.adapter is not None:
            adapted_S = self.adapter(adapted_S)
        feat_T = preds_T.detach()
        # aug(T) once with live refiner parameters, for L_aug only ...
        augmented_T = self.refiner(feat_T)
        loss_aug = (0.5 * (augmented_T - adapted_S.detach()).pow(2).mean() if self.training
                    else adapted_S.new_zeros(()))
        # ... and detached everywhere else, so no other term reaches the refiner
        refined_T = augmented_T.detach()
        outputs_S, outputs_T = self.dam(adapted_S), self.dam(refined_T)
        consistency = dam_consistency_loss(outputs_S, outputs_T)
        supervision = dam_supervision_loss(outputs_T, self._targets(refined_T, data_samples))
        with torch.no_grad():
            mask = mutual_interest_masks(
                outputs_S['heatmap'], outputs_T['heatmap'],
                (outputs_S['size'] + outputs_T['size']) / 2,
                (outputs_S['offset'] + outputs_T['offset']) / 2,
                self.num_areas, self.min_box_size)
        distill = self.wrapped_loss(adapted_S * mask, refined_T * mask)
        return dict(distill=distill, aug=loss_aug, consistency=consistency,
                    supervision=supervision, mask=mask)

    def compute(self, preds_S: Tensor, preds_T: Tensor,
                data_samples: Optional[Sequence] = None) -> Dict[str, Tensor]:
        """preds_S (N, student_channels, H, W), preds_T (N, teacher_channels, H, W),
        data_samples (optional): N data samples, with ``gt_instances`` for detection.
        Returns the terms; the loss returns their weighted sum (:meth:`weigh`), a float32
        scalar."""
        terms = self.compute_terms(preds_S, preds_T, data_samples)
        if self.training:
            MessageHub.get_current_instance().update_scalar(
                f'train/sokd_coverage.{self.name}', float(terms['mask'].mean()))
        return terms

    def weigh(self, terms: Dict[str, Tensor]) -> Tensor:
        """``w * distill + aug_weight * aug + dam_weight * (consistency + supervision)``:
        ``loss_weight`` weighs the masked wrapped loss only."""
        return (self.loss_weight * terms['distill'] + self.aug_weight * terms['aug']
                + self.dam_weight * (terms['consistency'] + terms['supervision']))
