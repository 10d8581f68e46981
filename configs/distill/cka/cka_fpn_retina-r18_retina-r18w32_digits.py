# RetinaNet R18 -> R18 (half width), embedded digits. RCKA (CKALoss, feature term) on the 3 FPN
# levels, weight 10 as the COCO configs. The 8 images of a batch are the samples, enough for
# centered CKA (the COCO configs, with 2 images per GPU, use uncentered CKA).
_base_ = '../_base_/digits_det.py'
levels = (0, 1, 2)
distill_loss = dict(type='CKALoss', loss_weight=10.0)
model = dict(
    distill_losses={f'loss_cka_fpn{i}': distill_loss for i in levels},
    loss_forward_mappings={
        f'loss_cka_fpn{i}': dict(
            preds_S=dict(from_student=True, recorder='fpn', data_idx=i),
            preds_T=dict(from_student=False, recorder='fpn', data_idx=i))
        for i in levels})
