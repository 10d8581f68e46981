# Semantic FPN R18 -> R18 (half width), embedded digits. MGD (MGDLoss) on the 4 FPN levels, mask
# ratio 0.75 (the paper's segmentation setting), weight 2e-5.
_base_ = '../_base_/digits_seg.py'
levels = (0, 1, 2, 3)
fpn = dict(type='ModuleOutputsRecorder', source='neck')
distill_loss = dict(type='MGDLoss', student_channels=128, teacher_channels=128,
                    loss_weight=2e-5, lambda_mgd=0.75)
model = dict(
    student_recorders=dict(fpn=fpn),
    teacher_recorders=dict(fpn=fpn),
    distill_losses={f'loss_mgd_fpn{i}': distill_loss for i in levels},
    loss_forward_mappings={
        f'loss_mgd_fpn{i}': dict(
            preds_S=dict(from_student=True, recorder='fpn', data_idx=i),
            preds_T=dict(from_student=False, recorder='fpn', data_idx=i))
        for i in levels})
