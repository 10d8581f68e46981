# What the COCO pair bases share besides their data: mmdet's 2x schedule and runtime, and the
# Distiller with 'fpn' recorders on both necks. coco_2x.py adds COCO detection data; a pair
# with other data (coco_mask-rcnn-*: instance masks) takes mmdet's dataset base next to it.
_base_ = [
    'mmdet::_base_/schedules/schedule_2x.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)
model = dict(
    _scope_='mmkd',
    type='Distiller',
    # A cheaper teacher (docs/en/user_guides/teacher_settings.md), e.g. on GPUs:
    # teacher_precision='fp16', teacher_channels_last=True,
    student_recorders=dict(fpn=dict(type='ModuleOutputsRecorder', source='neck')),
    teacher_recorders=dict(fpn=dict(type='ModuleOutputsRecorder', source='neck')))
val_cfg = dict(_delete_=True, type='mmkd.DistillValLoop')
