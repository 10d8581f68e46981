# RetinaNet R18 -> R18 (half width), embedded digits. Self-regulated distillation (Mishra &
# Sundaram, 2021, https://arxiv.org/abs/2102.07125), regulated mode: the student skips the
# distillation on an image it already detects confidently (every ground-truth box has a
# sigmoid score >= conf_thr for its class at the cell of its centre on some FPN level), on all
# training images. The distilled term is KD on the dense head's class logits as in
# ../kd/kd_logits_retina-r18_retina-r18w32_digits.py, evaluated per image by
# SignificanceWeightedLoss (so max_locations caps each image). conf_thr 0.5 is this project's
# choice (the paper's thresholds are not public).
_base_ = '../_base_/digits_det.py'
model = dict(
    student_recorders=dict(
        cls=dict(type='MethodOutputsRecorder', source='bbox_head.forward'),
        targets=dict(type='MethodOutputsRecorder', source='bbox_head.get_targets')),
    teacher_recorders=dict(
        cls=dict(type='MethodOutputsRecorder', source='bbox_head.forward')),
    distill_losses=dict(
        loss_kd_cls=dict(
            type='SignificanceWeightedLoss', mode='regulated', name='loss_kd_cls',
            num_classes=10, conf_thr=0.5, min_weight=0.1,
            loss=dict(
                type='DenseHeadLogitLoss', num_classes=10, loss_weight=1.0,
                select=('positive', 'confident'), score_thr=0.5, max_locations=2000,
                loss=dict(type='KDLoss', mode='sigmoid', tau=1.0)))),
    loss_forward_mappings=dict(
        loss_kd_cls=dict(
            data_samples=dict(from_data='data_samples'),
            # the student's own class maps decide which images it still needs
            student_logits=dict(from_student=True, recorder='cls', data_idx=0),
            preds_S=dict(from_student=True, recorder='cls', data_idx=0),
            preds_T=dict(from_student=False, recorder='cls', data_idx=0),
            labels=dict(from_student=True, recorder='targets', data_idx=0))))
