# RetinaNet R18 -> R18 (half width), embedded digits. PKD (PKDLoss) on all 3 FPN levels (on COCO
# levels 0-3 of 5: the coarsest is left out; here the coarsest, 4x4, still holds whole digits),
# weight 10 as the one-stage COCO configs.
_base_ = '../_base_/digits_det.py'
model = dict(recipes=[dict(type='PKD', on='neck')])
