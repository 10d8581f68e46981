# Faster R-CNN R101 -> R50, COCO 2x. RCKA (CKALoss, feature term) on the 5 FPN levels: the images
# of the batch are the samples. With 2 images per GPU centered CKA is constant (always 1 for 2
# samples), so uncentered, as in the published code. The paper reports PCKA, not RCKA, for
# detection and gives no RCKA detection weight: 10 follows its PCKA weight.
_base_ = '../_base_/coco_frcnn-r101_frcnn-r50.py'
model = dict(recipes=[dict(type='CKA', on='neck')])
