# PSPNet R101 -> R18, Cityscapes.
# TopKD (Top-K scaling + Top-K decoupled loss) per pixel, the ground-truth class added to the
# scaled set; K 5 and the other constants at the suggested defaults (the paper's are not public).
# Per pixel on the decode heads' logits (decode_head.conv_seg outputs, one softmax over the
# classes); gt_sem_seg is resized to the logits with nearest neighbours, ignore index 255 left out.
_base_ = '../_base_/cityscapes_pspnet-r101_pspnet-r18.py'
model = dict(recipes=[dict(type='TopKD', on='seg_logits')])
