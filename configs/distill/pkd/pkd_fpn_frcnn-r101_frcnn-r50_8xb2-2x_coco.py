# Faster R-CNN R101 -> R50, COCO 2x. PKD (PKDLoss: 1 - Pearson r per channel) on FPN levels 0-3,
# weight 6 (the paper's range is 6..10; 6 is its two-stage setting).
_base_ = '../_base_/coco_frcnn-r101_frcnn-r50.py'
model = dict(recipes=[dict(type='PKD', on='neck', loss_weight=6.0)])
