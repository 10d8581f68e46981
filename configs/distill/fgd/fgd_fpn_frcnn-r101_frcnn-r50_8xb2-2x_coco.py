# Faster R-CNN R101 -> R50, COCO 2x. FGD (FGDLoss with the batch's GT boxes) on FPN levels P2-P5,
# with the FGD authors' two-stage weights (alpha_fgd=5e-5, beta_fgd=2.5e-5, gamma_fgd=5e-5,
# lambda_fgd=5e-7, tau=0.5) and their gradient clipping.
_base_ = '../_base_/coco_frcnn-r101_frcnn-r50.py'
model = dict(recipes=[dict(type='FGD', on='neck', levels=(0, 1, 2, 3), tau=0.5, alpha_fgd=5e-5,
                            beta_fgd=2.5e-5, gamma_fgd=5e-5, lambda_fgd=5e-7)])
optim_wrapper = dict(clip_grad=dict(max_norm=35, norm_type=2))
