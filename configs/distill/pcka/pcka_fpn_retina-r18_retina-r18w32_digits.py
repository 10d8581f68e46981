# RetinaNet R18 -> R18 (half width), embedded digits. PCKA (PCKALoss, intra term as for RetinaNet
# on COCO) on the 3 FPN levels, weight 10. COCO's 16x16-cell patches would leave one patch per
# level at 128 px, where CKA over patches is constant: the patch side halves with each level (4,
# 2, 1 cells, i.e. 32 px of the image everywhere), so every level has 16 patches (the dataset
# pipeline resizes images to 128 px), enough for centered CKA (>= 3).
_base_ = '../_base_/digits_det.py'
patch_sizes = (4, 2, 1)  # feature cells per patch side, one per level
model = dict(recipes=[
    dict(type='PCKA', on='neck', levels=i, patch_size=size, centered=True)
    for i, size in enumerate(patch_sizes)])
