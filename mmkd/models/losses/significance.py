r"""Self-regulated distillation: any distillation loss, weighted per image by significance and
by whether the student still needs it.

Data-efficient distillation with self-regulation (Mishra & Sundaram, 2021),
https://arxiv.org/abs/2102.07125

The wrapped loss :math:`L` is evaluated on each image :math:`i` of the batch of :math:`N`
images alone (:math:`L_i`) and combined as

.. math::

    L_{SR} = \frac{1}{N} \sum_{i=1}^{N} w_i L_i, \qquad
    w_i = \begin{cases}
        \hat s_i = \dfrac{N \max(s_i, m)}{\sum_j \max(s_j, m)} & \text{significance} \\[1ex]
        1 - h_i & \text{regulated} \\[1ex]
        (1 - h_i)\, \hat s_i & \text{hybrid}
    \end{cases}

* :math:`s_i \in [0, 1]` is the image's significance, measured once with the trained teacher
  (``tools/significance.py``, see :mod:`mmkd.datasets.significance`) and stamped into the data
  sample by ``mmkd.SignificanceSubset``; :math:`m` (``min_weight``) is a floor so that images
  the teacher finds easy still count a little. The weights have mean 1 over the batch, so the
  loss keeps the scale of the unweighted one, and equal significances give the plain mean.
* :math:`h_i \in \{0, 1\}` is the paper's self-regulation applied by the student to itself: an
  image it already handles confidently takes no part. The student's own outputs of this step
  decide (``student_logits``, no gradient through the decision):

  - segmentation, decode-head logits (N, K, h, w) and ``gt_sem_seg`` (resized to the logits
    with nearest neighbours): handled when at least ``handled_ratio`` of the labelled pixels
    have a ground-truth-class softmax probability :math:`\ge` ``conf_thr``;
  - detection, the dense head's per-level class maps (N, A*K, H, W) (``bbox_head.forward``
    output 0, sigmoid classifiers): handled when every ground-truth box has, at the cell holding
    its centre on some level and for some anchor, a sigmoid score of its class
    :math:`\ge` ``conf_thr``.

  An image without objects / labelled pixels counts as handled (nothing to supervise).

Our adaptation (the paper classifies single images; its thresholds and normalisation are not
public): images instead of samples, significance measured after the teacher's training,
``min_weight``, mean-1 normalisation, ``conf_thr`` and ``handled_ratio`` are all arguments. For
losses that average over images with the same number of terms each (feature imitation, CWD,
KD on dense logits), :math:`w_i = 1` reproduces the wrapped loss on the whole batch.

**Measured on the digits benchmark** (benchmarks/RESULTS.md, the regulated form over KD on the
logits). Detection: +12.5 bbox mAP [+5.1, +20.0] over the student alone (5 seeds, resolved),
against KD's +11.7 [+3.3, +20.1] (3 seeds). Segmentation:
-0.13 mIoU [-1.47, +1.22], not resolved, against KD's +0.01. It reweights whole images, so it
cannot undo KD's failure on segmentation logits. That failure is per pixel: the loss is a mean
over pixels that are 92% background, and it raises pixel accuracy (+1.18) at the digits'
expense (mean class accuracy -4.35); see :mod:`.kd`.

**The significance and hybrid configs gain nothing, and why** (same benchmark; detection 5
seeds, segmentation 3). They train on the 30% most significant images (``SignificanceSubset``,
budget 0.3). Against a control on the same subset with the KD weight at 0, the distillation
gains +12.6 [+6.8, +18.5] (significance) and +13.2 [+8.7, +17.6] (hybrid) bbox mAP, and +1.5
mIoU, all resolved; but the budget alone changes the detection student by -10.8 bbox mAP
[-16.0, -5.5] against training on every image. Net: +1.9 and +2.4 bbox mAP, not resolved. The
budget trades accuracy for data; use ``regulated`` (every image) when accuracy is the aim.
"""
from typing import List, Optional, Sequence, Tuple, Union

import torch
from mmengine.logging import MessageHub, print_log
from torch import Tensor

from mmkd.registry import MODELS
from .base import BaseDistillLoss, build_wrapped_loss
from .utils import gt_boxes, resize_labels, seg_labels, tensors_in

MODES = ('significance', 'regulated', 'hybrid')


def significance_weights(significance: Tensor, min_weight: float = 0.1) -> Tensor:
    """``N * max(s_i, m) / sum_j max(s_j, m)``: per-image weights with mean 1.

    Example:
        >>> significance_weights(torch.tensor([0.0, 0.2, 0.6]), min_weight=0.1)
        tensor([0.3333, 0.6667, 2.0000])
        >>> significance_weights(torch.tensor([0.4, 0.4]))
        tensor([1., 1.])
    """
    floored = significance.float().clamp(min=min_weight)
    return floored * (floored.numel() / floored.sum())


def segmentation_handled(logits: Tensor, labels: Tensor, conf_thr: float = 0.5,
                         handled_ratio: float = 0.9, ignore_index: int = 255) -> Tensor:
    """Which images the student already segments confidently.

    Args:
        logits (Tensor): (N, K, h, w) the student's softmax logits, K >= 2.
        labels (Tensor): (N, H, W) ground truth; resized to (h, w) with nearest neighbours.
        conf_thr (float): A pixel is handled when its ground-truth class has at least this
            probability. Defaults to 0.5.
        handled_ratio (float): An image is handled when at least this fraction of its labelled
            pixels is. Defaults to 0.9.
        ignore_index (int): Label of unlabelled pixels. Defaults to 255.

    Returns:
        Tensor: (N,) bool; True also for images without labelled pixels.

    Example:
        >>> logits = torch.zeros(2, 3, 2, 2)
        >>> logits[0, 1] = 9.0                      # image 0: class 1 everywhere, confidently
        >>> segmentation_handled(logits, torch.ones(2, 2, 2, dtype=torch.long))
        tensor([ True, False])
    """
    if logits.dim() != 4 or logits.shape[1] < 2:
        raise ValueError(f'segmentation_handled needs (N, K, h, w) softmax logits with K >= 2, '
                         f'got {tuple(logits.shape)}.')
    num_classes = logits.shape[1]
    labels = labels.to(logits.device).long()
    if labels.shape[-2:] != logits.shape[-2:]:
        labels = resize_labels(labels, logits.shape[-2:])
    labelled = labels != ignore_index
    bad = labelled & ((labels < 0) | (labels >= num_classes))
    if bool(bad.any()):
        raise ValueError(f'segmentation_handled: labels must lie in [0, {num_classes}) or equal '
                         f'ignore_index={ignore_index}, got {labels[bad][:5].tolist()}.')
    probs = logits.detach().float().softmax(dim=1)
    gt_prob = probs.gather(1, labels.masked_fill(~labelled, 0)[:, None])[:, 0]
    confident = ((gt_prob >= conf_thr) & labelled).sum(dim=(1, 2))
    num_labelled = labelled.sum(dim=(1, 2))
    return (confident >= handled_ratio * num_labelled) | (num_labelled == 0)


def detection_handled(cls_scores: Union[Tensor, Sequence[Tensor]], gt_bboxes: List[Tensor],
                      gt_labels: List[Tensor], batch_input_shape: Tuple[int, int],
                      num_classes: int, conf_thr: float = 0.5) -> Tensor:
    """Which images the student already detects confidently (every object found).

    An object is found when, at the cell of some FPN level that holds its box centre, some
    anchor scores its class with ``sigmoid >= conf_thr``.

    Args:
        cls_scores (Tensor | list[Tensor]): Per-level class maps (N, A*K, H, W) (a dense
            head's ``forward`` output 0; channel ``a * K + k`` is anchor a, class k).
        gt_bboxes (list[Tensor]): Per image, (G_i, 4) boxes x1 y1 x2 y2 in input pixels.
        gt_labels (list[Tensor]): Per image, (G_i,) classes.
        batch_input_shape (tuple): (H, W) of the padded batch the maps were computed on.
        num_classes (int): K.
        conf_thr (float): Defaults to 0.5.

    Returns:
        Tensor: (N,) bool; True also for images without objects.

    Example:
        >>> scores = torch.full((2, 2, 4, 4), -9.0)          # 1 anchor, 2 classes, 4x4 cells
        >>> scores[0, 1, 0, 0] = 9.0                          # image 0: class 1 at cell (0, 0)
        >>> boxes = [torch.tensor([[0., 0., 8., 8.]])] * 2    # centre (4, 4) -> cell (0, 0)
        >>> detection_handled([scores], boxes, [torch.tensor([1])] * 2, (32, 32), 2)
        tensor([ True, False])
    """
    levels = [cls_scores] if isinstance(cls_scores, Tensor) else list(cls_scores)
    num_images = levels[0].shape[0]
    pad_h, pad_w = batch_input_shape
    handled = torch.ones(num_images, dtype=torch.bool)
    for i in range(num_images):
        boxes = gt_bboxes[i].to(levels[0].device).float()
        labels = gt_labels[i].to(levels[0].device).long()
        if len(boxes) == 0:
            continue
        centre_x, centre_y = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
        best = torch.zeros(len(boxes), device=boxes.device)
        for level in levels:
            _, channels, height, width = level.shape
            if channels % num_classes:
                raise ValueError(f'detection_handled: a level has {channels} channels, not a '
                                 f'multiple of num_classes={num_classes} (A*K): record the '
                                 "dense head's class maps (bbox_head.forward output 0).")
            scores = level[i].detach().float().reshape(channels // num_classes, num_classes,
                                                       height, width).sigmoid()
            rows = (centre_y * height / pad_h).long().clamp(0, height - 1)
            cols = (centre_x * width / pad_w).long().clamp(0, width - 1)
            best = torch.maximum(best, scores[:, labels, rows, cols].max(dim=0).values)
        handled[i] = bool((best >= conf_thr).all())
    return handled


def split_per_image(value, index: int, num_images: int, name: str = 'argument'):
    """Image ``index``'s part of a loss argument.

    A tensor is cut along dim 0 (it must have ``num_images`` rows); a list or tuple of tensors
    (or of such lists: per-level maps) has each element cut; any other list of ``num_images``
    items (data samples) gives a one-item list. Everything else passes unchanged.

    Example:
        >>> levels = [torch.zeros(2, 5, 4, 4), torch.zeros(2, 5, 2, 2)]
        >>> [t.shape[0] for t in split_per_image(levels, 1, 2)]
        [1, 1]
        >>> split_per_image(['sample0', 'sample1'], 1, 2)
        ['sample1']
    """
    if isinstance(value, Tensor):
        if value.dim() == 0 or value.shape[0] != num_images:
            raise ValueError(
                f'SignificanceWeightedLoss evaluates the wrapped loss per image, cutting every '
                f'tensor along dim 0, but {name} has shape {tuple(value.shape)} for {num_images} '
                'images. Wrap a loss whose inputs have one row per image (feature maps, dense '
                'head maps, segmentation logits), not RoI-level tensors that mix images.')
        return value[index:index + 1]
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(v, (Tensor, list, tuple)) for v in value):
            return type(value)(split_per_image(v, index, num_images, f'{name}[{j}]')
                               for j, v in enumerate(value))
        if len(value) != num_images:
            raise ValueError(f'SignificanceWeightedLoss: {name} is a list of {len(value)} items '
                             f'for {num_images} images; per-image lists need one item each.')
        return [value[index]]
    return value


@MODELS.register_module()
class SignificanceWeightedLoss(BaseDistillLoss):
    """A distillation loss per image, weighted by significance and / or self-regulation.

    Args:
        loss (dict): The wrapped distillation loss (``KDLoss``, ``DenseHeadLogitLoss``,
            ``MSEFeatureLoss``, ``CWDLoss`` ...), built with
            :func:`mmkd.registry.build_component`. Its ``loss_weight`` is the only one applied.
        mode (str): ``'significance'``, ``'regulated'`` or ``'hybrid'`` (module docstring).
            Defaults to 'significance'.
        min_weight (float): Floor :math:`m` of the significance before normalisation.
            Defaults to 0.1.
        conf_thr (float): Probability of the ground-truth class above which the student counts
            a pixel / object as handled. Defaults to 0.5.
        handled_ratio (float): Segmentation: fraction of the labelled pixels that must be
            handled for the image to be skipped. Defaults to 0.9.
        num_classes (int, optional): Detection: K of the student's class maps (needed by the
            regulated and hybrid modes). Defaults to None.
        ignore_index (int): Unlabelled pixels of ``gt_sem_seg``. Defaults to 255.
        name (str, optional): Suffix of the logged scalars ``train/selfreg_skipped.<name>``
            (fraction of the batch's images with weight 0) and ``train/selfreg_weight.<name>``
            (mean weight); use the loss's key in ``distill_losses``. Defaults to None (the
            wrapped loss's type).

    ``forward(data_samples, student_logits=None, **loss_inputs)``: ``data_samples`` the batch's
    (map ``dict(from_data='data_samples')``; significance is read from their metainfo, the
    ground truth for self-regulation from ``gt_sem_seg`` / ``gt_instances``);
    ``student_logits`` the student's decode-head logits (N, K, h, w) or dense-head class maps
    (list of (N, A*K, H, W)), needed by 'regulated' and 'hybrid' and ignored by
    'significance'; ``loss_inputs`` the wrapped loss's own arguments (``preds_S``, ``preds_T``,
    ``labels`` ...), cut per image by :func:`split_per_image`. A wrapped loss that takes
    ``data_samples`` gets the image's sample too. Data samples without ``significance``
    (a dataset not wrapped in ``mmkd.SignificanceSubset``) are weighted uniformly, with a
    warning.

    Example:
        >>> from mmengine.structures import BaseDataElement
        >>> samples = [BaseDataElement(metainfo=dict(significance=s)) for s in (0.0, 0.3)]
        >>> loss = SignificanceWeightedLoss(dict(type='MSEFeatureLoss'), min_weight=0.1)
        >>> s, t = torch.zeros(2, 4, 3, 3), torch.ones(2, 4, 3, 3)
        >>> float(loss(samples, preds_S=s, preds_T=t)), loss.last_weights.tolist()
        (1.0, [0.5, 1.5])
    """

    def __init__(self, loss: dict, mode: str = 'significance', min_weight: float = 0.1,
                 conf_thr: float = 0.5, handled_ratio: float = 0.9,
                 num_classes: Optional[int] = None, ignore_index: int = 255,
                 name: Optional[str] = None):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f'SignificanceWeightedLoss mode must be one of {MODES}, got '
                             f'{mode!r}.')
        if not 0.0 < min_weight <= 1.0:
            raise ValueError(f'min_weight floors significances in [0, 1]: give a value in '
                             f'(0, 1], got {min_weight}.')
        if not 0.0 <= conf_thr <= 1.0 or not 0.0 <= handled_ratio <= 1.0:
            raise ValueError(f'conf_thr and handled_ratio are fractions in [0, 1], got '
                             f'{conf_thr} and {handled_ratio}.')
        self.loss = build_wrapped_loss(loss, 'SignificanceWeightedLoss')
        self.mode = mode
        self.min_weight = min_weight
        self.conf_thr = conf_thr
        self.handled_ratio = handled_ratio
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.name = name or type(self.loss).__name__
        # What the distiller checks on a loss (shapes, classes, double backward) is the
        # wrapped loss's business.
        for attr in ('requires_same_shape', 'requires_equal_num_classes', 'create_graph'):
            setattr(self, attr, getattr(self.loss, attr))
        self._warned_missing_significance = False
        #: (N,) weights of the last forward (for logging and tests).
        self.last_weights: Optional[Tensor] = None

    # ------------------------------------------------------------------ weights
    def image_weights(self, data_samples: Sequence, student_logits=None) -> Tensor:
        """(N,) float weights :math:`w_i` of the batch (no gradient)."""
        num_images = len(data_samples)
        weights = torch.ones(num_images)
        if self.mode in ('significance', 'hybrid'):
            significance = self._significance(data_samples)
            if significance is not None:
                weights = significance_weights(significance, self.min_weight)
        if self.mode in ('regulated', 'hybrid'):
            weights = weights * (~self._handled(data_samples, student_logits)).float()
        return weights

    def _significance(self, data_samples: Sequence) -> Optional[Tensor]:
        values = [sample.metainfo.get('significance') for sample in data_samples]
        if all(v is None for v in values):
            if not self._warned_missing_significance:
                print_log(f"SignificanceWeightedLoss({self.name}, mode={self.mode!r}): the data "
                          'samples carry no significance, so the images are weighted '
                          'uniformly. Train on mmkd.SignificanceSubset (its file is written by '
                          'tools/significance.py).', logger='current', level=30)
                self._warned_missing_significance = True
            return None
        if any(v is None for v in values):
            raise ValueError(f'SignificanceWeightedLoss({self.name}): only some data samples of '
                             'the batch carry a significance; wrap the whole training dataset '
                             'in mmkd.SignificanceSubset.')
        return torch.tensor(values, dtype=torch.float32)

    def _handled(self, data_samples: Sequence, student_logits) -> Tensor:
        if student_logits is None:
            raise ValueError(
                f"SignificanceWeightedLoss({self.name}, mode={self.mode!r}) needs the student's "
                'outputs to regulate itself: map student_logits to its decode-head logits '
                "(segmentation) or its dense head's class maps (detection, "
                "bbox_head.forward output 0).")
        first = data_samples[0]
        if 'gt_sem_seg' in first:
            labels = seg_labels(data_samples)
            if isinstance(student_logits, (list, tuple)):
                raise ValueError('SignificanceWeightedLoss: for segmentation, student_logits '
                                 'is one (N, K, h, w) tensor (the decode head\'s logits).')
            return segmentation_handled(student_logits, labels, self.conf_thr,
                                        self.handled_ratio, self.ignore_index).cpu()
        if 'gt_instances' in first:
            if self.num_classes is None:
                raise ValueError(f'SignificanceWeightedLoss({self.name}, mode={self.mode!r}) '
                                 'on a detector needs num_classes (K of the class maps).')
            pad_shape = first.metainfo.get('batch_input_shape')
            if pad_shape is None:
                raise ValueError('SignificanceWeightedLoss: the data samples have no '
                                 'batch_input_shape (set by mmdet\'s DetDataPreprocessor).')
            boxes = [gt_boxes(s, f'SignificanceWeightedLoss: data_samples[{i}]')
                     for i, s in enumerate(data_samples)]
            labels = [s.gt_instances.labels for s in data_samples]
            return detection_handled(student_logits, boxes, labels, pad_shape,
                                     self.num_classes, self.conf_thr).cpu()
        raise ValueError('SignificanceWeightedLoss: the data samples have neither gt_sem_seg '
                         '(segmentation) nor gt_instances (detection) to regulate on.')

    # ------------------------------------------------------------------ forward
    def compute(self, data_samples: Sequence, student_logits=None, **loss_inputs) -> Tensor:
        """Returns a float32 scalar."""
        self._check_inner_arguments(loss_inputs)
        num_images = len(data_samples)
        weights = self.image_weights(data_samples, student_logits)
        self.last_weights = weights
        if self.training:
            hub = MessageHub.get_current_instance()
            hub.update_scalar(f'train/selfreg_skipped.{self.name}',
                              float((weights == 0).float().mean()))
            hub.update_scalar(f'train/selfreg_weight.{self.name}', float(weights.mean()))
        total = None
        for i in range(num_images):
            if float(weights[i]) == 0.0:  # a skipped image costs no forward of the loss
                continue
            inputs = {name: split_per_image(value, i, num_images, name)
                      for name, value in loss_inputs.items()}
            if 'data_samples' in self.loss.argument_names():
                inputs['data_samples'] = [data_samples[i]]
            term = float(weights[i]) * self.loss(**inputs)
            total = term if total is None else total + term
        if total is None:  # every image skipped: a zero that keeps the graph
            grads = [t for t in tensors_in(list(loss_inputs.values())) if t.requires_grad]
            return grads[0].float().sum() * 0.0 if grads else torch.zeros(())
        return total / num_images

    def _check_inner_arguments(self, loss_inputs: dict) -> None:
        inner = type(self.loss).__name__
        unknown = [name for name in loss_inputs if not self.loss.accepts(name)]
        if unknown:
            raise KeyError(f'SignificanceWeightedLoss({self.name}): {inner}.forward has no '
                           f'argument(s) {unknown}; its arguments: '
                           f'{self.loss.argument_names()}.')
        required = [name for name in self.loss.required_arguments() if name != 'data_samples']
        missing = [name for name in required if name not in loss_inputs]
        if missing:
            raise KeyError(f'SignificanceWeightedLoss({self.name}): map the required '
                           f'argument(s) {missing} of {inner}.forward in loss_forward_mappings.')
