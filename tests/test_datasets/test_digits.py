"""The embedded digits dataset: determinism, exact annotations, mmdet / mmseg integration."""
import copy
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from mmengine import Config
from mmengine.registry import init_default_scope

from mmkd.datasets import (DIGIT_CLASSES, SEG_CLASSES, check_coco_annotations,
                           make_digits_dataset, render_image)

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / 'configs' / '_base_' / 'datasets'
SPLITS = {'train': 16, 'val': 8}  # the digits_root fixture's sizes
LUMINANCE = np.array([0.299, 0.587, 0.114])


def load_coco(root, split):
    with open(root / 'annotations' / f'instances_{split}.json') as f:
        return json.load(f)


def read_png(path, rgb=True):
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return image[..., ::-1] if rgb else image


def annotations_by_image(coco):
    by_image = {image['id']: [] for image in coco['images']}
    for ann in coco['annotations']:
        by_image[ann['image_id']].append(ann)
    return by_image


def render_args(info):
    """render_image's keyword arguments, from a generated COCO file's ``info``."""
    keys = ('size', 'min_digits', 'max_digits', 'min_scale', 'max_scale')
    return {key: info[key] for key in keys}


def files_of(root):
    return {path.relative_to(root): path.read_bytes()
            for path in sorted(root.rglob('*')) if path.is_file()}


# --- generation ---------------------------------------------------------------------------


def test_same_seed_gives_same_bytes(tmp_path):
    args = dict(num_train=4, num_val=2, size=48)
    for name, seed in (('a', 0), ('b', 0), ('c', 1)):
        make_digits_dataset(str(tmp_path / name), seed=seed, **args)
    first, again, other = (files_of(tmp_path / name) for name in 'abc')
    assert len(first) == 2 * (4 + 2) + 2
    assert first == again
    assert first.keys() == other.keys()
    images = [path for path in first if path.parts[0] == 'images']
    assert all(first[path] != other[path] for path in images)


def test_rewriting_smaller_dataset_removes_leftovers(tmp_path):
    make_digits_dataset(str(tmp_path), num_train=3, num_val=2, size=32)
    summary = make_digits_dataset(str(tmp_path), num_train=1, num_val=2, size=32)
    assert summary['splits']['train']['images'] == 1
    for folder in ('images', 'seg_labels'):
        assert sorted(p.name for p in (tmp_path / folder / 'train').iterdir()) == ['000000.png']


@pytest.mark.parametrize('kwargs', [
    dict(min_digits=3, max_digits=2),
    dict(min_scale=4),
    dict(max_scale=65),
    dict(seed=-1),
])
def test_invalid_arguments(kwargs, tmp_path):
    with pytest.raises(ValueError):
        make_digits_dataset(str(tmp_path), num_train=1, num_val=1, size=64, **kwargs)


@pytest.mark.parametrize('split', SPLITS)
def test_annotations_match_pixels(digits_root, split):
    coco = load_coco(digits_root, split)
    assert [c['name'] for c in coco['categories']] == list(DIGIT_CLASSES)
    assert [c['id'] for c in coco['categories']] == list(range(1, 11))
    assert len(coco['images']) == SPLITS[split]
    for image in coco['images']:
        labels = read_png(digits_root / 'seg_labels' / split / image['file_name'], rgb=False)
        assert labels.dtype == np.uint8 and labels.shape == (image['height'], image['width'])
        union = np.zeros_like(labels, dtype=bool)
        for ann in annotations_by_image(coco)[image['id']]:
            mask = mask_util.decode(ann['segmentation']).astype(bool)
            x, y, w, h = ann['bbox']
            ys, xs = np.nonzero(mask)
            assert [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1] == \
                [x, y, w, h]
            assert ann['area'] == mask.sum()
            assert ann['iscrowd'] == 0
            # Within its box the instance is exactly its class's pixels (boxes don't overlap).
            in_box = labels[y:y + h, x:x + w] == ann['category_id']
            assert np.array_equal(mask[y:y + h, x:x + w], in_box)
            assert not (mask & union).any()
            union |= mask
        assert np.array_equal(union, labels > 0)


@pytest.mark.parametrize('split', SPLITS)
def test_boxes_do_not_overlap(digits_root, split):
    coco = load_coco(digits_root, split)
    assert len(coco['annotations']) >= SPLITS[split]  # at least one digit per image
    for anns in annotations_by_image(coco).values():
        boxes = [ann['bbox'] for ann in anns]
        for i, (x1, y1, w1, h1) in enumerate(boxes):
            for x2, y2, w2, h2 in boxes[i + 1:]:
                assert x1 + w1 <= x2 or x2 + w2 <= x1 or y1 + h1 <= y2 or y2 + h2 <= y1


def test_digits_are_visible(digits_root):
    """The files are render_image's output, which only changes the digits' pixels, and those
    clearly (in luminance) from the photo underneath."""
    coco = load_coco(digits_root, 'val')
    for image in coco['images']:
        index = int(image['file_name'][:-4])
        sample = render_image(coco['info']['seed'], 'val', index, **render_args(coco['info']))
        assert np.array_equal(read_png(digits_root / 'images' / 'val' / image['file_name']),
                              sample.image)
        painted = sample.label_map > 0
        assert np.array_equal(sample.image[~painted], sample.background[~painted])
        for instance in sample.instances:
            digit = sample.image[instance.mask] @ LUMINANCE
            photo = sample.background[instance.mask] @ LUMINANCE
            assert abs(digit.mean() - photo.mean()) > 40


# --- mmdet / mmseg integration ------------------------------------------------------------


def build_dataset(config, split, digits_root):
    """Build a split's dataset from a config base, with its task's own registry."""
    cfg = Config.fromfile(CONFIGS / config)
    dataset_cfg = cfg[f'{split}_dataloader'].dataset
    dataset_cfg.data_root = str(digits_root)
    if 'segmentation' in config:
        from mmseg.registry import DATASETS
        init_default_scope('mmseg')
    else:
        from mmdet.registry import DATASETS
        init_default_scope('mmdet')
    return DATASETS.build(dataset_cfg), cfg


@pytest.mark.parametrize('config', ['digits_detection.py', 'digits_instance.py'])
@pytest.mark.parametrize('split', SPLITS)
def test_mmdet_dataset(digits_root, config, split):
    dataset, _ = build_dataset(config, split, digits_root)
    coco = load_coco(digits_root, split)
    assert dataset.metainfo['classes'] == DIGIT_CLASSES
    assert len(dataset) == SPLITS[split]
    assert sum(len(dataset.get_data_info(i)['instances'])
               for i in range(len(dataset))) == len(coco['annotations'])
    gt = dataset[0]['data_samples'].gt_instances
    assert len(gt) == len(dataset.get_data_info(0)['instances'])
    assert ('masks' in gt) == (config == 'digits_instance.py')


@pytest.mark.parametrize('split', SPLITS)
def test_mmseg_dataset(digits_root, split):
    dataset, cfg = build_dataset('digits_segmentation.py', split, digits_root)
    assert cfg.custom_imports.imports == ['mmkd.datasets']
    assert dataset.metainfo['classes'] == SEG_CLASSES
    assert len(dataset) == SPLITS[split]
    sample = dataset[0]
    labels = sample['data_samples'].gt_sem_seg.data
    assert labels.shape[-2:] == sample['inputs'].shape[-2:] == (64, 64)
    assert 0 < labels.max() <= 10


def test_coco_metric_on_ground_truth_is_perfect(digits_root):
    from mmdet.registry import METRICS
    dataset, cfg = build_dataset('digits_instance.py', 'val', digits_root)
    metric = METRICS.build(
        dict(cfg.val_evaluator, ann_file=str(digits_root / 'annotations/instances_val.json')))
    metric.dataset_meta = dataset.metainfo
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        instances = info['instances']
        masks = np.stack([mask_util.decode(inst['mask']) for inst in instances])
        pred = dict(
            bboxes=torch.tensor([inst['bbox'] for inst in instances]),
            scores=torch.ones(len(instances)),
            labels=torch.tensor([inst['bbox_label'] for inst in instances]),
            masks=torch.from_numpy(masks).bool())
        metric.process({}, [dict(img_id=info['img_id'], ori_shape=(info['height'], info['width']),
                                 pred_instances=pred)])
    results = metric.evaluate(len(dataset))
    assert results['coco/bbox_mAP'] == 1.0
    assert results['coco/segm_mAP'] == 1.0


def test_iou_metric_on_ground_truth_is_perfect(digits_root):
    from mmseg.registry import METRICS
    dataset, cfg = build_dataset('digits_segmentation.py', 'val', digits_root)
    metric = METRICS.build(cfg.val_evaluator)
    metric.dataset_meta = dataset.metainfo
    for i in range(len(dataset)):
        sample = dataset[i]['data_samples']
        sample.pred_sem_seg = copy.deepcopy(sample.gt_sem_seg)
        metric.process({}, [sample.to_dict()])
    assert metric.evaluate(len(dataset))['mIoU'] == 100.0


# --- command line -------------------------------------------------------------------------


def test_cli(tmp_path):
    out = tmp_path / 'digits'
    result = subprocess.run(
        [sys.executable, 'tools/make_digits_dataset.py', '--out', str(out), '--train', '3',
         '--val', '2', '--size', '48', '--seed', '5'],
        cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.count('\n') == 1
    assert 'train: 3 images' in result.stdout and 'val: 2 images' in result.stdout
    assert len(list((out / 'images' / 'val').glob('*.png'))) == 2
    assert load_coco(out, 'train')['info']['seed'] == 5
    check_coco_annotations(str(out / 'annotations' / 'instances_train.json'))
