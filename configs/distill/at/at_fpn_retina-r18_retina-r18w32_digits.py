# RetinaNet R18 -> R18 (half width), embedded digits. Attention transfer (ATLoss, p = 2) on the 3
# FPN levels, weight 500 (beta / 2, beta = 1000 as in the AT paper).
_base_ = '../_base_/digits_det.py'
levels = (0, 1, 2)
distill_loss = dict(type='ATLoss', loss_weight=500.0, p=2)
model = dict(
    distill_losses={f'loss_at_fpn{i}': distill_loss for i in levels},
    loss_forward_mappings={
        f'loss_at_fpn{i}': dict(
            preds_S=dict(from_student=True, recorder='fpn', data_idx=i),
            preds_T=dict(from_student=False, recorder='fpn', data_idx=i))
        for i in levels})
