r"""Attention transfer (AT): imitate the teacher's spatial attention map.

Paying More Attention to Attention (Zagoruyko & Komodakis, ICLR 2017),
https://arxiv.org/abs/1612.03928

The attention map of a feature is the channel mean of :math:`|F|^p`, flattened per sample and
l2-normalised; the loss is the mean squared difference of the two maps:

.. math::

    Q_n = \frac{1}{C} \sum_{c=1}^{C} |F_{n,c}|^p, \qquad
    A_n = \frac{\operatorname{vec}(Q_n)}{\lVert \operatorname{vec}(Q_n) \rVert_2}, \qquad
    L_{AT} = w \cdot \frac{1}{N H W} \sum_{n=1}^{N} \lVert A^S_n - A^T_n \rVert_2^2

Channels are pooled away, so the student and teacher may have different channel counts (no
connector needed). When the spatial sizes differ, the student's (unnormalised) map
:math:`Q^S` is resized bilinearly to the teacher's size before normalisation.

**Measured on the digits FPN pairs** (benchmarks/RESULTS.md; gain over the student):

| weight | detection, bbox mAP | segmentation, mIoU |
|---|---|---|
| the paper's (beta / 2 = 500, for CIFAR) | -2.28 [-6.42, +1.86], 5 seeds | -4.93 [-6.81, -3.04] |
| a tenth | +3.10 [-4.65, +10.85], 5 seeds | -0.94 [-1.82, -0.06] |
| a hundredth | +1.06 [-6.32, +8.44], 5 seeds | +0.45 [-0.21, +1.11] |

At the paper's weight its neck gradient at initialisation is 46-93x the task's, at cosine about
0. A tenth of the weight removes most of the loss and a hundredth all of it, but neither gains
on either task. Our reading: AT keeps only where activation energy lies, summed over channels.
On these images that is where the objects are, which the task's own loss already teaches. The
teacher's channels, which the other FPN losses transfer (PKD, CWD, FitNet: +15 to +23 bbox mAP),
are pooled away. Prefer those losses on detectors and segmentors.
"""
import torch.nn.functional as F
from torch import Tensor

from mmkd.registry import MODELS
from .base import BaseDistillLoss


def attention_map(feat: Tensor, p: float = 2.0) -> Tensor:
    """Channel mean of ``|feat| ** p``: (N, C, H, W) -> (N, 1, H, W), float32, not normalised."""
    return feat.float().abs().pow(p).mean(dim=1, keepdim=True)


def attention_transfer_loss(preds_S: Tensor, preds_T: Tensor, p: float = 2.0) -> Tensor:
    """Mean squared difference of l2-normalised attention maps.

    Computed in float32; the teacher side is detached.

    Args:
        preds_S (Tensor): Student map, (N, C_s, H_s, W_s).
        preds_T (Tensor): Teacher map, (N, C_t, H_t, W_t).
        p (float): Exponent of ``|F|``. Defaults to 2.

    Returns:
        Tensor: Scalar loss (without a loss weight).
    """
    if preds_S.dim() != 4 or preds_T.dim() != 4 or preds_S.shape[0] != preds_T.shape[0]:
        raise ValueError(f'ATLoss needs (N, C, H, W) maps with the same batch size N, got '
                         f'student {tuple(preds_S.shape)} and teacher {tuple(preds_T.shape)}.')
    map_S = attention_map(preds_S, p)
    map_T = attention_map(preds_T.detach(), p)
    if map_S.shape[2:] != map_T.shape[2:]:
        map_S = F.interpolate(map_S, size=map_T.shape[2:], mode='bilinear', align_corners=False)
    att_S = F.normalize(map_S.flatten(1), dim=1)
    att_T = F.normalize(map_T.flatten(1), dim=1)
    return (att_S - att_T).pow(2).mean()


@MODELS.register_module()
class ATLoss(BaseDistillLoss):
    """Attention transfer: ``loss_weight * mean((A_S - A_T) ** 2)``.

    Args:
        loss_weight (float): Defaults to 1.0.
        p (float): Exponent of ``|F|`` in the attention map, > 0. Defaults to 2.

    Example:
        >>> import torch
        >>> s = torch.ones(1, 3, 2, 2)                   # A_S = (0.5, 0.5, 0.5, 0.5)
        >>> t = torch.zeros(1, 8, 2, 2); t[0, :, 0, 0] = 1.0   # A_T = (1, 0, 0, 0)
        >>> ATLoss()(s, t)
        tensor(0.2500)
    """
    def __init__(self, loss_weight: float = 1.0, p: float = 2):
        super().__init__(loss_weight)
        if p <= 0:
            raise ValueError(f'ATLoss needs a positive exponent p, got {p}.')
        self.p = p

    def compute(self, preds_S: Tensor, preds_T: Tensor) -> Tensor:
        """preds_S: (N, C_s, H_s, W_s), preds_T: (N, C_t, H_t, W_t). Returns a float32 scalar."""
        return attention_transfer_loss(preds_S, preds_T, self.p)
