r"""DIST: the student matches the teacher's *relations* between scores, not their values.

Knowledge Distillation from A Stronger Teacher (Huang et al., NeurIPS 2022),
https://arxiv.org/abs/2205.10536

Logits are flattened to a :math:`P \times C` matrix (dense (N, C, H, W) maps: one row per
pixel, :math:`P = N H W`; (M, C) rows are taken as given) and turned into class probabilities
at a temperature :math:`\tau`. With :math:`\rho` the Pearson correlation (the cosine of the
centred vectors, :math:`\epsilon = 10^{-8}` in the denominator),

.. math::

    Y = \operatorname{softmax}(Z / \tau) \ \text{(over the classes)}, \qquad
    \rho(u, v) = \frac{(u - \bar u)^\top (v - \bar v)}
    {\lVert u - \bar u \rVert \, \lVert v - \bar v \rVert + \epsilon},

    L_{inter} = 1 - \frac{1}{P} \sum_{p=1}^{P} \rho(Y^{S}_{p,:}, Y^{T}_{p,:}), \qquad
    L_{intra} = 1 - \frac{1}{C} \sum_{c=1}^{C} \rho(Y^{S}_{:,c}, Y^{T}_{:,c}),

    L_{DIST} = w \cdot \tau^2 \, (\beta L_{inter} + \gamma L_{intra})

The inter-class term asks each row (pixel / sample) to rank the classes as the teacher does;
the intra-class term asks each class to rank the rows as the teacher does. Both are invariant
to a positive affine transform of either side's probabilities, so a student that cannot match
a much stronger teacher's confidence is not pushed to.

**Published settings.** Segmentation (hunto/DIST_KD, ``segmentation/losses/dist_kd.py``):
:math:`\beta = \gamma = 1`, no temperature (:math:`\tau = 1`), on the raw decode-head logits
(not upsampled), loss weight 1 on the main head's logits and 0.4 on the auxiliary head's, no
plain KD term (CE on the labels as usual). The classification code divides the logits by
:math:`\tau` and multiplies each term by :math:`\tau^2` (ImageNet: :math:`\tau = 1`,
:math:`\beta = \gamma = 1`; CIFAR-100 settings use :math:`\beta = \gamma = 2`, :math:`\tau =
4`); ``tau`` here does the same, so ``tau=1`` is the segmentation loss exactly. The
segmentation code also has a ``use_sigmoid`` switch (per-class sigmoids instead of the
softmax), ``mode='sigmoid'`` here: the fit for sigmoid dense heads (RetinaNet, FCOS, GFL) under
:class:`~mmkd.models.losses.dense_head_kd.DenseHeadLogitLoss`.

**Deviations from the published code.**

- With ``labels`` mapped, rows labelled ``ignore_index`` (255) are left out of both terms; the
  published code distils every pixel, ignored ones included. Without ``labels`` (and without
  ``weight``) the loss is the published one.
- An optional per-row ``weight`` (a boolean mask or float weights, as for ``KDLoss``): rows
  with weight 0 are left out; float weights make the inter term a weighted mean over rows and
  the intra term a weighted Pearson correlation (weighted means, and the centred entries scaled
  by :math:`\sqrt{\omega_p}`), so an integer weight :math:`k` counts a row :math:`k` times.
- A term whose correlations run over fewer than 2 entries (the intra term with fewer than 2
  kept rows; the inter term with 1 class in sigmoid mode) is undefined: it contributes 0 (the
  published code would give a constant 1 without gradient), so a batch whose pixels are nearly
  all ignored does not fail training. No kept row at all gives a zero that keeps the graph.
  The softmax over fewer than 2 classes is constant and raises a ValueError.

As published, the intra term pools the rows of one process (the images of its batch); there is
no all-gather across processes, so its value depends on the per-GPU batch size.
"""
from typing import Optional

import torch
from torch import Tensor

from mmkd.registry import MODELS
from .base import BaseDistillLoss, check_weight
from .kd import flatten_logits, weighted_mean
from .utils import no_autocast

MODES = ('softmax', 'sigmoid')


def pearson_correlation(x: Tensor, y: Tensor, weight: Optional[Tensor] = None,
                        eps: float = 1e-8) -> Tensor:
    """Pearson correlation of each row of ``x`` with the same row of ``y`` (over dim 1).

    ``(xc * yc).sum(1) / (|xc| |yc| + eps)`` with ``xc``, ``yc`` the centred rows, so a constant
    row (zero variance) gives 0, not NaN.

    Args:
        x (Tensor): (R, K).
        y (Tensor): (R, K).
        weight (Tensor, optional): (K,) non-negative weights of the K entries of every row:
            weighted means, and the centred entries scaled by ``sqrt(weight)`` (an integer
            weight k counts an entry k times). Defaults to None (all 1).
        eps (float): Added to the denominator. Defaults to 1e-8.

    Returns:
        Tensor: (R,) correlations.

    Example:
        >>> x = torch.tensor([[1., 2., 3.], [1., 1., 1.]])
        >>> pearson_correlation(x, torch.tensor([[2., 4., 7.], [0., 1., 2.]]))
        tensor([0.9934, 0.0000])
    """
    if weight is None:
        x = x - x.mean(dim=1, keepdim=True)
        y = y - y.mean(dim=1, keepdim=True)
    else:
        weight = weight.to(x)
        total = weight.sum()
        root = weight.sqrt()
        x = (x - (x * weight).sum(dim=1, keepdim=True) / total) * root
        y = (y - (y * weight).sum(dim=1, keepdim=True) / total) * root
    return (x * y).sum(dim=1) / (x.norm(dim=1) * y.norm(dim=1) + eps)


def dist_terms(probs_S: Tensor, probs_T: Tensor, weight: Optional[Tensor] = None,
               eps: float = 1e-8):
    """The inter- and intra-class relation terms of DIST on (P, C) probabilities.

    ``inter = 1 - mean_p rho(probs_S[p, :], probs_T[p, :])`` (weighted mean over rows with
    ``weight``); ``intra = 1 - mean_c rho(probs_S[:, c], probs_T[:, c])`` (weighted
    correlations with ``weight``). A term over fewer than 2 entries (C < 2, resp. P < 2) is 0.

    Args:
        probs_S (Tensor): Student probabilities, (P, C).
        probs_T (Tensor): Teacher probabilities, (P, C) (used as given: detach it first).
        weight (Tensor, optional): (P,) positive row weights. Defaults to None (all 1).
        eps (float): Added to the correlations' denominator. Defaults to 1e-8.

    Returns:
        tuple[Tensor, Tensor]: ``(inter, intra)``, float scalars.

    Example:
        >>> p = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
        >>> [round(float(v), 4) for v in dist_terms(p, p)]
        [0.0, 0.0]
    """
    zero = probs_S.sum() * 0.0
    num_rows, num_classes = probs_S.shape
    inter = zero
    if num_rows and num_classes >= 2:
        inter = 1 - weighted_mean(pearson_correlation(probs_S, probs_T, eps=eps), weight)
    intra = zero
    if num_rows >= 2:
        intra = 1 - pearson_correlation(probs_S.t(), probs_T.t(), weight, eps).mean()
    return inter, intra


@MODELS.register_module()
class DISTLoss(BaseDistillLoss):
    r"""DIST on class logits: ``loss_weight * tau**2 * (beta * inter + gamma * intra)``.

    Args:
        loss_weight (float): Multiplies the loss. Published segmentation: 1 on the main
            decode head's logits, 0.4 on the auxiliary head's. Defaults to 1.0.
        beta (float): Weight of the inter-class term (per row, over the classes), >= 0.
            Defaults to 1.0.
        gamma (float): Weight of the intra-class term (per class, over the rows), >= 0.
            Defaults to 1.0.
        tau (float): Softmax temperature, > 0; the loss is multiplied by ``tau**2``
            (classification code). Segmentation publishes no temperature: 1. Defaults to 1.0.
        mode (str): ``'softmax'`` over the classes (published default), or ``'sigmoid'``
            per class (the published ``use_sigmoid``; sigmoid dense heads). Defaults to
            'softmax'.
        ignore_index (int): Rows whose label is this are left out when ``labels`` are given
            (a deviation from the published code, which masks nothing). Defaults to 255.

    ``forward(preds_S, preds_T, labels=None, weight=None)``: logits (M, C) or (N, C, H, W) of
    equal shapes; ``labels`` integer (M,) or (N, H', W') at any resolution (resized to the
    logits' by nearest neighbour); ``weight`` (M,) or (N, H, W), a boolean mask or float row
    weights.

    Example:
        >>> s = torch.tensor([[1., 0.], [0., 1.]])
        >>> t = torch.tensor([[0., 1.], [1., 0.]])  # the student's rows, swapped
        >>> round(float(DISTLoss()(s, t)), 4)  # each row and class anti-correlated: 2 + 2
        4.0
        >>> round(float(DISTLoss(gamma=0.0, loss_weight=0.5)(s, t)), 4)
        1.0
        >>> round(float(DISTLoss()(t, t)), 4)  # 0 up to eps = 1e-8
        0.0
        >>> s, t = torch.randn(2, 19, 8, 8, requires_grad=True), torch.randn(2, 19, 8, 8)
        >>> labels = torch.randint(19, (2, 32, 32))  # full-resolution labels
        >>> labels[:, :8] = 255                      # ignored pixels are left out
        >>> loss = DISTLoss()(s, t, labels=labels)
        >>> loss.shape, bool(loss > 0)
        (torch.Size([]), True)
    """
    requires_same_shape = True
    requires_equal_num_classes = True

    def __init__(self, loss_weight: float = 1.0, beta: float = 1.0, gamma: float = 1.0,
                 tau: float = 1.0, mode: str = 'softmax', ignore_index: int = 255):
        super().__init__(loss_weight)
        self.beta = check_weight('DISTLoss', 'beta', beta)
        self.gamma = check_weight('DISTLoss', 'gamma', gamma)
        if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not tau > 0 \
                or tau == float('inf'):
            raise ValueError(f'DISTLoss needs a finite positive temperature tau, got {tau!r} '
                             '(the published segmentation setting is tau=1.0).')
        if mode not in MODES:
            raise ValueError(f"DISTLoss mode must be 'softmax' or 'sigmoid', got {mode!r}.")
        self.tau = float(tau)
        self.mode = mode
        self.ignore_index = ignore_index

    def compute(self, preds_S: Tensor, preds_T: Tensor, labels: Optional[Tensor] = None,
                weight: Optional[Tensor] = None) -> Tensor:
        """Returns a float32 scalar (float64 for float64 inputs)."""
        with no_autocast(preds_S):
            logits_S, logits_T, _, weight = flatten_logits(
                preds_S, preds_T, labels, weight, self.ignore_index, loss_name='DISTLoss')
            if self.mode == 'softmax' and logits_S.shape[1] < 2:
                raise ValueError(
                    f'DISTLoss: the softmax over {logits_S.shape[1]} class is constant, so '
                    f'there is nothing to distil (logits {tuple(preds_S.shape)}): map logits '
                    "with at least 2 classes, or use mode='sigmoid' for a binary sigmoid head.")
            if self.mode == 'softmax':
                probs_S = (logits_S / self.tau).softmax(dim=1)
                probs_T = (logits_T / self.tau).softmax(dim=1)
            else:
                probs_S = (logits_S / self.tau).sigmoid()
                probs_T = (logits_T / self.tau).sigmoid()
            inter, intra = dist_terms(probs_S, probs_T, weight)
            return self.tau**2 * (self.beta * inter + self.gamma * intra)
