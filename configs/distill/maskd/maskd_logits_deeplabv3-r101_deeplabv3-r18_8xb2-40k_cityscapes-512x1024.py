# MasKD (Huang et al., "Masked Distillation with Receptive Tokens", ICLR 2023): the logits
# distilled under the masks of 8 receptive tokens learned on the teacher first, weight 0.5 on
# the decode head's logits and 0.4 x 0.5 on the auxiliary head's, no plain KD
# (hunto/MasKD, segmentation; Cityscapes val, DLV3-R18 74.21 -> 77.00 mIoU).
# First learn the tokens on the teacher (the paper: 10k iterations, SGD lr 0.1 poly):
#   python tools/maskd_tokens.py THIS_CONFIG --iters 10000 --out work_dirs/maskd_tokens_deeplabv3-r101_deeplabv3-r18.pth
_base_ = '../_base_/cityscapes_deeplabv3-r101_deeplabv3-r18.py'
tokens = 'work_dirs/maskd_tokens_deeplabv3-r101_deeplabv3-r18.pth'
model = dict(recipes=[dict(type='MasKD', on='seg_logits', tokens=tokens),
                      dict(type='MasKD', on='aux_logits', tokens=tokens)])
