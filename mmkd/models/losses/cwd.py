r"""Channel-wise distillation (CWD): per channel, the spatial softmax of the teacher taught by KL.

Channel-wise Knowledge Distillation for Dense Prediction (Shu et al., ICCV 2021),
https://arxiv.org/abs/2011.13256

Each channel's map is turned into a distribution over the :math:`H W` positions with a
temperature :math:`\tau`; the student's distribution imitates the teacher's:

.. math::

    p_{n,c,i} = \frac{\exp(F_{n,c,i} / \tau)}{\sum_{j=1}^{HW} \exp(F_{n,c,j} / \tau)}, \qquad
    L_{CWD} = w \cdot \frac{\tau^2}{N C} \sum_{n=1}^{N} \sum_{c=1}^{C} \sum_{i=1}^{HW}
    p^T_{n,c,i} \log \frac{p^T_{n,c,i}}{p^S_{n,c,i}}

Typical settings: detection FPN levels, weight 5..10, :math:`\tau = 1`; segmentation logits,
weight 3..5, :math:`\tau` 1..4. The student and teacher maps must have equal shapes: add a
``ConvConnector`` (channels) or ``ResizeConnector`` (size) on the student side otherwise.
"""
import torch.nn.functional as F
from torch import Tensor

from mmkd.registry import MODELS
from .base import BaseDistillLoss
from .utils import kl_terms


def channel_wise_divergence(preds_S: Tensor, preds_T: Tensor, tau: float = 1.0) -> Tensor:
    """KL(teacher || student) of per-channel spatial softmaxes, ``* tau**2 / (N * C)``.

    Computed in float32; the teacher side is detached.

    Args:
        preds_S (Tensor): Student map, (N, C, H, W).
        preds_T (Tensor): Teacher map, (N, C, H, W).
        tau (float): Softmax temperature. Defaults to 1.0.

    Returns:
        Tensor: Scalar loss (without a loss weight).
    """
    if preds_S.dim() != 4 or preds_S.shape != preds_T.shape:
        raise ValueError(f'CWDLoss needs two (N, C, H, W) maps of equal shape, got student '
                         f'{tuple(preds_S.shape)} and teacher {tuple(preds_T.shape)}: add a '
                         'ConvConnector (channels) or ResizeConnector (size) to the student side.')
    N, C, H, W = preds_S.shape
    logits_S = preds_S.float().reshape(N * C, H * W) / tau
    logits_T = preds_T.detach().float().reshape(N * C, H * W) / tau
    kl = kl_terms(F.log_softmax(logits_T, dim=1), F.log_softmax(logits_S, dim=1)).sum()
    return kl * tau**2 / (N * C)


@MODELS.register_module()
class CWDLoss(BaseDistillLoss):
    """Channel-wise distillation: ``loss_weight * channel_wise_divergence(S, T, tau)``.

    Args:
        loss_weight (float): Defaults to 1.0 (the paper uses 5..10 on FPN levels, 3..5 on
            segmentation logits).
        tau (float): Softmax temperature, > 0. Defaults to 1.0.

    Example:
        >>> import torch
        >>> s = torch.zeros(1, 1, 1, 2)                  # uniform: p_S = (0.5, 0.5)
        >>> t = torch.tensor([[[[0.0, 100.0]]]])         # one-hot: p_T = (0, 1)
        >>> round(float(CWDLoss()(s, t)), 4)             # KL = log 2
        0.6931
        >>> float(CWDLoss(loss_weight=5.0)(t, t))
        0.0
    """
    requires_same_shape = True

    def __init__(self, loss_weight: float = 1.0, tau: float = 1.0):
        super().__init__(loss_weight)
        if tau <= 0:
            raise ValueError(f'CWDLoss needs a positive temperature tau, got {tau}.')
        self.tau = tau

    def compute(self, preds_S: Tensor, preds_T: Tensor) -> Tensor:
        """preds_S, preds_T: (N, C, H, W), equal shapes. Returns a float32 scalar."""
        return channel_wise_divergence(preds_S, preds_T, self.tau)
