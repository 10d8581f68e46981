# Semantic FPN R18 -> R18 (half width), embedded digits. CIRKD on the decode head's feature
# before its classifier (mini-batch relations 1, pixel / region memories 0.1, as the Cityscapes
# config) with plain KD on the logits (tau 1, weight 1).
_base_ = '../_base_/digits_seg.py'
model = dict(recipes=[dict(type='CIRKD', on='seg_feat'), dict(type='KD', on='seg_logits')])
