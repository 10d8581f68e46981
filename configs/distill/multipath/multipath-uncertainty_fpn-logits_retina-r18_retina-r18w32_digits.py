# RetinaNet R18 -> R18 (half width), embedded digits. The multi-path setup of
# multipath-fixed_fpn-logits_retina-r18_retina-r18w32_digits.py
# (MSE on every FPN level + dense-head KD),
# combined by uncertainty weighting (Chennupati et al., BMVC 2021,
# after Kendall et al.): one learnable, clamped log-variance per path, exp(-alpha) * L + alpha.
# Each path's weight is logged as distill_weight.<path>.
_base_ = './multipath-fixed_fpn-logits_retina-r18_retina-r18w32_digits.py'
model = dict(weighting=dict(_delete_=True, type='UncertaintyWeighting'))
