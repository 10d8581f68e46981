# Semantic FPN R18 -> R18 (half width), embedded digits. PKD (PKDLoss) on the 4 FPN levels,
# weight 6 as the Cityscapes config.
_base_ = '../_base_/digits_seg.py'
model = dict(recipes=[dict(type='PKD', on='neck', loss_weight=6.0)])
