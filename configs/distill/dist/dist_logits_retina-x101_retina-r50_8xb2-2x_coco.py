# RetinaNet X101 -> R50, COCO 2x.
# DIST (Huang et al., NeurIPS 2022) on the dense head's classification logits through
# DenseHeadLogitLoss: inter- and intra-class Pearson relations of the per-class sigmoid
# probabilities of the 80 classes (as the head is trained; tau 1, beta = gamma = 1, weight 1)
# at the locations the student's assigner made positive plus those where the teacher's score
# >= 0.5 (at most 2000 per batch; background ones included). This project's setting: the paper
# distils classification and segmentation logits, not detection heads.
_base_ = '../_base_/coco_retina-x101_retina-r50.py'
model = dict(recipes=[dict(type='DIST', on='dense_cls_logits')])
