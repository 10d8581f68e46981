# COCO, 2x: FCOS R101-caffe GN-head (teacher, mmdet model zoo, 1x, 39.1 box AP) -> FCOS
# R50-caffe (student, ImageNet caffe backbone). Both FPNs give 5 levels (strides 8-128) of 256
# channels. Both use the same caffe-style preprocessing (BGR, mean only).
_base_ = [
    'mmdet::_base_/datasets/coco_detection.py',
    'mmdet::_base_/schedules/schedule_2x.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)
teacher_ckpt = 'https://download.openmmlab.com/mmdetection/v2.0/fcos/fcos_r101_caffe_fpn_gn-head_1x_coco/fcos_r101_caffe_fpn_gn-head_1x_coco-0e37b982.pth'  # noqa: E501
model = dict(
    _scope_='mmkd',
    type='Distiller',
    student=dict(cfg_path='mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py', pretrained=True),
    teacher=dict(cfg_path='mmdet::fcos/fcos_r101-caffe_fpn_gn-head-1x_coco.py', pretrained=False),
    # A cheaper teacher (README, "How to choose the teacher settings"), e.g. on GPUs:
    # teacher_precision='fp16', teacher_channels_last=True,
    teacher_ckpt=teacher_ckpt,
    student_recorders=dict(fpn=dict(type='ModuleOutputsRecorder', source='neck')),
    teacher_recorders=dict(fpn=dict(type='ModuleOutputsRecorder', source='neck')))
val_cfg = dict(_delete_=True, type='mmkd.DistillValLoop')
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
