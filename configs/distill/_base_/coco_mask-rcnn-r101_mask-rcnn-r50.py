# COCO instance segmentation, 2x: Mask R-CNN R101 (teacher, mmdet model zoo, 40.8 box / 36.6
# mask AP) -> Mask R-CNN R50 (student, ImageNet backbone). Both FPNs give 5 levels (strides
# 4-64) of 256 channels. mmdet's instance data (masks loaded, box and mask mAP).
_base_ = [
    'mmdet::_base_/datasets/coco_instance.py',
    './coco_2x_distiller.py',
]
teacher_ckpt = 'https://download.openmmlab.com/mmdetection/v2.0/mask_rcnn/mask_rcnn_r101_fpn_2x_coco/mask_rcnn_r101_fpn_2x_coco_bbox_mAP-0.408__segm_mAP-0.366_20200505_071027-14b391c7.pth'  # noqa: E501
model = dict(
    student=dict(cfg_path='mmdet::mask_rcnn/mask-rcnn_r50_fpn_2x_coco.py', pretrained=True),
    teacher=dict(cfg_path='mmdet::mask_rcnn/mask-rcnn_r101_fpn_2x_coco.py', pretrained=False),
    teacher_ckpt=teacher_ckpt)
