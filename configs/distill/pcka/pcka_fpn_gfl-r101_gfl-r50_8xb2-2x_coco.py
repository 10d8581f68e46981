# GFL R101 -> R50, COCO 2x. PCKA (PCKALoss) on the first 4 FPN levels, weight 10, 16x16-cell
# patches, intra + inter terms (the paper's setting for Faster R-CNN / GFL). Uncentered as in the
# published code: at 1333x800 the 4th level (stride 64, about 13x21 cells) has only 2 patches,
# where centered CKA is constant.
_base_ = '../_base_/coco_gfl-r101_gfl-r50.py'
model = dict(recipes=[dict(type='PCKA', on='neck', inter_weight=1.0)])
