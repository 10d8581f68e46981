# RetinaNet R18 -> R18 (half width), embedded digits. SoKD (SoKDLoss) around FitNet's MSE on
# the 3 FPN levels (strides 8, 16, 32; 128 channels on both sides), the DAM supervised by the
# GT boxes; P = 4 areas per image (an image holds up to 4 digits). The other constants are the
# loss defaults (ours: the paper's are not public). The refiner gets its own parameter group,
# without weight decay.
_base_ = '../_base_/digits_det.py'
model = dict(recipes=[dict(type='SoKD', on='neck', num_areas=4)])
optim_wrapper = dict(
    constructor='mmkd.DistillOptimWrapperConstructor',
    paramwise_cfg=dict(custom_keys={'.refiner.': dict(lr_mult=1.0, decay_mult=0.0)}))
