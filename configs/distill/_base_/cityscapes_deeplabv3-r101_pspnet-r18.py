# Cityscapes 512x1024, the segmentation distillation papers' setting (see
# ./cityscapes_deeplabv3-r101_deeplabv3-r18.py): DeepLabV3 R101-d8 (teacher, mmseg model zoo)
# -> PSPNet R18-d8 (student, mmseg model zoo config, ImageNet backbone; 74.87 mIoU after
# mmseg's own 80k schedule). The student's decode head's feature before its classifier has 128
# channels; logits 19 channels on both heads.
_base_ = './cityscapes_deeplabv3-r101_deeplabv3-r18.py'
model = dict(student=dict(cfg_path='mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py'))
