r"""Vanilla knowledge distillation (KD): the student's class scores imitate the teacher's.

Distilling the Knowledge in a Neural Network (Hinton et al., 2015),
https://arxiv.org/abs/1503.02531

Softmax classifiers (classification, mmseg decode heads, two-stage RoI heads): per sample
:math:`m`, the KL divergence between the temperature-softened class distributions,

.. math::

    p^{T}_{m} = \operatorname{softmax}(z^{T}_{m} / \tau), \quad
    p^{S}_{m} = \operatorname{softmax}(z^{S}_{m} / \tau), \qquad
    L_{KD} = w \cdot \frac{\tau^2}{\sum_m \omega_m} \sum_m \omega_m
    \sum_{k=1}^{K} p^{T}_{m,k} \log \frac{p^{T}_{m,k}}{p^{S}_{m,k}}

Sigmoid classifiers (dense heads with one binary classifier per class: RetinaNet, FCOS, GFL):
per sample and class a binary KL between :math:`q = \sigma(z / \tau)`, summed over classes,

.. math::

    L_{KD}^{sig} = w \cdot \frac{\tau^2}{\sum_m \omega_m} \sum_m \omega_m \sum_{k=1}^{K}
    \Bigl[q^{T}_{m,k} \log \frac{q^{T}_{m,k}}{q^{S}_{m,k}}
    + (1 - q^{T}_{m,k}) \log \frac{1 - q^{T}_{m,k}}{1 - q^{S}_{m,k}}\Bigr]

:math:`\omega_m` is an optional per-sample weight (1 by default). The :math:`\tau^2` factor
keeps the gradient scale independent of the temperature, as in the paper.

Inputs are logits of shape (M, K) (M samples: RoIs, gathered locations or pixels) or dense
(N, K, H, W) maps, which are flattened to (N*H*W, K). A ``weight`` of shape (M,) or (N, H, W)
weights the samples; a boolean one selects them (e.g. the pixels without the ignore index, or
the locations where the teacher is confident: on dense heads the ~1e5 background locations
otherwise dominate the mean). :func:`flatten_logits` does this for every logit loss of mmkd
(KD, DKD, TopKD).

**Measured on semantic segmentation logits: no gain, and why.** On the digits Semantic FPN
pair (benchmarks/RESULTS.md, 3 seeds) KD on the decode head's logits gains +0.01 mIoU [-1.55,
+1.57] over the student alone, while CWD on the very same logits gains +8.0 and KD on the
RetinaNet head +11.7 bbox mAP (resolved). Its gradient there is of the task's size and points
its way (cosine 0.68 with the task's gradient on the neck), so weight and direction are not the
cause. The other metrics of the same runs (``tools/analysis/run_metrics.py``) show what it does:
pixel accuracy +1.33 [+0.95, +1.72], mean class accuracy -4.64 [-5.76, -3.52]. The loss is a
mean over pixels, 92% of which are background, where the teacher is confident: it mostly
teaches the student to say "background" more often, which costs the digits their recall. CWD
normalises each class's map over the pixels, so every class weighs the same (mean class
accuracy +6.25). Prefer CWD for segmentation logits. (Pixel weights that make the classes
count equally, through ``weight``, are the remedy this points to; not measured yet.)
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from mmkd.registry import MODELS
from .base import BaseDistillLoss
from .utils import kl_terms, no_autocast, resize_labels, to_float32


def flatten_logits(preds_S: Tensor, preds_T: Tensor, labels: Optional[Tensor] = None,
                   weight: Optional[Tensor] = None, ignore_index: int = 255,
                   loss_name: str = 'KDLoss'
                   ) -> Tuple[Tensor, Tensor, Optional[Tensor], Optional[Tensor]]:
    """Bring student / teacher logits to float32 (M, K) and keep the samples that count.

    Dense (N, K, H, W) maps become (N*H*W, K) (sample order n, h, w). The teacher is
    detached. Samples with ``weight == 0`` (``False``) or with ``labels == ignore_index`` are
    dropped, so the caller's weighted mean runs over the kept samples only.

    Args:
        preds_S (Tensor): Student logits, (M, K) or (N, K, H, W).
        preds_T (Tensor): Teacher logits, the same shape.
        labels (Tensor, optional): Ground-truth class per sample, integer, (M,) or (N, H, W);
            values in [0, K) or ``ignore_index``. (N, H', W') labels of another resolution than
            dense logits (e.g. mmseg's full-size ``gt_sem_seg``) are resized to the logits'
            with nearest neighbours. Defaults to None.
        weight (Tensor, optional): Non-negative per-sample weight or boolean mask, (M,) or
            (N, H, W). Defaults to None (every sample, weight 1).
        ignore_index (int): Label of samples to leave out. Defaults to 255.
        loss_name (str): Named in error messages. Defaults to 'KDLoss'.

    Returns:
        tuple: ``(logits_S, logits_T, labels, weight)``: (M', K) float32 logits, (M',) int64
        labels or None, (M',) float32 weights or None (all ones), M' the kept samples.

    Example:
        >>> s, t = torch.randn(2, 3, 4, 5), torch.randn(2, 3, 4, 5)
        >>> mask = torch.zeros(2, 4, 5, dtype=torch.bool)
        >>> mask[0, :2] = True
        >>> logits_S, logits_T, labels, weight = flatten_logits(s, t, weight=mask)
        >>> logits_S.shape, logits_T.requires_grad, labels, weight.shape
        (torch.Size([10, 3]), False, None, torch.Size([10]))
    """
    if preds_S.shape != preds_T.shape or preds_S.dim() not in (2, 4):
        raise ValueError(
            f'{loss_name} needs student and teacher logits of one shape, (M, K) or '
            f'(N, K, H, W), got student {tuple(preds_S.shape)} and teacher '
            f'{tuple(preds_T.shape)}: record both from the same head output (e.g. the same '
            'FPN level via data_idx), with teacher and student trained on the same classes.')
    logits_S, logits_T = to_float32(preds_S), to_float32(preds_T.detach())
    num_classes = logits_S.shape[1]
    if logits_S.dim() == 4:
        N, _, H, W = logits_S.shape
        logits_S = logits_S.permute(0, 2, 3, 1).reshape(-1, num_classes)
        logits_T = logits_T.permute(0, 2, 3, 1).reshape(-1, num_classes)
        allowed = ((N, H, W), (N * H * W, ))
    else:
        allowed = ((logits_S.shape[0], ), )
    num_samples = logits_S.shape[0]
    if (labels is not None and logits_S.dim() == 2 and preds_S.dim() == 4 and labels.dim() == 3
            and labels.shape[0] == preds_S.shape[0] and labels.shape[1:] != preds_S.shape[2:]):
        # Segmentation labels come at the input resolution, logits at the head's (1/4 or 1/8):
        # take each cell's label at its nearest pixel.
        labels = resize_labels(labels, preds_S.shape[2:])

    def _per_sample(value: Optional[Tensor], what: str) -> Optional[Tensor]:
        if value is None:
            return None
        if tuple(value.shape) not in allowed:
            raise ValueError(
                f'{loss_name}: {what} must have one entry per sample, shape '
                f'{" or ".join(str(a) for a in allowed)} for logits {tuple(preds_S.shape)}, '
                f'got {tuple(value.shape)}. Map a tensor with the logits\' batch and spatial '
                'size (squeeze a channel dimension of size 1).')
        return value.reshape(num_samples).to(logits_S.device)

    labels = _per_sample(labels, 'labels')
    weight = _per_sample(weight, 'weight')
    keep = None
    if weight is not None:
        weight = weight.float()
        keep = weight > 0
    if labels is not None:
        if labels.is_floating_point() or labels.dtype == torch.bool:
            raise ValueError(f'{loss_name}: labels must be integer class indices, got '
                             f'{labels.dtype}.')
        labels = labels.long()
        valid = labels != ignore_index
        bad = valid & ((labels < 0) | (labels >= num_classes))
        if bool(bad.any()):
            raise ValueError(
                f'{loss_name}: labels must lie in [0, {num_classes}) or equal ignore_index='
                f'{ignore_index}, got {labels[bad][:5].tolist()}. For mmdet dense heads, whose '
                f'background label is num_classes, pass ignore_index={num_classes} or select '
                'the positive locations with weight.')
        keep = valid if keep is None else keep & valid
    if keep is not None and not bool(keep.all()):
        logits_S, logits_T = logits_S[keep], logits_T[keep]
        labels = labels[keep] if labels is not None else None
        weight = weight[keep] if weight is not None else None
    return logits_S, logits_T, labels, weight


def weighted_mean(values: Tensor, weight: Optional[Tensor] = None) -> Tensor:
    """``sum(weight * values) / sum(weight)`` over samples (plain mean without weight).

    An empty ``values`` gives a zero that keeps the graph (so ``backward`` still works).

    Example:
        >>> weighted_mean(torch.tensor([1., 3.]), torch.tensor([3., 1.]))
        tensor(1.5000)
    """
    if values.numel() == 0:
        return values.sum() * 0.0
    if weight is None:
        return values.mean()
    return (values * weight).sum() / weight.sum()


def _reduce(values: Tensor, weight: Optional[Tensor], reduction: str) -> Tensor:
    if reduction == 'mean':
        return weighted_mean(values, weight)
    if reduction == 'sum':
        return (values if weight is None else values * weight).sum()
    if reduction == 'none':
        return values if weight is None else values * weight
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}.")


def kd_divergence(logits_S: Tensor, logits_T: Tensor, tau: float = 1.0,
                  mode: str = 'softmax') -> Tensor:
    """Per-sample KD term ``tau**2 * KL(teacher || student)``, without reduction.

    Args:
        logits_S (Tensor): Student logits, (M, K), float.
        logits_T (Tensor): Teacher logits, (M, K) (used as given: detach it first).
        tau (float): Temperature. Defaults to 1.0.
        mode (str): ``'softmax'`` (KL of class distributions) or ``'sigmoid'`` (binary KL per
            class, summed over classes). Defaults to 'softmax'.

    Returns:
        Tensor: (M,) per-sample divergences.
    """
    if mode == 'softmax':
        kl = kl_terms(F.log_softmax(logits_T / tau, dim=1), F.log_softmax(logits_S / tau, dim=1))
    elif mode == 'sigmoid':
        z_S, z_T = logits_S / tau, logits_T / tau
        # log q = logsigmoid(z), log(1 - q) = logsigmoid(-z): stable for any logit.
        q_T = torch.sigmoid(z_T)
        kl = (q_T * (F.logsigmoid(z_T) - F.logsigmoid(z_S)) + (1 - q_T) *
              (F.logsigmoid(-z_T) - F.logsigmoid(-z_S)))
    else:
        raise ValueError(f"KD mode must be 'softmax' or 'sigmoid', got {mode!r}.")
    return kl.sum(dim=1) * tau**2


def kd_loss(preds_S: Tensor, preds_T: Tensor, tau: float = 1.0, mode: str = 'softmax',
            weight: Optional[Tensor] = None, reduction: str = 'mean') -> Tensor:
    """Hinton KD: ``tau**2 * KL(teacher || student)`` per sample, reduced over samples.

    Computed in float32 with autocast off; the teacher side is detached.

    Args:
        preds_S (Tensor): Student logits, (M, K) or (N, K, H, W).
        preds_T (Tensor): Teacher logits, the same shape.
        tau (float): Temperature, > 0. Defaults to 1.0.
        mode (str): ``'softmax'`` or ``'sigmoid'`` (per-class binary KL, for dense heads with
            sigmoid classifiers). Defaults to 'softmax'.
        weight (Tensor, optional): Per-sample weight or boolean mask, (M,) or (N, H, W).
            Defaults to None.
        reduction (str): ``'mean'`` (weighted mean over samples), ``'sum'`` (weighted sum) or
            ``'none'`` (the (M',) weighted values of the kept samples). Defaults to 'mean'.

    Returns:
        Tensor: Scalar loss (without a loss weight), or (M',) with ``reduction='none'``.

    Example:
        >>> s = torch.zeros(1, 3)                              # p_S = (1/3, 1/3, 1/3)
        >>> t = torch.tensor([[2.0, 1.0, 1.0]]).log()          # p_T = (1/2, 1/4, 1/4)
        >>> round(float(kd_loss(s, t)), 5)                     # 0.5 * log(9 / 8)
        0.05889
    """
    with no_autocast(preds_S):
        logits_S, logits_T, _, weight = flatten_logits(preds_S, preds_T, weight=weight)
        return _reduce(kd_divergence(logits_S, logits_T, tau, mode), weight, reduction)


@MODELS.register_module()
class KDLoss(BaseDistillLoss):
    """Vanilla KD on class logits: ``loss_weight * kd_loss(S, T, tau, mode)``.

    Args:
        loss_weight (float): Scales the loss. Defaults to 1.0.
        tau (float): Temperature, > 0 (Hinton et al. use 1..20; 4 is common for
            classification). Defaults to 1.0.
        mode (str): ``'softmax'`` for softmax classifiers (mmseg decode heads, RoI heads),
            ``'sigmoid'`` for per-class sigmoid dense heads (RetinaNet, FCOS, GFL).
            Defaults to 'softmax'.
        reduction (str): ``'mean'`` over the (weighted) samples, or ``'sum'``. Defaults to
            'mean'.

    ``forward(preds_S, preds_T, weight=None)``: logits (M, K) or (N, K, H, W); ``weight``
    (M,) or (N, H, W), float weights or a boolean mask of the samples to keep.

    Example:
        >>> s, t = torch.randn(2, 19, 8, 8, requires_grad=True), torch.randn(2, 19, 8, 8)
        >>> loss = KDLoss(tau=4.0)(s, t, weight=torch.rand(2, 8, 8) > 0.5)
        >>> loss.shape, bool(loss > 0)
        (torch.Size([]), True)
        >>> float(KDLoss(mode='sigmoid')(t, t))
        0.0
    """
    requires_equal_num_classes = True

    def __init__(self, loss_weight: float = 1.0, tau: float = 1.0, mode: str = 'softmax',
                 reduction: str = 'mean'):
        super().__init__(loss_weight)
        if tau <= 0:
            raise ValueError(f'KDLoss needs a positive temperature tau, got {tau}.')
        if mode not in ('softmax', 'sigmoid'):
            raise ValueError(f"KDLoss mode must be 'softmax' or 'sigmoid', got {mode!r}.")
        if reduction not in ('mean', 'sum'):
            raise ValueError(f"KDLoss reduction must be 'mean' or 'sum', got {reduction!r}.")
        self.tau = tau
        self.mode = mode
        self.reduction = reduction

    def compute(self, preds_S: Tensor, preds_T: Tensor,
                weight: Optional[Tensor] = None) -> Tensor:
        """Returns a float32 scalar."""
        return kd_loss(preds_S, preds_T, self.tau, self.mode, weight, self.reduction)
