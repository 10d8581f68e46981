"""Validation of COCO-format annotation files, run before training builds anything.

mmdet reads COCO files through pycocotools, which fails late (after the model is built) and
deep in its own code on a malformed file; this check names the file, the problem and the fix.
"""
import json
import math
from typing import Tuple


def check_coco_annotations(ann_file: str) -> None:
    """Raise ``ValueError`` naming the file, the problem and the fix if ``ann_file`` is not a
    consistent COCO detection file; return None otherwise.

    Checks: readable JSON object with ``images``, ``annotations`` and ``categories`` lists;
    required fields present; ids unique per list; every annotation's ``image_id`` and
    ``category_id`` exist; every ``bbox`` is ``[x, y, w, h]`` of finite numbers with w, h >= 0.
    Linear in the file size (set lookups), so fine on full COCO.
    """
    try:
        with open(ann_file) as f:
            coco = json.load(f)
    except OSError as e:
        raise _error(ann_file, f'cannot be read ({e})',
                     "check the path (a dataset's ann_file is relative to its data_root)") from e
    except ValueError as e:  # json.JSONDecodeError and UnicodeDecodeError
        raise _error(ann_file, f'is not valid JSON ({e})', 'regenerate or repair it') from e

    required = ('images', 'annotations', 'categories')
    missing = [key for key in required if not isinstance(coco, dict) or key not in coco]
    if missing:
        raise _error(ann_file, f'misses the top-level key(s) {missing}',
                     'a COCO file is a JSON object with the lists "images", "annotations" '
                     'and "categories"')
    not_lists = [key for key in required if not isinstance(coco[key], list)]
    if not_lists:
        raise _error(ann_file, f'has non-list top-level value(s) {not_lists}', 'make them lists')

    image_ids = _check_entries(ann_file, coco, 'images', ('id', 'file_name', 'width', 'height'))
    category_ids = _check_entries(ann_file, coco, 'categories', ('id', 'name'))
    _check_entries(ann_file, coco, 'annotations', ('id', 'image_id', 'category_id', 'bbox'))
    for i, ann in enumerate(coco['annotations']):
        where = f'annotation #{i} (id {ann["id"]!r})'
        if ann['image_id'] not in image_ids:
            raise _error(ann_file, f'{where} has image_id {ann["image_id"]!r}, the id of no image',
                         'point it to an entry of "images" or add that image')
        if ann['category_id'] not in category_ids:
            raise _error(ann_file,
                         f'{where} has category_id {ann["category_id"]!r}, the id of no category',
                         'point it to an entry of "categories" or add that category')
        if not _is_valid_bbox(ann['bbox']):
            raise _error(ann_file, f'{where} has the invalid bbox {ann["bbox"]!r}',
                         'a bbox is [x, y, w, h] in pixels: 4 finite numbers with w >= 0, h >= 0')


def _check_entries(ann_file: str, coco: dict, key: str, fields: Tuple[str, ...]) -> set:
    """Check that every entry of ``coco[key]`` is an object with ``fields`` and a unique id;
    returns the ids."""
    ids = set()
    for i, entry in enumerate(coco[key]):
        missing = [field for field in fields if not isinstance(entry, dict) or field not in entry]
        if missing:
            raise _error(ann_file, f'{key} entry #{i} misses the field(s) {missing}',
                         f'every entry of "{key}" needs {list(fields)}')
        if entry['id'] in ids:
            raise _error(ann_file, f'{key} entry #{i} has the duplicate id {entry["id"]!r}',
                         f'give every entry of "{key}" its own id')
        ids.add(entry['id'])
    return ids


def _is_valid_bbox(bbox) -> bool:
    """Whether ``bbox`` is ``[x, y, w, h]`` of finite numbers with ``w, h >= 0``.

    Zero-size boxes are allowed: real datasets have a few and mmdet skips them when loading.
    """
    return (isinstance(bbox, list) and len(bbox) == 4
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                    for v in bbox) and bbox[2] >= 0 and bbox[3] >= 0)


def _error(ann_file: str, problem: str, fix: str) -> ValueError:
    return ValueError(f'COCO annotation file {ann_file} {problem}; fix: {fix}.')
