# Cityscapes 512x1024, 80k iterations, 4 GPUs x 2 images: PSPNet R101-d8 (teacher, mmseg model
# zoo, 79.76 mIoU) -> PSPNet R18-d8 (student, ImageNet backbone). Logits (decode_head.conv_seg)
# have 19 channels on both; the decode heads' features (decode_head.bottleneck) have 512
# (teacher) and 128 (student) channels, at 1/8 of the input. The models use SyncBN (set
# model.*.norm_cfg to BN through cfg_options for a single process on CPU). A method config adds
# recorders, losses and their mappings.
_base_ = [
    'mmseg::_base_/datasets/cityscapes.py',
    'mmseg::_base_/schedules/schedule_80k.py',
    'mmseg::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)
teacher_ckpt = 'https://download.openmmlab.com/mmsegmentation/v0.5/pspnet/pspnet_r101-d8_512x1024_80k_cityscapes/pspnet_r101-d8_512x1024_80k_cityscapes_20200606_112211-e1e1100f.pth'  # noqa: E501
model = dict(
    _scope_='mmkd',
    type='Distiller',
    student=dict(cfg_path='mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py',
                 pretrained=True),
    teacher=dict(cfg_path='mmseg::pspnet/pspnet_r101-d8_4xb2-80k_cityscapes-512x1024.py',
                 pretrained=False),
    # A cheaper teacher (docs/en/user_guides/teacher_settings.md), e.g. on GPUs:
    # teacher_precision='fp16', teacher_channels_last=True,
    teacher_ckpt=teacher_ckpt)
val_cfg = dict(_delete_=True, type='mmkd.DistillValLoop')
