# RetinaNet R18 -> R18 (half width), embedded digits. FGD (FGDLoss with the batch's GT boxes) on
# the 3 FPN levels with the paper's RetinaNet weights (the loss defaults); the schedule already
# clips gradients at 35 as FGD does.
_base_ = '../_base_/digits_det.py'
model = dict(recipes=[dict(type='FGD', on='neck')])
