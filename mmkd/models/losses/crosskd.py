r"""CrossKD losses: the cross-head predictions imitate the teacher's own predictions.

CrossKD: Cross-Head Knowledge Distillation for Object Detection (Wang et al., CVPR 2024),
https://arxiv.org/abs/2306.11369; published code https://github.com/jbwang1997/CrossKD
(``mmdet/models/detectors/crosskd_*.py``, ``mmdet/models/losses/kd_loss.py``).

``preds_S`` are the predictions of the teacher's head run on the student's features (the
Distiller's ``cross_heads``, :mod:`mmkd.models.distillers.cross_heads`), ``preds_T`` the
teacher head's own (``MethodOutputsRecorder(source='bbox_head.forward')`` on the teacher). Both
are per-level maps flattened as mmdet's heads do (rows :math:`i` in the order n, h, w, anchor;
levels concatenated). With :math:`z` the class logits, :math:`\sigma` the sigmoid,
:math:`\lambda_i` the head's label weight of location :math:`i` (``bbox_head.get_targets``;
1 where the head has none, FCOS) and :math:`P` the number of locations the student's assigner
made positive (at least 1):

**Classification** (``CrossKDClsLoss``; published ``KDQualityFocalLoss(beta=1)``): quality
focal loss towards the teacher's sigmoid scores,

.. math::

    L_{cls} = \frac{w}{P} \sum_i \lambda_i \sum_k
    \mathrm{BCE}\bigl(z^{S}_{ik}, \sigma(z^{T}_{ik})\bigr)\,
    \bigl|\sigma(z^{S}_{ik}) - \sigma(z^{T}_{ik})\bigr|^{\beta}

(mmdet's ``quality_focal_loss_tensor_target``).

**Regression**, weighted by the teacher's best class score
:math:`\omega_i = \sigma(\max_k z^{T}_{ik})`, set to 0 where :math:`\lambda_i = 0`:

- decoded boxes (``CrossKDBoxLoss``; published RetinaNet / ATSS ``GIoULoss(loss_weight=1)``,
  FCOS ``IoULoss(loss_weight=0.75)``): :math:`b = \mathrm{decode}(\text{prior}_i, \cdot)` with
  the teacher head's coder,
  :math:`L_{box} = \frac{w}{P} \sum_i \omega_i\, \ell_{IoU}(b^{S}_i, b^{T}_i)` with
  :math:`\ell_{GIoU} = 1 - \mathrm{GIoU}` or :math:`\ell_{IoU} = -\log \mathrm{IoU}` (mmdet's
  ``giou_loss`` / ``iou_loss``);
- box distributions (``CrossKDDistributionLoss``, GFL; published
  ``KnowledgeDistillationKLDivLoss(T=1, class_reduction='sum', loss_weight=4)``): per side
  :math:`s` of the box, the KL between the softmax bin distributions,
  :math:`L_{dist} = w \frac{\sum_i \omega_i \frac{1}{4} \sum_{s=1}^{4} \tau^2
  \mathrm{KL}(p^{T}_{is} \| p^{S}_{is})}{\sum_i \omega_i}`.

Deviations from the published code: :math:`P` is this process's count of positives, at least 1
(the published code averages it over processes with ``reduce_mean`` and divides by it even when
0); the GFL distribution loss divides by :math:`\max(\sum_i \omega_i, 10^{-6})`; FCOS: the
published code averages its KD terms over the sum of the positives' centerness targets and
gives the classification no label weights, here both follow the rule above (:math:`P`
positives, :math:`\lambda_i = 1`), and the published ATSS centerness KD is not implemented.
For GFL the published configs use the distribution loss, not a GIoU on decoded boxes (the
paper's text mentions both); ``CrossKDBoxLoss`` decodes coder-encoded boxes (RetinaNet, ATSS,
FCOS) only.

``labels`` / ``label_weights`` are the student's ``bbox_head.get_targets`` outputs (student and
teacher share anchors): RetinaNet data_idx 0 / 1, GFL and ATSS 1 / 2, FCOS 0 / none.
"""
from typing import List, Optional, Sequence, Tuple, Union

import torch
from mmdet.models.losses.gfocal_loss import quality_focal_loss_tensor_target
from mmdet.models.losses.iou_loss import giou_loss, iou_loss
from torch import Tensor

from mmkd.registry import MODELS
from .base import BaseDistillLoss
from .dense_head_kd import flatten_dense_labels, flatten_dense_logits, flatten_dense_weights
from .kd import kd_divergence
from .utils import box_tensor

Levels = Union[Tensor, Sequence[Tensor]]
IOU_MODES = ('giou', 'iou')


def _levels(preds: Levels) -> List[Tensor]:
    return [preds] if isinstance(preds, Tensor) else list(preds)


def dense_rows(preds_S: Levels, preds_T: Levels, locations_per_level: Sequence[int],
               owner: str) -> Tuple[Tensor, Tensor]:
    """Per-level (N, A*K, H, W) maps flattened to (L, K) rows, K found from the row counts.

    Args:
        preds_S (Tensor | list[Tensor]): Student side maps, one per level.
        preds_T (Tensor | list[Tensor]): Teacher maps, the same shapes (detached).
        locations_per_level (list[int]): N*H*W*A of each level (from the labels).
        owner (str): Names the loss in errors.

    Returns:
        tuple: (L, K) student rows and (L, K) teacher rows.

    Example:
        >>> s = [torch.randn(2, 9 * 4, 8, 8), torch.randn(2, 9 * 4, 4, 4)]
        >>> rows_S, rows_T = dense_rows(s, s, [2 * 64 * 9, 2 * 16 * 9], 'CrossKDBoxLoss')
        >>> rows_S.shape
        torch.Size([1440, 4])
    """
    levels = _levels(preds_S)
    if len(levels) != len(locations_per_level) or any(
            p.numel() % max(n, 1) for p, n in zip(levels, locations_per_level)):
        raise ValueError(f'{owner}: predictions of shapes {[tuple(p.shape) for p in levels]} do '
                         f'not split into the {list(locations_per_level)} locations per level of '
                         'the labels / label_weights: map both to the same head (the cross '
                         "head's and the teacher's bbox_head.forward outputs, the student's "
                         'bbox_head.get_targets).')
    widths = {p.numel() // n for p, n in zip(levels, locations_per_level) if n}
    if len(widths) != 1:
        raise ValueError(f'{owner}: the levels give {sorted(widths)} values per location; '
                         'all levels must give the same.')
    rows_S, rows_T, _ = flatten_dense_logits(preds_S, preds_T, widths.pop())
    return rows_S, rows_T


def _locations(values: Levels) -> List[int]:
    return [v.numel() for v in _levels(values)]


def num_positives(labels: Tensor, num_classes: int) -> float:
    """How many locations carry a class in [0, num_classes) (the background is num_classes),
    at least 1: the published CrossKD's ``avg_factor``."""
    return max(float(((labels >= 0) & (labels < num_classes)).sum()), 1.0)


def teacher_score_weights(logits_T: Tensor, label_weights: Optional[Tensor] = None) -> Tensor:
    """``sigmoid(max_k logits_T[i, k])``, 0 where ``label_weights`` is 0: CrossKD's regression
    weight (the teacher's confidence), (L,).

    Example:
        >>> teacher_score_weights(torch.tensor([[0.0, -1.0], [2.0, 9.0]]), torch.tensor([1., 0.]))
        tensor([0.5000, 0.0000])
    """
    weights = torch.sigmoid(logits_T.detach().max(dim=1).values)
    if label_weights is not None:
        weights = weights.masked_fill(label_weights == 0, 0.0)
    return weights


def crosskd_cls_loss(logits_S: Tensor, logits_T: Tensor, label_weights: Optional[Tensor],
                     avg_factor: float, beta: float = 1.0) -> Tensor:
    """Quality focal loss of the (L, C) cross-head logits towards the teacher's sigmoid
    scores, weighted per row by ``label_weights``, summed and divided by ``avg_factor``.

    Example:
        >>> z = torch.tensor([[0.0, 1.0]])
        >>> float(crosskd_cls_loss(z, z, None, avg_factor=1.0))          # equal scores
        0.0
    """
    return quality_focal_loss_tensor_target(logits_S, torch.sigmoid(logits_T.detach()),
                                            weight=label_weights, beta=beta,
                                            avg_factor=avg_factor)


def crosskd_box_loss(boxes_S: Tensor, boxes_T: Tensor, weights: Tensor, avg_factor: float,
                     iou: str = 'giou') -> Tensor:
    """``sum_i weights_i * l(boxes_S_i, boxes_T_i) / avg_factor`` for (L, 4) x1y1x2y2 boxes,
    ``l`` = 1 - GIoU (``'giou'``) or -log IoU (``'iou'``), mmdet's functions.

    Example:
        >>> b = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
        >>> float(crosskd_box_loss(b, b, torch.ones(1), avg_factor=1.0))
        0.0
    """
    function = giou_loss if iou == 'giou' else iou_loss
    return function(boxes_S, boxes_T.detach(), weight=weights, avg_factor=avg_factor)


def crosskd_distribution_loss(dists_S: Tensor, dists_T: Tensor, weights: Tensor,
                              tau: float = 1.0) -> Tensor:
    """GFL box distributions: rows (L, 4 * bins); per side the softmax KL (times tau^2),
    averaged over the 4 sides, then the ``weights``-weighted mean over the L locations.

    Example:
        >>> d = torch.randn(3, 4 * 5)
        >>> float(crosskd_distribution_loss(d, d, torch.ones(3)))
        0.0
    """
    sides_S = dists_S.reshape(-1, dists_S.shape[1] // 4)
    sides_T = dists_T.detach().reshape(-1, dists_T.shape[1] // 4)
    per_location = kd_divergence(sides_S, sides_T, tau, 'softmax').reshape(-1, 4).mean(dim=1)
    return (per_location * weights).sum() / weights.sum().clamp(min=1e-6)


class _CrossKDLoss(BaseDistillLoss):
    """What the CrossKD losses share: the head's class count and the flattening."""
    requires_equal_num_classes = True

    def _label_rows(self, labels: Optional[Levels], label_weights: Optional[Levels]):
        reference = labels if labels is not None else label_weights
        per_level = _locations(reference)
        flat_labels = None if labels is None else flatten_dense_labels(labels, per_level)
        flat_weights = (None if label_weights is None else
                        flatten_dense_weights(label_weights, per_level, type(self).__name__))
        return per_level, flat_labels, flat_weights

    def _avg_factor(self, labels: Tensor, logits_T: Tensor) -> float:
        return num_positives(labels, logits_T.shape[1])


@MODELS.register_module()
class CrossKDClsLoss(_CrossKDLoss):
    """CrossKD classification: quality focal KD of the cross head's class logits towards the
    teacher's (see the module docstring).

    Args:
        beta (float): Exponent of the score gap. Defaults to 1.0 (published).
        loss_weight (float): Defaults to 1.0 (published; FCOS 0.4).

    ``forward(preds_S, preds_T, labels, label_weights=None)``: cross-head and teacher class
    maps per level (N, A*C, H, W); the student's assigned labels and label weights per level.

    Example:
        >>> s = [torch.randn(2, 9 * 3, 4, 4, requires_grad=True)]
        >>> labels = [torch.full((2, 4 * 4 * 9), 3)]
        >>> labels[0][0, :4] = 1                                     # 4 positives
        >>> loss = CrossKDClsLoss()(s, [torch.randn(2, 27, 4, 4)], labels)
        >>> loss.shape, bool(loss > 0)
        (torch.Size([]), True)
    """

    def __init__(self, beta: float = 1.0, loss_weight: float = 1.0):
        super().__init__(loss_weight)
        if beta < 0:
            raise ValueError(f'CrossKDClsLoss needs beta >= 0, got {beta}.')
        self.beta = beta

    def compute(self, preds_S: Levels, preds_T: Levels, labels: Levels,
                label_weights: Optional[Levels] = None) -> Tensor:
        per_level, flat_labels, flat_weights = self._label_rows(labels, label_weights)
        logits_S, logits_T = dense_rows(preds_S, preds_T, per_level, 'CrossKDClsLoss')
        return crosskd_cls_loss(logits_S, logits_T, flat_weights,
                                self._avg_factor(flat_labels, logits_T), self.beta)


@MODELS.register_module()
class CrossKDBoxLoss(_CrossKDLoss):
    """CrossKD regression on decoded boxes (RetinaNet, ATSS, FCOS), weighted by the teacher's
    score (see the module docstring).

    Args:
        iou (str): ``'giou'`` (1 - GIoU; published RetinaNet / ATSS) or ``'iou'`` (-log IoU;
            published FCOS). Defaults to 'giou'.
        loss_weight (float): Defaults to 1.0 (published RetinaNet / ATSS; FCOS 0.75).

    ``forward(preds_S, preds_T, logits_T, priors, bbox_coder, labels, label_weights=None)``:
    cross-head and teacher box maps per level (N, A*4, H, W); the teacher's class maps; the
    cross head's ``priors`` and ``bbox_coder`` (its output of those names); the student's
    labels and label weights per level.
    """

    def __init__(self, iou: str = 'giou', loss_weight: float = 1.0):
        super().__init__(loss_weight)
        if iou not in IOU_MODES:
            raise ValueError(f'CrossKDBoxLoss iou must be one of {IOU_MODES}, got {iou!r}.')
        self.iou = iou

    def compute(self, preds_S: Levels, preds_T: Levels, logits_T: Levels, priors: Levels,
                bbox_coder, labels: Levels, label_weights: Optional[Levels] = None) -> Tensor:
        per_level, flat_labels, flat_weights = self._label_rows(labels, label_weights)
        _, cls_T = dense_rows(logits_T, logits_T, per_level, 'CrossKDBoxLoss')
        deltas_S, deltas_T = dense_rows(preds_S, preds_T, per_level, 'CrossKDBoxLoss')
        encode_size = getattr(bbox_coder, 'encode_size', 4)
        if deltas_S.shape[1] != encode_size:
            raise ValueError(f'CrossKDBoxLoss: the box maps give {deltas_S.shape[1]} values per '
                             f'location, the coder {type(bbox_coder).__name__} decodes '
                             f'{encode_size}: GFL predicts distributions, use '
                             'CrossKDDistributionLoss there.')
        flat_priors = torch.cat(_levels(priors)).to(deltas_S)
        if flat_priors.shape[0] != deltas_S.shape[0]:
            raise ValueError(f'CrossKDBoxLoss: {flat_priors.shape[0]} priors for '
                             f'{deltas_S.shape[0]} locations: map the cross head\'s priors.')
        boxes_S = box_tensor(bbox_coder.decode(flat_priors, deltas_S))
        boxes_T = box_tensor(bbox_coder.decode(flat_priors, deltas_T))
        weights = teacher_score_weights(cls_T, flat_weights)
        return crosskd_box_loss(boxes_S, boxes_T, weights,
                                self._avg_factor(flat_labels, cls_T), self.iou)


@MODELS.register_module()
class CrossKDDistributionLoss(_CrossKDLoss):
    """CrossKD regression on GFL's box distributions: softmax KL per box side, weighted by the
    teacher's score (see the module docstring).

    Args:
        tau (float): Temperature. Defaults to 1.0 (published).
        loss_weight (float): Defaults to 4.0 (published GFL).

    ``forward(preds_S, preds_T, logits_T, label_weights)``: cross-head and teacher
    distribution maps per level (N, 4*(reg_max+1), H, W); the teacher's class maps; the
    student's label weights per level (GFL ``bbox_head.get_targets`` output 2).

    Example:
        >>> d = [torch.randn(2, 4 * 17, 4, 4, requires_grad=True)]
        >>> loss = CrossKDDistributionLoss()(d, [torch.randn(2, 68, 4, 4)],
        ...                                  [torch.randn(2, 80, 4, 4)], [torch.ones(2, 16)])
        >>> loss.shape, bool(loss > 0)
        (torch.Size([]), True)
    """

    def __init__(self, tau: float = 1.0, loss_weight: float = 4.0):
        super().__init__(loss_weight)
        if tau <= 0:
            raise ValueError(f'CrossKDDistributionLoss needs tau > 0, got {tau}.')
        self.tau = tau

    def compute(self, preds_S: Levels, preds_T: Levels, logits_T: Levels,
                label_weights: Levels) -> Tensor:
        per_level, _, flat_weights = self._label_rows(None, label_weights)
        _, cls_T = dense_rows(logits_T, logits_T, per_level, 'CrossKDDistributionLoss')
        dists_S, dists_T = dense_rows(preds_S, preds_T, per_level, 'CrossKDDistributionLoss')
        if dists_S.shape[1] % 4:
            raise ValueError(f'CrossKDDistributionLoss: {dists_S.shape[1]} values per location '
                             'is not 4 distributions (GFL: 4 * (reg_max + 1)).')
        weights = teacher_score_weights(cls_T, flat_weights)
        return crosskd_distribution_loss(dists_S, dists_T, weights, self.tau)
