r"""Logit distillation on dense detection heads (RetinaNet, FCOS, GFL), at selected locations.

The distillation term is any mmkd logit loss (by default vanilla KD with per-class sigmoids:
Distilling the Knowledge in a Neural Network, Hinton et al., 2015,
https://arxiv.org/abs/1503.02531); distilling the classification logits only where the
detector is learning an object follows the "main distillation region" of
Localization Distillation for Dense Object Detection (Zheng et al., CVPR 2022),
https://arxiv.org/abs/2102.12252.

A dense head scores every anchor (or point) :math:`i` of every FPN level; the ~1e5 locations of
an image are nearly all background, and averaging the loss over all of them lets the background
dominate. With :math:`y_i` the label the student's assigner gave location :math:`i` (mmdet's
dense heads label the background ``num_classes``), :math:`s_i = \max_k \sigma(z^{T}_{i,k})`
the teacher's score, :math:`K` the class count and :math:`\theta` the score threshold,

.. math::

    \mathcal{P} = \{i : 0 \le y_i < K\}, \qquad
    \mathcal{C} = \{i : s_i \ge \theta\}, \qquad
    \mathcal{S} = \mathcal{P} \cup \mathcal{C} \ \text{(the requested sets)},

    L = w \cdot L_{inner}\bigl(z^{S}_{\mathcal{S}}, z^{T}_{\mathcal{S}}
    \,[, y_{\mathcal{S}}]\bigr)

where :math:`z_{\mathcal{S}}` are the (M, K) logit rows of the selected locations and
:math:`L_{inner}` is the configured loss (default ``KDLoss(mode='sigmoid')``: the per-class
binary KL, averaged over the M locations). If :math:`|\mathcal{S}|` exceeds ``max_locations``,
positives are kept first and then the most confident of the rest (each group ranked by
:math:`s_i`, ties by index). No selected location gives a zero loss that keeps the graph.

**Layout.** ``preds_*`` are the per-level class maps that ``bbox_head.forward`` returns as its
output 0 (record them with ``MethodOutputsRecorder(source='bbox_head.forward')``,
``data_idx=0``), each (N, A*K, H, W) with A anchors per location (RetinaNet A = 9; FCOS and
GFL A = 1). Each level is flattened as mmdet's ``loss_by_feat`` does,
``permute(0, 2, 3, 1).reshape(-1, K)``, i.e. rows in the order (n, h, w, a), and the levels are
concatenated level-major. ``labels`` are the student's assigned labels, recorded with
``MethodOutputsRecorder(source='bbox_head.get_targets')`` on the student (verified on mmdet
3.3): ``AnchorHead`` / ``RetinaHead`` output 0 (``data_idx=0``), per level (N, H*W*A);
``FCOSHead`` output 0, per level (N*H*W,); ``GFLHead`` (and ``ATSSHead``) output 1
(``data_idx=1``; output 0 holds the anchors), per level (N, H*W*A). All of them reshape to
(N*H*W*A,) in the logits' order.

**Choices.** Labels are the *student's* assignment (the teacher's head never computes targets
in its forward pass); teacher and student must share anchors and strides, so that the two maps
describe the same locations. Heads with softmax classifiers (``use_sigmoid=False``, e.g. SSD:
A*(K+1) channels) do not fit and raise an error. DKD assumes one softmax over the classes with
a target class, which fits RoI heads and segmentation logits (use ``DKDLoss`` there directly),
not the independent sigmoids of dense heads: prefer ``KDLoss(mode='sigmoid')`` or
``TopKDLoss(mode='sigmoid')`` here. An inner loss whose ``forward`` takes ``labels`` receives
them with the background mapped to its ``ignore_index``; such losses (TopKD, DKD) leave those
locations out, so set ``pass_labels=False`` to distill confident background locations too.
"""
from typing import List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from mmkd.registry import MODELS
from .base import BaseDistillLoss, build_wrapped_loss
from .utils import to_float32

SELECTIONS = ('positive', 'confident')
#: Where each mmdet head family puts its per-level labels in ``bbox_head.get_targets``'s output.
LABELS_HINT = ("record the student's targets with MethodOutputsRecorder(source="
               "'bbox_head.get_targets') and map labels=dict(from_student=True, recorder=..., "
               'data_idx=i): data_idx=0 for RetinaNet / AnchorHead and FCOS, data_idx=1 for GFL '
               '/ ATSS (their output 0 holds the anchors)')


def _as_levels(preds: Union[Tensor, Sequence[Tensor]], what: str) -> List[Tensor]:
    if isinstance(preds, Tensor):
        return [preds]
    if isinstance(preds, (list, tuple)) and preds and all(isinstance(p, Tensor) for p in preds):
        return list(preds)
    raise ValueError(f'DenseHeadLogitLoss: {what} must be one tensor or a list of per-level '
                     f'tensors (N, A*C, H, W): the output 0 of bbox_head.forward '
                     f"(MethodOutputsRecorder(source='bbox_head.forward'), data_idx=0); got "
                     f'{type(preds).__name__}{_describe(preds)}.')


def _describe(value) -> str:
    if isinstance(value, Tensor):
        return f' {tuple(value.shape)}'
    if isinstance(value, (list, tuple)):
        return ' [' + ', '.join(type(v).__name__ + _describe(v) for v in value[:6]) + (
            ', ...]' if len(value) > 6 else ']')
    return ''


def flatten_dense_logits(preds_S: Union[Tensor, Sequence[Tensor]],
                         preds_T: Union[Tensor, Sequence[Tensor]],
                         num_classes: int) -> Tuple[Tensor, Tensor, List[int]]:
    """Flatten per-level (N, A*C, H, W) class maps to (L, C) rows, as mmdet's heads do.

    Each level becomes ``permute(0, 2, 3, 1).reshape(-1, C)`` (row order n, h, w, a); the
    levels are concatenated level-major. The teacher is detached; half precision becomes
    float32.

    Args:
        preds_S (Tensor | list[Tensor]): Student class maps, one (N, A*C, H, W) per level.
        preds_T (Tensor | list[Tensor]): Teacher class maps, the same shapes.
        num_classes (int): C, the number of classes (sigmoid outputs per anchor).

    Returns:
        tuple: ``(logits_S, logits_T, locations_per_level)``: (L, C) student and teacher rows,
        and the N*H*W*A row count of each level.

    Example:
        >>> s = [torch.randn(2, 3 * 4, 8, 8), torch.randn(2, 3 * 4, 4, 4)]  # A = 3, C = 4
        >>> t = [x.clone() for x in s]
        >>> logits_S, logits_T, per_level = flatten_dense_logits(s, t, num_classes=4)
        >>> logits_S.shape, per_level
        (torch.Size([480, 4]), [384, 96])
    """
    levels_S, levels_T = _as_levels(preds_S, 'preds_S'), _as_levels(preds_T, 'preds_T')
    if len(levels_S) != len(levels_T):
        raise ValueError(f'DenseHeadLogitLoss: the student has {len(levels_S)} levels and the '
                         f'teacher {len(levels_T)}: teacher and student heads must predict on '
                         'the same FPN levels (same strides and anchors).')
    rows_S, rows_T, per_level = [], [], []
    for level, (s, t) in enumerate(zip(levels_S, levels_T)):
        if s.dim() != 4 or s.shape != t.shape:
            raise ValueError(
                f'DenseHeadLogitLoss: level {level} has student shape {tuple(s.shape)} and '
                f'teacher shape {tuple(t.shape)}; both must be (N, A*C, H, W) with equal shapes: '
                'the same anchors per location (anchor_generator scales / ratios), strides and '
                'classes in both heads, so that their rows describe the same locations.')
        if s.shape[1] % num_classes:
            raise ValueError(
                f'DenseHeadLogitLoss: level {level} has {s.shape[1]} channels, not a multiple '
                f'of num_classes={num_classes}: set num_classes to the head\'s num_classes; '
                'heads with a softmax classifier (use_sigmoid=False, A*(C+1) channels) are not '
                'supported.')
        rows_S.append(to_float32(s).permute(0, 2, 3, 1).reshape(-1, num_classes))
        rows_T.append(to_float32(t.detach()).permute(0, 2, 3, 1).reshape(-1, num_classes))
        per_level.append(rows_S[-1].shape[0])
    return torch.cat(rows_S), torch.cat(rows_T), per_level


def flatten_dense_labels(labels: Union[Tensor, Sequence[Tensor]],
                         locations_per_level: Sequence[int]) -> Tensor:
    """Concatenate per-level assigned labels to (L,) in the flattened logits' order.

    Args:
        labels (Tensor | list[Tensor]): Per-level integer labels, each of N*H*W*A elements in
            the order (n, h, w, a): (N, H*W*A) from ``AnchorHead`` / ``GFLHead``, (N*H*W,) from
            ``FCOSHead``. A single 1-D tensor of all L labels (level-major) is accepted too.
        locations_per_level (list[int]): Row count of each level (from
            :func:`flatten_dense_logits`).

    Returns:
        Tensor: (L,) int64 labels.

    Example:
        >>> flatten_dense_labels([torch.tensor([[0, 4], [4, 1]]), torch.tensor([[4], [2]])],
        ...                      [4, 2])
        tensor([0, 4, 4, 1, 4, 2])
    """
    levels = _dense_levels(labels, locations_per_level, 'labels', 'DenseHeadLogitLoss')
    return torch.cat([x.reshape(-1) for x in levels]).long()


def flatten_dense_weights(weights: Union[Tensor, Sequence[Tensor]],
                          locations_per_level: Sequence[int], owner: str) -> Tensor:
    """Concatenate per-level location weights (e.g. ``label_weights`` of
    ``bbox_head.get_targets``) to (L,) float32 in the flattened logits' order; the same layouts
    as :func:`flatten_dense_labels` (``owner`` names the loss in errors).

    Example:
        >>> flatten_dense_weights([torch.tensor([[1., 0.], [1., 1.]]), torch.ones(2, 1)],
        ...                       [4, 2], 'CrossKDClsLoss')
        tensor([1., 0., 1., 1., 1., 1.])
    """
    levels = _dense_levels(weights, locations_per_level, 'label_weights', owner)
    return torch.cat([x.reshape(-1) for x in levels]).float()


def _dense_levels(values: Union[Tensor, Sequence[Tensor]], locations_per_level: Sequence[int],
                  what: str, owner: str) -> List[Tensor]:
    """The per-level tensors of ``values`` (labels: integer), checked against the row counts."""
    total = sum(locations_per_level)
    if isinstance(values, Tensor) and values.dim() == 1 and values.numel() == total:
        levels = [values]
    elif isinstance(values, Tensor):
        levels = [values] if len(locations_per_level) == 1 else None
    elif isinstance(values, (list, tuple)) and all(isinstance(x, Tensor) for x in values):
        levels = list(values)
    else:
        levels = None
    kind = 'label' if what == 'labels' else 'weight'
    if levels is None:
        raise ValueError(f'{owner}: {what} must be a list of per-level {kind} '
                         f'tensors, got {type(values).__name__}{_describe(values)}; '
                         f'{LABELS_HINT}.')
    if what == 'labels':
        bad = [x.dtype for x in levels if x.is_floating_point() or x.dtype == torch.bool]
        if bad:
            raise ValueError(f'{owner}: labels must be integer class indices, got '
                             f'{bad[0]} tensors{_describe(levels)} (anchors or weights?); '
                             f'{LABELS_HINT}.')
    sizes = [x.numel() for x in levels]
    if (len(levels) > 1 and sizes != list(locations_per_level)) or sum(sizes) != total:
        raise ValueError(f'{owner}: {what} hold {sizes} elements per level '
                         f'({sum(sizes)} in all) but the class maps have '
                         f'{list(locations_per_level)} locations (N*H*W*A) per level ({total} '
                         f'in all); {LABELS_HINT}.')
    return levels


def _ranked(candidates: Tensor, scores: Tensor, generator: Optional[torch.Generator]) -> Tensor:
    """``candidates`` (ascending indices) ordered by descending score, ties by index; or in a
    random order drawn from ``generator``."""
    if generator is not None:
        perm = torch.randperm(candidates.numel(), generator=generator)
        return candidates[perm.to(candidates.device)]
    order = torch.sort(scores[candidates], descending=True, stable=True).indices
    return candidates[order]


def select_dense_locations(logits_T: Tensor, labels: Optional[Tensor] = None,
                           num_classes: Optional[int] = None,
                           select: Union[str, Sequence[str]] = ('positive', 'confident'),
                           score_thr: float = 0.5, max_locations: Optional[int] = 2000,
                           generator: Optional[torch.Generator] = None) -> Tensor:
    """Indices of the locations to distill: positives and / or teacher-confident ones, capped.

    * ``'positive'``: locations whose assigned label lies in ``[0, num_classes)`` (mmdet's
      dense heads label the background ``num_classes``);
    * ``'confident'``: locations where the teacher's highest sigmoid score
      ``max_k sigmoid(logits_T[i, k])`` is at least ``score_thr``.

    The union of the requested sets is kept. If it holds more than ``max_locations``, the
    positives come first (up to the cap), then the rest; each group is ranked by the teacher's
    score, ties broken by the lower index, so the selection is deterministic.

    Args:
        logits_T (Tensor): Teacher logits, (L, C) (sigmoid classifiers).
        labels (Tensor, optional): Assigned label per location, (L,), integer; needed for
            ``'positive'``. Defaults to None.
        num_classes (int, optional): C, the background label. Defaults to None
            (``logits_T.shape[1]``).
        select (str | tuple[str]): Any of ``'positive'``, ``'confident'``. Defaults to
            ('positive', 'confident').
        score_thr (float): Teacher score threshold of ``'confident'``, in [0, 1]. Defaults to
            0.5.
        max_locations (int, optional): Cap on the selected locations; None for no cap.
            Defaults to 2000.
        generator (torch.Generator, optional): If given, the cap keeps the positives first
            and then the rest in a random order drawn from this generator (reproducible
            subsampling) instead of ranking by score. Defaults to None.

    Returns:
        Tensor: (M,) int64 indices into the L locations, ascending, M <= ``max_locations``.

    Example:
        >>> logits_T = torch.tensor([[-3.0, 2.0], [0.5, -1.0], [-4.0, -5.0], [-2.0, -3.0]])
        >>> labels = torch.tensor([2, 2, 2, 0])            # 2 = background, location 3 positive
        >>> select_dense_locations(logits_T, labels, num_classes=2)
        tensor([0, 1, 3])
        >>> select_dense_locations(logits_T, labels, num_classes=2, max_locations=2)
        tensor([0, 3])
    """
    selections = (select, ) if isinstance(select, str) else tuple(select)
    if not selections or any(s not in SELECTIONS for s in selections):
        raise ValueError(f'select must be a non-empty subset of {SELECTIONS}, got {select!r}.')
    if not 0.0 <= score_thr <= 1.0:
        raise ValueError(f'score_thr is a sigmoid score in [0, 1], got {score_thr}.')
    if max_locations is not None and max_locations < 1:
        raise ValueError(f'max_locations must be >= 1 (or None: no cap), got {max_locations}.')
    if logits_T.dim() != 2:
        raise ValueError(f'select_dense_locations needs (L, C) teacher logits, got '
                         f'{tuple(logits_T.shape)}: flatten them with flatten_dense_logits.')
    num_locations = logits_T.shape[0]
    num_classes = logits_T.shape[1] if num_classes is None else num_classes
    logits_T = logits_T.detach()
    scores = torch.sigmoid(logits_T.max(dim=1).values)        # the teacher's best class
    positive = torch.zeros(num_locations, dtype=torch.bool, device=logits_T.device)
    if 'positive' in selections:
        if labels is None:
            raise ValueError("select=('positive', ...) needs the assigned labels: "
                             f'{LABELS_HINT}; or use select=(\'confident\',).')
        if tuple(labels.shape) != (num_locations, ):
            raise ValueError(f'select_dense_locations: labels must have shape '
                             f'({num_locations},), got {tuple(labels.shape)}.')
        labels = labels.to(logits_T.device)
        positive = (labels >= 0) & (labels < num_classes)
    chosen = positive.clone()
    if 'confident' in selections:
        chosen |= scores >= score_thr
    if max_locations is None or int(chosen.sum()) <= max_locations:
        return chosen.nonzero(as_tuple=True)[0]
    ranked = torch.cat([
        _ranked(positive.nonzero(as_tuple=True)[0], scores, generator),
        _ranked((chosen & ~positive).nonzero(as_tuple=True)[0], scores, generator)])
    return ranked[:max_locations].sort().values


@MODELS.register_module()
class DenseHeadLogitLoss(BaseDistillLoss):
    """Logit distillation on a dense head's class maps, at positive / confident locations.

    Args:
        loss (dict): The logit loss applied to the selected (M, C) rows, built with
            :func:`mmkd.registry.build_component` (``KDLoss``, ``TopKDLoss``, ...). Defaults to
            ``dict(type='KDLoss', mode='sigmoid')``.
        num_classes (int): The head's ``num_classes`` (C; also its background label).
        select (str | tuple[str]): Which locations: ``'positive'`` (needs ``labels``) and / or
            ``'confident'``. Defaults to ('positive', 'confident').
        score_thr (float): Teacher sigmoid score of a ``'confident'`` location. Defaults to 0.5.
        max_locations (int, optional): Cap on the selected locations per batch (positives
            kept first, then the most confident). Defaults to 2000.
        loss_weight (float): Multiplies the inner loss. Defaults to 1.0.
        pass_labels (bool): Pass the labels (background mapped to the inner loss's
            ``ignore_index``, 255 if it has none) to an inner loss whose ``forward`` takes
            ``labels``; such losses drop the background rows. Defaults to True.

    ``forward(preds_S, preds_T, labels=None)``: ``preds_*`` per-level class maps
    (N, A*C, H, W) (``bbox_head.forward`` output 0) or one such tensor; ``labels`` the
    student's per-level assigned labels (``bbox_head.get_targets`` output 0 for RetinaNet /
    FCOS, 1 for GFL).

    Example:
        >>> s = [torch.randn(2, 9 * 4, 8, 8, requires_grad=True), torch.randn(2, 36, 4, 4)]
        >>> t = [torch.randn(2, 36, 8, 8), torch.randn(2, 36, 4, 4)]
        >>> labels = [torch.full((2, 8 * 8 * 9), 4), torch.full((2, 4 * 4 * 9), 4)]
        >>> labels[0][0, :5] = 1                       # 5 positive anchors, the rest background
        >>> loss_fn = DenseHeadLogitLoss(num_classes=4, select='positive')
        >>> loss = loss_fn(s, t, labels)
        >>> loss.shape, bool(loss > 0), loss_fn.num_selected
        (torch.Size([]), True, 5)
    """
    requires_equal_num_classes = True

    def __init__(self, loss: Optional[dict] = None, *, num_classes: int,
                 select: Union[str, Sequence[str]] = ('positive', 'confident'),
                 score_thr: float = 0.5, max_locations: Optional[int] = 2000,
                 loss_weight: float = 1.0, pass_labels: bool = True):
        super().__init__(loss_weight)
        if num_classes < 1:
            raise ValueError(f'DenseHeadLogitLoss needs num_classes >= 1, got {num_classes}.')
        self.num_classes = num_classes
        self.select = (select, ) if isinstance(select, str) else tuple(select)
        # Validate select / score_thr / max_locations now rather than at the first iteration
        # (on CPU tensors: the model may be built under another default device, e.g. 'meta').
        select_dense_locations(torch.zeros(0, num_classes, device='cpu'),
                               torch.zeros(0, dtype=torch.long, device='cpu'),
                               num_classes, self.select, score_thr, max_locations)
        self.score_thr = score_thr
        self.max_locations = max_locations
        self.loss = build_wrapped_loss(loss or dict(type='KDLoss', mode='sigmoid'),
                                       'DenseHeadLogitLoss')
        self._inner_takes_labels = pass_labels and 'labels' in self.loss.argument_names()
        self._inner_needs_labels = 'labels' in self.loss.required_arguments()
        if self._inner_needs_labels and not self._inner_takes_labels:
            raise ValueError(f'{type(self.loss).__name__} needs labels: keep pass_labels=True.')
        self.ignore_index = getattr(self.loss, 'ignore_index', 255)
        if self._inner_takes_labels and 0 <= self.ignore_index < num_classes:
            raise ValueError(f'The inner loss\'s ignore_index={self.ignore_index} is a class '
                             f'index (num_classes={num_classes}): set it outside '
                             f'[0, {num_classes}) (e.g. 255).')
        #: Locations selected in the last forward (for logging and tests).
        self.num_selected = 0

    def compute(self, preds_S: Union[Tensor, Sequence[Tensor]],
                preds_T: Union[Tensor, Sequence[Tensor]],
                labels: Union[None, Tensor, Sequence[Tensor]] = None) -> Tensor:
        """Returns a float32 scalar."""
        logits_S, logits_T, per_level = flatten_dense_logits(preds_S, preds_T, self.num_classes)
        flat_labels = None
        if labels is not None:
            flat_labels = flatten_dense_labels(labels, per_level).to(logits_S.device)
        elif self._inner_needs_labels:
            raise ValueError(f'{type(self.loss).__name__} needs labels: map labels to the '
                             f'student\'s targets; {LABELS_HINT}.')
        idx = select_dense_locations(logits_T, flat_labels, self.num_classes, self.select,
                                     self.score_thr, self.max_locations)
        self.num_selected = int(idx.numel())
        if idx.numel() == 0:
            return logits_S.sum() * 0.0
        kwargs = {}
        if self._inner_takes_labels and flat_labels is not None:
            chosen = flat_labels[idx]
            background = (chosen < 0) | (chosen >= self.num_classes)
            kwargs['labels'] = chosen.masked_fill(background, self.ignore_index)
        return self.loss(logits_S[idx], logits_T[idx], **kwargs)
