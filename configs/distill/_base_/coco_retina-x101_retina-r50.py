# COCO, 2x: RetinaNet X101-64x4d (teacher, mmdet model zoo, 40.8 box AP) -> RetinaNet R50
# (student, ImageNet backbone). Both FPNs give 5 levels (strides 8-128) of 256 channels, so the
# method configs need no connector. A method config adds its recipe (or losses and mappings).
_base_ = './coco_2x.py'
teacher_ckpt = 'https://download.openmmlab.com/mmdetection/v2.0/retinanet/retinanet_x101_64x4d_fpn_2x_coco/retinanet_x101_64x4d_fpn_2x_coco_20200131-bca068ab.pth'  # noqa: E501
model = dict(
    student=dict(cfg_path='mmdet::retinanet/retinanet_r50_fpn_2x_coco.py', pretrained=True),
    teacher=dict(cfg_path='mmdet::retinanet/retinanet_x101-64x4d_fpn_2x_coco.py',
                 pretrained=False),
    teacher_ckpt=teacher_ckpt)
