# RetinaNet R18 -> R18 (half width), embedded digits. Self-regulated distillation (Mishra &
# Sundaram, 2021, https://arxiv.org/abs/2102.07125), regulated mode: the student skips the
# distillation on an image it already detects confidently (every ground-truth box has a
# sigmoid score >= conf_thr for its class at the cell of its centre on some FPN level), on all
# training images. The distilled term is KD on the dense head's class logits as in
# ../kd/kd_logits_retina-r18_retina-r18w32_digits.py, evaluated per image by
# SignificanceWeightedLoss (so max_locations caps each image). conf_thr 0.5 is this project's
# choice (the paper's thresholds are not public).
_base_ = '../_base_/digits_det.py'
model = dict(recipes=[dict(type='KD', on='dense_cls_logits', selfreg='regulated')])
