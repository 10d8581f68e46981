# RetinaNet R18 -> R18 (half width), embedded digits. RCKA (CKALoss, feature term) on the 3 FPN
# levels, weight 10 as the COCO configs. The 8 images of a batch are the samples, enough for
# centered CKA (the COCO configs, with 2 images per GPU, use uncentered CKA).
_base_ = '../_base_/digits_det.py'
model = dict(recipes=[dict(type='CKA', on='neck', centered=True)])
