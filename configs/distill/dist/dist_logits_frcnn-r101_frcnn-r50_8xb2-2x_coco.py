# Faster R-CNN R101 -> R50, COCO 2x. DIST (Huang et al., NeurIPS 2022) on the RoI head's
# softmax class scores (81: background included), tau 1, beta = gamma = 1, weight 1 (the
# paper's classification setting; this project's choice for RoI heads). The teacher's
# roi_head._bbox_forward is replayed on the student's sampled RoIs (teacher_replays).
_base_ = '../_base_/coco_frcnn-r101_frcnn-r50.py'
model = dict(recipes=[dict(type='DIST', on='roi_cls_logits')])
