# Semantic FPN R18 -> R18 (half width), embedded digits. DIST on the decode head's logits
# (inter- and intra-class Pearson relations of the per-pixel softmax, tau 1, beta = gamma = 1,
# weight 1), as the Cityscapes config (the digits models have no auxiliary head).
_base_ = '../_base_/digits_seg.py'
model = dict(recipes=[dict(type='DIST', on='seg_logits')])
