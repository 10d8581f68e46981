# RetinaNet X101 -> R50, COCO 2x. MGD (MGDLoss: a generator rebuilds the teacher feature from the
# randomly masked student) on the 5 FPN levels, mask ratio 0.65, weight 2e-5 (the paper's
# detection setting), with its gradient clipping.
_base_ = '../_base_/coco_retina-x101_retina-r50.py'
model = dict(recipes=[dict(type='MGD', on='neck')])
optim_wrapper = dict(clip_grad=dict(max_norm=35, norm_type=2))
