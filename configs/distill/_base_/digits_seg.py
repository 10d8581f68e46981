# Embedded digits dataset (CPU): Semantic FPN R18 (teacher, trained first with
# configs/digits/semfpn_r18_digits.py) -> Semantic FPN R18 of half the width (student). Both
# necks give 4 levels (strides 4-32: 32x32 to 4x4 cells at 128 px) of 128 channels; the decode
# heads' logits (decode_head.conv_seg) have 11 classes at stride 4. A method config adds the
# recorders it reads (neck or logits), distill_losses and their mappings; the structure is that
# of ../fitnet/fitnet_fpn_semfpn-r18_semfpn-r18w32_digits.py.
_base_ = [
    '../../_base_/datasets/digits_segmentation.py',
    '../../_base_/schedules/adamw_600it.py',
    '../../_base_/seg_runtime.py',
]
teacher_ckpt = 'work_dirs/semfpn_r18_digits/iter_600.pth'
model = dict(
    _scope_='mmkd',
    type='Distiller',
    student=dict(cfg_path='{{ fileDirname }}/../../digits/semfpn_r18-w32_digits.py'),
    teacher=dict(cfg_path='{{ fileDirname }}/../../digits/semfpn_r18_digits.py'),
    # Teacher execution (docs/en/user_guides/teacher_settings.md): precision None runs the
    # teacher in the student's autocast; 'bf16' pays on GPUs and on CPUs with native bfloat16
    # only, 'fp16' on CUDA only.
    teacher_precision=None,
    teacher_channels_last=False,
    teacher_early_stop=True,
    teacher_ckpt=teacher_ckpt)
val_cfg = dict(_delete_=True, type='mmkd.DistillValLoop', evaluate_teacher=False)
