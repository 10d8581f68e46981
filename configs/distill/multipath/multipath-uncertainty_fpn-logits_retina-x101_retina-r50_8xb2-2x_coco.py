# RetinaNet X101 -> R50, COCO 2x. The multi-path setup of
# multipath-fixed_fpn-logits_retina-x101_retina-r50_8xb2-2x_coco.py
# (MSE on every FPN level + dense-head KD),
# combined by uncertainty weighting (Chennupati et al., BMVC 2021,
# after Kendall et al.): one learnable, clamped log-variance per path, exp(-alpha) * L + alpha.
# Each path's weight is logged as distill_weight.<path>.
_base_ = './multipath-fixed_fpn-logits_retina-x101_retina-r50_8xb2-2x_coco.py'
model = dict(weighting=dict(_delete_=True, type='UncertaintyWeighting'))
