# RetinaNet X101 -> R50, COCO 2x.
# TopKD (Top-K scaling + Top-K decoupled loss) on the dense head's classification logits through
# DenseHeadLogitLoss, in sigmoid mode (raw logits; the paper uses softmax classifiers): K 5 and the
# other constants at the suggested defaults (the paper's are not public), no contrastive term.
# The student's labels are passed, so the background rows drop out: positives only.
_base_ = '../_base_/coco_retina-x101_retina-r50.py'
model = dict(
    student_recorders=dict(
        cls=dict(type='MethodOutputsRecorder', source='bbox_head.forward'),
        targets=dict(type='MethodOutputsRecorder', source='bbox_head.get_targets')),
    teacher_recorders=dict(
        cls=dict(type='MethodOutputsRecorder', source='bbox_head.forward')),
    distill_losses=dict(
        loss_topkd_cls=dict(
            type='DenseHeadLogitLoss', num_classes=80, loss_weight=1.0,
            select=('positive', 'confident'), score_thr=0.5, max_locations=2000,
            loss=dict(type='TopKDLoss', mode='sigmoid', k=5))),
    loss_forward_mappings=dict(
        loss_topkd_cls=dict(
            preds_S=dict(from_student=True, recorder='cls', data_idx=0),
            preds_T=dict(from_student=False, recorder='cls', data_idx=0),
            labels=dict(from_student=True, recorder='targets', data_idx=0))))
