"""Per-image significance (hand-made teacher predictions) and the budgeted SignificanceSubset."""
import json
import os
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from tool_runs import CONFIGS

from mmkd.datasets.significance import (SignificanceSubset, default_significance_file,
                                        detection_significance, image_key,
                                        read_significance_file, segmentation_significance,
                                        select_by_significance, write_significance_file)
from mmkd.registry import DATASETS


# ---------------------------------------------------------------- detection significance
def test_detection_counts_missed_wrong_class_low_score_and_misplaced_objects():
    gt = torch.tensor([[0., 0., 10., 10.],      # found: same class, IoU 0.9, score 0.9
                       [20., 20., 30., 30.],    # missed: no prediction near it
                       [40., 40., 50., 50.],    # only found at score 0.2 < 0.3
                       [60., 0., 70., 10.],     # predicted as another class
                       [0., 60., 10., 70.]])    # predicted box of IoU 0.3
    labels = torch.tensor([1, 2, 3, 4, 5])
    pred = torch.tensor([[0., 0., 10., 9.], [40., 40., 50., 50.], [60., 0., 70., 10.],
                         [0., 60., 10., 63.]])
    pred_labels = torch.tensor([1, 3, 0, 5])
    scores = torch.tensor([0.9, 0.2, 0.95, 0.99])
    assert detection_significance(gt, labels, pred, pred_labels, scores) == pytest.approx(4 / 5)
    # a lower score threshold finds object 2, a lower IoU threshold finds object 4
    assert detection_significance(gt, labels, pred, pred_labels, scores,
                                  score_thr=0.1) == pytest.approx(3 / 5)
    assert detection_significance(gt, labels, pred, pred_labels, scores,
                                  iou_thr=0.25) == pytest.approx(3 / 5)


def test_detection_edge_cases():
    box, label = torch.tensor([[0., 0., 10., 10.]]), torch.tensor([0])
    empty_boxes, empty = torch.zeros(0, 4), torch.zeros(0, dtype=torch.long)
    assert detection_significance(empty_boxes, empty, box, label, torch.tensor([0.9])) == 0.0
    assert detection_significance(box, label, empty_boxes, empty, torch.zeros(0)) == 1.0
    assert detection_significance(box, label, box, label, torch.tensor([0.9])) == 0.0


# ---------------------------------------------------------------- segmentation significance
def test_segmentation_counts_wrong_and_unsure_labelled_pixels():
    # 4 classes, 6 pixels; logits chosen so that the softmax is known
    logits = torch.full((4, 1, 6), -10.0)
    logits[0, 0, 0] = 10.0                        # px 0: class 0, sure, label 0 -> right
    logits[1, 0, 1] = 10.0                        # px 1: class 1, sure, label 0 -> wrong
    logits[:, 0, 2] = 0.0                         # px 2: class 2 (label) at p = 0.27 < 0.3
    logits[2, 0, 2] = 0.1
    logits[2, 0, 3] = 10.0                        # px 3: class 2, sure, label 2 -> right
    logits[1, 0, 4] = 10.0                        # px 4: wrong, but unlabelled (255)
    logits[0, 0, 5], logits[1, 0, 5] = 0.1, 0.0   # px 5: class 0 at p = 0.52, label 0
    labels = torch.tensor([[0, 0, 2, 2, 255, 0]])
    # 5 labelled pixels, 2 hard: px 1 (wrong) and px 2 (right but unsure)
    assert segmentation_significance(logits, labels) == pytest.approx(2 / 5)
    # a threshold of 0.6 also makes px 5 unsure
    assert segmentation_significance(logits, labels, score_thr=0.6) == pytest.approx(3 / 5)
    assert segmentation_significance(logits, torch.full((1, 6), 255)) == 0.0


def test_segmentation_binary_sigmoid_logits():
    logits = torch.tensor([[[5.0, -5.0, 5.0, 0.0]]])       # P(1) ~1, ~0, ~1, 0.5
    labels = torch.tensor([[1, 0, 0, 1]])
    assert segmentation_significance(logits, labels, score_thr=0.6) == pytest.approx(2 / 4)


# ---------------------------------------------------------------- file and selection
def test_selection_keeps_the_top_budget_ties_by_index():
    significance = [0.2, 0.9, 0.5, 0.9, 0.0, 0.5, 0.1, 0.7, 0.3, 0.5]
    assert select_by_significance(significance, budget=0.3) == [1, 3, 7]   # not ceil(3.0..04)
    assert select_by_significance(significance, budget=0.5) == [1, 2, 3, 5, 7]  # 2 before 9
    assert select_by_significance(significance, budget=0.05) == [1]
    assert select_by_significance(significance) == list(range(10))
    assert select_by_significance(significance, min_significance=0.5) == [1, 2, 3, 5, 7, 9]
    with pytest.raises(ValueError, match=r'budget .* \(0, 1\]'):
        select_by_significance(significance, budget=0.0)


def test_keys_and_default_paths():
    assert image_key('/d/root/images/train/1.png', '/d/root/') == 'images/train/1.png'
    assert image_key('/elsewhere/1.png', '/d/root') == '/elsewhere/1.png'

    class Coco:
        ann_file, data_prefix = 'data/coco/annotations/instances_train2017.json', {}

    class Folder:
        ann_file, data_prefix = '', dict(img_path='data/cityscapes/leftImg8bit/train/')

    assert default_significance_file(Coco) == \
        'data/coco/annotations/instances_train2017.significance.json'
    assert default_significance_file(Folder) == \
        'data/cityscapes/leftImg8bit/train.significance.json'


def test_file_is_written_atomically_and_reproducibly(tmp_path):
    path = str(tmp_path / 'out' / 'sig.json')
    write_significance_file(path, {'b.png': 1 / 3, 'a.png': 0.0}, dict(task='x'))
    first = open(path, 'rb').read()
    write_significance_file(path, {'a.png': 0.0, 'b.png': 1 / 3}, dict(task='x'))
    assert open(path, 'rb').read() == first
    assert os.listdir(tmp_path / 'out') == ['sig.json']          # no temporary file left
    assert read_significance_file(path) == {'a.png': 0.0, 'b.png': 0.333333}
    with pytest.raises(FileNotFoundError, match='tools/significance.py'):
        read_significance_file(str(tmp_path / 'missing.json'))


# ---------------------------------------------------------------- SignificanceSubset
def dataset_cfg(task, digits_root):
    name = 'digits_detection.py' if task == 'det' else 'digits_segmentation.py'
    cfg = Config.fromfile(osp.join(CONFIGS, '_base_', 'datasets', name))
    init_default_scope('mmdet' if task == 'det' else 'mmseg')
    dataset = cfg.train_dataloader.dataset
    dataset.data_root = str(digits_root) + '/'
    return dataset.to_dict()


def write_file(path, num_images, significance):
    """Significance for train images 0..num_images-1 (keys as the tool writes them)."""
    images = {f'images/train/{i:06d}.png': significance(i) for i in range(num_images)}
    write_significance_file(str(path), images, dict(task='test'))
    return images


@pytest.mark.parametrize('task', ['det', 'seg'])
def test_subset_draws_exactly_the_most_significant_images(task, digits_root, tmp_path):
    path = tmp_path / 'sig.json'
    write_file(path, 16, lambda i: (i * 7 % 16) / 16)  # a permutation of 0, 1/16, ..., 15/16
    subset = DATASETS.build(dict(type='mmkd.SignificanceSubset', budget=0.3,
                                 significance_file=str(path),
                                 dataset=dataset_cfg(task, digits_root)))
    # ceil(0.3 * 16) = 5 images: significance 15/16 .. 11/16 are images 9, 2, 11, 4, 13
    assert subset.indices == [2, 4, 9, 11, 13] and len(subset) == 5
    assert subset.significance == [14 / 16, 12 / 16, 15 / 16, 13 / 16, 11 / 16]
    assert subset.metainfo == subset.dataset.metainfo
    item = subset[2]
    assert item['data_samples'].img_path.endswith('000009.png')
    assert item['data_samples'].metainfo['significance'] == 15 / 16
    assert subset.get_data_info(2)['img_path'].endswith('000009.png')

    # the training sampler and dataloader see these images only
    loader = Runner.build_dataloader(dict(
        batch_size=2, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=True),
        dataset=subset), seed=0)
    seen = [(osp.basename(s.img_path), s.significance)
            for batch in loader for s in batch['data_samples']]
    assert sorted(seen) == [('000002.png', 14 / 16), ('000004.png', 12 / 16),
                            ('000009.png', 15 / 16), ('000011.png', 13 / 16),
                            ('000013.png', 11 / 16)]


def test_subset_default_file_data_root_and_min_significance(digits_root, tmp_path):
    import shutil
    root = tmp_path / 'digits'
    shutil.copytree(digits_root, root)
    write_file(root / 'images' / 'train.significance.json', 16, lambda i: i / 16)
    cfg = dataset_cfg('seg', '/nowhere')
    subset = SignificanceSubset(cfg, data_root=str(root), min_significance=0.75)
    assert subset.significance_file == str(root / 'images' / 'train.significance.json')
    assert subset.indices == [12, 13, 14, 15]   # budget 1.0, but only these reach 0.75


def test_subset_names_the_file_and_the_tool_when_an_image_is_missing(digits_root, tmp_path):
    path = tmp_path / 'sig.json'
    write_file(path, 10, lambda i: 0.5)     # 16 train images, 10 in the file
    with pytest.raises(KeyError, match=r"sig\.json has no entry for 6 of the 16 images.*"
                       r"images/train/000010\.png.*tools/significance\.py"):
        SignificanceSubset(dataset_cfg('det', digits_root), significance_file=str(path))
    with pytest.raises(FileNotFoundError, match='tools/significance.py'):
        SignificanceSubset(dataset_cfg('det', digits_root),
                           significance_file=str(tmp_path / 'none.json'))
    json.dump({'no': 'images'}, open(path, 'w'))
    with pytest.raises(ValueError, match='not a file written by tools/significance.py'):
        SignificanceSubset(dataset_cfg('det', digits_root), significance_file=str(path))
