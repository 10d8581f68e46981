# Faster R-CNN R101 -> R50, COCO 2x. CWD (CWDLoss: per-channel spatial softmax, KL) on the 5 FPN
# levels, tau 1, weight 10 (the paper's detection range is 5..10).
_base_ = '../_base_/coco_frcnn-r101_frcnn-r50.py'
levels = (0, 1, 2, 3, 4)
distill_loss = dict(type='CWDLoss', loss_weight=10.0, tau=1.0)
model = dict(
    distill_losses={f'loss_cwd_fpn{i}': distill_loss for i in levels},
    loss_forward_mappings={
        f'loss_cwd_fpn{i}': dict(
            preds_S=dict(from_student=True, recorder='fpn', data_idx=i),
            preds_T=dict(from_student=False, recorder='fpn', data_idx=i))
        for i in levels})
