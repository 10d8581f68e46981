# CIRKD (Yang et al., "Cross-Image Relational Knowledge Distillation for Semantic
# Segmentation", CVPR 2022): on the decode head's feature before its classifier, mini-batch
# pixel-to-pixel relations (weight 1, tau 0.1) and the pixel / region memories (weights 0.1,
# queues of 20000 / 2000 per class, student projector), with plain KD on the logits (tau 1,
# weight 1) (winycg/CIRKD; Cityscapes val, PSP-R18 72.55 -> 74.73 mIoU).
# The pixel memory holds 19 x 20000 x 512 floats (778 MB per GPU and per checkpoint):
# dict(type='CIRKD', on='seg_feat', pixel_memory_size=5000) keeps a quarter.
_base_ = '../_base_/cityscapes_deeplabv3-r101_pspnet-r18.py'
model = dict(recipes=[dict(type='CIRKD', on='seg_feat'), dict(type='KD', on='seg_logits')])
