# Semantic FPN R18 -> R18 (half width), embedded digits. CIRKD as
# ./cirkd_feat-logits_semfpn-r18_semfpn-r18w32_digits.py with the official code's `pooling`
# option: both features average-pooled 2x2 before the mini-batch relations. At batch 8 the
# published term compares 64 ordered pairs of 1024 x 1024 relations per step (4.3 s a step on
# 2 CPU cores against DIST's 0.6); pooled, 64 pairs of 256 x 256.
_base_ = '../_base_/digits_seg.py'
model = dict(recipes=[dict(type='CIRKD', on='seg_feat', pooling=True),
                      dict(type='KD', on='seg_logits')])
