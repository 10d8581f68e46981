# Semantic FPN R18 -> R18 (half width), embedded digits. Af-DCD on the last backbone stage (c4:
# 256 -> 512 channels, 4x4 cells at 128 px), with plain KD on the logits (tau 1, weight 1), as
# the Cityscapes config.
_base_ = '../_base_/digits_seg.py'
model = dict(recipes=[dict(type='AfDCD', on='backbone'), dict(type='KD', on='seg_logits')])
