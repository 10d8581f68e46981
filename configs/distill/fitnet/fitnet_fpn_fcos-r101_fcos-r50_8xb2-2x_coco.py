# FCOS R101 -> R50, COCO 2x. FitNet baseline (MSEFeatureLoss) on the 5 FPN levels; both necks
# have 256 channels, so no connector (hint layer) is needed.
_base_ = '../_base_/coco_fcos-r101_fcos-r50.py'
model = dict(recipes=[dict(type='FitNet', on='neck')])
