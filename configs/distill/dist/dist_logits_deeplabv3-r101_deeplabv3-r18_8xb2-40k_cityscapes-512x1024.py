# DIST (Huang et al., "Knowledge Distillation from A Stronger Teacher", NeurIPS 2022): inter-
# and intra-class Pearson relations of the per-pixel softmax (tau 1), beta = gamma = 1, weight 1
# on the decode head's logits and 0.4 on the auxiliary head's, no plain KD term
# (hunto/DIST_KD, segmentation; Cityscapes val, DLV3-R18: 74.21 -> 77.10 mIoU).
_base_ = '../_base_/cityscapes_deeplabv3-r101_deeplabv3-r18.py'
model = dict(recipes=[dict(type='DIST', on='seg_logits'), dict(type='DIST', on='aux_logits')])
