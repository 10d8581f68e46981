# Semantic FPN R18 -> R18 (half width), embedded digits. Self-regulated distillation (Mishra &
# Sundaram, 2021, https://arxiv.org/abs/2102.07125), regulated mode: the student skips the
# distillation on an image it already segments confidently (at least handled_ratio 0.9 of the
# labelled pixels have a ground-truth-class probability >= conf_thr 0.5 in its own logits), on
# all training images. The distilled term is per-pixel KD on the decode heads' logits as in
# ../kd/kd_logits_semfpn-r18_semfpn-r18w32_digits.py, evaluated per image by
# SignificanceWeightedLoss. The thresholds are this project's choice (the paper's are not
# public).
_base_ = '../_base_/digits_seg.py'
model = dict(recipes=[dict(type='KD', on='seg_logits', selfreg='regulated')])
