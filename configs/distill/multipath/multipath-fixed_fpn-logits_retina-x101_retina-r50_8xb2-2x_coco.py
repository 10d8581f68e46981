# RetinaNet X101 -> R50, COCO 2x. Multi-path distillation: FitNet-style MSE (MSEFeatureLoss,
# weight 1) on every FPN level plus vanilla KD on the dense head's class logits
# (DenseHeadLogitLoss with sigmoid KDLoss at
# positive / teacher-confident locations, weight 1), one path each. Each path's effective weight
# is logged as distill_weight.<path>.
# Fixed weighting: the plain sum of the paths (FixedWeighting, every weight 1).
_base_ = '../_base_/coco_retina-x101_retina-r50.py'
levels = (0, 1, 2, 3, 4)
model = dict(
    student_recorders=dict(
        cls=dict(type='MethodOutputsRecorder', source='bbox_head.forward'),
        targets=dict(type='MethodOutputsRecorder', source='bbox_head.get_targets')),
    teacher_recorders=dict(
        cls=dict(type='MethodOutputsRecorder', source='bbox_head.forward')),
    distill_losses=dict(
        {f'loss_mse_fpn{i}': dict(type='MSEFeatureLoss', loss_weight=1.0) for i in levels},
        loss_kd_cls=dict(
            type='DenseHeadLogitLoss', num_classes=80, loss_weight=1.0,
            loss=dict(type='KDLoss', mode='sigmoid', tau=1.0))),
    loss_forward_mappings=dict(
        {f'loss_mse_fpn{i}': dict(
            preds_S=dict(from_student=True, recorder='fpn', data_idx=i),
            preds_T=dict(from_student=False, recorder='fpn', data_idx=i))
         for i in levels},
        loss_kd_cls=dict(
            preds_S=dict(from_student=True, recorder='cls', data_idx=0),
            preds_T=dict(from_student=False, recorder='cls', data_idx=0),
            labels=dict(from_student=True, recorder='targets', data_idx=0))),
    weighting=dict(type='FixedWeighting'))
# Path weights (weighting.*) get no weight decay.
optim_wrapper = dict(constructor='mmkd.DistillOptimWrapperConstructor')
