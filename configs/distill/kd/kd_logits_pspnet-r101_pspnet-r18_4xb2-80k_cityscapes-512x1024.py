# PSPNet R101 -> R18, Cityscapes.
# Vanilla KD (Hinton et al., 2015): softmax KL per pixel, tau 1, weight 1 (this project's
# choice: the paper has no segmentation setting).
# Per pixel on the decode heads' logits (decode_head.conv_seg outputs, one softmax over the
# classes); gt_sem_seg is resized to the logits with nearest neighbours, ignore index 255 left out.
_base_ = '../_base_/cityscapes_pspnet-r101_pspnet-r18.py'
model = dict(recipes=[dict(type='KD', on='seg_logits')])
