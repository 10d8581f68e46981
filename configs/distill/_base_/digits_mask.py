# Embedded digits dataset with instance masks (CPU): Mask R-CNN R18 (teacher, trained first with
# configs/digits/mask-rcnn_r18_digits.py) -> Mask R-CNN R18 of half the width (student). Both
# necks give 3 levels (strides 8, 16, 32) of 128 channels. Evaluated with COCO box and mask
# (segm) mAP. A method config adds distill_losses and their mappings (or recipes).
_base_ = [
    '../../_base_/datasets/digits_instance.py',
    '../../_base_/schedules/adamw_600it.py',
    '../../_base_/det_runtime.py',
]
teacher_ckpt = 'work_dirs/mask-rcnn_r18_digits/iter_600.pth'
model = dict(
    _scope_='mmkd',
    type='Distiller',
    student=dict(cfg_path='{{ fileDirname }}/../../digits/mask-rcnn_r18-w32_digits.py'),
    teacher=dict(cfg_path='{{ fileDirname }}/../../digits/mask-rcnn_r18_digits.py'),
    teacher_ckpt=teacher_ckpt,
    student_recorders=dict(fpn=dict(type='ModuleOutputsRecorder', source='neck')),
    teacher_recorders=dict(fpn=dict(type='ModuleOutputsRecorder', source='neck')))
val_cfg = dict(_delete_=True, type='mmkd.DistillValLoop', evaluate_teacher=False)
