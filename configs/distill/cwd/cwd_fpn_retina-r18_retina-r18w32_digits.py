# RetinaNet R18 -> R18 (half width), embedded digits. CWD (CWDLoss) on the 3 FPN levels, tau 1,
# weight 10 as the COCO configs.
_base_ = '../_base_/digits_det.py'
model = dict(recipes=[dict(type='CWD', on='neck')])
