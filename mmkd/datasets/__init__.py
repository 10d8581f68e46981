"""Datasets: the embedded "digits on photos" set (see :mod:`mmkd.datasets.digits`) and the
significance-based training subset (see :mod:`mmkd.datasets.significance`)."""
from .coco_check import check_coco_annotations
from .digits import (DIGIT_CLASSES, DIGIT_PALETTE, SEG_CLASSES, SEG_PALETTE, DigitsImage,
                     DigitsSegDataset, digit_classification_set, make_digits_dataset,
                     render_image)
from .significance import (SignificanceSubset, default_significance_file,
                           detection_significance, image_key, read_significance_file,
                           segmentation_significance, select_by_significance,
                           write_significance_file)

__all__ = [
    'DIGIT_CLASSES', 'DIGIT_PALETTE', 'SEG_CLASSES', 'SEG_PALETTE', 'DigitsImage',
    'DigitsSegDataset', 'check_coco_annotations', 'digit_classification_set', 'make_digits_dataset', 'render_image',
    'SignificanceSubset', 'default_significance_file', 'detection_significance', 'image_key',
    'read_significance_file', 'segmentation_significance', 'select_by_significance',
    'write_significance_file'
]
