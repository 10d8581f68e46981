# Faster R-CNN R101 -> R50, COCO 2x. MGD (MGDLoss: a generator rebuilds the teacher feature from
# the randomly masked student) on the 5 FPN levels, mask ratio 0.65, weight 2e-5 (the paper's
# detection setting), with its gradient clipping.
_base_ = '../_base_/coco_frcnn-r101_frcnn-r50.py'
levels = (0, 1, 2, 3, 4)
distill_loss = dict(type='MGDLoss', student_channels=256, teacher_channels=256,
                    loss_weight=2e-5, lambda_mgd=0.65)
model = dict(
    distill_losses={f'loss_mgd_fpn{i}': distill_loss for i in levels},
    loss_forward_mappings={
        f'loss_mgd_fpn{i}': dict(
            preds_S=dict(from_student=True, recorder='fpn', data_idx=i),
            preds_T=dict(from_student=False, recorder='fpn', data_idx=i))
        for i in levels})
optim_wrapper = dict(clip_grad=dict(max_norm=35, norm_type=2))
