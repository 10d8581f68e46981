# Semantic FPN R18 -> R18 (half width), embedded digits. PKD on the 4 FPN levels (weight 6)
# plus CWD on the decode head's logits (tau 1, weight 5): the two best segmentation rows of
# benchmarks/RESULTS.md together, each with its own config's weight.
_base_ = './pkd_fpn_semfpn-r18_semfpn-r18w32_digits.py'
logits = dict(type='ModuleOutputsRecorder', source='decode_head.conv_seg')
model = dict(
    student_recorders=dict(logits=logits),
    teacher_recorders=dict(logits=logits),
    distill_losses=dict(loss_cwd_logits=dict(type='CWDLoss', loss_weight=5.0, tau=1.0)),
    loss_forward_mappings=dict(
        loss_cwd_logits=dict(
            preds_S=dict(from_student=True, recorder='logits'),
            preds_T=dict(from_student=False, recorder='logits'))))
