# COCO, 2x: RetinaNet X101-64x4d (teacher, mmdet model zoo, 40.8 box AP) -> RetinaNet R50
# (student, ImageNet backbone). Both FPNs give 5 levels (strides 8-128) of 256 channels, so the
# method configs need no connector. A method config adds distill_losses and their mappings.
_base_ = [
    'mmdet::_base_/datasets/coco_detection.py',
    'mmdet::_base_/schedules/schedule_2x.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)
teacher_ckpt = 'https://download.openmmlab.com/mmdetection/v2.0/retinanet/retinanet_x101_64x4d_fpn_2x_coco/retinanet_x101_64x4d_fpn_2x_coco_20200131-bca068ab.pth'  # noqa: E501
model = dict(
    _scope_='mmkd',
    type='Distiller',
    student=dict(cfg_path='mmdet::retinanet/retinanet_r50_fpn_2x_coco.py', pretrained=True),
    teacher=dict(cfg_path='mmdet::retinanet/retinanet_x101-64x4d_fpn_2x_coco.py',
                 pretrained=False),
    # A cheaper teacher (README, "How to choose the teacher settings"), e.g. on GPUs:
    # teacher_precision='fp16', teacher_channels_last=True,
    teacher_ckpt=teacher_ckpt,
    student_recorders=dict(fpn=dict(type='ModuleOutputsRecorder', source='neck')),
    teacher_recorders=dict(fpn=dict(type='ModuleOutputsRecorder', source='neck')))
val_cfg = dict(_delete_=True, type='mmkd.DistillValLoop')
