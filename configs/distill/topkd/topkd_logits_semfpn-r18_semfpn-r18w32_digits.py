# Semantic FPN R18 -> R18 (half width), embedded digits.
# TopKD (Top-K scaling + Top-K decoupled loss) per pixel, the ground-truth class added to the
# scaled set; K 5 and the other constants at the suggested defaults (the paper's are not public).
# Per pixel on the decode heads' logits (decode_head.conv_seg outputs, one softmax over the
# classes); gt_sem_seg is resized to the logits with nearest neighbours, ignore index 255 left out.
_base_ = '../_base_/digits_seg.py'
logits = dict(type='ModuleOutputsRecorder', source='decode_head.conv_seg')
model = dict(
    student_recorders=dict(logits=logits),
    teacher_recorders=dict(logits=logits),
    distill_losses=dict(loss_topkd_logits=dict(type='TopKDLoss', mode='softmax', k=5)),
    loss_forward_mappings=dict(
        loss_topkd_logits=dict(
            preds_S=dict(from_student=True, recorder='logits'),
            preds_T=dict(from_student=False, recorder='logits'),
            labels=dict(from_data='gt_sem_seg'))))
