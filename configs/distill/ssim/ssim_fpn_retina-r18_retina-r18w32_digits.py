# RetinaNet R18 -> R18 (half width), embedded digits. Structural KD (SSIMLoss) on the 3 FPN
# levels, weight 2; the 11x11 window shrinks to the 8x8 and 4x4 levels (7x7 and 3x3).
_base_ = '../_base_/digits_det.py'
model = dict(recipes=[dict(type='SSIM', on='neck')])
