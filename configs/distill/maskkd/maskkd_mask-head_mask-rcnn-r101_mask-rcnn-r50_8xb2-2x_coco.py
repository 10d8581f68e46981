# Mask R-CNN R101 -> R50, COCO 2x: per-pixel sigmoid KD (MaskKDLoss, tau 1, weight 1; this
# project's choice, no published setting) on the mask logits of the student's positive RoIs,
# the teacher's mask head replayed on them (../_base_/mask_replay.py).
_base_ = ['../_base_/coco_mask-rcnn-r101_mask-rcnn-r50.py', '../_base_/mask_replay.py']
model = {{_base_.mask_replay}}
