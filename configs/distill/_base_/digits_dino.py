# Embedded digits dataset (CPU): DINO R18 (teacher, trained first with
# configs/digits/dino_r18_digits.py) -> DINO R18 of half the width (student). Both transformers
# are 256-d with 1 encoder and 2 decoder layers over 3 levels (strides 8-32) and 30 queries; the
# optimizer is the digits DINO's (AdamW 2e-4, gradient clipped at 0.1). A method config adds
# its wiring (DETR methods read the decoders, not the necks: no recorders here).
_base_ = [
    '../../_base_/datasets/digits_detection.py',
    '../../_base_/schedules/adamw_600it.py',
    '../../_base_/det_runtime.py',
]
teacher_ckpt = 'work_dirs/dino_r18_digits/iter_600.pth'
model = dict(
    _scope_='mmkd',
    type='Distiller',
    student=dict(cfg_path='{{ fileDirname }}/../../digits/dino_r18-w32_digits.py'),
    teacher=dict(cfg_path='{{ fileDirname }}/../../digits/dino_r18_digits.py'),
    teacher_precision=None,
    teacher_channels_last=False,
    teacher_early_stop=True,
    teacher_ckpt=teacher_ckpt)
optim_wrapper = dict(
    optimizer=dict(lr=2e-4, weight_decay=1e-4),
    clip_grad=dict(max_norm=0.1, norm_type=2))
val_cfg = dict(_delete_=True, type='mmkd.DistillValLoop', evaluate_teacher=False)
