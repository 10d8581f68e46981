# RetinaNet X101 -> R50, COCO 2x. FGD (FGDLoss with the batch's GT boxes) on the 5 FPN levels,
# with the paper's RetinaNet weights (the loss defaults: tau=0.5, alpha_fgd=1e-3, beta_fgd=5e-4,
# gamma_fgd=5e-4, lambda_fgd=5e-6) and the FGD authors' gradient clipping.
_base_ = '../_base_/coco_retina-x101_retina-r50.py'
model = dict(recipes=[dict(type='FGD', on='neck')])
optim_wrapper = dict(clip_grad=dict(max_norm=35, norm_type=2))
