# GFL R101 -> R50, COCO 2x (the recipe reads the labels from GFLHead.get_targets' output 1).
# Vanilla KD (Hinton et al., 2015) on the dense head's classification logits through
# DenseHeadLogitLoss: per-class sigmoid KL (KDLoss mode='sigmoid', tau 1, weight 1) at the
# locations the student's assigner made positive plus those where the teacher's score >= 0.5
# (at most 2000 per batch). Weight and temperature are this project's choice (no paper setting
# for KD on dense heads).
_base_ = '../_base_/coco_gfl-r101_gfl-r50.py'
model = dict(recipes=[dict(type='KD', on='dense_cls_logits')])
