"""Datasets: the embedded "digits on photos" set (see :mod:`mmkd.datasets.digits`)."""
from .coco_check import check_coco_annotations
from .digits import (DIGIT_CLASSES, DIGIT_PALETTE, SEG_CLASSES, SEG_PALETTE, DigitsImage,
                     DigitsSegDataset, make_digits_dataset, render_image)

__all__ = [
    'DIGIT_CLASSES', 'DIGIT_PALETTE', 'SEG_CLASSES', 'SEG_PALETTE', 'DigitsImage',
    'DigitsSegDataset', 'check_coco_annotations', 'make_digits_dataset', 'render_image'
]
