# RetinaNet R18 -> R18 (half width), embedded digits. CWD (CWDLoss) on the 3 FPN levels, tau 1,
# weight 10 as the COCO configs.
_base_ = '../_base_/digits_det.py'
levels = (0, 1, 2)
distill_loss = dict(type='CWDLoss', loss_weight=10.0, tau=1.0)
model = dict(
    distill_losses={f'loss_cwd_fpn{i}': distill_loss for i in levels},
    loss_forward_mappings={
        f'loss_cwd_fpn{i}': dict(
            preds_S=dict(from_student=True, recorder='fpn', data_idx=i),
            preds_T=dict(from_student=False, recorder='fpn', data_idx=i))
        for i in levels})
