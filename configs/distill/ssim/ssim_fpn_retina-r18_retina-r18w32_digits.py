# RetinaNet R18 -> R18 (half width), embedded digits. Structural KD (SSIMLoss) on the 3 FPN
# levels, weight 2; the 11x11 window shrinks to the 8x8 and 4x4 levels (7x7 and 3x3).
_base_ = '../_base_/digits_det.py'
levels = (0, 1, 2)
distill_loss = dict(type='SSIMLoss', loss_weight=2.0)
model = dict(
    distill_losses={f'loss_ssim_fpn{i}': distill_loss for i in levels},
    loss_forward_mappings={
        f'loss_ssim_fpn{i}': dict(
            preds_S=dict(from_student=True, recorder='fpn', data_idx=i),
            preds_T=dict(from_student=False, recorder='fpn', data_idx=i))
        for i in levels})
