# Faster R-CNN R101 -> R50, COCO 2x. DKD (Decoupled KD, CVPR 2022) on the RoI head's softmax class
# scores with the sampled RoIs' assigned labels (background = class 80) as target classes:
# alpha 1, beta 8, tau 4 (the paper's defaults), linear warm-up over 1000 iterations (our choice;
# the paper warms up over its first epochs).
# Both RoI heads classify the RoIs the student sampled: the teacher's roi_head._bbox_forward is
# replayed on its own FPN features and the student's sampled RoIs (teacher_replays), so the
# (num_rois, 81) class scores (80 classes + background, one softmax) describe the same boxes.
_base_ = '../_base_/coco_frcnn-r101_frcnn-r50.py'
model = dict(recipes=[dict(type='DKD', on='roi_cls_logits')])
