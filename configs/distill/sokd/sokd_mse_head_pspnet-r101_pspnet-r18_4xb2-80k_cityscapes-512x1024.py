# PSPNet R101 -> R18, Cityscapes. SoKD (SoKDLoss) around MSE on the decode head's features (the
# PSP bottleneck output, stride 8): the loss' own 1x1 adapter maps the student's 128 channels
# to the teacher's 512. Without GT boxes the DAM's heatmap learns the refined teacher's spatial
# attention and its box sizes only the student-teacher consistency, so the areas are at least
# 8x8 cells (64 px); P = 16 areas per image. These constants, the refiner bounds (0.3) and every
# weight (1) are ours: the paper's are not public. The refiner gets its own parameter group,
# without weight decay.
_base_ = '../_base_/cityscapes_pspnet-r101_pspnet-r18.py'
model = dict(recipes=[dict(type='SoKD', on='seg_head')])
optim_wrapper = dict(
    constructor='mmkd.DistillOptimWrapperConstructor',
    paramwise_cfg=dict(custom_keys={'.refiner.': dict(lr_mult=1.0, decay_mult=0.0)}))
