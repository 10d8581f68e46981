r"""Gradient-guided knowledge distillation (GKD) with box-aware multi-grained imitation (BMFI).

Gradient-Guided Knowledge Distillation for Object Detectors (Lan & Tian, WACV 2024),
https://arxiv.org/abs/2303.04240

Per feature level, Grad-CAM-style channel weights from the gradient of the model's own
detection loss on the batch's ground truth, and a map of where that loss is sensitive:

.. math::

    w_k = \frac{1}{HW} \sum_{i,j} \frac{\partial L_{det}}{\partial A_{k,i,j}}, \qquad
    M = \operatorname{minmax}_{ij}\Bigl(\operatorname{ReLU}\bigl(\sum_k w_k A_k\bigr)\Bigr)

.. math::

    L_{GKD} = w \cdot \Bigl(\lambda_{imi} \frac{\sum M_T (S - T)^2}{C \sum M_T}
              + \lambda_{map} \operatorname{mean}|M_T - M_S|
              + \lambda_{bmfi} L_{FGD}(S, T, \text{GT boxes})\Bigr)

The first term (teacher-map-weighted feature imitation) is the useful, differentiable form;
the second aligns the student's own map to the teacher's; BMFI reuses :class:`FGDLoss` (GT-box
masks ``1/(h*w)`` with boxes mapped to cells by the level's stride, spatial / channel attention
with T = 0.5, a global context term), which also fixes the published mask-offset bug.

Gradients: the distiller provides ``grads_T`` (the frozen teacher's head loss on the ground
truth, back-propagated to the recorded feature only) and ``grads_S`` (the student's task loss),
when the loss mapping asks for them with ``gradient=True``. Unlike the published code, no
pseudo labels from a second test pass are used. By default the student's weights :math:`w_k`
are a stop-gradient (cheap: one extra backward through the student's head); with
``double_backward=True`` the student gradient keeps its graph (``create_graph``), so the map
term also trains through :math:`w_k` (an extra double backward; its cost is in the benchmark).
"""
from typing import Optional, Sequence

import torch.nn.functional as F
from torch import Tensor

from mmkd.registry import MODELS
from .base import BaseDistillLoss
from .fgd import FGDLoss
from .utils import spatial_min_max


def gradient_guided_map(feat: Tensor, grad: Tensor, eps: float = 1e-6) -> Tensor:
    """``minmax(ReLU(sum_k w_k A_k))`` per image, with ``w_k`` the spatial mean of the grad.

    Args:
        feat (Tensor): (N, C, H, W) feature map A.
        grad (Tensor): (N, C, H, W) gradient of the detection loss w.r.t. ``feat``.

    Returns:
        Tensor: (N, 1, H, W), each image's map scaled to [0, 1].

    Example:
        >>> import torch
        >>> feat = torch.tensor([[[[1., 2.], [3., 4.]]]])
        >>> gradient_guided_map(feat, torch.ones_like(feat))
        tensor([[[[0.0000, 0.3333],
                  [0.6667, 1.0000]]]])
    """
    if feat.shape != grad.shape:
        raise ValueError(f'GKD needs a gradient of the feature\'s shape, got feature '
                         f'{tuple(feat.shape)} and gradient {tuple(grad.shape)}: map grads_* '
                         'from the same recorder and data_idx as the feature, without connector.')
    weights = grad.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * feat).sum(dim=1, keepdim=True))
    low, high = spatial_min_max(cam)
    return (cam - low) / (high - low + eps)


def gradient_weighted_imitation(preds_S: Tensor, preds_T: Tensor, map_T: Tensor,
                                eps: float = 1e-6) -> Tensor:
    """``sum M_T (S - T)^2 / (C sum M_T)``: imitation where the teacher's loss is sensitive."""
    if preds_S.shape != preds_T.shape:
        raise ValueError(f'GKD feature imitation needs equal shapes, got student '
                         f'{tuple(preds_S.shape)} and teacher {tuple(preds_T.shape)}: add a '
                         'ConvConnector / ResizeConnector to preds_S.')
    weight = map_T.detach()
    return (weight * (preds_S - preds_T.detach())**2).sum() / (
        preds_S.shape[1] * weight.sum() + eps)


@MODELS.register_module()
class GKDLoss(BaseDistillLoss):
    """Gradient-guided feature distillation on one level, optionally with BMFI.

    Args:
        loss_weight (float): Scales the whole loss. Defaults to 1.0.
        imitation_weight (float): Weight of the teacher-map-weighted imitation. Defaults to 1.0.
        map_weight (float): Weight of ``mean |M_T - M_S|``. Defaults to 1.0.
        double_backward (bool): Keep the graph of the student's gradient (``create_graph``) so
            the map term trains through the student's Grad-CAM weights. Defaults to False.
        bmfi (dict, optional): Arguments of :class:`FGDLoss` (``student_channels``,
            ``teacher_channels``, ``temp``, ``alpha_fgd`` ...) for the box-aware term, which
            then needs ``data_samples``. Defaults to None (no BMFI).
        bmfi_weight (float): Weight of the BMFI term. Defaults to 1.0.

    ``forward(preds_S, preds_T, grads_S, grads_T, feats_S=None, data_samples=None)``:
    ``preds_*`` (N, C, H, W) features (the student's after its connector), ``grads_*`` their
    task-loss gradients (the student's w.r.t. its raw feature ``feats_S``, which defaults to
    ``preds_S`` when no connector is used).

    Example:
        >>> import torch
        >>> s, t = torch.randn(2, 4, 8, 8, requires_grad=True), torch.randn(2, 4, 8, 8)
        >>> loss = GKDLoss()(s, t, torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8))
        >>> loss.shape, bool(loss > 0)
        (torch.Size([]), True)
    """
    requires_same_shape = True

    def __init__(self, loss_weight: float = 1.0, imitation_weight: float = 1.0,
                 map_weight: float = 1.0, double_backward: bool = False,
                 bmfi: Optional[dict] = None, bmfi_weight: float = 1.0):
        super().__init__(loss_weight)
        self.imitation_weight = imitation_weight
        self.map_weight = map_weight
        #: Read by the distiller: take the student's gradient with create_graph.
        self.create_graph = double_backward
        self.bmfi = FGDLoss(**bmfi) if bmfi is not None else None
        self.bmfi_weight = bmfi_weight

    def compute(self, preds_S: Tensor, preds_T: Tensor, grads_S: Tensor, grads_T: Tensor,
                feats_S: Optional[Tensor] = None,
                data_samples: Optional[Sequence] = None) -> Tensor:
        feats_S = preds_S if feats_S is None else feats_S
        grads_S = grads_S if self.create_graph else grads_S.detach()
        map_T = gradient_guided_map(preds_T, grads_T)
        loss = preds_S.new_zeros(())
        if self.imitation_weight:
            loss = loss + self.imitation_weight * gradient_weighted_imitation(
                preds_S, preds_T, map_T)
        if self.map_weight:
            map_S = gradient_guided_map(feats_S, grads_S)
            if map_S.shape[2:] != map_T.shape[2:]:
                map_S = F.interpolate(map_S, size=map_T.shape[2:], mode='bilinear',
                                      align_corners=False)
            loss = loss + self.map_weight * (map_T - map_S).abs().mean()
        if self.bmfi is not None:
            if data_samples is None:
                raise ValueError("GKDLoss with bmfi needs the GT boxes: map data_samples="
                                 "dict(from_data='data_samples').")
            loss = loss + self.bmfi_weight * self.bmfi(preds_S, preds_T, data_samples)
        return loss
