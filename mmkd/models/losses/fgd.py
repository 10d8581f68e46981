r"""Focal and global distillation (FGD) for detectors, with ground-truth box masks.

Focal and Global Knowledge Distillation for Detectors (Yang et al., CVPR 2022),
https://arxiv.org/abs/2111.11837

Foreground / background masks come from the GT boxes (:func:`gt_foreground_masks`), spatial
and channel attention from :math:`|F|` with temperature :math:`T` (:func:`fgd_attention`):

.. math::

    A^S(F) = HW \cdot \operatorname{softmax}_{hw}\Bigl(\frac{1}{C}\sum_c |F_c| / T\Bigr), \qquad
    A^C(F) = C \cdot \operatorname{softmax}_{c}\Bigl(\frac{1}{HW}\sum_{hw} |F_{hw}| / T\Bigr)

.. math::

    L_{fea} = \frac{\alpha}{N} \sum M^{fg} A^S_T A^C_T (S - T)^2
            + \frac{\beta}{N} \sum M^{bg} A^S_T A^C_T (S - T)^2, \qquad
    L_{at} = \frac{\gamma}{N} \bigl(\lVert A^S_S - A^S_T \rVert_1
             + \lVert A^C_S - A^C_T \rVert_1\bigr)

.. math::

    L_{glo} = \frac{\lambda}{N} \sum \bigl(\mathcal{R}_S(S) - \mathcal{R}_T(T)\bigr)^2, \qquad
    L_{FGD} = w \cdot (L_{fea} + L_{at} + L_{glo})

with :math:`\mathcal{R}` a GcBlock-like global context module (:class:`GlobalContextBlock`),
one for each side, both trained with the student (as in the paper's code; the teacher feature
itself is detached). Defaults are the paper's RetinaNet ones: :math:`T = 0.5`,
:math:`\alpha = 10^{-3}`, :math:`\beta = \gamma = 5 \cdot 10^{-4}`,
:math:`\lambda = 5 \cdot 10^{-6}`.

Box-to-cell rule (fixing the published code, which scales boxes by the unpadded ``img_shape``,
covers one cell too many on the right and bottom (``ceil(x2) + 1`` exclusive) and, in the
original repository, swaps x and y): the level's stride is ``batch_input_shape / feature size``
per axis, and a box covers the cells ``floor(x1 / s_x) .. ceil(x2 / s_x) - 1`` (columns) and
``floor(y1 / s_y) .. ceil(y2 / s_y) - 1`` (rows), inclusive, i.e. every cell whose pixel span
overlaps the box's interior. A tolerance of 1e-4 cell absorbs float error at exact cell edges;
a box is clamped to the map and covers at least one cell.
"""
from typing import Optional, Sequence, Tuple

import torch
from mmengine.model import constant_init, kaiming_init
from torch import Tensor, nn

from mmkd.registry import MODELS
from .base import BaseDistillLoss, check_feature_channels
from .utils import gt_boxes

#: Tolerance, in feature cells, when a box edge falls on a cell edge.
_EDGE_TOL = 1e-4


def gt_foreground_masks(data_samples: Sequence, feat_shape: Sequence[int],
                        device: Optional[torch.device] = None) -> Tuple[Tensor, Tensor]:
    """Foreground and background masks of one feature level from the GT boxes.

    Inside a box the foreground mask is ``1 / (h * w)``, with ``h, w`` the box's size in
    feature cells (the larger value where boxes overlap); the background mask is
    ``1 / N_bg`` on the ``N_bg`` cells outside every box and 0 inside (all zero when boxes
    cover the whole map). See the module docstring for the box-to-cell rule.

    Args:
        data_samples (Sequence[DetDataSample]): One per image, with ``gt_instances.bboxes``
            (x1, y1, x2, y2) in the padded input's pixels and ``metainfo['batch_input_shape']``.
        feat_shape (Sequence[int]): The level's shape; its last two entries are (H, W), e.g.
            ``feat.shape``.
        device (torch.device, optional): Device of the masks. Defaults to the boxes' device.

    Returns:
        tuple[Tensor, Tensor]: ``mask_fg``, ``mask_bg``, each (N, H, W) float32.

    Example:
        >>> import torch
        >>> from mmdet.structures import DetDataSample
        >>> from mmengine.structures import InstanceData
        >>> s = DetDataSample(metainfo=dict(batch_input_shape=(64, 64)))
        >>> s.gt_instances = InstanceData(bboxes=torch.tensor([[8., 8., 24., 24.]]))
        >>> fg, bg = gt_foreground_masks([s], (8, 8))    # stride 8: cells 1..2
        >>> fg[0, 1:3, 1:3], fg.sum(), bg.sum()
        (tensor([[0.2500, 0.2500],
                [0.2500, 0.2500]]), tensor(1.), tensor(1.))
    """
    H, W = int(feat_shape[-2]), int(feat_shape[-1])
    masks_fg = []
    for i, sample in enumerate(data_samples):
        if 'batch_input_shape' not in sample.metainfo:
            raise ValueError(f"data_samples[{i}].metainfo has no 'batch_input_shape' (set by "
                             "mmdet's DetDataPreprocessor): FGD needs it to map boxes to "
                             'feature cells.')
        boxes = gt_boxes(sample, f'FGD masks: data_samples[{i}]')
        dev = device if device is not None else boxes.device
        boxes = boxes.to(dev)
        in_h, in_w = sample.metainfo['batch_input_shape'][:2]
        stride_y, stride_x = in_h / H, in_w / W
        x_lo = torch.floor(boxes[:, 0] / stride_x + _EDGE_TOL).clamp(0, W - 1)
        y_lo = torch.floor(boxes[:, 1] / stride_y + _EDGE_TOL).clamp(0, H - 1)
        x_hi = torch.maximum(torch.ceil(boxes[:, 2] / stride_x - _EDGE_TOL) - 1, x_lo).clamp(
            max=W - 1)
        y_hi = torch.maximum(torch.ceil(boxes[:, 3] / stride_y - _EDGE_TOL) - 1, y_lo).clamp(
            max=H - 1)
        area = (x_hi - x_lo + 1) * (y_hi - y_lo + 1)
        rows = torch.arange(H, device=dev, dtype=torch.float32)
        cols = torch.arange(W, device=dev, dtype=torch.float32)
        in_rows = (rows[None] >= y_lo[:, None]) & (rows[None] <= y_hi[:, None])  # (K, H)
        in_cols = (cols[None] >= x_lo[:, None]) & (cols[None] <= x_hi[:, None])  # (K, W)
        inside = in_rows[:, :, None] & in_cols[:, None, :]  # (K, H, W)
        values = inside.float() / area[:, None, None]
        mask_fg = values.amax(dim=0) if len(boxes) else torch.zeros(H, W, device=dev)
        masks_fg.append(mask_fg)
    if not masks_fg:
        raise ValueError('gt_foreground_masks got no data samples.')
    mask_fg = torch.stack(masks_fg)
    mask_bg = (mask_fg == 0).float()
    mask_bg = mask_bg / mask_bg.sum(dim=(1, 2), keepdim=True).clamp(min=1)
    return mask_fg, mask_bg


def fgd_attention(feat: Tensor, tau: float = 0.5) -> Tuple[Tensor, Tensor]:
    """Spatial and channel attention of a (N, C, H, W) map with temperature ``tau``.

    Returns:
        tuple[Tensor, Tensor]: spatial (N, H, W), summing to H*W per sample, and channel
        (N, C), summing to C per sample.
    """
    N, C, H, W = feat.shape
    value = feat.abs()
    spatial = H * W * torch.softmax(value.mean(dim=1).reshape(N, -1) / tau, dim=1)
    channel = C * torch.softmax(value.mean(dim=(2, 3)) / tau, dim=1)
    return spatial.reshape(N, H, W), channel


def fgd_feature_loss(preds_S: Tensor, preds_T: Tensor, mask_fg: Tensor, mask_bg: Tensor,
                     spatial_T: Tensor, channel_T: Tensor) -> Tuple[Tensor, Tensor]:
    """Attention- and mask-weighted squared errors, summed and divided by N.

    Args:
        preds_S, preds_T (Tensor): (N, C, H, W); the teacher is detached here.
        mask_fg, mask_bg (Tensor): (N, H, W), from :func:`gt_foreground_masks`.
        spatial_T (Tensor): (N, H, W) teacher spatial attention.
        channel_T (Tensor): (N, C) teacher channel attention.

    Returns:
        tuple[Tensor, Tensor]: foreground and background losses (unweighted scalars).
    """
    N = preds_S.shape[0]
    weight = spatial_T.detach()[:, None] * channel_T.detach()[:, :, None, None]
    sq_err = weight * (preds_S - preds_T.detach()).pow(2)  # (N, C, H, W)
    loss_fg = (sq_err * mask_fg[:, None]).sum() / N
    loss_bg = (sq_err * mask_bg[:, None]).sum() / N
    return loss_fg, loss_bg


def fgd_attention_loss(spatial_S: Tensor, channel_S: Tensor, spatial_T: Tensor,
                       channel_T: Tensor) -> Tensor:
    """L1 between student and teacher attention (spatial + channel), summed, divided by N."""
    N = spatial_S.shape[0]
    return ((channel_S - channel_T.detach()).abs().sum()
            + (spatial_S - spatial_T.detach()).abs().sum()) / N


class GlobalContextBlock(nn.Module):
    """GcBlock-like global context module of FGD's global loss: ``x + transform(context(x))``.

    A 1x1 conv and a spatial softmax pool the map into a (N, C, 1, 1) context, which a
    bottleneck (1x1 conv to C/2, LayerNorm, ReLU, 1x1 conv) transforms and adds to every
    position. The last conv starts at zero, so the block starts as the identity.

    Args:
        channels (int): C, at least 2.

    Example:
        >>> import torch
        >>> GlobalContextBlock(8)(torch.randn(2, 8, 5, 5)).shape
        torch.Size([2, 8, 5, 5])
    """

    def __init__(self, channels: int):
        super().__init__()
        if channels < 2:
            raise ValueError(f'GlobalContextBlock needs at least 2 channels, got {channels}.')
        self.conv_mask = nn.Conv2d(channels, 1, kernel_size=1)
        self.channel_add_conv = nn.Sequential(
            nn.Conv2d(channels, channels // 2, kernel_size=1),
            nn.LayerNorm([channels // 2, 1, 1]),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels // 2, channels, kernel_size=1))
        kaiming_init(self.conv_mask, mode='fan_in')
        constant_init(self.channel_add_conv[-1], val=0)

    def forward(self, x: Tensor) -> Tensor:
        N, C, H, W = x.shape
        weights = torch.softmax(self.conv_mask(x).reshape(N, 1, H * W), dim=2)  # (N, 1, HW)
        context = torch.bmm(x.reshape(N, C, H * W), weights.transpose(1, 2))  # (N, C, 1)
        return x + self.channel_add_conv(context.reshape(N, C, 1, 1))


def fgd_global_loss(preds_S: Tensor, preds_T: Tensor, context_S: nn.Module,
                    context_T: nn.Module) -> Tensor:
    """Squared error between the context-enhanced maps, summed, divided by N.

    The teacher feature is detached; ``context_T``'s own parameters still get gradients.
    """
    N = preds_S.shape[0]
    return (context_S(preds_S) - context_T(preds_T.detach())).pow(2).sum() / N


@MODELS.register_module()
class FGDLoss(BaseDistillLoss):
    """Focal and global distillation on one feature level, with the batch's GT boxes.

    Args:
        student_channels (int): Channels of ``preds_S``; a 1x1 conv aligns them to the teacher
            when they differ (trained with the student).
        teacher_channels (int): Channels of ``preds_T``, at least 2.
        loss_weight (float): Scales the whole loss. Defaults to 1.0.
        tau (float): Attention temperature T, > 0 (the published code's ``temp``). Defaults
            to 0.5.
        alpha_fgd (float): Foreground feature loss weight. Defaults to 1e-3.
        beta_fgd (float): Background feature loss weight. Defaults to 5e-4.
        gamma_fgd (float): Attention loss weight. Defaults to 5e-4.
        lambda_fgd (float): Global loss weight. Defaults to 5e-6.

    Example:
        >>> import torch
        >>> from mmdet.structures import DetDataSample
        >>> from mmengine.structures import InstanceData
        >>> s = DetDataSample(metainfo=dict(batch_input_shape=(64, 64), img_shape=(64, 64)))
        >>> s.gt_instances = InstanceData(bboxes=torch.tensor([[8., 8., 24., 24.]]),
        ...                               labels=torch.tensor([0]))
        >>> loss = FGDLoss(student_channels=4, teacher_channels=8)
        >>> value = loss(torch.randn(1, 4, 16, 16), torch.randn(1, 8, 16, 16), [s])
        >>> value.shape, value.dtype
        (torch.Size([]), torch.float32)
    """
    def __init__(self, student_channels: int, teacher_channels: int, loss_weight: float = 1.0,
                 tau: float = 0.5, alpha_fgd: float = 1e-3, beta_fgd: float = 5e-4,
                 gamma_fgd: float = 5e-4, lambda_fgd: float = 5e-6):
        super().__init__(loss_weight)
        if tau <= 0:
            raise ValueError(f'FGDLoss needs a positive temperature tau, got {tau}.')
        self.student_channels = student_channels
        self.teacher_channels = teacher_channels
        self.tau = tau
        self.alpha_fgd = alpha_fgd
        self.beta_fgd = beta_fgd
        self.gamma_fgd = gamma_fgd
        self.lambda_fgd = lambda_fgd
        self.align = (nn.Conv2d(student_channels, teacher_channels, kernel_size=1)
                      if student_channels != teacher_channels else None)
        self.context_S = GlobalContextBlock(teacher_channels)
        self.context_T = GlobalContextBlock(teacher_channels)

    def _check_inputs(self, preds_S: Tensor, preds_T: Tensor, data_samples) -> None:
        check_feature_channels('FGDLoss', preds_S, preds_T, self.student_channels,
                               self.teacher_channels)
        if not isinstance(data_samples, (list, tuple)) or len(data_samples) != preds_S.shape[0]:
            got = len(data_samples) if isinstance(data_samples, (list, tuple)) else type(
                data_samples).__name__
            raise ValueError(f'FGDLoss needs one data sample per image ({preds_S.shape[0]}), got '
                             f"{got}: map data_samples=dict(from_data='data_samples').")

    def compute(self, preds_S: Tensor, preds_T: Tensor, data_samples: Sequence) -> Tensor:
        """preds_S: (N, student_channels, H, W), preds_T: (N, teacher_channels, H, W),
        data_samples: N ``DetDataSample`` with GT boxes. Returns a float32 scalar."""
        self._check_inputs(preds_S, preds_T, data_samples)
        feat_S = preds_S if self.align is None else self.align(preds_S)
        feat_T = preds_T
        mask_fg, mask_bg = gt_foreground_masks(data_samples, feat_T.shape, feat_T.device)
        spatial_T, channel_T = fgd_attention(feat_T, self.tau)
        spatial_S, channel_S = fgd_attention(feat_S, self.tau)
        loss_fg, loss_bg = fgd_feature_loss(feat_S, feat_T, mask_fg, mask_bg, spatial_T,
                                            channel_T)
        loss_at = fgd_attention_loss(spatial_S, channel_S, spatial_T, channel_T)
        loss_glo = fgd_global_loss(feat_S, feat_T, self.context_S, self.context_T)
        return (self.alpha_fgd * loss_fg + self.beta_fgd * loss_bg
                + self.gamma_fgd * loss_at + self.lambda_fgd * loss_glo)
