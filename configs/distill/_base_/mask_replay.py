# The teacher's mask head replayed on the student's positive RoIs, for a mask-logit loss
# (MaskKDLoss), on any Mask R-CNN pair whose base records both FPNs as 'fpn'. The student's
# StandardRoIHead runs _mask_forward(x, pos_rois) on the positives it sampled: its inputs give
# the RoIs (data_idx=1), its output the student's mask logits ('mask_preds', (P, C, 28, 28));
# mask_loss(x, sampling_results, ...) gives the sampling results (data_idx=1), whose
# pos_gt_labels pick each RoI's class as mmdet's mask loss does. The teacher's
# roi_head._mask_forward runs under no_grad on its own FPN features and those RoIs
# (teacher_replays), so both heads predict masks for the same boxes. A method config takes it
# as its model's delta: _base_ = [PAIR, '../_base_/mask_replay.py'];
# model = {{_base_.mask_replay}} (its own name: two bases cannot both set model).
mask_replay = dict(
    student_recorders=dict(
        mask_rois=dict(type='MethodInputsRecorder', source='roi_head._mask_forward'),
        mask_out=dict(type='MethodOutputsRecorder', source='roi_head._mask_forward'),
        mask_targets=dict(type='MethodInputsRecorder', source='roi_head.mask_loss')),
    teacher_replays=dict(
        mask=dict(method='roi_head._mask_forward',
                  args=[dict(from_student=False, recorder='fpn'),
                        dict(from_student=True, recorder='mask_rois', data_idx=1)])),
    distill_losses=dict(loss_mask_kd=dict(type='MaskKDLoss', tau=1.0, loss_weight=1.0)),
    loss_forward_mappings=dict(
        loss_mask_kd=dict(
            preds_S=dict(from_student=True, recorder='mask_out', data_idx='mask_preds'),
            preds_T=dict(from_student=False, recorder='mask', data_idx='mask_preds'),
            sampling_results=dict(from_student=True, recorder='mask_targets', data_idx=1))))
