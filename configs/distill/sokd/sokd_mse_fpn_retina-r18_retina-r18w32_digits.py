# RetinaNet R18 -> R18 (half width), embedded digits. SoKD (SoKDLoss) around FitNet's MSE on
# the 3 FPN levels (strides 8, 16, 32; 128 channels on both sides), the DAM supervised by the
# GT boxes; P = 4 areas per image (an image holds up to 4 digits). The other constants are the
# loss defaults (ours: the paper's are not public). The refiner gets its own parameter group,
# without weight decay.
_base_ = '../_base_/digits_det.py'
strides = (8, 16, 32)
model = dict(
    distill_losses={
        f'loss_sokd_fpn{i}': dict(type='SoKDLoss', loss=dict(type='MSEFeatureLoss'),
                                  student_channels=128, teacher_channels=128, stride=stride,
                                  num_areas=4, loss_weight=1.0, name=f'fpn{i}')
        for i, stride in enumerate(strides)},
    loss_forward_mappings={
        f'loss_sokd_fpn{i}': dict(
            preds_S=dict(from_student=True, recorder='fpn', data_idx=i),
            preds_T=dict(from_student=False, recorder='fpn', data_idx=i),
            data_samples=dict(from_data='data_samples'))
        for i in range(len(strides))})
optim_wrapper = dict(
    constructor='mmkd.DistillOptimWrapperConstructor',
    paramwise_cfg=dict(custom_keys={'.refiner.': dict(lr_mult=1.0, decay_mult=0.0)}))
