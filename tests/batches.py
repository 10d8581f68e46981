"""Tiny hand-made batches for model tests (what a dataloader + pipeline would give)."""
import torch
from mmengine.structures import InstanceData, PixelData

#: One box per image by default; tests that need other layouts pass their own.
DEFAULT_BOXES = ([[4.0, 6.0, 30.0, 40.0]], [[4.0, 6.0, 30.0, 40.0]])


def det_batch(size=64, boxes=DEFAULT_BOXES, labels=None):
    """A detection batch: one uint8 image and one ``DetDataSample`` per entry of ``boxes``.

    Args:
        boxes: per image, a list of (x1, y1, x2, y2) boxes.
        labels: per image, a list of class ids; defaults to image index % 3 for every box.
    """
    from mmdet.structures import DetDataSample
    samples = []
    for i, image_boxes in enumerate(boxes):
        sample = DetDataSample(metainfo=dict(
            img_shape=(size, size), ori_shape=(size, size), pad_shape=(size, size),
            scale_factor=(1.0, 1.0), img_id=i))
        image_labels = labels[i] if labels is not None else [i % 3] * len(image_boxes)
        sample.gt_instances = InstanceData(bboxes=torch.tensor(image_boxes),
                                           labels=torch.tensor(image_labels))
        samples.append(sample)
    inputs = [torch.randint(0, 255, (3, size, size), dtype=torch.uint8) for _ in boxes]
    return dict(inputs=inputs, data_samples=samples)


def seg_batch(size=64, n=2, num_classes=19):
    """A segmentation batch of ``n`` uint8 images with random label maps."""
    from mmseg.structures import SegDataSample
    samples = []
    for _ in range(n):
        sample = SegDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size),
                                             pad_shape=(size, size)))
        sample.gt_sem_seg = PixelData(data=torch.randint(0, num_classes, (1, size, size)))
        samples.append(sample)
    inputs = [torch.randint(0, 255, (3, size, size), dtype=torch.uint8) for _ in range(n)]
    return dict(inputs=inputs, data_samples=samples)


def train_step_losses(model, batch):
    """The loss dict of one training forward (data preprocessor included), no update."""
    model.train()
    data = model.data_preprocessor(batch, True)
    return model(**data, mode='loss')
