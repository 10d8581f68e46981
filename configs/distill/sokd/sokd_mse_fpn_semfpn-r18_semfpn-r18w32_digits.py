# Semantic FPN R18 -> R18 (half width), embedded digits. SoKD (SoKDLoss) around MSE on the 4
# FPN levels (strides 4-32, 128 channels). Without GT boxes the DAM's heatmap learns the refined
# teacher's spatial attention, so the areas are at least 3x3 cells; P = 4 areas per image.
# The other constants are the loss defaults (ours: the paper's are not public). The refiner
# gets its own parameter group, without weight decay.
_base_ = '../_base_/digits_seg.py'
model = dict(recipes=[dict(type='SoKD', on='neck', num_areas=4, min_box_size=3)])
optim_wrapper = dict(
    constructor='mmkd.DistillOptimWrapperConstructor',
    paramwise_cfg=dict(custom_keys={'.refiner.': dict(lr_mult=1.0, decay_mult=0.0)}))
