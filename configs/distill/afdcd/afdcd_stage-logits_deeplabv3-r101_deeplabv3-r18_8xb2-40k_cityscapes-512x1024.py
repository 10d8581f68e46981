# Af-DCD (Fan et al., "Augmentation-free Dense Contrastive Knowledge Distillation for Efficient
# Semantic Segmentation", NeurIPS 2023): on the last backbone stage (c4), masked feature
# mimicking (weight 2e-6) and the dense contrastive term over spatial patches and channel
# groups (weight 0.005), with plain KD on the logits (tau 1, weight 1) (OSVAI/Af-DCD;
# Cityscapes val, DLV3-R18 74.21 -> 77.03 mIoU).
_base_ = '../_base_/cityscapes_deeplabv3-r101_deeplabv3-r18.py'
model = dict(recipes=[dict(type='AfDCD', on='backbone'), dict(type='KD', on='seg_logits')])
