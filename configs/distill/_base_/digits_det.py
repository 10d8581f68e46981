# Embedded digits dataset (CPU): RetinaNet R18 (teacher, trained first with
# configs/digits/retinanet_r18_digits.py) -> RetinaNet R18 of half the width (student). Both
# necks give 3 levels (strides 8, 16, 32: 16x16, 8x8 and 4x4 cells at 128 px) of 128 channels,
# so no connector is needed. A method config adds distill_losses and their mappings; the
# structure is that of ../fitnet/fitnet_fpn_retina-r18_retina-r18w32_digits.py.
_base_ = [
    '../../_base_/datasets/digits_detection.py',
    '../../_base_/schedules/adamw_600it.py',
    '../../_base_/det_runtime.py',
]
teacher_ckpt = 'work_dirs/retinanet_r18_digits/iter_600.pth'
model = dict(
    _scope_='mmkd',
    type='Distiller',
    student=dict(cfg_path='{{ fileDirname }}/../../digits/retinanet_r18-w32_digits.py'),
    teacher=dict(cfg_path='{{ fileDirname }}/../../digits/retinanet_r18_digits.py'),
    # Teacher execution (docs/en/user_guides/teacher_settings.md): precision None runs the
    # teacher in the student's autocast; 'bf16' pays on GPUs and on CPUs with native bfloat16
    # only, 'fp16' on CUDA only.
    teacher_precision=None,
    teacher_channels_last=False,
    teacher_early_stop=True,
    teacher_ckpt=teacher_ckpt,
    student_recorders=dict(fpn=dict(type='ModuleOutputsRecorder', source='neck')),
    teacher_recorders=dict(fpn=dict(type='ModuleOutputsRecorder', source='neck')))
val_cfg = dict(_delete_=True, type='mmkd.DistillValLoop', evaluate_teacher=False)
