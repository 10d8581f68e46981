# GFL R101 -> R50, COCO 2x (GFLHead.get_targets: labels are output 1).
# Vanilla KD (Hinton et al., 2015) on the dense head's classification logits through
# DenseHeadLogitLoss: per-class sigmoid KL (KDLoss mode='sigmoid', tau 1, weight 1) at the
# locations the student's assigner made positive plus those where the teacher's score >= 0.5
# (at most 2000 per batch). Weight and temperature are this project's choice (no paper setting
# for KD on dense heads).
_base_ = '../_base_/coco_gfl-r101_gfl-r50.py'
model = dict(
    student_recorders=dict(
        cls=dict(type='MethodOutputsRecorder', source='bbox_head.forward'),
        targets=dict(type='MethodOutputsRecorder', source='bbox_head.get_targets')),
    teacher_recorders=dict(
        cls=dict(type='MethodOutputsRecorder', source='bbox_head.forward')),
    distill_losses=dict(
        loss_kd_cls=dict(
            type='DenseHeadLogitLoss', num_classes=80, loss_weight=1.0,
            select=('positive', 'confident'), score_thr=0.5, max_locations=2000,
            loss=dict(type='KDLoss', mode='sigmoid', tau=1.0))),
    loss_forward_mappings=dict(
        loss_kd_cls=dict(
            preds_S=dict(from_student=True, recorder='cls', data_idx=0),
            preds_T=dict(from_student=False, recorder='cls', data_idx=0),
            labels=dict(from_student=True, recorder='targets', data_idx=1))))
