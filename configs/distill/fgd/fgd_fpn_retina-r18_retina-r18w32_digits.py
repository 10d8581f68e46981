# RetinaNet R18 -> R18 (half width), embedded digits. FGD (FGDLoss with the batch's GT boxes) on
# the 3 FPN levels with the paper's RetinaNet weights (the loss defaults); the schedule already
# clips gradients at 35 as FGD does.
_base_ = '../_base_/digits_det.py'
levels = (0, 1, 2)
distill_loss = dict(type='FGDLoss', student_channels=128, teacher_channels=128)
model = dict(
    distill_losses={f'loss_fgd_fpn{i}': distill_loss for i in levels},
    loss_forward_mappings={
        f'loss_fgd_fpn{i}': dict(
            preds_S=dict(from_student=True, recorder='fpn', data_idx=i),
            preds_T=dict(from_student=False, recorder='fpn', data_idx=i),
            data_samples=dict(from_data='data_samples'))
        for i in levels})
