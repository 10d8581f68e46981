# FCOS R101 -> R50, COCO 2x. FGD (FGDLoss with the batch's GT boxes) on the 5 FPN levels, with
# the FGD authors' FCOS weights (tau=0.8, alpha_fgd=1.6e-3, beta_fgd=8e-4, gamma_fgd=8e-4,
# lambda_fgd=8e-6) and their gradient clipping.
_base_ = '../_base_/coco_fcos-r101_fcos-r50.py'
model = dict(recipes=[dict(type='FGD', on='neck', tau=0.8, alpha_fgd=1.6e-3, beta_fgd=8e-4,
                            gamma_fgd=8e-4, lambda_fgd=8e-6)])
optim_wrapper = dict(clip_grad=dict(max_norm=35, norm_type=2))
