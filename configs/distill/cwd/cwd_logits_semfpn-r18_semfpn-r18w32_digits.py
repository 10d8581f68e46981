# Semantic FPN R18 -> R18 (half width), embedded digits. CWD on the decode head's logits, tau 1,
# weight 5, as the Cityscapes config.
_base_ = '../_base_/digits_seg.py'
model = dict(recipes=[dict(type='CWD', on='seg_logits')])
