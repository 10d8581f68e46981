r"""PKD: feature imitation with the Pearson correlation coefficient.

PKD: General Distillation Framework for Object Detectors via Pearson Correlation Coefficient
(Cao et al., NeurIPS 2022), https://arxiv.org/abs/2207.02039

Each channel is normalised to zero mean and unit variance over :math:`(N, H, W)`, then the MSE
of the normalised maps is halved, which is one minus the Pearson correlation of each channel,
averaged over the :math:`C` channels:

.. math::

    \hat F_c = \frac{F_c - \mu_c}{\sqrt{\sigma_c^2 + \epsilon}}, \qquad
    L_{PKD} = w \cdot \frac{1}{2 N C H W} \sum_{c,n,h,w} (\hat S - \hat T)^2
    = w \cdot \frac{1}{C} \sum_{c=1}^{C} (1 - r_c(S, T))

The loss is invariant to any per-channel affine transform of either side with a positive
scale, so the student's and teacher's magnitudes need not match. Typical setting: FPN levels
0-3, weight 6..10.

Deviation from the published code: the variance is the population one (divide by
:math:`NHW`) with :math:`\epsilon` inside the square root, so the identity above holds exactly
(up to :math:`\epsilon`); the published code divides by the unbiased std plus 1e-6, which
scales the loss by :math:`(NHW - 1) / NHW`.
"""
import torch
import torch.nn.functional as F
from torch import Tensor

from mmkd.registry import MODELS
from .base import BaseDistillLoss


def _normalize_per_channel(feat: Tensor, eps: float) -> Tensor:
    """(N, C, H, W) -> same shape, zero mean / unit variance per channel over (N, H, W)."""
    mean = feat.mean(dim=(0, 2, 3), keepdim=True)
    var = feat.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    return (feat - mean) * torch.rsqrt(var + eps)


def pearson_kd_loss(preds_S: Tensor, preds_T: Tensor, resize_stu: bool = True,
                    eps: float = 1e-6) -> Tensor:
    """Mean over channels of ``1 - Pearson r`` between student and teacher maps.

    Computed in float32; the teacher side is detached. When the spatial sizes differ, the
    student is resized to the teacher's size (or the teacher to the student's) bilinearly.

    Args:
        preds_S (Tensor): Student map, (N, C, H_s, W_s).
        preds_T (Tensor): Teacher map, (N, C, H_t, W_t).
        resize_stu (bool): Resize the student (True) or the teacher (False) when the sizes
            differ. Defaults to True.
        eps (float): Added to each channel's variance. Defaults to 1e-6.

    Returns:
        Tensor: Scalar loss (without a loss weight).
    """
    if preds_S.dim() != 4 or preds_T.dim() != 4 or preds_S.shape[:2] != preds_T.shape[:2]:
        raise ValueError(f'PKDLoss needs (N, C, H, W) maps with equal N and C, got student '
                         f'{tuple(preds_S.shape)} and teacher {tuple(preds_T.shape)}: add a '
                         'ConvConnector to the student side to map its channels to the '
                         "teacher's.")
    preds_S = preds_S.float()
    preds_T = preds_T.detach().float()
    size_S, size_T = preds_S.shape[2:], preds_T.shape[2:]
    if size_S != size_T:
        if resize_stu:
            preds_S = F.interpolate(preds_S, size=size_T, mode='bilinear', align_corners=False)
        else:
            preds_T = F.interpolate(preds_T, size=size_S, mode='bilinear', align_corners=False)
    norm_S = _normalize_per_channel(preds_S, eps)
    norm_T = _normalize_per_channel(preds_T, eps)
    return F.mse_loss(norm_S, norm_T, reduction='mean') / 2


@MODELS.register_module()
class PKDLoss(BaseDistillLoss):
    """Pearson correlation feature imitation: ``loss_weight * mean_c(1 - r_c(S, T))``.

    Args:
        loss_weight (float): Defaults to 1.0 (the paper uses 6..10 on FPN levels).
        resize_stu (bool): When the spatial sizes differ, resize the student to the teacher's
            size (True) or the teacher to the student's (False), bilinearly. Defaults to True.
        eps (float): Added to each channel's variance. Defaults to 1e-6.

    Example:
        >>> import torch
        >>> t = torch.randn(2, 4, 8, 8)
        >>> round(float(PKDLoss()(3 * t + 1, t)), 4)     # affine student: r = 1
        0.0
        >>> round(float(PKDLoss()(-t, t)), 4)            # r = -1
        2.0
        >>> PKDLoss()(torch.randn(2, 4, 4, 4), t).shape  # student resized to 8x8
        torch.Size([])
    """
    def __init__(self, loss_weight: float = 1.0, resize_stu: bool = True, eps: float = 1e-6):
        super().__init__(loss_weight)
        if eps <= 0:
            raise ValueError(f'PKDLoss needs a positive eps, got {eps}.')
        self.resize_stu = resize_stu
        self.eps = eps

    def compute(self, preds_S: Tensor, preds_T: Tensor) -> Tensor:
        """preds_S, preds_T: (N, C, H, W) with equal N and C (equal sizes are not needed:
        the loss resizes, and names the connector itself when channels differ). Returns a
        float32 scalar."""
        return pearson_kd_loss(preds_S, preds_T, self.resize_stu, self.eps)
