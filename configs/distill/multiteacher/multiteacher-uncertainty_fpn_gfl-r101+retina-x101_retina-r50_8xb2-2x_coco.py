# COCO, 2x: GFL R101 (mmdet model zoo, multi-scale 2x, 44.7 box AP) and RetinaNet X101-64x4d
# (mmdet model zoo, 40.8 box AP), two teachers of different families -> RetinaNet R50 (student,
# ImageNet backbone). Several teachers (docs/en/user_guides/multiple_teachers.md): each teacher
# entry has its own model, published weights and recorders; each loss-input spec names the
# teacher it reads.
# One FitNet-style MSE path (MSEFeatureLoss, weight 1) per teacher and FPN level (all three FPNs
# give 5 levels, strides 8-128, of 256 channels: no connector), ten paths combined by uncertainty
# weighting (Chennupati et al., BMVC 2021), so the paths of the two teachers are weighed against
# each other; each path's weight is logged as distill_weight.<path>. Not trained by this
# project: no reported number to compare with.
_base_ = [
    'mmdet::_base_/datasets/coco_detection.py',
    'mmdet::_base_/schedules/schedule_2x.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)
fpn = dict(type='ModuleOutputsRecorder', source='neck')
levels = 5
model = dict(
    _scope_='mmkd',
    type='Distiller',
    student=dict(cfg_path='mmdet::retinanet/retinanet_r50_fpn_2x_coco.py', pretrained=True),
    teachers=dict(
        gfl=dict(
            cfg_path='mmdet::gfl/gfl_r101_fpn_ms-2x_coco.py',
            pretrained=False,
            ckpt='https://download.openmmlab.com/mmdetection/v2.0/gfl/gfl_r101_fpn_mstrain_2x_coco/gfl_r101_fpn_mstrain_2x_coco_20200629_200126-dd12f847.pth',  # noqa: E501
            recorders=dict(fpn=fpn)),
        retina=dict(
            cfg_path='mmdet::retinanet/retinanet_x101-64x4d_fpn_2x_coco.py',
            pretrained=False,
            ckpt='https://download.openmmlab.com/mmdetection/v2.0/retinanet/retinanet_x101_64x4d_fpn_2x_coco/retinanet_x101_64x4d_fpn_2x_coco_20200131-bca068ab.pth',  # noqa: E501
            recorders=dict(fpn=fpn))),
    # Cheaper teachers (docs/en/user_guides/teacher_settings.md), e.g. on GPUs, for both
    # (teacher_precision='fp16', teacher_channels_last=True) or per teacher entry
    # (precision='fp16', channels_last=True).
    student_recorders=dict(fpn=fpn),
    distill_losses={f'loss_{teacher}_fpn{i}': dict(type='MSEFeatureLoss', loss_weight=1.0)
                    for teacher in ('gfl', 'retina') for i in range(levels)},
    loss_forward_mappings={
        f'loss_{teacher}_fpn{i}': dict(
            preds_S=dict(from_student=True, recorder='fpn', data_idx=i),
            preds_T=dict(from_student=False, teacher=teacher, recorder='fpn', data_idx=i))
        for teacher in ('gfl', 'retina') for i in range(levels)},
    weighting=dict(type='UncertaintyWeighting'))
val_cfg = dict(_delete_=True, type='mmkd.DistillValLoop')
# Path weights (weighting.*) get no weight decay; the teachers are not in the optimizer.
optim_wrapper = dict(constructor='mmkd.DistillOptimWrapperConstructor')
