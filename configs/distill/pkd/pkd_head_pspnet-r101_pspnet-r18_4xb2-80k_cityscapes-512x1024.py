# PSPNet R101 -> R18, Cityscapes. PKD on the decode head's features (the PSP bottleneck output,
# before dropout and the classifier): 128 student channels are mapped to the teacher's 512 by a
# 1x1 ConvConnector. Weight 6, the low end of the paper's detection range (it has no
# segmentation setting).
_base_ = '../_base_/cityscapes_pspnet-r101_pspnet-r18.py'
head = dict(type='ModuleOutputsRecorder', source='decode_head.bottleneck')
model = dict(
    student_recorders=dict(head=head),
    teacher_recorders=dict(head=head),
    connectors=dict(head=dict(type='ConvConnector', in_channels=128, out_channels=512)),
    distill_losses=dict(loss_pkd_head=dict(type='PKDLoss', loss_weight=6.0)),
    loss_forward_mappings=dict(
        loss_pkd_head=dict(
            preds_S=dict(from_student=True, recorder='head', connector='head'),
            preds_T=dict(from_student=False, recorder='head'))))
