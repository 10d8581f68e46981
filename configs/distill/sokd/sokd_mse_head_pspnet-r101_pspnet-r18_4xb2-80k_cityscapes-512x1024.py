# PSPNet R101 -> R18, Cityscapes. SoKD (SoKDLoss) around MSE on the decode head's features (the
# PSP bottleneck output, stride 8): the loss' own 1x1 adapter maps the student's 128 channels
# to the teacher's 512. Without GT boxes the DAM's heatmap learns the refined teacher's spatial
# attention and its box sizes only the student-teacher consistency, so the areas are at least
# 8x8 cells (64 px); P = 16 areas per image. These constants, the refiner bounds (0.3) and every
# weight (1) are ours: the paper's are not public. The refiner gets its own parameter group,
# without weight decay.
_base_ = '../_base_/cityscapes_pspnet-r101_pspnet-r18.py'
head = dict(type='ModuleOutputsRecorder', source='decode_head.bottleneck')
model = dict(
    student_recorders=dict(head=head),
    teacher_recorders=dict(head=head),
    distill_losses=dict(
        loss_sokd_head=dict(type='SoKDLoss', loss=dict(type='MSEFeatureLoss'),
                            student_channels=128, teacher_channels=512, stride=8,
                            num_areas=16, min_box_size=8, loss_weight=1.0, name='head')),
    loss_forward_mappings=dict(
        loss_sokd_head=dict(
            preds_S=dict(from_student=True, recorder='head'),
            preds_T=dict(from_student=False, recorder='head'))))
optim_wrapper = dict(
    constructor='mmkd.DistillOptimWrapperConstructor',
    paramwise_cfg=dict(custom_keys={'.refiner.': dict(lr_mult=1.0, decay_mult=0.0)}))
