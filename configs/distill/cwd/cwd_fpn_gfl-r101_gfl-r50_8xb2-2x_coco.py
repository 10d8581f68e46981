# GFL R101 -> R50, COCO 2x. CWD (CWDLoss: per-channel spatial softmax, KL) on the 5 FPN levels,
# tau 1, weight 10 (the paper's detection range is 5..10).
_base_ = '../_base_/coco_gfl-r101_gfl-r50.py'
model = dict(recipes=[dict(type='CWD', on='neck')])
