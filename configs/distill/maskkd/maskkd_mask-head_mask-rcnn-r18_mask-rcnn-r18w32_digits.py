# Digits Mask R-CNN R18 -> R18 half width: per-pixel sigmoid KD (MaskKDLoss, tau 1, weight 1;
# this project's choice) on the mask logits of the student's positive RoIs, the teacher's mask
# head replayed on them (../_base_/mask_replay.py).
_base_ = ['../_base_/digits_mask.py', '../_base_/mask_replay.py']
model = {{_base_.mask_replay}}
