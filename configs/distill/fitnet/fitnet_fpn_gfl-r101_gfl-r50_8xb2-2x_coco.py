# GFL R101 -> R50, COCO 2x. FitNet baseline (MSEFeatureLoss) on the 5 FPN levels; both necks have
# 256 channels, so no connector (hint layer) is needed.
_base_ = '../_base_/coco_gfl-r101_gfl-r50.py'
levels = (0, 1, 2, 3, 4)
distill_loss = dict(type='MSEFeatureLoss', loss_weight=1.0)
model = dict(
    distill_losses={f'loss_fitnet_fpn{i}': distill_loss for i in levels},
    loss_forward_mappings={
        f'loss_fitnet_fpn{i}': dict(
            preds_S=dict(from_student=True, recorder='fpn', data_idx=i),
            preds_T=dict(from_student=False, recorder='fpn', data_idx=i))
        for i in levels})
