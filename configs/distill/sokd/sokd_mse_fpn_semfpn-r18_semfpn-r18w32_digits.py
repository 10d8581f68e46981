# Semantic FPN R18 -> R18 (half width), embedded digits. SoKD (SoKDLoss) around MSE on the 4
# FPN levels (strides 4-32, 128 channels). Without GT boxes the DAM's heatmap learns the refined
# teacher's spatial attention, so the areas are at least 3x3 cells; P = 4 areas per image.
# The other constants are the loss defaults (ours: the paper's are not public). The refiner
# gets its own parameter group, without weight decay.
_base_ = '../_base_/digits_seg.py'
strides = (4, 8, 16, 32)
fpn = dict(type='ModuleOutputsRecorder', source='neck')
model = dict(
    student_recorders=dict(fpn=fpn),
    teacher_recorders=dict(fpn=fpn),
    distill_losses={
        f'loss_sokd_fpn{i}': dict(type='SoKDLoss', loss=dict(type='MSEFeatureLoss'),
                                  student_channels=128, teacher_channels=128, stride=stride,
                                  num_areas=4, min_box_size=3, loss_weight=1.0, name=f'fpn{i}')
        for i, stride in enumerate(strides)},
    loss_forward_mappings={
        f'loss_sokd_fpn{i}': dict(
            preds_S=dict(from_student=True, recorder='fpn', data_idx=i),
            preds_T=dict(from_student=False, recorder='fpn', data_idx=i))
        for i in range(len(strides))})
optim_wrapper = dict(
    constructor='mmkd.DistillOptimWrapperConstructor',
    paramwise_cfg=dict(custom_keys={'.refiner.': dict(lr_mult=1.0, decay_mult=0.0)}))
