# GFL R101 -> R50, COCO 2x. Structural KD (SSIMLoss: 1 - SSIM per channel, 11x11 Gaussian window)
# on the 5 FPN levels; the paper uses weight 2..4, we take 2.
_base_ = '../_base_/coco_gfl-r101_gfl-r50.py'
levels = (0, 1, 2, 3, 4)
distill_loss = dict(type='SSIMLoss', loss_weight=2.0)
model = dict(
    distill_losses={f'loss_ssim_fpn{i}': distill_loss for i in levels},
    loss_forward_mappings={
        f'loss_ssim_fpn{i}': dict(
            preds_S=dict(from_student=True, recorder='fpn', data_idx=i),
            preds_T=dict(from_student=False, recorder='fpn', data_idx=i))
        for i in levels})
