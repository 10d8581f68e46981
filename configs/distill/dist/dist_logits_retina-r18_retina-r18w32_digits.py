# RetinaNet R18 -> R18 (half width), embedded digits. DIST on the dense head's classification
# logits through DenseHeadLogitLoss: inter- and intra-class Pearson relations of the per-class
# sigmoid probabilities (as the head is trained; tau 1) at the locations the student's assigner
# made positive plus those where the teacher's score >= 0.5 (background ones included),
# weight 1, as the COCO config.
_base_ = '../_base_/digits_det.py'
model = dict(recipes=[dict(type='DIST', on='dense_cls_logits')])
