# PSPNet R101 -> R18, Cityscapes. SSIM on the decode head's features (the PSP bottleneck output,
# before dropout and the classifier): 128 student channels are mapped to the teacher's 512 by a
# 1x1 ConvConnector. Weight 2 (the paper's detection range is 2..4; it has no segmentation
# setting).
_base_ = '../_base_/cityscapes_pspnet-r101_pspnet-r18.py'
head = dict(type='ModuleOutputsRecorder', source='decode_head.bottleneck')
model = dict(
    student_recorders=dict(head=head),
    teacher_recorders=dict(head=head),
    connectors=dict(head=dict(type='ConvConnector', in_channels=128, out_channels=512)),
    distill_losses=dict(loss_ssim_head=dict(type='SSIMLoss', loss_weight=2.0)),
    loss_forward_mappings=dict(
        loss_ssim_head=dict(
            preds_S=dict(from_student=True, recorder='head', connector='head'),
            preds_T=dict(from_student=False, recorder='head'))))
