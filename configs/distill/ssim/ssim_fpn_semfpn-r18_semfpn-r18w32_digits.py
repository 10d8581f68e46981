# Semantic FPN R18 -> R18 (half width), embedded digits. Structural KD (SSIMLoss) on the 4 FPN
# levels, weight 2.
_base_ = '../_base_/digits_seg.py'
levels = (0, 1, 2, 3)
fpn = dict(type='ModuleOutputsRecorder', source='neck')
distill_loss = dict(type='SSIMLoss', loss_weight=2.0)
model = dict(
    student_recorders=dict(fpn=fpn),
    teacher_recorders=dict(fpn=fpn),
    distill_losses={f'loss_ssim_fpn{i}': distill_loss for i in levels},
    loss_forward_mappings={
        f'loss_ssim_fpn{i}': dict(
            preds_S=dict(from_student=True, recorder='fpn', data_idx=i),
            preds_T=dict(from_student=False, recorder='fpn', data_idx=i))
        for i in levels})
