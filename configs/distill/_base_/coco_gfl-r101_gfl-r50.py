# COCO, 2x: GFL R101 (teacher, mmdet model zoo, multi-scale 2x, 44.7 box AP) -> GFL R50
# (student, ImageNet backbone). Both FPNs give 5 levels (strides 8-128) of 256 channels.
_base_ = [
    'mmdet::_base_/datasets/coco_detection.py',
    'mmdet::_base_/schedules/schedule_2x.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)
teacher_ckpt = 'https://download.openmmlab.com/mmdetection/v2.0/gfl/gfl_r101_fpn_mstrain_2x_coco/gfl_r101_fpn_mstrain_2x_coco_20200629_200126-dd12f847.pth'  # noqa: E501
model = dict(
    _scope_='mmkd',
    type='Distiller',
    student=dict(cfg_path='mmdet::gfl/gfl_r50_fpn_1x_coco.py', pretrained=True),
    teacher=dict(cfg_path='mmdet::gfl/gfl_r101_fpn_ms-2x_coco.py', pretrained=False),
    # A cheaper teacher (README, "How to choose the teacher settings"), e.g. on GPUs:
    # teacher_precision='fp16', teacher_channels_last=True,
    teacher_ckpt=teacher_ckpt,
    student_recorders=dict(fpn=dict(type='ModuleOutputsRecorder', source='neck')),
    teacher_recorders=dict(fpn=dict(type='ModuleOutputsRecorder', source='neck')))
val_cfg = dict(_delete_=True, type='mmkd.DistillValLoop')
