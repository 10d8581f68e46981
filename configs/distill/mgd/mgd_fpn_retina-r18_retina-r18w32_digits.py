# RetinaNet R18 -> R18 (half width), embedded digits. MGD (MGDLoss) on the 3 FPN levels, mask
# ratio 0.65, weight 2e-5 (the paper's detection setting).
_base_ = '../_base_/digits_det.py'
levels = (0, 1, 2)
distill_loss = dict(type='MGDLoss', student_channels=128, teacher_channels=128,
                    loss_weight=2e-5, lambda_mgd=0.65)
model = dict(
    distill_losses={f'loss_mgd_fpn{i}': distill_loss for i in levels},
    loss_forward_mappings={
        f'loss_mgd_fpn{i}': dict(
            preds_S=dict(from_student=True, recorder='fpn', data_idx=i),
            preds_T=dict(from_student=False, recorder='fpn', data_idx=i))
        for i in levels})
