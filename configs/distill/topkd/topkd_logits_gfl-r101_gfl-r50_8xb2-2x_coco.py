# GFL R101 -> R50, COCO 2x (the recipe reads the labels from GFLHead.get_targets' output 1).
# TopKD (Top-K scaling + Top-K decoupled loss) on the dense head's classification logits through
# DenseHeadLogitLoss, in sigmoid mode with each location's logits centred (the paper uses softmax
# classifiers; raw logits at the prior bias give almost no gradient, TopKDLoss docstring): K 5 and
# the other constants at the suggested defaults (the paper's are not public), no contrastive term.
# The student's labels are passed, so the background rows drop out: positives only.
_base_ = '../_base_/coco_gfl-r101_gfl-r50.py'
model = dict(recipes=[dict(type='TopKD', on='dense_cls_logits')])
