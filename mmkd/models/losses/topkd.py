r"""TopKD: the teacher's top-K logits, amplified (TSM) and taught group by group (TDL).

TopKD: Top-scaled Knowledge Distillation (Wang & Zhou, 2025), https://arxiv.org/abs/2508.04539

**Top-K Scaling Module (TSM)**, on the teacher's logits :math:`z` of one sample: the teacher's
top-K classes (rank :math:`r_i = 1..K` by logit) and the ground-truth class :math:`t` are
amplified, every other logit is left exactly as it is:

.. math::

    z'_i = \begin{cases} w_i z_i + \delta & i \in \mathrm{top}K \cup \{t\} \\
           z_i & \text{otherwise} \end{cases}, \qquad
    w_i = 1 + \gamma \frac{K - r_i + 1}{K}, \qquad
    \delta = d \bigl(\overline{z}_{\mathrm{top}K} - \overline{z}_{\mathrm{rest}}\bigr)

A ground-truth class outside the top-K gets rank :math:`K` (the smallest amplification,
:math:`w = 1 + \gamma / K`); :math:`\overline{z}_{\mathrm{rest}}` is the mean over the classes
outside the teacher's top-K (ground truth included), and :math:`\delta = 0` when K equals the
class count.

**Top-K Decoupled Loss (TDL)**: the classes are split by the *scaled* teacher logits into the
positive top-K :math:`P` (the K highest), the negative top-K :math:`N` (the K lowest among the
others, so at most :math:`C - K` of :math:`C` classes) and the rest :math:`R`; per sample,

.. math::

    L_{TDL} = 1 - \frac{1}{\sum_m \omega_m} \sum_m \omega_m
    \frac{a \cos(s_P, z'_P) + b \cos(s_N, z'_N) + \cos(s_R, z'_R)}{a + b + 1}

where an empty group (:math:`2K \ge C`) drops out of numerator and denominator. The
normalisation (ours; the paper writes the unnormalised sum) makes the loss 0 exactly when every
group points the same way and keeps it in [0, 2]. Note that the target is the *scaled*
teacher: a student equal to the raw teacher still has a positive loss.

**Batch contrastive term** (optional, ``contrastive_weight > 0``): CLIP-style symmetric InfoNCE
between the student's and the scaled teacher's logit vectors of the same samples, with
temperature :math:`\tau_c`; at most ``max_contrastive_samples`` samples, drawn at random, so a
dense head never builds an :math:`M \times M` matrix for :math:`M \approx 10^5` locations.
An optional KD term (``kd_weight > 0``, :func:`kd_divergence` between the student and the
scaled teacher) is "TSM plugged into vanilla KD", the other way the paper uses the module.

.. math::

    L_{TopKD} = w \cdot \bigl(\lambda_{TDL} L_{TDL} + \lambda_{con} L_{InfoNCE}
    + \lambda_{KD} L_{KD}(s, z')\bigr)

**Choices where the paper is silent** (its constants are in an appendix that is not public):
:math:`K = 5`, :math:`\gamma = 0.5` (top-1 scaled by 1.5, rank K by :math:`1 + 0.5/K`),
:math:`d = 0.1`, :math:`a = 2`, :math:`b = 1`, :math:`\tau_c = 0.07` (CLIP's initial
temperature). ``centre`` (default in ``mode='softmax'``, the paper's classifiers) first
subtracts each sample's mean logit from student and teacher: softmax logits are defined up to
that shift, while TSM's product and the cosines are not, so without it an arbitrary offset would
decide how much TSM amplifies (a negative logit times :math:`w > 1` even decreases).
``mode='sigmoid'`` (our extension for per-class sigmoid dense heads) does not centre by default;
TSM then lowers negative top-K logits, so apply it where the teacher is confident or the
location is positive (``weight``), as is recommended for dense heads anyway. The recipe for
dense heads centres (``mode='sigmoid', centre=True``): see the measured fix below. Samples
labelled ``ignore_index`` are left out; without ``labels`` only the teacher's top-K is scaled.

**Measured weakness of sigmoid mode on dense heads.** A cosine between raw logit vectors
ignores what they share, and a RetinaNet-style head starts every logit at its prior bias
(-4.6 for p = 0.01): all vectors are then nearly parallel, whatever the classes. Ten logits at
-4.6 with one at +2.0, the student on class 3 and the teacher on class 7: TDL 0.378 with a
gradient norm of 0.064, where sigmoid KD gives 5.75 and 1.23. On the digits RetinaNet pair
(``tools/analysis/loss_balance.py``, benchmarks/RESULTS.md) its gradient on the neck is 0.025
of the task's, 19 times weaker than KD's at the same locations. Centring the logits or TSM + KD
(``kd_weight``) are the candidate remedies; the accuracy benchmark was to decide. Centring in
the hand-made case: TDL 1.28 with a gradient norm of 0.430, 6.7 times the raw one.

**Measured fix, now the dense-head default** (digits RetinaNet pair, bbox mAP gain over the
student, benchmarks/RESULTS.md; the raw form is kept as
configs/distill/topkd/topkd-raw_logits_retina-*_digits.py):

- raw sigmoid mode (``centre=False``, the default until 2026-12-01): +5.30 [-2.45, +13.05]
  (5 seeds), not resolved;
- raw, ten / thirty times the weight: +12.30 [+7.51, +17.09] / +13.24 [+9.54, +16.94] (5 seeds);
- centred at weight 1: +15.54 [+11.37, +19.71] (5 seeds; seeds 0-2 measured as
  ``mode='softmax'``, the same computation without a KD term), which is +10.24 [+4.21,
  +16.27] over raw, paired by seed.

The direction matters more than the size: the TopKD recipe on ``dense_cls_logits`` is
``mode='sigmoid', centre=True``.

**Measured on semantic segmentation logits: no gain, as plain KD.** On the digits Semantic
FPN pair TopKD gains +0.73 mIoU [-0.33, +1.79] (3 seeds), plain KD on the same logits +0.01
[-1.55, +1.57], CWD +8.0 (benchmarks/RESULTS.md). Like KD it is a mean over pixels, 92% of
them background: pixel accuracy +0.31 [+0.23, +0.40], mean class accuracy -0.48 [-1.59,
+0.63]; see :mod:`.kd`.
"""
from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from mmkd.registry import MODELS
from .base import BaseDistillLoss
from .kd import flatten_logits, kd_divergence, weighted_mean


def _check_k(k: int, num_classes: int) -> None:
    if not 1 <= k <= num_classes:
        raise ValueError(f'TopKD: k={k} must lie in [1, {num_classes}] for logits with '
                         f'{num_classes} classes: set k <= {num_classes} in TopKDLoss(k=...).')


def top_k_scaling(logits_T: Tensor, labels: Optional[Tensor] = None, k: int = 5,
                  gamma: float = 0.5, delta_scale: float = 0.1) -> Tensor:
    """The Top-K Scaling Module: amplify the teacher's top-K (and ground-truth) logits.

    Args:
        logits_T (Tensor): Teacher logits, (M, C).
        labels (Tensor, optional): Ground-truth class per sample, (M,), in [0, C). Defaults to
            None (only the top-K is scaled).
        k (int): How many top classes to amplify, 1 <= k <= C. Defaults to 5.
        gamma (float): Rank-dependent scale: ``w = 1 + gamma * (k - r + 1) / k`` for rank
            ``r = 1..k``. Defaults to 0.5.
        delta_scale (float): ``delta = delta_scale * (mean(top-k) - mean(rest))``. Defaults
            to 0.1.

    Returns:
        Tensor: (M, C) scaled logits; entries outside top-K and ground truth are unchanged.

    Example:
        >>> z = torch.tensor([[4.0, 2.0, 1.0, 0.0, -1.0]])
        >>> top_k_scaling(z, k=2, gamma=1.0, delta_scale=0.5)  # w = (2, 1.5), delta = 1.5
        tensor([[ 9.5000,  4.5000,  1.0000,  0.0000, -1.0000]])
        >>> top_k_scaling(z, torch.tensor([2]), k=2, gamma=1.0, delta_scale=0.0)  # gt: w 1.5
        tensor([[ 8.0000,  3.0000,  1.5000,  0.0000, -1.0000]])
    """
    if logits_T.dim() != 2:
        raise ValueError(f'top_k_scaling needs (M, C) logits, got {tuple(logits_T.shape)}: '
                         'flatten dense maps with flatten_logits first.')
    num_samples, num_classes = logits_T.shape
    _check_k(k, num_classes)
    top_values, top_idx = logits_T.topk(k, dim=1)                 # ranks 1..k, descending
    ranks = torch.arange(1, k + 1, device=logits_T.device, dtype=logits_T.dtype)
    rank_scale = 1 + gamma * (k - ranks + 1) / k
    scale = torch.ones_like(logits_T).scatter(1, top_idx, rank_scale.expand(num_samples, k))
    selected = torch.zeros_like(logits_T, dtype=torch.bool).scatter(1, top_idx, True)
    if labels is not None:
        if tuple(labels.shape) != (num_samples, ):
            raise ValueError(f'top_k_scaling: labels must have shape ({num_samples},), one per '
                             f'sample, got {tuple(labels.shape)}.')
        if bool(((labels < 0) | (labels >= num_classes)).any()):
            raise ValueError(f'top_k_scaling: labels must lie in [0, {num_classes}); drop '
                             'ignored samples first (flatten_logits does).')
        labels = labels.long()[:, None]
        gt_in_top = selected.gather(1, labels)
        # A ground truth outside the top-K gets rank k: the smallest amplification.
        gt_scale = torch.where(gt_in_top, scale.gather(1, labels),
                               torch.full_like(gt_in_top, 1 + gamma / k, dtype=scale.dtype))
        scale = scale.scatter(1, labels, gt_scale)
        selected = selected.scatter(1, labels, True)
    if k < num_classes:
        rest_mean = (logits_T.sum(dim=1) - top_values.sum(dim=1)) / (num_classes - k)
        delta = delta_scale * (top_values.mean(dim=1) - rest_mean)
    else:
        delta = torch.zeros_like(logits_T[:, 0])
    return torch.where(selected, logits_T * scale + delta[:, None], logits_T)


def _group_cosine(x: Tensor, y: Tensor, eps: float = 1e-8) -> Tensor:
    """Row-wise cosine of (M, g) groups; two zero vectors count as aligned (cosine 1)."""
    norm_x, norm_y = x.norm(dim=1), y.norm(dim=1)
    cos = (x * y).sum(dim=1) / (norm_x * norm_y).clamp_min(eps)
    return torch.where((norm_x < eps) & (norm_y < eps), torch.ones_like(cos), cos)


def top_k_decoupled_terms(logits_S: Tensor, logits_T: Tensor, k: int = 5,
                          pos_weight: float = 2.0, neg_weight: float = 1.0) -> Tensor:
    """Per-sample TDL ``1 - (a cos_P + b cos_N + cos_R) / (a + b + 1)``, groups by teacher.

    Args:
        logits_S (Tensor): Student logits, (M, C).
        logits_T (Tensor): Teacher logits, usually scaled by :func:`top_k_scaling`, (M, C)
            (used as given: detach it first).
        k (int): Size of the positive and (at most) of the negative group. Defaults to 5.
        pos_weight (float): ``a``, weight of the positive top-K group. Defaults to 2.0.
        neg_weight (float): ``b``, weight of the negative top-K group. Defaults to 1.0.

    Returns:
        Tensor: (M,) losses in [0, 2]; 0 for a sample whose groups all align.

    Example:
        >>> z = torch.tensor([[3.0, 1.0, -1.0, 0.5, 2.0, -2.0]])
        >>> top_k_decoupled_terms(z, z, k=2).abs()
        tensor([0.])
        >>> top_k_decoupled_terms(-z, z, k=2)                    # every group reversed
        tensor([2.])
    """
    num_classes = logits_T.shape[1]
    _check_k(k, num_classes)
    num_neg = min(k, num_classes - k)
    num_rest = num_classes - k - num_neg
    order = logits_T.argsort(dim=1, descending=True)
    sorted_S, sorted_T = logits_S.gather(1, order), logits_T.gather(1, order)
    total = pos_weight * _group_cosine(sorted_S[:, :k], sorted_T[:, :k])
    norm = pos_weight
    if num_neg:
        total = total + neg_weight * _group_cosine(sorted_S[:, num_classes - num_neg:],
                                                   sorted_T[:, num_classes - num_neg:])
        norm += neg_weight
    if num_rest:
        total = total + _group_cosine(sorted_S[:, k:k + num_rest],
                                      sorted_T[:, k:k + num_rest])
        norm += 1.0
    return 1 - total / norm


def sample_rows(num_rows: int, max_rows: int,
                generator: Optional[torch.Generator] = None) -> Optional[Tensor]:
    """Indices of ``max_rows`` random rows out of ``num_rows`` (sorted, on the CPU), or None
    when all rows fit.

    Example:
        >>> sample_rows(10, 20) is None, sample_rows(20000, 64).shape
        (True, torch.Size([64]))
    """
    if num_rows <= max_rows:
        return None
    return torch.randperm(num_rows, generator=generator)[:max_rows].sort().values


def batch_contrastive_loss(emb_S: Tensor, emb_T: Tensor, tau: float = 0.07,
                           weight: Optional[Tensor] = None, max_samples: int = 4096,
                           generator: Optional[torch.Generator] = None) -> Tensor:
    """Symmetric CLIP-style InfoNCE: sample m of the student should match sample m of the
    teacher among the batch's samples.

    Args:
        emb_S (Tensor): Student embeddings (here logit vectors), (M, D).
        emb_T (Tensor): Teacher embeddings, (M, D) (used as given: detach it first).
        tau (float): Temperature of the cosine-similarity logits. Defaults to 0.07.
        weight (Tensor, optional): (M,) per-sample weights. Defaults to None.
        max_samples (int): At most this many samples, drawn at random, enter the
            (max_samples x max_samples) similarity matrix. Defaults to 4096.
        generator (torch.Generator, optional): CPU generator for that draw. Defaults to None.

    Returns:
        Tensor: Scalar, ``(CE(S -> T) + CE(T -> S)) / 2`` averaged over the used samples.

    Example:
        >>> emb = torch.eye(4)
        >>> float(batch_contrastive_loss(emb, emb)) < 1e-5      # each sample its own match
        True
        >>> round(float(batch_contrastive_loss(emb, emb.flip(0))), 2)  # matches swapped
        14.29
    """
    rows = sample_rows(emb_S.shape[0], max_samples, generator)
    if rows is not None:
        rows = rows.to(emb_S.device)
        emb_S, emb_T = emb_S[rows], emb_T[rows]
        weight = weight[rows] if weight is not None else None
    if emb_S.shape[0] == 0:
        return emb_S.sum() * 0.0
    sim = F.normalize(emb_S, dim=1) @ F.normalize(emb_T, dim=1).t() / tau
    targets = torch.arange(sim.shape[0], device=sim.device)
    per_sample = (F.cross_entropy(sim, targets, reduction='none') +
                  F.cross_entropy(sim.t(), targets, reduction='none')) / 2
    return weighted_mean(per_sample, weight)


@MODELS.register_module()
class TopKDLoss(BaseDistillLoss):
    """TopKD: Top-K scaling of the teacher plus the Top-K decoupled loss (and options).

    Args:
        loss_weight (float): Scales the whole loss. Defaults to 1.0.
        k (int): Top-K size for scaling and the TDL groups. Defaults to 5.
        scale_gamma (float): TSM rank scale ``gamma``. Defaults to 0.5.
        scale_delta (float): TSM shift factor ``d``. Defaults to 0.1.
        pos_weight (float): TDL weight ``a`` of the positive top-K group. Defaults to 2.0.
        neg_weight (float): TDL weight ``b`` of the negative top-K group. Defaults to 1.0.
        tdl_weight (float): Weight of the TDL term. Defaults to 1.0.
        contrastive_weight (float): Weight of the batch InfoNCE term; 0 skips it. Defaults
            to 0.0.
        contrastive_tau (float): InfoNCE temperature. Defaults to 0.07.
        max_contrastive_samples (int): Cap on the samples of the InfoNCE term. Defaults to
            4096.
        kd_weight (float): Weight of KD between the student and the scaled teacher; 0 skips
            it. Defaults to 0.0.
        kd_tau (float): Temperature of that KD term. Defaults to 4.0.
        mode (str): ``'softmax'`` (KD term as softmax KL) or ``'sigmoid'`` (KD term as
            per-class binary KL). Defaults to 'softmax'.
        centre (bool, optional): Subtract each sample's mean logit from student and teacher
            before TSM, the cosines and the contrastive term. None: True in softmax mode
            (softmax logits are defined up to that shift), False in sigmoid mode. Sigmoid
            dense heads want True (the measured fix above), which allows no KD term: centring
            changes sigmoid probabilities. Defaults to None.
        ignore_index (int): Label of samples to leave out. Defaults to 255.

    ``forward(preds_S, preds_T, labels=None, weight=None, generator=None)``: logits (M, C)
    or (N, C, H, W); ``labels`` / ``weight`` (M,) or (N, H, W); ``generator`` a
    ``torch.Generator`` (or an int seed) for the contrastive subsampling.

    Example:
        >>> s, t = torch.randn(2, 10, 4, 4, requires_grad=True), torch.randn(2, 10, 4, 4)
        >>> loss = TopKDLoss(contrastive_weight=0.1)(s, t, labels=torch.randint(10, (2, 4, 4)))
        >>> loss.shape, bool(loss > 0)
        (torch.Size([]), True)
    """
    requires_equal_num_classes = True

    def __init__(self, loss_weight: float = 1.0, k: int = 5, scale_gamma: float = 0.5,
                 scale_delta: float = 0.1, pos_weight: float = 2.0, neg_weight: float = 1.0,
                 tdl_weight: float = 1.0, contrastive_weight: float = 0.0,
                 contrastive_tau: float = 0.07, max_contrastive_samples: int = 4096,
                 kd_weight: float = 0.0, kd_tau: float = 4.0, mode: str = 'softmax',
                 centre: Optional[bool] = None, ignore_index: int = 255):
        super().__init__(loss_weight)
        if k < 1:
            raise ValueError(f'TopKDLoss needs k >= 1, got {k}.')
        if mode not in ('softmax', 'sigmoid'):
            raise ValueError(f"TopKDLoss mode must be 'softmax' or 'sigmoid', got {mode!r}.")
        if contrastive_tau <= 0 or kd_tau <= 0:
            raise ValueError(f'TopKDLoss needs positive temperatures, got contrastive_tau='
                             f'{contrastive_tau} and kd_tau={kd_tau}.')
        if max_contrastive_samples < 1:
            raise ValueError(f'TopKDLoss max_contrastive_samples must be >= 1, got '
                             f'{max_contrastive_samples}.')
        centre = mode == 'softmax' if centre is None else centre
        if centre and mode == 'sigmoid' and kd_weight:
            raise ValueError('TopKDLoss: centre=True changes sigmoid probabilities, so the KD '
                             "term of mode='sigmoid' cannot use centred logits: set "
                             'kd_weight=0 or centre=False.')
        self.k = k
        self.scale_gamma = scale_gamma
        self.scale_delta = scale_delta
        self.pos_weight = pos_weight
        self.neg_weight = neg_weight
        self.tdl_weight = tdl_weight
        self.contrastive_weight = contrastive_weight
        self.contrastive_tau = contrastive_tau
        self.max_contrastive_samples = max_contrastive_samples
        self.kd_weight = kd_weight
        self.kd_tau = kd_tau
        self.mode = mode
        self.centre = centre
        self.ignore_index = ignore_index

    def compute(self, preds_S: Tensor, preds_T: Tensor, labels: Optional[Tensor] = None,
                weight: Optional[Tensor] = None,
                generator: Union[None, int, torch.Generator] = None) -> Tensor:
        """Returns a float32 scalar."""
        if isinstance(generator, int):
            generator = torch.Generator().manual_seed(generator)
        logits_S, logits_T, labels, weight = flatten_logits(
            preds_S, preds_T, labels, weight, self.ignore_index, loss_name='TopKDLoss')
        if self.centre:
            logits_S = logits_S - logits_S.mean(dim=1, keepdim=True)
            logits_T = logits_T - logits_T.mean(dim=1, keepdim=True)
        scaled_T = top_k_scaling(logits_T, labels, self.k, self.scale_gamma, self.scale_delta)
        loss = logits_S.sum() * 0.0
        if self.tdl_weight:
            loss = loss + self.tdl_weight * weighted_mean(
                top_k_decoupled_terms(logits_S, scaled_T, self.k, self.pos_weight,
                                      self.neg_weight), weight)
        if self.contrastive_weight:
            loss = loss + self.contrastive_weight * batch_contrastive_loss(
                logits_S, scaled_T, self.contrastive_tau, weight, self.max_contrastive_samples,
                generator)
        if self.kd_weight:
            loss = loss + self.kd_weight * weighted_mean(
                kd_divergence(logits_S, scaled_T, self.kd_tau, self.mode), weight)
        return loss
