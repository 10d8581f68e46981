# FitNet (MSE) on the 4 FPN levels: Semantic FPN R18 teacher -> half-width R18 student,
# embedded digits dataset. Both necks output 128 channels, so no connector is needed.
_base_ = [
    '../../_base_/datasets/digits_segmentation.py',
    '../../_base_/schedules/adamw_600it.py',
    '../../_base_/seg_runtime.py',
]
teacher_ckpt = 'work_dirs/semfpn_r18_digits/iter_600.pth'
levels = (0, 1, 2, 3)
model = dict(
    _scope_='mmkd',
    type='Distiller',
    student=dict(cfg_path='{{ fileDirname }}/../../digits/semfpn_r18-w32_digits.py'),
    teacher=dict(cfg_path='{{ fileDirname }}/../../digits/semfpn_r18_digits.py'),
    teacher_ckpt=teacher_ckpt,
    student_recorders=dict(fpn=dict(type='ModuleOutputsRecorder', source='neck')),
    teacher_recorders=dict(fpn=dict(type='ModuleOutputsRecorder', source='neck')),
    distill_losses={f'loss_fpn{i}': dict(type='MSEFeatureLoss', loss_weight=1.0) for i in levels},
    loss_forward_mappings={
        f'loss_fpn{i}': dict(
            preds_S=dict(from_student=True, recorder='fpn', data_idx=i),
            preds_T=dict(from_student=False, recorder='fpn', data_idx=i))
        for i in levels
    })
val_cfg = dict(_delete_=True, type='mmkd.DistillValLoop', evaluate_teacher=False)
