# GFL R101 -> R50, COCO 2x. GKD (GKDLoss) on every FPN level, the recipe's setting: the
# teacher's own detection loss on the batch's ground truth gives Grad-CAM maps (gradient=True
# specs), which weight the feature imitation; the student's map follows the teacher's
# (stop-gradient mode; double_backward=True trains through the student's Grad-CAM weights,
# slower), and the box-aware BMFI term (FGD-style GT masks and attention) is added. The
# published code's pseudo labels from a second test pass are not used. Weights are not public
# for COCO: 1.0 / BMFI 1.0.
_base_ = '../_base_/coco_gfl-r101_gfl-r50.py'
model = dict(recipes=[dict(type='GKD', on='neck')])
