# FCOS R101 -> R50, COCO 2x. Attention transfer (ATLoss, p = 2) on the 5 FPN levels. Weight 500 =
# beta / 2 with the AT paper's beta = 1000 (its code adds beta / 2 * the same mean squared
# error). AT was published for classification; this is the usual feature-map transfer.
_base_ = '../_base_/coco_fcos-r101_fcos-r50.py'
levels = (0, 1, 2, 3, 4)
distill_loss = dict(type='ATLoss', loss_weight=500.0, p=2)
model = dict(
    distill_losses={f'loss_at_fpn{i}': distill_loss for i in levels},
    loss_forward_mappings={
        f'loss_at_fpn{i}': dict(
            preds_S=dict(from_student=True, recorder='fpn', data_idx=i),
            preds_T=dict(from_student=False, recorder='fpn', data_idx=i))
        for i in levels})
