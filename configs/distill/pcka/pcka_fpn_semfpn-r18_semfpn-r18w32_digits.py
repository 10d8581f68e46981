# Semantic FPN R18 -> R18 (half width), embedded digits. PCKA (PCKALoss, intra term) on the 4 FPN
# levels, weight 10 (a detection loss in the paper, applied here to the segmentation FPN). The
# patch side halves with each level (8, 4, 2, 1 cells, i.e. 32 px of the image everywhere): 16
# patches per level at 128 px, 4 at 64 px, enough for centered CKA (>= 3).
_base_ = '../_base_/digits_seg.py'
patch_sizes = (8, 4, 2, 1)  # feature cells per patch side, one per level
model = dict(recipes=[
    dict(type='PCKA', on='neck', levels=i, patch_size=size, centered=True)
    for i, size in enumerate(patch_sizes)])
