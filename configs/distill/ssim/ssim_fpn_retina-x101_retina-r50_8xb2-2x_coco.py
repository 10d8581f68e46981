# RetinaNet X101 -> R50, COCO 2x. Structural KD (SSIMLoss: 1 - SSIM per channel, 11x11 Gaussian
# window) on the 5 FPN levels; the paper uses weight 2..4, we take 2.
_base_ = '../_base_/coco_retina-x101_retina-r50.py'
model = dict(recipes=[dict(type='SSIM', on='neck')])
