# Digits Mask R-CNN R18 -> R18 half width: mask KD (as maskkd_mask-head_*) combined with PKD on
# the necks (the recipe's published setting: weight 10; the digits necks give 3 levels).
_base_ = './maskkd_mask-head_mask-rcnn-r18_mask-rcnn-r18w32_digits.py'
model = dict(recipes=[dict(type='PKD', on='neck')])
