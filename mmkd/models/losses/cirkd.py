r"""Cross-image relational KD (CIRKD): pixel relations within the batch and against a memory.

Cross-Image Relational Knowledge Distillation for Semantic Segmentation (Yang et al., CVPR
2022), https://arxiv.org/abs/2204.06986, official code winycg/CIRKD
(``losses/cirkd_mini_batch.py``, ``losses/cirkd_memory.py``, ``train_cirkd.py``).

Both sides are the decode head's feature right before its 1x1 classifier: student
:math:`S \in \mathbb{R}^{N \times C_s \times h \times w}`, teacher
:math:`T \in \mathbb{R}^{N \times C_t \times h \times w}` (equal :math:`N, h, w`; the channels
may differ), with the ground-truth labels nearest-downsampled to :math:`h \times w` (ignore
index 255). A hat marks features L2-normalised over the channels.

**(b) Mini-batch pixel-to-pixel.** For every ordered pair :math:`(i, j)` of the images on this
process, the :math:`hw \times hw` relation :math:`R_{ij} = \hat F_i^\top \hat F_j`, softmax
over each row at temperature :math:`\tau`, and the student's rows imitate the teacher's:

.. math::

    L_{mb} = \frac{1}{N^2\, hw} \sum_{i=1}^{N} \sum_{j=1}^{N} \sum_{p=1}^{hw}
    \mathrm{KL}\Bigl(\sigma\bigl(R^T_{ij}[p, :] / \tau\bigr) \,\Big\|\,
    \sigma\bigl(R^S_{ij}[p, :] / \tau\bigr)\Bigr)

The student's own (normalised, un-projected) feature is used, as in the official code: the
relations are :math:`hw \times hw` on both sides whatever :math:`C_s` and :math:`C_t`. Every
pixel takes part (the official code masks no ignored pixel here either). ``pooling=True``
(the official option, off in its published runs) average-pools both features 2x2 first.

**(c) Memory pixel-to-pixel and pixel-to-region.** A projector :math:`g` (1x1 conv
:math:`C_s \to C_t`, BN, ReLU, 1x1 conv :math:`C_t \to C_t`, both convs without bias) maps
the student; :math:`s_a = \widehat{g(S)}_a`, :math:`t_a = \hat T_a`. Teacher-only FIFO queues
hold, per class, normalised teacher pixels (``pixel_memory_size`` per class) and regions
(``region_memory_size``; a region is the normalised mean of the normalised teacher pixels of
one class in one image). Each step, at most ``pixel_contrast_size`` pixel keys and
``region_contrast_size`` region keys are drawn at random per class and concatenated over the
classes into :math:`K` (:math:`k \times C_t`); for every labelled pixel :math:`a` of the batch
(the anchors :math:`A`):

.. math::

    L_{mem} = \frac{1}{|A|} \sum_{a \in A} \mathrm{KL}\Bigl(
    \sigma\bigl(K t_a / \tau_c\bigr) \,\Big\|\, \sigma\bigl(K s_a / \tau_c\bigr)\Bigr),

once with the pixel keys (:math:`L_{pix}`) and once with the region keys (:math:`L_{reg}`).
The queues are filled *before* the keys are drawn (as in the official code): up to
``pixels_per_class`` random pixels and one region of every class present in every image.
Under DDP the new entries of all processes are all-gathered first, so every process holds the
same queues.

**Total**, what the loss returns:

.. math::

    L = w \cdot (w_{mb} L_{mb} + w_{pix} L_{pix} + w_{reg} L_{reg})

Published settings (Cityscapes, ``train_cirkd.py``): :math:`w_{mb} = 1`, :math:`w_{pix} =
w_{reg} = 0.1`, :math:`\tau = \tau_c = 0.1` (the official second "contrast KD" temperature
is 1, so it and its :math:`T^2` factor drop out), memories 20000 pixels and 2000 regions per
class, keys drawn per class ``4096 // num_classes + 1`` pixels and ``1024 // num_classes + 1``
regions (216 and 54 for Cityscapes' 19 classes; set them for other class counts, e.g. 28 and
7 for ADE20K's 150). The recipe also trains plain KD on the logits (temperature 1, weight 1):
**that term is not part of this loss**; add a ``KDLoss`` on the logits next to it.

Memory: the queues are persistent buffers (a resumed run continues with its memory; they are
in every checkpoint): ``num_classes x pixel_memory_size x C_t`` plus
``num_classes x region_memory_size x C_t`` float32, i.e. 19 x 20000 x 256 x 4 B = 389 MB plus
39 MB for Cityscapes at the defaults, on the training device. Smaller queues are allowed
(``pixel_memory_size`` / ``region_memory_size``); a term of weight 0 allocates no queue. The
memory terms' logits are (labelled pixels of the batch) x (num_classes x contrast size) floats
per side, e.g. 2 x 64 x 128 x 19 x 216 x 4 B = 270 MB for two 512 x 1024 crops at stride 8.

Deviations from the official code:

- The queues start empty (zeros) and keys are drawn, per class and independently, from the
  filled slots only; a class never seen yet gives no key. The official queues start as random
  unit vectors, and one random set of slot indices is shared by all classes, so early steps
  contrast against noise.
- The pixel queue is a true ring: entries that pass the end wrap to slot 0. The official code,
  when ``ptr + K >= size``, writes the K new entries into the *last* K slots and resets the
  pointer to 0 (so slot 0 onwards is next, and the tail is overwritten out of order).
- Under DDP each process draws its own pixels to enqueue and only those entries (padded to the
  largest count, with the counts) are all-gathered, then every process enqueues all of them
  in rank order: the queues stay identical. The official code all-gathers the whole teacher
  maps and labels and every process draws the pixels again with its own RNG.
- The projector uses ``nn.BatchNorm2d`` (the official one ``SyncBatchNorm``): convert it with
  the runner's ``sync_bn`` setting. The queues are kept in step by the gather, not by DDP's
  buffer broadcast (mmengine's default ``broadcast_buffers=False``; keep it, broadcasting them
  would send hundreds of MB per step).
- A step without any labelled pixel gives 0 for the memory terms (keeping the graph); the
  official code returns NaN there (the mean of an empty tensor).
- The memory is only updated in training mode (``module.train()``); in eval mode the loss is
  computed against the queues as they are.
- Labels other than ``ignore_index`` outside ``[0, num_classes)`` are an error (the official
  code would index out of the queue).
- Randomness (pixels to enqueue, keys to draw) comes from the ``generator`` passed to the loss
  or torch's global RNG.
"""
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from mmengine import dist
from torch import Tensor, nn

from mmkd.registry import MODELS
from .base import BaseDistillLoss, check_feature_channels, check_weight
from .utils import kl_terms, resize_labels

MEMORY_KINDS = ('pixel', 'region')


def minibatch_relation_loss(preds_S: Tensor, preds_T: Tensor, tau: float = 0.1,
                            pooling: bool = False) -> Tensor:
    """KL(teacher || student) of the row-softmaxed pixel relations of every ordered pair of
    images, mean over rows and pairs (term (b)).

    Args:
        preds_S (Tensor): Student feature, (N, C_s, h, w).
        preds_T (Tensor): Teacher feature, (N, C_t, h, w); detached.
        tau (float): Temperature of the row softmax. Defaults to 0.1.
        pooling (bool): Average-pool both features 2x2 (stride 2, ceil mode) first, the
            official code's ``pooling`` option: relations of a quarter of the pixels, 16 times
            fewer entries. Defaults to False (published).

    Returns:
        Tensor: Scalar loss (without a weight).
    """
    N = preds_S.shape[0]
    if pooling:
        preds_S = F.avg_pool2d(preds_S, 2, 2, ceil_mode=True)
        preds_T = F.avg_pool2d(preds_T.detach(), 2, 2, ceil_mode=True)
    feat_S = F.normalize(preds_S.flatten(2), p=2, dim=1)           # (N, C_s, hw)
    feat_T = F.normalize(preds_T.detach().flatten(2), p=2, dim=1)  # (N, C_t, hw)
    hw = feat_S.shape[2]
    total = feat_S.new_zeros(())
    for i in range(N):  # one anchor image at a time: (N, hw, hw) relations
        rel_S = torch.einsum('cp,jcq->jpq', feat_S[i], feat_S) / tau
        rel_T = torch.einsum('cp,jcq->jpq', feat_T[i], feat_T) / tau
        total = total + kl_terms(F.log_softmax(rel_T, dim=2), F.log_softmax(rel_S, dim=2)).sum()
    return total / (N * N * hw)


def memory_relation_loss(anchors_S: Tensor, anchors_T: Tensor, keys: Tensor,
                         contrast_tau: float = 0.1) -> Tensor:
    """KL(teacher || student) of the anchors' softmaxed similarities to the keys, mean over
    anchors (term (c), pixel or region keys).

    Args:
        anchors_S (Tensor): Normalised projected student anchors, (A, C_t).
        anchors_T (Tensor): Normalised teacher anchors, (A, C_t); detached.
        keys (Tensor): Normalised teacher keys, (K, C_t).
        contrast_tau (float): Temperature. Defaults to 0.1.

    Returns:
        Tensor: Scalar loss; a graph-keeping 0 without anchors or keys.
    """
    if anchors_S.shape[0] == 0 or keys.shape[0] == 0:
        return anchors_S.sum() * 0.0
    keys = keys.detach()
    logits_S = anchors_S @ keys.t() / contrast_tau
    logits_T = anchors_T.detach() @ keys.t() / contrast_tau
    kl = kl_terms(F.log_softmax(logits_T, dim=1), F.log_softmax(logits_S, dim=1)).sum()
    return kl / anchors_S.shape[0]


def _rand(shape, device, generator: Optional[torch.Generator]) -> Tensor:
    """Uniform [0, 1) numbers from ``generator`` (on its device) or the global RNG, on
    ``device``."""
    rand_device = generator.device if generator is not None else device
    return torch.rand(shape, generator=generator, device=rand_device).to(device)


def memory_entries(feat_T: Tensor, labels: Tensor, num_classes: int, pixels_per_class: int,
                   ignore_index: int = 255, generator: Optional[torch.Generator] = None
                   ) -> Dict[str, Tuple[Tensor, Tensor]]:
    """What one batch adds to the memory: ``{'pixel': (feats, classes), 'region': (feats,
    classes)}``.

    Pixels: up to ``pixels_per_class`` random labelled pixels of every class of every image;
    regions: the normalised mean of every class of every image. Both in the order image, then
    class (ascending); pixels of one image and class in random order.

    Args:
        feat_T (Tensor): Normalised teacher feature, (N, C, h, w).
        labels (Tensor): (N, h, w) int64 labels in [0, num_classes) or ``ignore_index``.
        num_classes (int): Number of classes.
        pixels_per_class (int): Pixels taken per class and image.
        ignore_index (int): Label of pixels left out. Defaults to 255.
        generator (torch.Generator, optional): RNG of the pixel choice. Defaults to None.
    """
    N, C = feat_T.shape[:2]
    feats = feat_T.detach().permute(0, 2, 3, 1).reshape(-1, C)
    flat = labels.reshape(-1)
    image = torch.arange(N, device=flat.device).repeat_interleave(flat.numel() // N)
    valid = flat != ignore_index
    feats, classes = feats[valid], flat[valid]
    group = image[valid] * num_classes + classes          # (image, class), ordered
    counts = torch.bincount(group, minlength=N * num_classes)
    present = counts.nonzero().squeeze(1)
    sums = feats.new_zeros(N * num_classes, C).index_add_(0, group, feats)
    region = F.normalize(sums[present] / counts[present, None].to(feats.dtype), p=2, dim=1)
    # Pixels: random order, then (stable) by group; keep the first pixels_per_class of each.
    order = _rand(group.shape, group.device, generator).argsort()
    order = order[torch.sort(group[order], stable=True).indices]
    starts = counts.cumsum(0) - counts
    rank = torch.arange(order.numel(), device=order.device) - starts[group[order]]
    keep = order[rank < pixels_per_class]
    return {'pixel': (feats[keep], classes[keep]), 'region': (region, present % num_classes)}


def all_gather_rows(tensors: List[Tensor]) -> List[Tensor]:
    """Each (n_k, D) tensor concatenated over the processes in rank order (n_k may differ per
    process); the tensors themselves without DDP. One gather of the counts, one of the data
    padded to the largest count."""
    world_size = dist.get_world_size()
    if world_size == 1 or not tensors:
        return tensors
    counts = torch.tensor([t.shape[0] for t in tensors], device=tensors[0].device)
    all_counts = torch.stack(dist.all_gather(counts)).tolist()   # (world, len(tensors))
    most = [max(row[k] for row in all_counts) for k in range(len(tensors))]
    padded = torch.cat([torch.cat([t, t.new_zeros(m - t.shape[0], t.shape[1])])
                        for t, m in zip(tensors, most)])
    gathered = dist.all_gather(padded)
    out = []
    offset = 0
    for k, m in enumerate(most):
        out.append(torch.cat([g[offset:offset + row[k]] for g, row in zip(gathered, all_counts)]))
        offset += m
    return out


def sample_keys(queue: Tensor, filled: Tensor, per_class: int,
                generator: Optional[torch.Generator] = None) -> Tensor:
    """Up to ``per_class`` distinct random filled slots of every class of ``queue`` (C, M, D),
    concatenated: (k, D). ``filled`` (C,) counts the filled slots (always the first ones)."""
    num_classes, size = queue.shape[:2]
    k = min(per_class, size)
    scores = _rand((num_classes, size), queue.device, generator)
    slots = torch.arange(size, device=queue.device)
    unfilled = slots[None] >= filled[:, None]
    scores = scores.masked_fill(unfilled, 2.0)           # unfilled slots last
    chosen = scores.topk(k, dim=1, largest=False).indices
    valid = chosen < filled[:, None]
    rows = torch.arange(num_classes, device=queue.device)[:, None].expand_as(chosen)
    return queue[rows[valid], chosen[valid]]


@MODELS.register_module()
class CIRKDLoss(BaseDistillLoss):
    """CIRKD: mini-batch pixel relations plus pixel / region memory relations (see the module).

    Reads the decode head's feature right before its 1x1 classifier on both sides and the
    ground-truth labels (``labels=dict(from_data='gt_sem_seg')``). Plain KD on the logits,
    part of the published recipe, is a separate ``KDLoss``.

    Args:
        student_channels (int): Channels of ``preds_S``.
        teacher_channels (int): Channels of ``preds_T`` (and of the memory).
        num_classes (int): Classes of the labels (one queue per class).
        loss_weight (float): Multiplies the sum of the terms. Defaults to 1.0.
        minibatch_weight (float): Weight of the mini-batch term; 0 skips it. Defaults to 1.0.
        pixel_weight (float): Weight of the memory pixel term; 0 skips it and its queue.
            Defaults to 0.1.
        region_weight (float): Weight of the memory region term; 0 skips it and its queue.
            Defaults to 0.1.
        tau (float): Temperature of the mini-batch relations. Defaults to 0.1.
        contrast_tau (float): Temperature of the memory relations. Defaults to 0.1.
        pixel_memory_size (int): Pixel slots per class. Defaults to 20000.
        region_memory_size (int): Region slots per class. Defaults to 2000.
        pixel_contrast_size (int): Pixel keys drawn per class and step. Defaults to 216
            (Cityscapes: 4096 // 19 + 1).
        region_contrast_size (int): Region keys drawn per class and step. Defaults to 54
            (1024 // 19 + 1).
        pixels_per_class (int): Pixels enqueued per class present in an image. Defaults to 16.
        ignore_index (int): Label of unlabelled pixels. Defaults to 255.
        pooling (bool): Average-pool both features 2x2 before the mini-batch relations (the
            official ``CriterionMiniBatchCrossImagePair(pooling=True)``): the term's cost falls
            about 16 times, which its N^2 pairs of (hw x hw) relations need on a CPU or with
            large per-process batches. Defaults to False (published).

    Buffers (persistent, when the term is on): ``pixel_queue`` (num_classes,
    pixel_memory_size, teacher_channels), ``region_queue`` (num_classes, region_memory_size,
    teacher_channels), and per kind ``*_queue_ptr`` (num_classes,) (the next slot) and
    ``*_queue_filled`` (num_classes,) (filled slots, the first ones). ``last_terms`` holds the
    last unweighted terms (detached).

    Example:
        >>> import torch
        >>> loss = CIRKDLoss(student_channels=4, teacher_channels=8, num_classes=3,
        ...                  pixel_memory_size=32, region_memory_size=8)
        >>> s, t = torch.randn(2, 4, 6, 6), torch.randn(2, 8, 6, 6)
        >>> labels = torch.randint(0, 3, (2, 24, 24))
        >>> labels[:, :4] = 255                              # ignored
        >>> value = loss(s, t, labels, generator=torch.Generator().manual_seed(0))
        >>> value.shape, sorted(loss.last_terms)
        (torch.Size([]), ['minibatch', 'pixel', 'region'])
        >>> loss.region_queue_filled.tolist()                # one region per class and image
        [2, 2, 2]
        >>> value = loss(s, s.repeat(1, 2, 1, 1), labels)   # the same relations: (b) is 0
        >>> abs(float(loss.last_terms['minibatch'])) < 1e-6
        True
    """
    requires_same_shape = False

    def __init__(self, student_channels: int, teacher_channels: int, num_classes: int,
                 loss_weight: float = 1.0, minibatch_weight: float = 1.0,
                 pixel_weight: float = 0.1, region_weight: float = 0.1, tau: float = 0.1,
                 contrast_tau: float = 0.1, pixel_memory_size: int = 20000,
                 region_memory_size: int = 2000, pixel_contrast_size: int = 216,
                 region_contrast_size: int = 54, pixels_per_class: int = 16,
                 ignore_index: int = 255, pooling: bool = False):
        super().__init__(loss_weight)
        name = type(self).__name__
        for arg, value in (('student_channels', student_channels),
                           ('teacher_channels', teacher_channels), ('num_classes', num_classes),
                           ('pixel_memory_size', pixel_memory_size),
                           ('region_memory_size', region_memory_size),
                           ('pixel_contrast_size', pixel_contrast_size),
                           ('region_contrast_size', region_contrast_size),
                           ('pixels_per_class', pixels_per_class)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f'{name}: {arg} must be a positive integer, got {value!r}.')
        for arg, value in (('tau', tau), ('contrast_tau', contrast_tau)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f'{name}: {arg} is a temperature and must be > 0, got '
                                 f'{value!r} (published: 0.1).')
        self.weights = {'minibatch': check_weight(name, 'minibatch_weight', minibatch_weight),
                        'pixel': check_weight(name, 'pixel_weight', pixel_weight),
                        'region': check_weight(name, 'region_weight', region_weight)}
        if not any(self.weights.values()):
            raise ValueError(f'{name}: minibatch_weight, pixel_weight and region_weight are all '
                             '0, so the loss has nothing to compute: turn one on (published: '
                             '1, 0.1, 0.1), or set loss_weight=0 / drop the loss.')
        self.student_channels = student_channels
        self.teacher_channels = teacher_channels
        self.num_classes = num_classes
        self.tau = float(tau)
        self.contrast_tau = float(contrast_tau)
        self.pixels_per_class = pixels_per_class
        self.ignore_index = ignore_index
        if not isinstance(pooling, bool):
            raise ValueError(f'{name}: pooling must be True or False, got {pooling!r}.')
        self.pooling = pooling
        self.memory_sizes = {'pixel': pixel_memory_size, 'region': region_memory_size}
        self.contrast_sizes = {'pixel': pixel_contrast_size, 'region': region_contrast_size}
        self.memory_kinds = [k for k in MEMORY_KINDS if self.weights[k] > 0]
        self.projector = None
        if self.memory_kinds:
            self.projector = nn.Sequential(
                nn.Conv2d(student_channels, teacher_channels, 1, bias=False),
                nn.BatchNorm2d(teacher_channels),
                nn.ReLU(inplace=True),
                nn.Conv2d(teacher_channels, teacher_channels, 1, bias=False))
        for kind in self.memory_kinds:
            self.register_buffer(f'{kind}_queue', torch.zeros(
                num_classes, self.memory_sizes[kind], teacher_channels))
            self.register_buffer(f'{kind}_queue_ptr', torch.zeros(num_classes, dtype=torch.long))
            self.register_buffer(f'{kind}_queue_filled',
                                 torch.zeros(num_classes, dtype=torch.long))
        self.last_terms: Dict[str, Tensor] = {}

    # ------------------------------------------------------------------ memory
    def push(self, kind: str, feats: Tensor, classes: Tensor) -> None:
        """Enqueue ``feats`` (n, C_t) of ``classes`` (n,) into the ``kind`` ('pixel' /
        'region') queue in order, overwriting each class's oldest slots (a ring per class).
        No gather: every process must push the same entries (see :meth:`update_memory`)."""
        queue = getattr(self, f'{kind}_queue')
        ptr, filled = getattr(self, f'{kind}_queue_ptr'), getattr(self, f'{kind}_queue_filled')
        size = queue.shape[1]
        classes = classes.to(queue.device).long()
        feats = feats.to(queue.device, queue.dtype)
        for c in classes.unique().tolist():
            entries = feats[classes == c]
            n = entries.shape[0]
            start = int(ptr[c])
            kept = entries[-size:]                       # only the newest fit
            first = start + n - kept.shape[0]
            slots = (first + torch.arange(kept.shape[0], device=queue.device)) % size
            queue[c, slots] = kept
            ptr[c] = (start + n) % size
            filled[c] = min(size, int(filled[c]) + n)

    @torch.no_grad()
    def update_memory(self, feat_T: Tensor, labels: Tensor,
                      generator: Optional[torch.Generator] = None) -> None:
        """Enqueue this batch's pixels and regions (after an all-gather under DDP: every
        process must call this on every step, also without a labelled pixel).

        Args:
            feat_T (Tensor): Normalised teacher feature, (N, C_t, h, w).
            labels (Tensor): (N, h, w) labels at the feature's size.
            generator (torch.Generator, optional): RNG of the pixel choice. Defaults to None.
        """
        entries = memory_entries(feat_T, labels, self.num_classes, self.pixels_per_class,
                                 self.ignore_index, generator)
        rows = [torch.cat([entries[k][0], entries[k][1][:, None].to(feat_T.dtype)], dim=1)
                for k in self.memory_kinds]
        for kind, packed in zip(self.memory_kinds, all_gather_rows(rows)):
            self.push(kind, packed[:, :-1], packed[:, -1].round().long())

    # ------------------------------------------------------------------ inputs
    def _labels(self, labels: Optional[Tensor], preds_T: Tensor) -> Tensor:
        name = type(self).__name__
        N, _, h, w = preds_T.shape
        if labels is None:
            raise ValueError(f'{name} needs the ground-truth labels for its memory terms: map '
                             "labels=dict(from_data='gt_sem_seg') (or set pixel_weight and "
                             'region_weight to 0).')
        if (not isinstance(labels, Tensor) or labels.dim() != 3 or labels.shape[0] != N
                or labels.is_floating_point() or labels.dtype == torch.bool):
            shape = tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
            raise ValueError(f'{name}: labels must be (N, H, W) integer class maps with the '
                             f"features' N={N}, got {shape}: map "
                             "labels=dict(from_data='gt_sem_seg').")
        labels = labels.to(preds_T.device).long()
        if labels.shape[1:] != (h, w):
            labels = resize_labels(labels, (h, w))
        bad = (labels != self.ignore_index) & ((labels < 0) | (labels >= self.num_classes))
        if bool(bad.any()):
            raise ValueError(f'{name}: labels must lie in [0, num_classes={self.num_classes}) '
                             f'or equal ignore_index={self.ignore_index}, got '
                             f'{labels[bad].unique()[:5].tolist()}: set num_classes / '
                             'ignore_index to the dataset\'s.')
        return labels

    # ------------------------------------------------------------------ loss
    def compute(self, preds_S: Tensor, preds_T: Tensor, labels: Optional[Tensor] = None,
                generator: Optional[torch.Generator] = None) -> Tensor:
        """preds_S: (N, student_channels, h, w), preds_T: (N, teacher_channels, h, w), labels:
        (N, H, W) integer (nearest-resized to h, w; needed by the memory terms). ``generator``
        (optional) draws the enqueued pixels and the keys. Returns the unweighted float32
        scalar ``w_mb L_mb + w_pix L_pix + w_reg L_reg``."""
        check_feature_channels(type(self).__name__, preds_S, preds_T, self.student_channels,
                               self.teacher_channels)
        terms: Dict[str, Tensor] = {}
        if self.weights['minibatch'] > 0:
            terms['minibatch'] = minibatch_relation_loss(preds_S, preds_T, self.tau,
                                                         self.pooling)
        if self.memory_kinds:
            labels = self._labels(labels, preds_T)
            feat_T = F.normalize(preds_T.detach(), p=2, dim=1)
            feat_S = F.normalize(self.projector(preds_S), p=2, dim=1)
            if self.training:  # enqueue first, as the official code does
                self.update_memory(feat_T, labels, generator)
            valid = labels.reshape(-1) != self.ignore_index
            C = self.teacher_channels
            anchors_S = feat_S.permute(0, 2, 3, 1).reshape(-1, C)[valid]
            anchors_T = feat_T.permute(0, 2, 3, 1).reshape(-1, C)[valid]
            for kind in self.memory_kinds:
                keys = sample_keys(getattr(self, f'{kind}_queue'),
                                   getattr(self, f'{kind}_queue_filled'),
                                   self.contrast_sizes[kind], generator)
                terms[kind] = memory_relation_loss(anchors_S, anchors_T, keys, self.contrast_tau)
        self.last_terms = {k: v.detach() for k, v in terms.items()}
        return sum(self.weights[k] * v for k, v in terms.items())
