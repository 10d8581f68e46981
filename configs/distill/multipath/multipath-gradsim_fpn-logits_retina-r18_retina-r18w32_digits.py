# RetinaNet R18 -> R18 (half width), embedded digits. The multi-path setup of
# multipath-fixed_fpn-logits_retina-r18_retina-r18w32_digits.py
# (MSE on every FPN level + dense-head KD),
# combined by gradient-similarity weighting (after Du et al.,
# 2018): each path weighted by the smoothed cosine of its gradient with the task loss's on the
# student's neck, floored at 0.
# Each path's weight is logged as distill_weight.<path>.
_base_ = './multipath-fixed_fpn-logits_retina-r18_retina-r18w32_digits.py'
model = dict(weighting=dict(_delete_=True, type='GradientSimilarityWeighting',
                          shared_module='neck'))
