# GFL R18 and RetinaNet R18 (two teachers of different families; train them first with
# configs/digits/gfl_r18_digits.py and configs/digits/retinanet_r18_digits.py) -> RetinaNet R18 of
# half the width (student), embedded digits. Several teachers
# (docs/en/user_guides/multiple_teachers.md): each teacher entry has its own model, checkpoint and
# recorders (and may have its own forward_mode, precision, channels_last, early_stop); each
# loss-input spec names the teacher it reads. One FitNet-style MSE path (MSEFeatureLoss, weight 1)
# per teacher and FPN level (all three necks: strides 8-32, 128 channels, no connector), six paths
# combined by uncertainty weighting (Chennupati et al., BMVC 2021): one learnable, clamped
# log-variance per path, exp(-alpha) * L + alpha, so the paths of the two teachers are weighed
# against each other. Each path's weight is logged as distill_weight.<path>.
_base_ = [
    '../../_base_/datasets/digits_detection.py',
    '../../_base_/schedules/adamw_600it.py',
    '../../_base_/det_runtime.py',
]
fpn = dict(type='ModuleOutputsRecorder', source='neck')
levels = 3
model = dict(
    _scope_='mmkd',
    type='Distiller',
    student=dict(cfg_path='{{ fileDirname }}/../../digits/retinanet_r18-w32_digits.py'),
    teachers=dict(
        gfl=dict(cfg_path='{{ fileDirname }}/../../digits/gfl_r18_digits.py',
                 ckpt='work_dirs/gfl_r18_digits/iter_600.pth', recorders=dict(fpn=fpn)),
        retina=dict(cfg_path='{{ fileDirname }}/../../digits/retinanet_r18_digits.py',
                    ckpt='work_dirs/retinanet_r18_digits/iter_600.pth',
                    recorders=dict(fpn=fpn))),
    # Shared by both teachers unless an entry sets its own
    # (docs/en/user_guides/teacher_settings.md).
    teacher_precision=None,
    teacher_channels_last=False,
    teacher_early_stop=True,
    student_recorders=dict(fpn=fpn),
    distill_losses={f'loss_{teacher}_fpn{i}': dict(type='MSEFeatureLoss', loss_weight=1.0)
                    for teacher in ('gfl', 'retina') for i in range(levels)},
    loss_forward_mappings={
        f'loss_{teacher}_fpn{i}': dict(
            preds_S=dict(from_student=True, recorder='fpn', data_idx=i),
            preds_T=dict(from_student=False, teacher=teacher, recorder='fpn', data_idx=i))
        for teacher in ('gfl', 'retina') for i in range(levels)},
    weighting=dict(type='UncertaintyWeighting'))
val_cfg = dict(_delete_=True, type='mmkd.DistillValLoop', evaluate_teacher=False)
# Path weights (weighting.*) get no weight decay; the teachers are not in the optimizer.
optim_wrapper = dict(constructor='mmkd.DistillOptimWrapperConstructor')
