# DINO R18 -> DINO R18 (half width), embedded digits. KD-DETR at the distillation points
# (../_base_/kddetr_points.py): the teacher's 30 queries (all of them, best first) and 30 random
# boxes per image, the published loss weights.
_base_ = ['../_base_/digits_dino.py', '../_base_/kddetr_points.py']
model = dict(
    distill_points=dict(kddetr=dict(teacher_points=30, random_points=30)),
    distill_losses={{_base_.kddetr.distill_losses}},
    loss_forward_mappings={{_base_.kddetr.loss_forward_mappings}})
