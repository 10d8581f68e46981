# RetinaNet X101 -> R50, COCO 2x. The multi-path setup of
# multipath-fixed_fpn-logits_retina-x101_retina-r50_8xb2-2x_coco.py
# (MSE on every FPN level + dense-head KD),
# combined by gradient-similarity weighting (after Du et al.,
# 2018): each path weighted by the smoothed cosine of its gradient with the task loss's on the
# student's neck, floored at 0.
# Each path's weight is logged as distill_weight.<path>.
_base_ = './multipath-fixed_fpn-logits_retina-x101_retina-r50_8xb2-2x_coco.py'
model = dict(weighting=dict(_delete_=True, type='GradientSimilarityWeighting',
                          shared_module='neck'))
