# RetinaNet R18 -> R18 (half width), embedded digits. FitNet (MSEFeatureLoss) on the 3 FPN
# levels; both necks output 128 channels, so no connector is needed.
_base_ = '../_base_/digits_det.py'
levels = (0, 1, 2)
model = dict(
    distill_losses={f'loss_fpn{i}': dict(type='MSEFeatureLoss', loss_weight=1.0) for i in levels},
    loss_forward_mappings={
        f'loss_fpn{i}': dict(
            preds_S=dict(from_student=True, recorder='fpn', data_idx=i),
            preds_T=dict(from_student=False, recorder='fpn', data_idx=i))
        for i in levels
    })
