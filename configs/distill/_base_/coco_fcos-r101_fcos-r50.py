# COCO, 2x: FCOS R101-caffe GN-head (teacher, mmdet model zoo, 1x, 39.1 box AP) -> FCOS
# R50-caffe (student, ImageNet caffe backbone). Both FPNs give 5 levels (strides 8-128) of 256
# channels. Both use the same caffe-style preprocessing (BGR, mean only).
_base_ = './coco_2x.py'
teacher_ckpt = 'https://download.openmmlab.com/mmdetection/v2.0/fcos/fcos_r101_caffe_fpn_gn-head_1x_coco/fcos_r101_caffe_fpn_gn-head_1x_coco-0e37b982.pth'  # noqa: E501
model = dict(
    student=dict(cfg_path='mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py', pretrained=True),
    teacher=dict(cfg_path='mmdet::fcos/fcos_r101-caffe_fpn_gn-head-1x_coco.py', pretrained=False),
    teacher_ckpt=teacher_ckpt)
# FCOS's own recipe (mmdet fcos_r50-caffe_fpn_gn-head_1x_coco.py) stretched to 24 epochs:
# lr 0.01, doubled bias lr without decay, gradient clipping, constant warm-up.
optim_wrapper = dict(
    optimizer=dict(lr=0.01),
    paramwise_cfg=dict(bias_lr_mult=2., bias_decay_mult=0.),
    clip_grad=dict(max_norm=35, norm_type=2))
param_scheduler = [
    dict(type='ConstantLR', factor=1.0 / 3, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=24, by_epoch=True, milestones=[16, 22], gamma=0.1)
]
