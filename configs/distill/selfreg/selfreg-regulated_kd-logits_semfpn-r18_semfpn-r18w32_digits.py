# Semantic FPN R18 -> R18 (half width), embedded digits. Self-regulated distillation (Mishra &
# Sundaram, 2021, https://arxiv.org/abs/2102.07125), regulated mode: the student skips the
# distillation on an image it already segments confidently (at least handled_ratio 0.9 of the
# labelled pixels have a ground-truth-class probability >= conf_thr 0.5 in its own logits), on
# all training images. The distilled term is per-pixel KD on the decode heads' logits as in
# ../kd/kd_logits_semfpn-r18_semfpn-r18w32_digits.py, evaluated per image by
# SignificanceWeightedLoss. The thresholds are this project's choice (the paper's are not
# public).
_base_ = '../_base_/digits_seg.py'
logits = dict(type='ModuleOutputsRecorder', source='decode_head.conv_seg')
model = dict(
    student_recorders=dict(logits=logits),
    teacher_recorders=dict(logits=logits),
    distill_losses=dict(
        loss_kd_logits=dict(
            type='SignificanceWeightedLoss', mode='regulated', name='loss_kd_logits',
            conf_thr=0.5, handled_ratio=0.9, min_weight=0.1,
            loss=dict(type='KDLoss', mode='softmax', tau=1.0, loss_weight=1.0))),
    loss_forward_mappings=dict(
        loss_kd_logits=dict(
            data_samples=dict(from_data='data_samples'),
            # the student's own logits decide which images it still needs
            student_logits=dict(from_student=True, recorder='logits'),
            preds_S=dict(from_student=True, recorder='logits'),
            preds_T=dict(from_student=False, recorder='logits'))))
