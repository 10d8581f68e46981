"""The shipped teacher / student pairs and, per pair, every method config that distills it.

A method config is ``configs/distill/<family>/<method>_<pair suffix>``, e.g.
``configs/distill/fitnet/fitnet_fpn_retina-r18_retina-r18w32_digits.py``: method
``fitnet_fpn`` of pair ``digits_det``. The overhead benchmark measures every method of a pair,
the accuracy benchmark trains every method of the two digits pairs; both find them here, so a
new config is picked up by both without a list to edit.
"""
import glob
import os.path as osp
from typing import Dict, List, Optional

from mmkd.apis import CONFIGS
from mmkd.utils import closest_names

DISTILL_CONFIGS = osp.join(CONFIGS, 'distill')
# Cityscapes PSPNet uses SyncBN, which needs a process group: plain BN for the measurement.
PLAIN_BN = {f'model.{part}.norm_cfg': dict(type='BN', requires_grad=True)
            for part in ('backbone', 'decode_head', 'auxiliary_head')}
#: pair name -> (config file suffix, task ('det', 'seg', or 'ins': boxes with instance masks),
#: default (H, W) of the images, model cfg_options)
PAIRS = {
    'digits_det': ('_retina-r18_retina-r18w32_digits.py', 'det', (128, 128), {}),
    'digits_seg': ('_semfpn-r18_semfpn-r18w32_digits.py', 'seg', (128, 128), {}),
    'digits_mask': ('_mask-rcnn-r18_mask-rcnn-r18w32_digits.py', 'ins', (128, 128), {}),
    # two teachers (GFL and RetinaNet R18) into the digits_det student
    'digits_det_2t': ('_gfl-r18+retina-r18_retina-r18w32_digits.py', 'det', (128, 128), {}),
    'digits_detr': ('_dino-r18_dino-r18w32_digits.py', 'det', (128, 128), {}),
    'coco_retina': ('_retina-x101_retina-r50_8xb2-2x_coco.py', 'det', (800, 1333), {}),
    'coco_fcos': ('_fcos-r101_fcos-r50_8xb2-2x_coco.py', 'det', (800, 1333), {}),
    'coco_gfl': ('_gfl-r101_gfl-r50_8xb2-2x_coco.py', 'det', (800, 1333), {}),
    'coco_frcnn': ('_frcnn-r101_frcnn-r50_8xb2-2x_coco.py', 'det', (800, 1333), {}),
    'coco_dino': ('_dino-r50_dino-r18_8xb2-12e_coco.py', 'det', (800, 1333), {}),
    'cityscapes_pspnet': ('_pspnet-r101_pspnet-r18_4xb2-80k_cityscapes-512x1024.py', 'seg',
                          (512, 1024), PLAIN_BN),
    # the segmentation distillation papers' pairs (DIST, CIRKD, MasKD, Af-DCD)
    'cityscapes_dlv3': ('_deeplabv3-r101_deeplabv3-r18_8xb2-40k_cityscapes-512x1024.py', 'seg',
                        (512, 1024), PLAIN_BN),
    'cityscapes_dlv3_psp': ('_deeplabv3-r101_pspnet-r18_8xb2-40k_cityscapes-512x1024.py',
                            'seg', (512, 1024), PLAIN_BN),
}


def method_configs(pair: str, methods: Optional[List[str]] = None) -> Dict[str, str]:
    """``{method name: config path}`` of every shipped method config of ``pair`` (sorted by
    path), or of ``methods`` in their order; an unknown method raises a ValueError that names
    the closest ones.

    Example:
        >>> osp.basename(method_configs('digits_det', ['fitnet_fpn'])['fitnet_fpn'])
        'fitnet_fpn_retina-r18_retina-r18w32_digits.py'
    """
    suffix = PAIRS[pair][0]
    found = {osp.basename(p)[:-len(suffix)]: p
             for p in sorted(glob.glob(f'{DISTILL_CONFIGS}/*/*{suffix}'))}
    if not methods:
        return found
    unknown = [m for m in methods if m not in found]
    if unknown:
        raise ValueError(f'No {pair} config for {unknown}; the closest are '
                         f'{closest_names(unknown[0], list(found))} (all: {sorted(found)}).')
    return {m: found[m] for m in methods}
