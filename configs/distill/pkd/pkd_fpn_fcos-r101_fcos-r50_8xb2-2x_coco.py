# FCOS R101 -> R50, COCO 2x. PKD (PKDLoss: 1 - Pearson r per channel) on FPN levels 0-3, weight
# 10 (the paper's range is 6..10; 10 is its one-stage setting).
_base_ = '../_base_/coco_fcos-r101_fcos-r50.py'
model = dict(recipes=[dict(type='PKD', on='neck')])
