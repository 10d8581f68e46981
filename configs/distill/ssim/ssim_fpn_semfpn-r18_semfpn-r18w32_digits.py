# Semantic FPN R18 -> R18 (half width), embedded digits. Structural KD (SSIMLoss) on the 4 FPN
# levels, weight 2.
_base_ = '../_base_/digits_seg.py'
model = dict(recipes=[dict(type='SSIM', on='neck')])
