# Faster R-CNN R101 -> R50, COCO 2x. Vanilla KD (Hinton et al., 2015) on the RoI head's softmax
# class scores, tau 1, weight 1 (this project's choice; the paper gives no detection setting).
# Both RoI heads classify the RoIs the student sampled: the teacher's roi_head._bbox_forward is
# replayed on its own FPN features and the student's sampled RoIs (teacher_replays), so the
# (num_rois, 81) class scores (80 classes + background, one softmax) describe the same boxes.
_base_ = '../_base_/coco_frcnn-r101_frcnn-r50.py'
model = dict(recipes=[dict(type='KD', on='roi_cls_logits')])
