r"""Instance-mask KD for Mask R-CNN: the student's mask logits imitate the teacher's, per pixel.

No single paper defines it; this is the per-pixel form of vanilla KD (Distilling the Knowledge
in a Neural Network, Hinton et al., 2015, https://arxiv.org/abs/1503.02531) with a sigmoid per
pixel, the binary-KL counterpart of mmdet's per-pixel mask BCE, applied to the teacher's mask
head replayed on the student's RoIs, as the RoI-level mask distillation of several mask-KD works
does (e.g. Instance-Conditional Knowledge Distillation for Object Detection, Kang et al.,
NeurIPS 2021, https://arxiv.org/abs/2110.12724, whose mask-head term compares both heads'
mask predictions on the same RoIs).

Both mask heads see the same :math:`P` positive RoIs, the ones the student sampled and trains
its own mask head on (the Distiller's ``teacher_replays`` runs the teacher's
``roi_head._mask_forward`` on its own FPN features and the student's RoIs). Of each RoI's
:math:`(C, h, w)` logits only the channel of its assigned class :math:`c_p` counts, as mmdet's
mask loss selects (channel 0 for class-agnostic heads). With :math:`q = \sigma(z / \tau)` per
pixel :math:`j` of the :math:`h \times w` mask,

.. math::

    L = w \cdot \frac{\tau^2}{P\,h\,w} \sum_{p=1}^{P} \sum_{j=1}^{hw}
    \Bigl[q^{T}_{p,j} \log \frac{q^{T}_{p,j}}{q^{S}_{p,j}}
    + (1 - q^{T}_{p,j}) \log \frac{1 - q^{T}_{p,j}}{1 - q^{S}_{p,j}}\Bigr],
    \qquad q_{p,j} = \sigma\bigl(z_{p,c_p,j} / \tau\bigr)

the binary KL of :func:`mmkd.models.losses.kd_divergence` (``mode='sigmoid'``), averaged over
RoIs and pixels. **Choices.** The binary KL rather than the BCE against :math:`q^T`: they differ
by the teacher's entropy, a constant, so the gradients are equal and the KL is 0 at the
optimum. Every pixel of the :math:`h \times w` mask counts equally (the RoI's box, not only the
object); no RoI weighting. No positive RoI gives a zero that keeps the graph.

**Measured on the digits Mask R-CNN pair** (benchmarks/RESULTS.md, 3 seeds). Alone it gains
+0.87 segm mAP [-0.59, +2.32], not resolved. The masks fit better (segm AP75 +4.07, resolved),
but the boxes lose 2.50 bbox mAP (resolved). At initialisation its gradient on the shared neck
is 0.98x the task's at cosine 0.99: it adds no direction the task lacks. With PKD on the FPN
(``configs/distill/maskkd/maskkd-pkd_*``) it gains +9.70 [+6.36, +13.04] (32% of the gap), so
use it with a feature loss.
"""
from typing import Sequence

import torch
from torch import Tensor

from mmkd.registry import MODELS
from .base import BaseDistillLoss
from .kd import kd_loss


def select_mask_class(masks: Tensor, labels: Tensor, what: str = 'masks') -> Tensor:
    """The channel of each RoI's class: ``masks[p, labels[p]]`` as (P, 1, h, w); one-channel
    (class-agnostic) masks are returned as they are, as mmdet's mask loss reads channel 0.

    Args:
        masks (Tensor): Mask logits, (P, C, h, w).
        labels (Tensor): Class of each RoI, (P,) integers in [0, C).
        what (str): Named in errors. Defaults to 'masks'.

    Example:
        >>> masks = torch.arange(12.).reshape(2, 3, 2, 1)
        >>> select_mask_class(masks, torch.tensor([2, 0]))[:, 0, :, 0]
        tensor([[4., 5.],
                [6., 7.]])
    """
    if masks.dim() != 4:
        raise ValueError(f'MaskKDLoss: {what} must be (num_rois, num_classes, h, w) mask '
                         f'logits, got shape {tuple(masks.shape)}.')
    if labels.dim() != 1 or labels.shape[0] != masks.shape[0]:
        raise ValueError(f'MaskKDLoss: {masks.shape[0]} RoIs in {what} but labels of shape '
                         f'{tuple(labels.shape)}: one label per positive RoI.')
    if masks.shape[1] == 1:
        return masks
    labels = labels.long().to(masks.device)
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= masks.shape[1]):
        raise ValueError(f'MaskKDLoss: labels must lie in [0, {masks.shape[1]}), got '
                         f'{labels.unique()[:5].tolist()}.')
    return masks[torch.arange(masks.shape[0], device=masks.device), labels][:, None]


def mask_kd_loss(preds_S: Tensor, preds_T: Tensor, labels: Tensor, tau: float = 1.0) -> Tensor:
    """Per-pixel sigmoid KD of the mask logits of each RoI's class, averaged over RoIs and
    pixels (the module docstring's formula, without the loss weight).

    Args:
        preds_S (Tensor): Student mask logits, (P, C, h, w).
        preds_T (Tensor): Teacher mask logits of the same RoIs, (P, C, h, w).
        labels (Tensor): Assigned class of each RoI, (P,).
        tau (float): Temperature. Defaults to 1.0.

    Returns:
        Tensor: Scalar.

    Example:
        >>> s = torch.zeros(1, 2, 1, 1)                      # q_S = 1/2 on class 1
        >>> t = torch.tensor([0., 3.]).log().reshape(1, 2, 1, 1)  # class 1: q_T = 3/4
        >>> round(float(mask_kd_loss(s, t, torch.tensor([1]))), 5)  # KL(3/4 || 1/2)
        0.13081
    """
    if preds_S.shape != preds_T.shape:
        raise ValueError(f'MaskKDLoss needs student and teacher mask logits of one shape, got '
                         f'student {tuple(preds_S.shape)} and teacher {tuple(preds_T.shape)}: '
                         'replay the teacher on the RoIs of the student\'s mask head, with mask '
                         'heads of the same classes (or both class-agnostic) and mask size.')
    selected_S = select_mask_class(preds_S, labels, 'preds_S')
    selected_T = select_mask_class(preds_T.detach(), labels, 'preds_T')
    # (P, 1, h, w) as a dense map of one class: one binary KL per pixel, mean over P * h * w.
    return kd_loss(selected_S, selected_T, tau, mode='sigmoid')


def positive_labels(sampling_results: Sequence) -> Tensor:
    """The assigned class of every positive RoI, images in order, as mmdet's mask head reads
    it (``FCNMaskHead.loss_and_target``): ``cat([r.pos_gt_labels for r in sampling_results])``.
    """
    if not isinstance(sampling_results, (list, tuple)) or not all(
            hasattr(r, 'pos_gt_labels') for r in sampling_results):
        raise TypeError('MaskKDLoss: sampling_results must be the list of mmdet SamplingResult '
                        "the student's RoI head trained on: record them with MethodInputsRecorder"
                        "(source='roi_head.mask_loss') and map data_idx=1; got "
                        f'{type(sampling_results).__name__}.')
    if not sampling_results:
        raise ValueError('MaskKDLoss: sampling_results is empty (no image in the batch).')
    return torch.cat([r.pos_gt_labels for r in sampling_results])


@MODELS.register_module()
class MaskKDLoss(BaseDistillLoss):
    """Per-pixel sigmoid KD on Mask R-CNN mask logits of each positive RoI's class.

    ``forward(preds_S, preds_T, sampling_results)``: the student's and the replayed teacher's
    ``mask_preds`` (P, C, h, w) on the student's positive RoIs, and the student's sampling
    results (their ``pos_gt_labels`` pick the class channel, as mmdet's mask loss does; a
    batch without positive RoIs still records them, so the loss is then 0).

    Args:
        tau (float): Temperature, > 0. Defaults to 1.0.
        loss_weight (float): Scales the loss. Defaults to 1.0.

    Example:
        >>> s, t = torch.randn(3, 10, 28, 28, requires_grad=True), torch.randn(3, 10, 28, 28)
        >>> from mmengine.structures import InstanceData
        >>> results = [InstanceData(pos_gt_labels=torch.tensor([1, 4])),
        ...            InstanceData(pos_gt_labels=torch.tensor([9]))]
        >>> loss = MaskKDLoss()(s, t, results)
        >>> loss.shape, bool(loss > 0), float(MaskKDLoss()(t, t, results))
        (torch.Size([]), True, 0.0)
    """
    requires_equal_num_classes = True

    def __init__(self, tau: float = 1.0, loss_weight: float = 1.0):
        super().__init__(loss_weight)
        if tau <= 0:
            raise ValueError(f'MaskKDLoss needs a positive temperature tau, got {tau}.')
        self.tau = tau

    def compute(self, preds_S: Tensor, preds_T: Tensor, sampling_results: Sequence) -> Tensor:
        """Returns a float32 scalar."""
        return mask_kd_loss(preds_S, preds_T, positive_labels(sampling_results), self.tau)
