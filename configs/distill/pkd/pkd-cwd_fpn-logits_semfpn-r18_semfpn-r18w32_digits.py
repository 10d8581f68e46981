# Semantic FPN R18 -> R18 (half width), embedded digits. PKD on the 4 FPN levels (weight 6)
# plus CWD on the decode head's logits (tau 1, weight 5): the two best segmentation rows of
# benchmarks/RESULTS.md together, each with its own config's weight.
_base_ = '../_base_/digits_seg.py'
model = dict(recipes=[
    dict(type='PKD', on='neck', loss_weight=6.0),
    dict(type='CWD', on='seg_logits')])
