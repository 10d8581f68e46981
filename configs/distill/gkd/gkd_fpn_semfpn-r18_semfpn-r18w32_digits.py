# Semantic FPN R18 -> R18 (half width), embedded digits. GKD (GKDLoss) on the 4 FPN levels, with
# the segmentation loss in place of the detection loss: the teacher's own decode-head loss on the
# batch's label maps gives the Grad-CAM maps (gradient=True specs) that weight the imitation.
# No BMFI: it needs boxes, which segmentation samples do not have.
_base_ = '../_base_/digits_seg.py'
model = dict(recipes=[dict(type='GKD', on='neck')])
