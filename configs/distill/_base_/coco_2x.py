# COCO detection, 2x schedule (mmdet's dataset, schedule and runtime bases): what the COCO
# detection pair bases share. Each adds its student, teacher and teacher_ckpt; all their FPNs
# give 5 levels, recorded as 'fpn' on both sides (coco_2x_distiller.py).
_base_ = [
    'mmdet::_base_/datasets/coco_detection.py',
    './coco_2x_distiller.py',
]
