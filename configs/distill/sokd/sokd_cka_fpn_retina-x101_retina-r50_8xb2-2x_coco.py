# RetinaNet X101 -> R50, COCO 2x. SoKD (SoKDLoss) around RCKA (CKALoss, feature term) on the
# 5 FPN levels (strides 8-128): CKA compares the masked, refined maps. Uncentered and weight 10
# as ../cka/cka_fpn_retina-x101_retina-r50_8xb2-2x_coco.py (2 images per GPU). SoKD's own
# constants (P = 10 areas, refiner bounds 0.3, DAM and refiner weights 1) are ours: the paper's
# are not public. The refiner gets its own parameter group, without weight decay.
_base_ = '../_base_/coco_retina-x101_retina-r50.py'
strides = (8, 16, 32, 64, 128)
model = dict(
    distill_losses={
        f'loss_sokd_fpn{i}': dict(type='SoKDLoss', loss=dict(type='CKALoss', centered=False),
                                  student_channels=256, teacher_channels=256, stride=stride,
                                  num_areas=10, loss_weight=10.0, name=f'fpn{i}')
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
