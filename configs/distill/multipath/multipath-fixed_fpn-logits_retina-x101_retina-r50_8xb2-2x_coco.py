# RetinaNet X101 -> R50, COCO 2x. Multi-path distillation: FitNet-style MSE (MSEFeatureLoss,
# weight 1) on every FPN level plus vanilla KD on the dense head's class logits
# (DenseHeadLogitLoss with sigmoid KDLoss at
# positive / teacher-confident locations, weight 1), one path each. Each path's effective weight
# is logged as distill_weight.<path>.
# Fixed weighting: the plain sum of the paths (FixedWeighting, every weight 1).
_base_ = '../_base_/coco_retina-x101_retina-r50.py'
model = dict(
    recipes=[dict(type='FitNet', on='neck', name='mse'), dict(type='KD', on='dense_cls_logits')],
    weighting=dict(type='FixedWeighting'))
# Path weights (weighting.*) get no weight decay.
optim_wrapper = dict(constructor='mmkd.DistillOptimWrapperConstructor')
