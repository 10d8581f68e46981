# Faster R-CNN R101 -> R50, COCO 2x. TopKD (Top-K scaling + Top-K decoupled loss) on the RoI
# head's softmax class scores, the sampled RoIs' assigned labels added to the scaled set; K 5 and
# the other constants at the suggested defaults (the paper's are not public).
# Both RoI heads classify the RoIs the student sampled: the teacher's roi_head._bbox_forward is
# replayed on its own FPN features and the student's sampled RoIs (teacher_replays), so the
# (num_rois, 81) class scores (80 classes + background, one softmax) describe the same boxes.
_base_ = '../_base_/coco_frcnn-r101_frcnn-r50.py'
model = dict(recipes=[dict(type='TopKD', on='roi_cls_logits')])
