# Embedded digits dataset (CPU): DINO R18 (teacher, trained first with
# configs/digits/dino_r18_digits.py) -> DINO R18 of half the width (student), on the digits
# RetinaNet pair's data, schedule and runtime (./digits_det.py). Both transformers are 256-d with
# 1 encoder and 2 decoder layers over 3 levels (strides 8-32) and 30 queries; the optimizer is
# the digits DINO's (AdamW 2e-4, gradient clipped at 0.1). DETR methods read the decoders, not
# the necks: no recorders here; a method config adds its wiring.
_base_ = './digits_det.py'
teacher_ckpt = 'work_dirs/dino_r18_digits/iter_600.pth'
model = dict(
    student=dict(cfg_path='{{ fileDirname }}/../../digits/dino_r18-w32_digits.py'),
    teacher=dict(cfg_path='{{ fileDirname }}/../../digits/dino_r18_digits.py'),
    teacher_ckpt=teacher_ckpt,
    student_recorders=dict(_delete_=True),
    teacher_recorders=dict(_delete_=True))
optim_wrapper = dict(
    optimizer=dict(lr=2e-4, weight_decay=1e-4),
    clip_grad=dict(max_norm=0.1, norm_type=2))
