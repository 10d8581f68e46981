# RetinaNet X101 -> R50, COCO 2x. SoKD (SoKDLoss) around FitNet's MSE on the 5 FPN levels
# (strides 8-128, 256 channels on both sides): a learnable refiner adapts each teacher level to
# the student, a CenterNet-like DAM supervised by the GT boxes at the level's stride finds the
# areas of mutual interest, and the MSE sees only those. The paper's constants are not public:
# P = 10 areas per image, the refiner bounds (0.3) and every weight (1) are ours. The refiner
# gets its own parameter group, without weight decay (it would pull its magnitudes to the
# middle of their ranges).
_base_ = '../_base_/coco_retina-x101_retina-r50.py'
model = dict(recipes=[dict(type='SoKD', on='neck')])
optim_wrapper = dict(
    constructor='mmkd.DistillOptimWrapperConstructor',
    paramwise_cfg=dict(custom_keys={'.refiner.': dict(lr_mult=1.0, decay_mult=0.0)}))
