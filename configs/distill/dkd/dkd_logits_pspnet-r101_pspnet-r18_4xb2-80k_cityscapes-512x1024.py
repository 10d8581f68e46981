# PSPNet R101 -> R18, Cityscapes.
# DKD (Decoupled KD, CVPR 2022) per pixel with the ground-truth class as target: alpha 1,
# beta 8, tau 4 (the paper's defaults), linear warm-up over 1000 iterations (our choice).
# Per pixel on the decode heads' logits (decode_head.conv_seg outputs, one softmax over the
# classes); gt_sem_seg is resized to the logits with nearest neighbours, ignore index 255 left out.
_base_ = '../_base_/cityscapes_pspnet-r101_pspnet-r18.py'
model = dict(recipes=[dict(type='DKD', on='seg_logits')])
