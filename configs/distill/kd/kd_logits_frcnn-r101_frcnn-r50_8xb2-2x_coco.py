# Faster R-CNN R101 -> R50, COCO 2x. Vanilla KD (Hinton et al., 2015) on the RoI head's softmax
# class scores, tau 1, weight 1 (this project's choice; the paper gives no detection setting).
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
    distill_losses=dict(loss_kd_roi=dict(type='KDLoss', mode='softmax', tau=1.0, loss_weight=1.0)),
    loss_forward_mappings=dict(
        loss_kd_roi=dict(
            preds_S=dict(from_student=True, recorder='roi_out', data_idx='cls_score'),
            preds_T=dict(from_student=False, recorder='roi', data_idx='cls_score'))))
