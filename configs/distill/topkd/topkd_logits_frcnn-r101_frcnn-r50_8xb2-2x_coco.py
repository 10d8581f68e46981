# Faster R-CNN R101 -> R50, COCO 2x. TopKD (Top-K scaling + Top-K decoupled loss) on the RoI
# head's softmax class scores, the sampled RoIs' assigned labels added to the scaled set; K 5 and
# the other constants at the suggested defaults (the paper's are not public).
# Both RoI heads classify the RoIs the student sampled: the teacher's roi_head._bbox_forward is
# replayed on its own FPN features and the student's sampled RoIs (teacher_replays), so the
# (num_rois, 81) class scores (80 classes + background, one softmax) describe the same boxes.
_base_ = '../_base_/coco_frcnn-r101_frcnn-r50.py'
model = dict(
    student_recorders=dict(
        roi_in=dict(type='MethodInputsRecorder', source='roi_head._bbox_forward'),
        roi_out=dict(type='MethodOutputsRecorder', source='roi_head._bbox_forward'),
        targets=dict(type='MethodOutputsRecorder', source='roi_head.bbox_head.loss_and_target')),
    teacher_replays=dict(
        roi=dict(method='roi_head._bbox_forward',
                 args=[dict(from_student=False, recorder='fpn'),
                       dict(from_student=True, recorder='roi_in', data_idx=1)])),
    distill_losses=dict(loss_topkd_roi=dict(type='TopKDLoss', mode='softmax', k=5)),
    loss_forward_mappings=dict(
        loss_topkd_roi=dict(
            preds_S=dict(from_student=True, recorder='roi_out', data_idx='cls_score'),
            preds_T=dict(from_student=False, recorder='roi', data_idx='cls_score'),
            labels=dict(from_student=True, recorder='targets', data_idx=['bbox_targets', 0]))))
