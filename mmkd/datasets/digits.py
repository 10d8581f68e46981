"""The embedded "digits on photos" dataset: small, real, deterministic, generated offline.

Every image is a random crop of one of the two photos scikit-learn ships
(``sklearn.datasets.load_sample_images()``: china.jpg and flower.jpg, 427x640) with a few
handwritten digits pasted on it. The digits are the 1797 8x8 scans (16 grey levels, classes
0-9) of ``sklearn.datasets.load_digits()``, upscaled to a random side length, thresholded into
a mask and painted in a colour that contrasts with the photo underneath. Nothing is downloaded:
both sources are inside the scikit-learn wheel.

Because the generator knows exactly which pixels it painted, the annotations are exact: a
digit's box is the tight box of its mask, its COCO mask is that mask, and the semantic label
map is the union of the masks. Boxes never overlap, so neither do masks.

Layout written by :func:`make_digits_dataset` (``<split>`` is ``train`` or ``val``)::

    out_dir/
        images/<split>/000000.png ...        RGB, size x size
        seg_labels/<split>/000000.png ...    uint8 label map: 0 background, d + 1 for digit d
        annotations/instances_<split>.json   COCO: boxes, areas, RLE masks, categories 1..10
                                             named '0'..'9'; image NNNNNN.png has id NNNNNN + 1

The detection configs (``configs/_base_/datasets/digits_{detection,instance}.py``) read it with
mmdet's ``CocoDataset``; the segmentation config uses :class:`DigitsSegDataset`.

Generation is deterministic: image ``i`` of a split is drawn from its own
``numpy.random.RandomState([seed, split_id, i])`` (the legacy generator, whose streams numpy
keeps stable across versions) and PNG is lossless, so the same arguments (and library versions)
give the same bytes; changing ``num_train`` does not change the validation images.
"""
import functools
import json
import os
import os.path as osp
import re
from typing import List, NamedTuple, Optional, Tuple

import cv2
import numpy as np
import pycocotools.mask as mask_util
from mmseg.datasets import BaseSegDataset
# mmseg's registry, not an mmkd one: the dataset is built inside mmseg's scope, where its
# pipeline transforms (LoadAnnotations, PackSegInputs ...) must keep resolving.
from mmseg.registry import DATASETS

DIGIT_CLASSES = tuple(str(d) for d in range(10))
SEG_CLASSES = ('background', ) + DIGIT_CLASSES
#: One colour per digit (matplotlib's tab10), for visualisation.
DIGIT_PALETTE = [[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189],
                 [140, 86, 75], [227, 119, 194], [127, 127, 127], [188, 189, 34],
                 [23, 190, 207]]
SEG_PALETTE = [[0, 0, 0]] + DIGIT_PALETTE

# Which random stream each split draws from (part of the per-image seed). 'pretrain' feeds
# backbone pretraining (:func:`digit_classification_set`): its images are never those of
# 'train' or 'val'.
_SPLIT_IDS = {'train': 0, 'val': 1, 'pretrain': 2}
# A pixel belongs to a digit where its upscaled intensity (0..1) exceeds this; 0.5 keeps the
# strokes about as thick as they look in the 8x8 scan.
_MASK_THRESHOLD = 0.5
# Empty pixels kept between two digits' boxes, so that neighbouring digits never touch.
_MIN_GAP = 2
# Random positions tried for each digit before giving up on it (the image then has one fewer).
_PLACEMENT_TRIES = 50
# Digits are painted with channels in [0, 80) on bright backgrounds and in [176, 256) on dark
# ones: more than 48 grey levels from the photo's mean luminance under the digit.
_COLOUR_SPREAD = 80
_BRIGHT_MIN = 176


class DigitInstance(NamedTuple):
    """One pasted digit: its class, tight box ``[x, y, w, h]`` (pixels) and full-size mask."""
    digit: int
    bbox: List[int]
    mask: np.ndarray  # bool, size x size


class DigitsImage(NamedTuple):
    """One generated sample, with the photo crop before pasting (for tests and debugging)."""
    image: np.ndarray  # uint8 RGB, size x size x 3
    background: np.ndarray  # uint8 RGB, the crop without the digits
    label_map: np.ndarray  # uint8, 0 background, d + 1 under digit d
    instances: List[DigitInstance]


@functools.lru_cache(maxsize=1)
def _load_sources() -> Tuple[np.ndarray, np.ndarray, Tuple[np.ndarray, ...]]:
    """scikit-learn's digits (as 0..1 float32 images), their labels and the sample photos."""
    # Imported here: only generation needs scikit-learn, not training with the dataset.
    from sklearn.datasets import load_digits, load_sample_images
    digits = load_digits()
    scans = (digits.images / 16.0).astype(np.float32)
    return scans, digits.target.astype(np.int64), tuple(load_sample_images().images)


def default_scale_range(size: int) -> Tuple[int, int]:
    """Default digit side lengths for ``size`` px images: 3/16 to 7/16 of it (24-56 at 128),
    but at least the scans' own 8 px."""
    return max(8, round(size * 3 / 16)), max(8, round(size * 7 / 16))


def render_image(seed: int,
                 split: str,
                 index: int,
                 size: int = 128,
                 min_digits: int = 1,
                 max_digits: int = 4,
                 min_scale: Optional[int] = None,
                 max_scale: Optional[int] = None) -> DigitsImage:
    """Generate image ``index`` of ``split``; :func:`make_digits_dataset` writes these.

    The arguments mean the same as in :func:`make_digits_dataset`.
    """
    min_scale, max_scale = _check_args(size, min_digits, max_digits, min_scale, max_scale, seed)
    if split not in _SPLIT_IDS:
        raise ValueError(f'split must be one of {sorted(_SPLIT_IDS)}, got {split!r}')
    rng = np.random.RandomState([seed, _SPLIT_IDS[split], index])
    scans, targets, photos = _load_sources()

    background = _crop_background(rng, photos, size)
    image = background.copy()
    label_map = np.zeros((size, size), np.uint8)
    instances, boxes = [], []
    for _ in range(rng.randint(min_digits, max_digits + 1)):
        k = rng.randint(len(scans))
        glyph = _digit_mask(scans[k], rng.randint(min_scale, max_scale + 1))
        spot = _find_free_spot(rng, glyph.shape, size, boxes)
        if spot is None:
            continue
        x, y = spot
        h, w = glyph.shape
        mask = np.zeros((size, size), bool)
        mask[y:y + h, x:x + w] = glyph
        image[mask] = _contrasting_colour(rng, background[mask])
        label_map[mask] = targets[k] + 1
        boxes.append((x, y, w, h))
        instances.append(DigitInstance(int(targets[k]), [x, y, w, h], mask))
    return DigitsImage(image, background, label_map, instances)


def _check_args(size, min_digits, max_digits, min_scale, max_scale, seed) -> Tuple[int, int]:
    """Validate the generator's arguments; returns the digit size range with defaults filled."""
    default_min, default_max = default_scale_range(size)
    min_scale = default_min if min_scale is None else min_scale
    max_scale = default_max if max_scale is None else max_scale
    if not 0 <= seed < 2**32:
        raise ValueError(f'seed must be in [0, 2**32), got {seed}')
    if not 0 <= min_digits <= max_digits:
        raise ValueError(f'need 0 <= min_digits <= max_digits, got {min_digits}, {max_digits}')
    if not 8 <= min_scale <= max_scale <= size:
        raise ValueError(f'need 8 <= min_scale <= max_scale <= size ({size}), got '
                         f'min_scale={min_scale}, max_scale={max_scale}')
    return min_scale, max_scale


def _crop_background(rng: np.random.RandomState, photos, size: int) -> np.ndarray:
    """A random square crop of a random photo, resized to ``size`` x ``size``; the crop's side
    goes from a quarter of the photo's shorter side (close-ups) to all of it."""
    photo = photos[rng.randint(len(photos))]
    height, width = photo.shape[:2]
    side = rng.randint(min(height, width) // 4, min(height, width) + 1)
    y = rng.randint(height - side + 1)
    x = rng.randint(width - side + 1)
    crop = photo[y:y + side, x:x + side]
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)


def _digit_mask(scan: np.ndarray, side: int) -> np.ndarray:
    """The digit upscaled to ``side`` x ``side`` and thresholded, cropped to its tight box.

    Any side length works, not only multiples of 8: bicubic upscaling of the 16-level scan
    gives smooth strokes at every size.
    """
    mask = cv2.resize(scan, (side, side), interpolation=cv2.INTER_CUBIC) > _MASK_THRESHOLD
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def _find_free_spot(rng: np.random.RandomState, shape: Tuple[int, int], size: int,
                    boxes: List[Tuple[int, int, int, int]]) -> Optional[Tuple[int, int]]:
    """Top-left corner for an ``h`` x ``w`` box whose surroundings (``_MIN_GAP``) are free of
    ``boxes``, or None. Draws all candidates at once and keeps the first free one."""
    h, w = shape
    xs = rng.randint(size - w + 1, size=_PLACEMENT_TRIES)
    ys = rng.randint(size - h + 1, size=_PLACEMENT_TRIES)
    if not boxes:
        return int(xs[0]), int(ys[0])
    bx, by, bw, bh = np.array(boxes).T[:, None, :]  # each (1, num_boxes)
    x, y = xs[:, None], ys[:, None]  # (tries, 1)
    clash = ((x < bx + bw + _MIN_GAP) & (bx < x + w + _MIN_GAP)
             & (y < by + bh + _MIN_GAP) & (by < y + h + _MIN_GAP))
    free = np.flatnonzero(~clash.any(1))
    return (int(xs[free[0]]), int(ys[free[0]])) if len(free) else None


def _contrasting_colour(rng: np.random.RandomState, under: np.ndarray) -> np.ndarray:
    """A random colour, dark on a bright background and bright on a dark one.

    ``under`` holds the photo's RGB pixels that the digit covers.
    """
    luminance = under.astype(np.float32).mean(0) @ np.array([0.299, 0.587, 0.114], np.float32)
    colour = rng.randint(_COLOUR_SPREAD, size=3)
    return colour if luminance >= 128 else colour + _BRIGHT_MIN


def digit_classification_set(num_images: int, size: int = 64, seed: int = 0,
                             start: int = 0, min_scale: Optional[int] = None,
                             max_scale: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
    """One digit on a photo crop per image, labelled with that digit: the classification task
    backbones are pretrained on (the embedded stand-in for ImageNet).

    The images come from the ``'pretrain'`` random stream of :func:`render_image`, so they
    share the detection / segmentation images' sources (digit scans, photo crops) and, by
    default, digit sizes (5/16 to 7/8 of ``size``: 20-56 px at 64, as in the 128 px detection
    images) but are never the validation (or training) images. Images
    ``start .. start + num_images - 1`` are returned: two disjoint ranges give a training and
    a held-out set.

    Returns:
        ``(images, labels)``: uint8 RGB ``(num_images, size, size, 3)`` and int64 digits.
    """
    min_scale = round(size * 5 / 16) if min_scale is None else min_scale
    max_scale = round(size * 7 / 8) if max_scale is None else max_scale
    images = np.empty((num_images, size, size, 3), np.uint8)
    labels = np.empty(num_images, np.int64)
    for i in range(num_images):
        sample = render_image(seed, 'pretrain', start + i, size=size, min_digits=1,
                              max_digits=1, min_scale=min_scale, max_scale=max_scale)
        images[i], labels[i] = sample.image, sample.instances[0].digit
    return images, labels


def make_digits_dataset(out_dir: str,
                        num_train: int = 1000,
                        num_val: int = 200,
                        size: int = 128,
                        seed: int = 0,
                        min_digits: int = 1,
                        max_digits: int = 4,
                        min_scale: Optional[int] = None,
                        max_scale: Optional[int] = None) -> dict:
    """Write the dataset (layout in the module docstring) and return a summary.

    Args:
        out_dir: Dataset root; the configs expect ``data/digits``. Earlier generated files
            (``NNNNNN.png``) that this run does not rewrite are removed, so a smaller dataset
            can be written over a larger one.
        num_train, num_val: Images per split.
        size: Image side in pixels.
        seed: Any integer in [0, 2**32); the same arguments give byte-identical files.
        min_digits, max_digits: Each image gets a uniformly random number of digits in this
            range (one fewer for each digit that finds no free spot, rare with the defaults).
        min_scale, max_scale: Side length in pixels of the square a digit's 8x8 scan is
            upscaled to, drawn uniformly per digit. The digit's box is a bit smaller (the scans
            have blank margins). Default: 3/16 and 7/16 of ``size``, i.e. 24-56 px at 128,
            large enough to be seen by stride-8 to stride-32 feature maps.

    Returns:
        ``dict(out_dir=..., splits={split: dict(images=n, instances=n, ann_file=...,
        img_dir=..., seg_dir=...)})``.
    """
    min_scale, max_scale = _check_args(size, min_digits, max_digits, min_scale, max_scale, seed)
    options = dict(size=size, min_digits=min_digits, max_digits=max_digits,
                   min_scale=min_scale, max_scale=max_scale)
    splits = {
        split: _write_split(out_dir, split, num, seed, options)
        for split, num in (('train', num_train), ('val', num_val))
    }
    return dict(out_dir=out_dir, splits=splits)


def _write_split(out_dir: str, split: str, num_images: int, seed: int, options: dict) -> dict:
    """Write one split's images, label maps and COCO file; returns its summary."""
    img_dir = osp.join(out_dir, 'images', split)
    seg_dir = osp.join(out_dir, 'seg_labels', split)
    ann_file = osp.join(out_dir, 'annotations', f'instances_{split}.json')
    os.makedirs(osp.dirname(ann_file), exist_ok=True)
    for folder in (img_dir, seg_dir):
        os.makedirs(folder, exist_ok=True)
        _remove_stale_images(folder, num_images)

    images, annotations = [], []
    for index in range(num_images):
        sample = render_image(seed, split, index, **options)
        file_name = f'{index:06d}.png'
        _write_png(osp.join(img_dir, file_name), sample.image[..., ::-1])  # cv2 writes BGR
        _write_png(osp.join(seg_dir, file_name), sample.label_map)
        # COCO ids are positive: pycocotools' evaluation uses 0 for "unmatched".
        image_id = index + 1
        images.append(dict(id=image_id, file_name=file_name, width=options['size'],
                           height=options['size']))
        for instance in sample.instances:
            annotations.append(_coco_annotation(instance, len(annotations) + 1, image_id))

    coco = dict(
        info=dict(description='mmkd digits on photos (sklearn digits pasted on sklearn '
                  'sample images)', split=split, seed=seed, **options),
        images=images,
        annotations=annotations,
        categories=[dict(id=d + 1, name=name, supercategory='digit')
                    for d, name in enumerate(DIGIT_CLASSES)])
    with open(ann_file, 'w') as f:
        json.dump(coco, f)
    return dict(images=num_images, instances=len(annotations), ann_file=ann_file,
                img_dir=img_dir, seg_dir=seg_dir)


def _write_png(path: str, array: np.ndarray) -> None:
    if not cv2.imwrite(path, array):
        raise OSError(f'could not write {path}')


def _remove_stale_images(folder: str, num_images: int) -> None:
    """Delete generated images (``NNNNNN.png``) numbered ``num_images`` or more; mmseg lists
    a folder's files, so leftovers from a larger earlier run would join the dataset."""
    for name in os.listdir(folder):
        match = re.fullmatch(r'(\d{6,})\.png', name)
        if match and int(match.group(1)) >= num_images:
            os.remove(osp.join(folder, name))


def _coco_annotation(instance: DigitInstance, ann_id: int, image_id: int) -> dict:
    """COCO annotation of a pasted digit; the mask is stored as compressed RLE."""
    rle = mask_util.encode(np.asfortranarray(instance.mask, dtype=np.uint8))
    rle['counts'] = rle['counts'].decode('ascii')  # bytes -> str, for JSON
    return dict(id=ann_id, image_id=image_id, category_id=instance.digit + 1,
                bbox=instance.bbox, area=int(instance.mask.sum()), segmentation=rle, iscrowd=0)


@DATASETS.register_module()
class DigitsSegDataset(BaseSegDataset):
    """Semantic segmentation view of the digits dataset: 11 classes, 0 being background.

    Reads ``images/<split>/NNNNNN.png`` with the label maps ``seg_labels/<split>/NNNNNN.png``
    (see :mod:`mmkd.datasets.digits`); set ``data_prefix=dict(img_path='images/train',
    seg_map_path='seg_labels/train')``.
    """
    METAINFO = dict(classes=SEG_CLASSES, palette=SEG_PALETTE)

    def __init__(self,
                 img_suffix: str = '.png',
                 seg_map_suffix: str = '.png',
                 reduce_zero_label: bool = False,
                 **kwargs) -> None:
        super().__init__(img_suffix=img_suffix, seg_map_suffix=seg_map_suffix,
                         reduce_zero_label=reduce_zero_label, **kwargs)
