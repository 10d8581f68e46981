# PSPNet R101 -> R18, Cityscapes.
# DKD (Decoupled KD, CVPR 2022) per pixel with the ground-truth class as target: alpha 1,
# beta 8, tau 4 (the paper's defaults), linear warm-up over 1000 iterations (our choice).
# Per pixel on the decode heads' logits (decode_head.conv_seg outputs, one softmax over the
# classes); gt_sem_seg is resized to the logits with nearest neighbours, ignore index 255 left out.
_base_ = '../_base_/cityscapes_pspnet-r101_pspnet-r18.py'
logits = dict(type='ModuleOutputsRecorder', source='decode_head.conv_seg')
model = dict(
    student_recorders=dict(logits=logits),
    teacher_recorders=dict(logits=logits),
    distill_losses=dict(
        loss_dkd_logits=dict(type='DKDLoss', alpha=1.0, beta=8.0, tau=4.0,
                             warmup_iters=1000)),
    loss_forward_mappings=dict(
        loss_dkd_logits=dict(
            preds_S=dict(from_student=True, recorder='logits'),
            preds_T=dict(from_student=False, recorder='logits'),
            labels=dict(from_data='gt_sem_seg'))))
