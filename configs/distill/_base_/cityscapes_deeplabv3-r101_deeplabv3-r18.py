# Cityscapes 512x1024, the setting of the segmentation distillation papers (CIRKD, DIST, MasKD,
# Af-DCD all train with CIRKD's code): 40k iterations at batch 16 (8 GPUs x 2 images), SGD
# poly; dilated ResNets, output stride 8, the student's auxiliary FCN head on c3 trained with
# CE 0.4. Teacher: DeepLabV3 R101-d8 (mmseg model zoo, 80.2 mIoU; the papers' own teacher has
# 78.07) -> student DeepLabV3 R18-d8 (mmseg model zoo config, ImageNet backbone; 76.7 mIoU
# after mmseg's own 80k schedule). Logits (decode_head.conv_seg, auxiliary_head.conv_seg) have
# 19 channels on both; the decode heads' features before the classifier 512 (teacher) and 128
# (student) channels, the last backbone stage 2048 and 512, all at 1/8 of the input. The
# models use SyncBN (bash tools/dist_train.sh CONFIG 8; for one process on a CPU set
# model.*.norm_cfg to BN through cfg_options). A method config adds its recipes.
_base_ = [
    'mmseg::_base_/datasets/cityscapes.py',
    'mmseg::_base_/schedules/schedule_40k.py',
    'mmseg::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)
teacher_ckpt = 'https://download.openmmlab.com/mmsegmentation/v0.5/deeplabv3/deeplabv3_r101-d8_512x1024_80k_cityscapes/deeplabv3_r101-d8_512x1024_80k_cityscapes_20200606_113503-9e428899.pth'  # noqa: E501
model = dict(
    _scope_='mmkd',
    type='Distiller',
    student=dict(cfg_path='mmseg::deeplabv3/deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024.py',
                 pretrained=True),
    teacher=dict(cfg_path='mmseg::deeplabv3/deeplabv3_r101-d8_4xb2-80k_cityscapes-512x1024.py',
                 pretrained=False),
    # A cheaper teacher (docs/en/user_guides/teacher_settings.md), e.g. on GPUs:
    # teacher_precision='fp16', teacher_channels_last=True,
    teacher_ckpt=teacher_ckpt)
# 8 GPUs x 2 images = the papers' batch 16; mmseg's 40k schedule (SGD lr 0.01, momentum 0.9,
# weight decay 5e-4, poly 0.9), CIRKD's code's learning rate
train_dataloader = dict(batch_size=2, num_workers=2)
val_cfg = dict(_delete_=True, type='mmkd.DistillValLoop')
