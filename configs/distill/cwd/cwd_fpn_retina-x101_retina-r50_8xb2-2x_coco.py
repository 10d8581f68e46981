# RetinaNet X101 -> R50, COCO 2x. CWD (CWDLoss: per-channel spatial softmax, KL) on the 5 FPN
# levels, tau 1, weight 10 (the paper's detection range is 5..10).
_base_ = '../_base_/coco_retina-x101_retina-r50.py'
model = dict(recipes=[dict(type='CWD', on='neck')])
