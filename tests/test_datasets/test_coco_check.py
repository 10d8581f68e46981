"""check_coco_annotations: malformed COCO files get an error naming the file, problem, fix."""
import json

import pytest

from mmkd.datasets import check_coco_annotations


def good_coco():
    return dict(
        images=[dict(id=1, file_name='000000.png', width=64, height=64)],
        annotations=[dict(id=1, image_id=1, category_id=1, bbox=[1, 2, 3, 4])],
        categories=[dict(id=1, name='0')])


def test_check_coco_annotations_accepts_good_files(digits_root, tmp_path):
    check_coco_annotations(str(digits_root / 'annotations' / 'instances_train.json'))
    (tmp_path / 'good.json').write_text(json.dumps(good_coco()))
    check_coco_annotations(str(tmp_path / 'good.json'))


def set_path(keys, value):
    """A change to good_coco(): set the item at ``keys`` to ``value``."""
    def change(coco):
        *parents, last = keys
        for key in parents:
            coco = coco[key]
        coco[last] = value
    return change


def delete(keys):
    """A change to good_coco(): delete the item at ``keys``."""
    def change(coco):
        *parents, last = keys
        for key in parents:
            coco = coco[key]
        del coco[last]
    return change


def append_copy(key):
    """A change to good_coco(): repeat the first entry of ``coco[key]`` (same id)."""
    def change(coco):
        coco[key].append(dict(coco[key][0]))
    return change


@pytest.mark.parametrize('change, message', [
    (delete(['categories']), r"misses the top-level key\(s\) \['categories'\]"),
    (set_path(['annotations'], {}), r"non-list top-level value\(s\) \['annotations'\]"),
    (set_path(['annotations', 0, 'image_id'], 7), 'has image_id 7, the id of no image'),
    (set_path(['annotations', 0, 'category_id'], 11), 'has category_id 11, the id of no cat'),
    (set_path(['annotations', 0, 'bbox'], [1, 2, 3]), r'invalid bbox \[1, 2, 3\]'),
    (set_path(['annotations', 0, 'bbox'], [1, 2, -1, 4]), r'invalid bbox \[1, 2, -1, 4\]'),
    (set_path(['annotations', 0, 'bbox'], [1, 2, 3, -4]), r'invalid bbox \[1, 2, 3, -4\]'),
    (set_path(['annotations', 0, 'bbox'], [1, 2, float('nan'), 4]), r'invalid bbox \[1, 2, nan, 4\]'),
    (set_path(['annotations', 0, 'bbox'], '1 2 3 4'), "invalid bbox '1 2 3 4'"),
    (delete(['annotations', 0, 'bbox']), r"annotations entry #0 misses the field\(s\) \['bbox'\]"),
    (delete(['images', 0, 'file_name']), r"images entry #0 misses the field\(s\) \['file_name'\]"),
    (delete(['images', 0, 'height']), r"images entry #0 misses the field\(s\) \['height'\]"),
    (append_copy('images'), 'images entry #1 has the duplicate id 1'),
    (append_copy('annotations'), 'annotations entry #1 has the duplicate id 1'),
    (append_copy('categories'), 'categories entry #1 has the duplicate id 1'),
])
def test_check_coco_annotations_rejects_malformed_files(tmp_path, change, message):
    coco = good_coco()
    change(coco)
    ann_file = tmp_path / 'bad.json'
    ann_file.write_text(json.dumps(coco))
    with pytest.raises(ValueError, match=message) as error:
        check_coco_annotations(str(ann_file))
    assert str(ann_file) in str(error.value) and 'fix: ' in str(error.value)


def test_check_coco_annotations_rejects_unreadable_files(tmp_path):
    with pytest.raises(ValueError, match='missing.json cannot be read'):
        check_coco_annotations(str(tmp_path / 'missing.json'))
    (tmp_path / 'broken.json').write_text('{"images": [')
    with pytest.raises(ValueError, match='broken.json is not valid JSON'):
        check_coco_annotations(str(tmp_path / 'broken.json'))


def test_zero_size_boxes_are_accepted_as_mmdet_skips_them(tmp_path):
    coco = good_coco()
    coco['annotations'][0]['bbox'] = [1, 2, 0, 4]
    (tmp_path / 'zero.json').write_text(json.dumps(coco))
    check_coco_annotations(str(tmp_path / 'zero.json'))


def test_preflight_reads_the_annotations_a_wrapper_points_at(digits_root, tmp_path):
    # SignificanceSubset passes its data_root to the wrapped dataset: the check must look there
    from mmengine.config import Config

    from mmkd.engine.preflight import check_annotation_files
    inner = dict(type='CocoDataset', data_root='/nonexistent/', ann_file='annotations/'
                 'instances_train.json')
    cfg = Config(dict(train_dataloader=dict(dataset=dict(
        type='mmkd.SignificanceSubset', data_root=str(digits_root), dataset=inner))))
    check_annotation_files(cfg)  # the wrapper's root holds a valid file
    cfg.train_dataloader.dataset.data_root = str(tmp_path)
    with pytest.raises((ValueError, FileNotFoundError), match=str(tmp_path)):
        check_annotation_files(cfg)
