# RetinaNet R18 -> R18 (half width), embedded digits. PKD (PKDLoss) on all 3 FPN levels (on COCO
# levels 0-3 of 5: the coarsest is left out; here the coarsest, 4x4, still holds whole digits),
# weight 10 as the one-stage COCO configs.
_base_ = '../_base_/digits_det.py'
levels = (0, 1, 2)
distill_loss = dict(type='PKDLoss', loss_weight=10.0)
model = dict(
    distill_losses={f'loss_pkd_fpn{i}': distill_loss for i in levels},
    loss_forward_mappings={
        f'loss_pkd_fpn{i}': dict(
            preds_S=dict(from_student=True, recorder='fpn', data_idx=i),
            preds_T=dict(from_student=False, recorder='fpn', data_idx=i))
        for i in levels})
