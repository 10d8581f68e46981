# Semantic FPN R18 -> R18 (half width), embedded digits. DIST on the decode head's logits
# (weight 1) added to the best segmentation row of benchmarks/RESULTS.md before it, PKD on the
# 4 FPN levels (weight 6) plus CWD on the logits (tau 1, weight 5): each with its own config's
# weight.
_base_ = '../_base_/digits_seg.py'
model = dict(recipes=[dict(type='DIST', on='seg_logits'),
                      dict(type='PKD', on='neck', loss_weight=6.0),
                      dict(type='CWD', on='seg_logits')])
