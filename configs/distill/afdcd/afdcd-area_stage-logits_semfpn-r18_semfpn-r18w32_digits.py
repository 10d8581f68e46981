# Semantic FPN R18 -> R18 (half width), embedded digits. Af-DCD as
# ./afdcd_stage-logits_semfpn-r18_semfpn-r18w32_digits.py, with the feature term's weight scaled
# to the map's area: its sum over positions grows with the area, and the published 2e-6 is for
# Cityscapes' 64x128 last stage, 512 times the 4x4 one of 128 px digits (2e-6 x 512 = 1e-3).
_base_ = '../_base_/digits_seg.py'
model = dict(recipes=[dict(type='AfDCD', on='backbone', feature_weight=1e-3),
                      dict(type='KD', on='seg_logits')])
