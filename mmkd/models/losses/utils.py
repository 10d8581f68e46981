"""Numerics shared by the losses: they compute in float32 even under mixed precision, and
never send a gradient to the teacher."""
import torch
import torch.nn.functional as F
from torch import Tensor


def to_float32(value):
    """Half / bfloat16 tensors (also inside lists and tuples) as float32; float32 / float64
    tensors and everything else unchanged."""
    if isinstance(value, Tensor):
        return value.float() if value.dtype in (torch.float16, torch.bfloat16) else value
    if isinstance(value, (list, tuple)):
        return type(value)(to_float32(v) for v in value)
    return value


def tensors_in(value) -> list:
    """The tensors of a tensor or a (nested) list / tuple of them, in order."""
    if isinstance(value, Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in tensors_in(v)]
    return []


def detach(value):
    """Tensors (also inside lists and tuples) detached; everything else unchanged."""
    if isinstance(value, Tensor):
        return value.detach()
    if isinstance(value, (list, tuple)):
        return type(value)(detach(v) for v in value)
    return value


def no_autocast(x: Tensor):
    """A context with autocast off on ``x``'s device: reductions and Gram matrices of large
    feature maps overflow or lose precision in half."""
    return torch.autocast(device_type=x.device.type, enabled=False)


def kl_terms(log_p_T: Tensor, log_p_S: Tensor) -> Tensor:
    """Pointwise terms ``p_T * (log p_T - log p_S)`` of KL(T || S), from log-probabilities;
    the caller sums them over the classes (and reduces as its method does)."""
    return log_p_T.exp() * (log_p_T - log_p_S)


def spatial_min_max(x: Tensor):
    """(min, max) of each (N, C) map of ``x`` over its spatial dimensions, keepdim."""
    return x.amin(dim=(2, 3), keepdim=True), x.amax(dim=(2, 3), keepdim=True)


def resize_labels(labels: Tensor, size) -> Tensor:
    """(N, H, W) integer label maps resized to ``size`` by nearest pixel (labels come at the
    input resolution, logits at the head's)."""
    return F.interpolate(labels[:, None].float(), size=tuple(size), mode='nearest')[:, 0].long()


def seg_labels(data_samples) -> Tensor:
    """The (N, H, W) int64 ``gt_sem_seg`` labels of segmentation data samples."""
    if not data_samples or 'gt_sem_seg' not in data_samples[0]:
        raise ValueError('Segmentation labels need data samples with gt_sem_seg (an mmseg '
                         'model and dataset).')
    return torch.stack([sample.gt_sem_seg.data[0] for sample in data_samples]).long()


def box_tensor(boxes) -> Tensor:
    """(K, 4) x1 y1 x2 y2 tensor of mmdet boxes (a ``HorizontalBoxes`` or already a tensor)."""
    return getattr(boxes, 'tensor', boxes)


def gt_boxes(sample, where: str) -> Tensor:
    """The (K, 4) float32 ``gt_instances.bboxes`` (x1, y1, x2, y2) of a detection data sample;
    ``where`` names it in errors (e.g. ``'FGDLoss: data_samples[0]'``)."""
    gt = getattr(sample, 'gt_instances', None)
    if gt is None or 'bboxes' not in gt:
        raise ValueError(f'{where} has no gt_instances.bboxes: map data_samples=dict('
                         "from_data='data_samples') on a detection model and dataset.")
    boxes = box_tensor(gt.bboxes)
    if boxes.numel() and boxes.shape[-1] != 4:
        raise ValueError(f'{where}: gt_instances.bboxes must be (K, 4) (x1, y1, x2, y2), got '
                         f'{tuple(boxes.shape)}.')
    return boxes.reshape(-1, 4).float()
