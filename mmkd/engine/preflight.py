"""Checks of a config's inputs that run before the Runner builds anything."""
import os.path as osp

from mmengine.config import Config

DATALOADER_KEYS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def _datasets(dataset_cfg, data_root=None):
    """``(dataset config, its data root)`` for a dataset config and those it wraps
    (RepeatDataset, ConcatDataset, ...). A wrapper's own ``data_root`` (``SignificanceSubset``)
    replaces the wrapped dataset's, as the wrapper does when it builds it."""
    if not isinstance(dataset_cfg, dict):
        return
    data_root = data_root or dataset_cfg.get('data_root')
    yield dataset_cfg, data_root
    yield from _datasets(dataset_cfg.get('dataset'), data_root)
    for child in dataset_cfg.get('datasets', []) or []:
        yield from _datasets(child)


def check_annotation_files(cfg: Config) -> None:
    """Validate every COCO-style json a dataloader of ``cfg`` will read.

    Raises ``ValueError`` naming the file and the problem (mmdet would otherwise fail deep in
    pycocotools, after the model was built).
    """
    from mmkd.datasets import check_coco_annotations
    for key in DATALOADER_KEYS:
        loader = cfg.get(key)
        if not isinstance(loader, dict):
            continue
        for dataset, data_root in _datasets(loader.get('dataset')):
            ann_file = dataset.get('ann_file')
            if not ann_file or not str(ann_file).endswith('.json'):
                continue
            if not osp.isabs(ann_file) and data_root:
                ann_file = osp.join(data_root, ann_file)
            check_coco_annotations(ann_file)
