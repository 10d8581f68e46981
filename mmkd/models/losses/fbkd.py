r"""FBKD: attention-guided feature, pooled and non-local relation imitation on one FPN level.

Improve Object Detection with Feature-based Knowledge Distillation: Towards Accurate and
Efficient Detectors (Zhang & Ma, ICLR 2021), https://openreview.net/forum?id=uKhGRvM8QNH

Attention masks (``T_s``, ``T_c`` temperatures, both 0.5 in the paper) of a map :math:`F`
(N, C, H, W), computed for the student and the teacher:

.. math::

    A^{sp}(F) = HW \cdot \mathrm{softmax}_{hw}\Bigl(\frac{1}{T_s C}\sum_c |F_c|\Bigr), \qquad
    A^{ch}(F) = C \cdot \mathrm{softmax}_{c}\Bigl(\frac{1}{T_c HW}\sum_{hw} |F_{hw}|\Bigr)

With :math:`M = (A^{sp}(S) + A^{sp}(T)) / 2` (detached), adapters :math:`a` (1x1 conv),
:math:`l` (linear on channel means), :math:`k` (3x3 conv on the channel mean), :math:`b` (1x1
conv) and non-local blocks :math:`\mathcal{N}_S, \mathcal{N}_T`, and :math:`\|\cdot\|` the l2
norm over the whole batch (not squared):

.. math::

    L = w \Bigl[\lambda_{f} \bigl\|\sqrt{M} \odot (T - a(S))\bigr\|
        + \lambda_{c} \bigl\|\bar T^{hw} - l(\bar S^{hw})\bigr\|
        + \lambda_{s} \bigl\|\bar T^{c} - k(\bar S^{c})\bigr\|
        + \lambda_{nl} \bigl\|\mathcal{N}_T(T) - b(\mathcal{N}_S(S))\bigr\|\Bigr]

Published weights: :math:`\lambda_f = 7\times10^{-5}`, :math:`\lambda_c = \lambda_s = 4\times
10^{-3}`, :math:`\lambda_{nl} = 7\times10^{-5}` on the first 4 FPN levels (MMRazor records
``neck.fpn_convs.{0..3}.conv``). The channel mask is computed by the published code but not
used; it is not computed here.

Deviations from MMRazor (``FBKDStudentConnector`` + ``FBKDTeacherConnector`` + ``FBKDLoss``):
the two connectors and the loss are one module here, fed the raw maps as ``preds_S`` /
``preds_T`` (as ``MGDLoss`` owns its generator). MMRazor's teacher connector holds a trainable
non-local block and the distiller trains it through the loss; under mmkd's contract a
teacher-side connector only ever sees detached tensors, so that block lives in the loss,
where it trains the same way (its input, the teacher map, is detached; its output is not).
The student's channel count may differ from the teacher's (the adapters map it); MMRazor
needs them equal. The non-local blocks are mmcv's ``NonLocal2d``; with ``sub_sample=True``
their ``g`` / ``phi`` branches are max-pooled by 2 (mmcv) and then by ``maxpool_stride``, as
in MMRazor.
"""
from typing import Optional

import torch
from mmcv.cnn import NonLocal2d
from torch import Tensor, nn

from mmkd.registry import MODELS
from .base import BaseDistillLoss, check_feature_channels, check_weight

_MODES = ('gaussian', 'embedded_gaussian', 'dot_product', 'concatenation')


def spatial_attention(x: Tensor, temperature: float) -> Tensor:
    """(N, C, H, W) -> (N, 1, H, W): HW * softmax over positions of mean_c |x| / T."""
    n, _, h, w = x.shape
    score = x.abs().mean(dim=1).reshape(n, -1) / temperature
    return (torch.softmax(score, dim=1) * (h * w)).reshape(n, 1, h, w)


def build_non_local(channels: int, reduction: int = 2, mode: str = 'dot_product',
                    sub_sample: bool = False, maxpool_stride: int = 2,
                    norm_cfg: Optional[dict] = None) -> NonLocal2d:
    """mmcv's ``NonLocal2d`` (zero-initialised output, so it starts as the identity), its
    pairwise branches max-pooled by ``maxpool_stride`` more when ``sub_sample``."""
    if mode not in _MODES:
        raise ValueError(f'FBKDLoss: mode must be one of {_MODES}, got {mode!r}.')
    if sub_sample and mode == 'gaussian':
        raise ValueError("FBKDLoss: sub_sample=True needs mode='dot_product', "
                         "'embedded_gaussian' or 'concatenation' (not 'gaussian').")
    block = NonLocal2d(channels, reduction=reduction, mode=mode, sub_sample=sub_sample,
                       norm_cfg=dict(type='BN') if norm_cfg is None else norm_cfg)
    if sub_sample:
        pool = nn.MaxPool2d(kernel_size=maxpool_stride)
        block.g = nn.Sequential(block.g, pool)
        block.phi = nn.Sequential(block.phi, pool)
    return block


@MODELS.register_module()
class FBKDLoss(BaseDistillLoss):
    """FBKD on one feature level (see the module docstring for the formula and deviations).

    Args:
        student_channels (int): Channels of ``preds_S``.
        teacher_channels (int): Channels of ``preds_T``.
        loss_weight (float): Scales the whole loss. Defaults to 1.0.
        mask_l2_weight (float): Attention-masked feature term. Defaults to 7e-5.
        channel_weight (float): Channel-pooled term. Defaults to 4e-3.
        spatial_weight (float): Spatially pooled term. Defaults to 4e-3.
        nonlocal_weight (float): Non-local relation term. Defaults to 7e-5.
        spatial_temperature (float): Of the spatial attention. Defaults to 0.5.
        reduction (int): Channel reduction inside the non-local blocks. Defaults to 2.
        mode (str): Non-local pairwise function. Defaults to 'dot_product'.
        sub_sample (bool): Max-pool the non-local pairwise branches. Defaults to False.
        maxpool_stride (int): Their extra pooling with ``sub_sample``. Defaults to 2.
        norm_cfg (dict, optional): Norm of the non-local output conv. Defaults to BN.

    Example:
        >>> import torch
        >>> loss = FBKDLoss(student_channels=8, teacher_channels=16)
        >>> loss(torch.randn(2, 8, 12, 12), torch.randn(2, 16, 12, 12)).shape
        torch.Size([])
    """

    def __init__(self, student_channels: int, teacher_channels: int, loss_weight: float = 1.0,
                 mask_l2_weight: float = 7e-5, channel_weight: float = 4e-3,
                 spatial_weight: float = 4e-3, nonlocal_weight: float = 7e-5,
                 spatial_temperature: float = 0.5, reduction: int = 2,
                 mode: str = 'dot_product', sub_sample: bool = False, maxpool_stride: int = 2,
                 norm_cfg: Optional[dict] = None):
        super().__init__(loss_weight)
        name = type(self).__name__
        self.weights = dict(
            (key, check_weight(name, key, value)) for key, value in dict(
                mask_l2_weight=mask_l2_weight, channel_weight=channel_weight,
                spatial_weight=spatial_weight, nonlocal_weight=nonlocal_weight).items())
        if not spatial_temperature > 0:
            raise ValueError(f'{name}: spatial_temperature must be > 0, got '
                             f'{spatial_temperature!r}.')
        self.student_channels, self.teacher_channels = student_channels, teacher_channels
        self.spatial_temperature = spatial_temperature
        self.feature_adapt = nn.Conv2d(student_channels, teacher_channels, 1)
        self.channel_adapt = nn.Linear(student_channels, teacher_channels)
        self.spatial_adapt = nn.Conv2d(1, 1, 3, padding=1)
        self.relation_adapt = nn.Conv2d(student_channels, teacher_channels, 1)
        block = dict(reduction=reduction, mode=mode, sub_sample=sub_sample,
                     maxpool_stride=maxpool_stride, norm_cfg=norm_cfg)
        self.student_non_local = build_non_local(student_channels, **block)
        self.teacher_non_local = build_non_local(teacher_channels, **block)
        # mmcv's sub_sample max-pools by 2, and maxpool_stride pools once more
        self.min_side = 2 * maxpool_stride if sub_sample else 1

    def compute(self, preds_S: Tensor, preds_T: Tensor) -> Tensor:
        """preds_S (N, C_S, H, W), preds_T (N, C_T, H, W) (detached). Returns a scalar."""
        check_feature_channels('FBKDLoss', preds_S, preds_T, self.student_channels,
                               self.teacher_channels)
        if min(preds_S.shape[-2:]) < self.min_side:
            raise ValueError(
                f'FBKDLoss: a {tuple(preds_S.shape[-2:])} feature map is too small for '
                f'sub_sample=True with maxpool_stride={self.min_side // 2}: the non-local '
                f'blocks pool it by {self.min_side}, so each side needs >= {self.min_side} '
                'cells; use larger images or a smaller maxpool_stride on this level.')
        s, t, w = preds_S, preds_T, self.weights
        mask = ((spatial_attention(s, self.spatial_temperature)
                 + spatial_attention(t, self.spatial_temperature)) / 2).detach()
        # ||sqrt(M) (T - a(S))||: the published sqrt(sum(M (T - a(S))^2)), with a finite
        # gradient where the two maps are equal
        loss = w['mask_l2_weight'] * torch.linalg.vector_norm(
            mask.sqrt() * (t - self.feature_adapt(s)))
        loss = loss + w['channel_weight'] * torch.dist(
            t.mean(dim=(2, 3)), self.channel_adapt(s.mean(dim=(2, 3))))
        loss = loss + w['spatial_weight'] * torch.dist(
            t.mean(dim=1, keepdim=True), self.spatial_adapt(s.mean(dim=1, keepdim=True)))
        if w['nonlocal_weight']:
            loss = loss + w['nonlocal_weight'] * torch.dist(
                self.teacher_non_local(t), self.relation_adapt(self.student_non_local(s)))
        return loss
