# COCO detection, 2x schedule (mmdet's dataset, schedule and runtime bases): what the COCO pair
# bases share. Each adds its student, teacher and teacher_ckpt; all their FPNs give 5 levels,
# recorded as 'fpn' on both sides.
_base_ = [
    'mmdet::_base_/datasets/coco_detection.py',
    'mmdet::_base_/schedules/schedule_2x.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)
model = dict(
    _scope_='mmkd',
    type='Distiller',
    # A cheaper teacher (README, "How to choose the teacher settings"), e.g. on GPUs:
    # teacher_precision='fp16', teacher_channels_last=True,
    student_recorders=dict(fpn=dict(type='ModuleOutputsRecorder', source='neck')),
    teacher_recorders=dict(fpn=dict(type='ModuleOutputsRecorder', source='neck')))
val_cfg = dict(_delete_=True, type='mmkd.DistillValLoop')
