# RetinaNet R18 -> R18 (half width), embedded digits. Attention transfer (ATLoss, p = 2) on the 3
# FPN levels, weight 500 (beta / 2, beta = 1000 as in the AT paper).
_base_ = '../_base_/digits_det.py'
model = dict(recipes=[dict(type='AT', on='neck')])
