# RetinaNet R18 -> R18 (half width), embedded digits. PCKA (PCKALoss, intra term as for RetinaNet
# on COCO) on the 3 FPN levels, weight 10. COCO's 16x16-cell patches would leave one patch per
# level at 128 px, where CKA over patches is constant: the patch side halves with each level (4,
# 2, 1 cells, i.e. 32 px of the image everywhere), so every level has 16 patches (the dataset
# pipeline resizes images to 128 px), enough for centered CKA (>= 3).
_base_ = '../_base_/digits_det.py'
levels = (0, 1, 2)
patch_sizes = (4, 2, 1)  # feature cells per patch side, one per level
model = dict(
    distill_losses={
        f'loss_pcka_fpn{i}': dict(type='PCKALoss', loss_weight=10.0, patch_size=patch_sizes[i])
        for i in levels},
    loss_forward_mappings={
        f'loss_pcka_fpn{i}': dict(
            preds_S=dict(from_student=True, recorder='fpn', data_idx=i),
            preds_T=dict(from_student=False, recorder='fpn', data_idx=i))
        for i in levels})
