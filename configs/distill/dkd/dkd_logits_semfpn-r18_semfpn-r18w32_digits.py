# Semantic FPN R18 -> R18 (half width), embedded digits.
# DKD (Decoupled KD, CVPR 2022) per pixel with the ground-truth class as target: alpha 1,
# beta 8, tau 4 (the paper's defaults), no warm-up (a short schedule).
# Per pixel on the decode heads' logits (decode_head.conv_seg outputs, one softmax over the
# classes); gt_sem_seg is resized to the logits with nearest neighbours, ignore index 255 left out.
_base_ = '../_base_/digits_seg.py'
model = dict(recipes=[dict(type='DKD', on='seg_logits', warmup_iters=0)])
