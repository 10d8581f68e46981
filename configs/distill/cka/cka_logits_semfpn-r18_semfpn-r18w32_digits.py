# Semantic FPN R18 -> R18 (half width), embedded digits. RCKA on the decode head's logits (11
# classes, stride 4) with the published segmentation setting, as the Cityscapes config: intra =
# inter = 10, uncentered, no flattened-feature term.
_base_ = '../_base_/digits_seg.py'
logits = dict(type='ModuleOutputsRecorder', source='decode_head.conv_seg')
model = dict(
    student_recorders=dict(logits=logits),
    teacher_recorders=dict(logits=logits),
    distill_losses=dict(
        loss_cka_logits=dict(type='CKALoss', loss_weight=10.0, feature_weight=0.0,
                             intra_weight=1.0, inter_weight=1.0, centered=False)),
    loss_forward_mappings=dict(
        loss_cka_logits=dict(
            preds_S=dict(from_student=True, recorder='logits'),
            preds_T=dict(from_student=False, recorder='logits'))))
