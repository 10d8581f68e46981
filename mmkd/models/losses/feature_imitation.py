r"""Feature imitation: FitNet-style L2 and L1 distances between student and teacher maps.

FitNets: Hints for Thin Deep Nets (ICLR 2015), https://arxiv.org/abs/1412.6550

.. math::

    L_{MSE} = w \cdot \frac{1}{|S|} \sum (S - T)^2, \qquad
    L_{L1} = w \cdot \frac{1}{|S|} \sum |S - T|

A student with other channel counts or resolution needs a connector (``ConvConnector``,
``ResizeConnector``) on ``preds_S``; the distiller names the one to add when shapes differ.
"""
import torch.nn.functional as F
from torch import Tensor

from mmkd.registry import MODELS
from .base import BaseDistillLoss


def _check_shapes(preds_S: Tensor, preds_T: Tensor, loss_name: str) -> None:
    if preds_S.shape != preds_T.shape:
        raise ValueError(f'{loss_name} needs equal shapes, got student {tuple(preds_S.shape)} '
                         f'and teacher {tuple(preds_T.shape)}: add a ConvConnector (channels) '
                         'or ResizeConnector (size) to the student side.')


def mse_feature_loss(preds_S: Tensor, preds_T: Tensor) -> Tensor:
    """Mean squared error; the teacher side is detached. Shapes: any, equal."""
    _check_shapes(preds_S, preds_T, 'MSEFeatureLoss')
    return F.mse_loss(preds_S, preds_T.detach(), reduction='mean')


def l1_feature_loss(preds_S: Tensor, preds_T: Tensor) -> Tensor:
    """Mean absolute error; the teacher side is detached. Shapes: any, equal."""
    _check_shapes(preds_S, preds_T, 'L1FeatureLoss')
    return F.l1_loss(preds_S, preds_T.detach(), reduction='mean')


@MODELS.register_module()
class MSEFeatureLoss(BaseDistillLoss):
    """FitNet feature imitation: ``loss_weight * mean((S - T) ** 2)``.

    Args:
        loss_weight (float): Defaults to 1.0.

    Example:
        >>> import torch
        >>> s, t = torch.zeros(2, 4, 8, 8), torch.ones(2, 4, 8, 8)
        >>> MSEFeatureLoss(loss_weight=2.0)(s, t)
        tensor(2.)
    """
    requires_same_shape = True

    def compute(self, preds_S: Tensor, preds_T: Tensor) -> Tensor:
        """preds_S, preds_T: (N, C, H, W) (or any equal shapes). Returns a scalar."""
        return mse_feature_loss(preds_S, preds_T)


@MODELS.register_module()
class L1FeatureLoss(MSEFeatureLoss):
    """L1 feature imitation: ``loss_weight * mean(|S - T|)``.

    Example:
        >>> import torch
        >>> L1FeatureLoss()(torch.zeros(1, 2, 3, 3), torch.full((1, 2, 3, 3), -3.0))
        tensor(3.)
    """

    def compute(self, preds_S: Tensor, preds_T: Tensor) -> Tensor:
        return l1_feature_loss(preds_S, preds_T)
