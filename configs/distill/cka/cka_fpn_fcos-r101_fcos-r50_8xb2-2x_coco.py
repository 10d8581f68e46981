# FCOS R101 -> R50, COCO 2x. RCKA (CKALoss, feature term) on the 5 FPN levels: the images of the
# batch are the samples. With 2 images per GPU centered CKA is constant (always 1 for 2 samples),
# so uncentered, as in the published code. The paper reports PCKA, not RCKA, for detection and
# gives no RCKA detection weight: 10 follows its PCKA weight.
_base_ = '../_base_/coco_fcos-r101_fcos-r50.py'
levels = (0, 1, 2, 3, 4)
distill_loss = dict(type='CKALoss', loss_weight=10.0, centered=False)
model = dict(
    distill_losses={f'loss_cka_fpn{i}': distill_loss for i in levels},
    loss_forward_mappings={
        f'loss_cka_fpn{i}': dict(
            preds_S=dict(from_student=True, recorder='fpn', data_idx=i),
            preds_T=dict(from_student=False, recorder='fpn', data_idx=i))
        for i in levels})
