# GFL R101 -> R50, COCO 2x. PKD (PKDLoss: 1 - Pearson r per channel) on FPN levels 0-3, weight 10
# (the paper's range is 6..10; 10 is its one-stage setting).
_base_ = '../_base_/coco_gfl-r101_gfl-r50.py'
levels = (0, 1, 2, 3)
distill_loss = dict(type='PKDLoss', loss_weight=10.0)
model = dict(
    distill_losses={f'loss_pkd_fpn{i}': distill_loss for i in levels},
    loss_forward_mappings={
        f'loss_pkd_fpn{i}': dict(
            preds_S=dict(from_student=True, recorder='fpn', data_idx=i),
            preds_T=dict(from_student=False, recorder='fpn', data_idx=i))
        for i in levels})
