# Faster R-CNN R101 -> R50, COCO 2x. SoKD (SoKDLoss) around RCKA (CKALoss, feature term) on the
# 5 FPN levels (strides 4-64): CKA compares the masked, refined maps. Uncentered and weight 10
# as ../cka/cka_fpn_frcnn-r101_frcnn-r50_8xb2-2x_coco.py (2 images per GPU). SoKD's own
# constants (P = 10 areas, refiner bounds 0.3, DAM and refiner weights 1) are ours: the paper's
# are not public. The refiner gets its own parameter group, without weight decay.
_base_ = './sokd_mse_fpn_frcnn-r101_frcnn-r50_8xb2-2x_coco.py'
# (the MSE config's optimizer; CKA as the wrapped loss)
model = dict(recipes=[
    dict(type='SoKD', on='neck', loss=dict(type='CKALoss', centered=False), loss_weight=10.0)])
