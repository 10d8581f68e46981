# Semantic FPN R18 -> R18 (half width), embedded digits. RCKA on the decode head's logits (11
# classes, stride 4) with the published segmentation setting, as the Cityscapes config: intra =
# inter = 10, uncentered, no flattened-feature term.
_base_ = '../_base_/digits_seg.py'
model = dict(recipes=[dict(type='CKA', on='seg_logits')])
