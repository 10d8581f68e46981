# FCOS R101 -> R50, COCO 2x. FGD (FGDLoss with the batch's GT boxes) on the 5 FPN levels, with
# the FGD authors' FCOS weights (tau=0.8, alpha_fgd=1.6e-3, beta_fgd=8e-4, gamma_fgd=8e-4,
# lambda_fgd=8e-6) and their gradient clipping.
_base_ = '../_base_/coco_fcos-r101_fcos-r50.py'
levels = (0, 1, 2, 3, 4)
distill_loss = dict(type='FGDLoss', student_channels=256, teacher_channels=256, tau=0.8,
                    alpha_fgd=1.6e-3, beta_fgd=8e-4, gamma_fgd=8e-4, lambda_fgd=8e-6)
model = dict(
    distill_losses={f'loss_fgd_fpn{i}': distill_loss for i in levels},
    loss_forward_mappings={
        f'loss_fgd_fpn{i}': dict(
            preds_S=dict(from_student=True, recorder='fpn', data_idx=i),
            preds_T=dict(from_student=False, recorder='fpn', data_idx=i),
            data_samples=dict(from_data='data_samples'))
        for i in levels})
optim_wrapper = dict(clip_grad=dict(max_norm=35, norm_type=2))
