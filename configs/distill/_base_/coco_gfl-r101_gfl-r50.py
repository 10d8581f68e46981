# COCO, 2x: GFL R101 (teacher, mmdet model zoo, multi-scale 2x, 44.7 box AP) -> GFL R50
# (student, ImageNet backbone). Both FPNs give 5 levels (strides 8-128) of 256 channels.
_base_ = './coco_2x.py'
teacher_ckpt = 'https://download.openmmlab.com/mmdetection/v2.0/gfl/gfl_r101_fpn_mstrain_2x_coco/gfl_r101_fpn_mstrain_2x_coco_20200629_200126-dd12f847.pth'  # noqa: E501
model = dict(
    student=dict(cfg_path='mmdet::gfl/gfl_r50_fpn_1x_coco.py', pretrained=True),
    teacher=dict(cfg_path='mmdet::gfl/gfl_r101_fpn_ms-2x_coco.py', pretrained=False),
    teacher_ckpt=teacher_ckpt)
