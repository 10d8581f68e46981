# Faster R-CNN R101 -> R50, COCO 2x. PCKA (PCKALoss) on the first 4 FPN levels, weight 10,
# 16x16-cell patches, intra + inter terms (the paper's setting for Faster R-CNN / GFL).
# Uncentered as in the published code: at 1333x800 the 4th level (stride 64, about 13x21 cells)
# has only 2 patches, where centered CKA is constant.
_base_ = '../_base_/coco_frcnn-r101_frcnn-r50.py'
levels = (0, 1, 2, 3)
distill_loss = dict(type='PCKALoss', loss_weight=10.0, patch_size=16, inter_weight=1.0,
                    centered=False)
model = dict(
    distill_losses={f'loss_pcka_fpn{i}': distill_loss for i in levels},
    loss_forward_mappings={
        f'loss_pcka_fpn{i}': dict(
            preds_S=dict(from_student=True, recorder='fpn', data_idx=i),
            preds_T=dict(from_student=False, recorder='fpn', data_idx=i))
        for i in levels})
