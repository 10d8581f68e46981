"""Hand-made batches, as a dataloader and its pipeline would give them, for the tests, the
benchmarks and the analysis tools (one builder for all of them).

Images are uint8 ``(3, H, W)`` tensors; data samples carry the meta information mmdet /
mmseg models read. ``generator`` (a seeded :class:`torch.Generator`) makes a batch
reproducible without touching torch's global random state; without it the global state is
used.
"""
from typing import Optional, Sequence

import torch

#: One box per image by default; tests that need other layouts pass their own.
DEFAULT_BOXES = ([[4.0, 6.0, 30.0, 40.0]], [[4.0, 6.0, 30.0, 40.0]])


def _size(size):
    return (size, size) if isinstance(size, int) else tuple(size)


def _meta(size, significance: Optional[float], img_id: int) -> dict:
    h, w = size
    meta = dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w), scale_factor=(1.0, 1.0),
                img_id=img_id)
    if significance is not None:  # what SignificanceWeightedLoss reads (datasets/significance)
        meta['significance'] = significance
    return meta


def _images(n: int, size, generator) -> list:
    return [torch.randint(0, 255, (3, *size), dtype=torch.uint8, generator=generator)
            for _ in range(n)]


def det_batch(size=64, boxes: Sequence = DEFAULT_BOXES, labels: Optional[Sequence] = None,
              generator: Optional[torch.Generator] = None,
              significance: Optional[Sequence[float]] = None) -> dict:
    """A detection batch: one image and one ``DetDataSample`` per entry of ``boxes``.

    Args:
        size (int | tuple): image side, or (H, W).
        boxes: per image, a list of (x1, y1, x2, y2) boxes.
        labels: per image, a list of class ids; defaults to image index % 3 for every box.
        significance: per image, a ``significance`` meta value (optional).
    """
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    size = _size(size)
    samples = []
    for i, image_boxes in enumerate(boxes):
        sample = DetDataSample(metainfo=_meta(
            size, None if significance is None else significance[i], i))
        image_labels = labels[i] if labels is not None else [i % 3] * len(image_boxes)
        sample.gt_instances = InstanceData(
            bboxes=torch.as_tensor(image_boxes, dtype=torch.float32).reshape(-1, 4),
            labels=torch.as_tensor(image_labels, dtype=torch.long))
        samples.append(sample)
    return dict(inputs=_images(len(boxes), size, generator), data_samples=samples)


def seg_batch(size=64, n: int = 2, num_classes: int = 19,
              generator: Optional[torch.Generator] = None,
              significance: Optional[Sequence[float]] = None) -> dict:
    """A segmentation batch of ``n`` images with random label maps."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    size = _size(size)
    samples = []
    for i in range(n):
        sample = SegDataSample(metainfo=_meta(
            size, None if significance is None else significance[i], i))
        sample.gt_sem_seg = PixelData(
            data=torch.randint(0, num_classes, (1, *size), generator=generator))
        samples.append(sample)
    return dict(inputs=_images(n, size, generator), data_samples=samples)


def random_batch(task: str, num_classes: int, batch_size: int, size, seed: int = 0,
                 boxes_per_image: int = 4) -> dict:
    """A reproducible random batch for ``task`` ('det' or 'seg'): random images, random
    ground truth (boxes of 8 px to 30% of the image, any class), random significance."""
    g = torch.Generator().manual_seed(seed)
    h, w = _size(size)
    significance = [float(torch.rand(1, generator=g)) for _ in range(batch_size)]
    if task == 'seg':
        return seg_batch((h, w), batch_size, num_classes, g, significance)
    if task != 'det':
        raise ValueError(f"task must be 'det' or 'seg', got {task!r}.")
    boxes, labels = [], []
    for _ in range(batch_size):
        xy = torch.rand(boxes_per_image, 2, generator=g) * torch.tensor([w * 0.7, h * 0.7])
        wh = 8 + torch.rand(boxes_per_image, 2, generator=g) * torch.tensor([w * 0.3, h * 0.3])
        boxes.append(torch.cat([xy, xy + wh], 1).tolist())
        labels.append(torch.randint(0, num_classes, (boxes_per_image, ), generator=g).tolist())
    return det_batch((h, w), boxes, labels, g, significance)


def build_random_distiller(cfg, cfg_options: Optional[dict] = None, device=None,
                           seed: Optional[int] = 0):
    """A distillation config's Distiller with random init: no ``teacher_ckpt``, no
    pretrained weights (nothing is read or downloaded), for tests and benchmarks whose
    figures do not depend on the weights.

    Args:
        cfg (Config): a distillation config (it is not modified).
        cfg_options (dict, optional): merged into both models' ``cfg_options`` (e.g. plain BN
            instead of SyncBN, a smaller input size).
        device: build on this device (``'meta'``: structure only, no memory, no init).
        seed (int, optional): torch's seed before building; None leaves it.
    """
    import copy

    from mmengine.registry import init_default_scope

    from mmkd.registry import MODELS
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.teacher_ckpt = None
    for side in ('student', 'teacher'):
        model_cfg[side].pretrained = False
        if cfg_options:
            model_cfg[side].cfg_options = dict(cfg_options, **model_cfg[side].get('cfg_options', {}))
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    if seed is not None:
        torch.manual_seed(seed)
    if device is None:
        return MODELS.build(model_cfg)
    with torch.device(device):
        return MODELS.build(model_cfg)
