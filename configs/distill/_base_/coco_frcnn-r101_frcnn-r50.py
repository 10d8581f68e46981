# COCO, 2x: Faster R-CNN R101 (teacher, mmdet model zoo, 39.8 box AP) -> Faster R-CNN R50
# (student, ImageNet backbone). Both FPNs give 5 levels (strides 4-64; P6 is a max-pool of P5
# used by the RPN only) of 256 channels.
_base_ = './coco_2x.py'
teacher_ckpt = 'https://download.openmmlab.com/mmdetection/v2.0/faster_rcnn/faster_rcnn_r101_fpn_2x_coco/faster_rcnn_r101_fpn_2x_coco_bbox_mAP-0.398_20200504_210455-1d2dac9c.pth'  # noqa: E501
model = dict(
    student=dict(cfg_path='mmdet::faster_rcnn/faster-rcnn_r50_fpn_2x_coco.py', pretrained=True),
    teacher=dict(cfg_path='mmdet::faster_rcnn/faster-rcnn_r101_fpn_2x_coco.py',
                 pretrained=False),
    teacher_ckpt=teacher_ckpt)
