# RetinaNet R18 -> R18 (half width), embedded digits. TopKD as in topkd_logits_retina-*_digits.py,
# but on the raw logits (centre=False), the dense-head form until 2026-12-01: kept as the control
# that shows why the recipe now centres. Raw logits at the head's prior bias are nearly parallel
# whatever the classes, so the cosines give almost no gradient (TopKDLoss docstring): +5.30 bbox
# mAP, not resolved, against +15.54 centred (5 seeds each, benchmarks/RESULTS.md).
_base_ = '../_base_/digits_det.py'
model = dict(recipes=[dict(type='TopKD', on='dense_cls_logits', centre=False)])
