# DINO-4scale R50 -> DINO-4scale R18, COCO 12 epochs. KD-DETR at the published 300 teacher-sampled
# and 300 random distillation points per image, the published loss weights
# (../_base_/kddetr_points.py). What the paper reports is in configs/distill/README.md.
_base_ = ['../_base_/coco_dino-r50_dino-r18.py', '../_base_/kddetr_points.py']
model = {{_base_.kddetr}}
