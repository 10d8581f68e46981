# Semantic FPN R18 -> R18 (half width), embedded digits. DIST on the decode head's logits
# (weight 1) plus PKD on the 4 FPN levels (weight 6, as in the PKD + CWD config): relations of
# the class outputs with the best feature method of benchmarks/RESULTS.md.
_base_ = '../_base_/digits_seg.py'
model = dict(recipes=[dict(type='DIST', on='seg_logits'),
                      dict(type='PKD', on='neck', loss_weight=6.0)])
