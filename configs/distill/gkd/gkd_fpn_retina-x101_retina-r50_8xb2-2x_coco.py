# RetinaNet X101 -> R50, COCO 2x. GKD (GKDLoss) on every FPN level: the teacher's own detection loss on the
# batch's ground truth gives Grad-CAM maps (gradient=True specs), which weight the feature
# imitation; the student's map follows the teacher's (stop-gradient mode, the default), and the
# box-aware BMFI term (FGD-style GT masks and attention) is added. The published code's pseudo
# labels from a second test pass are not used. Weights are not public for COCO: 1.0 / BMFI 1.0.
_base_ = '../_base_/coco_retina-x101_retina-r50.py'
levels = tuple(range(5))
distill_loss = dict(
    type='GKDLoss',
    loss_weight=1.0,
    double_backward=False,  # True trains through the student's Grad-CAM weights (slower)
    bmfi=dict(student_channels=256, teacher_channels=256))
model = dict(
    distill_losses={f'loss_gkd_fpn{i}': distill_loss for i in levels},
    loss_forward_mappings={
        f'loss_gkd_fpn{i}': dict(
            preds_S=dict(from_student=True, recorder='fpn', data_idx=i),
            preds_T=dict(from_student=False, recorder='fpn', data_idx=i),
            grads_S=dict(from_student=True, recorder='fpn', data_idx=i, gradient=True),
            grads_T=dict(from_student=False, recorder='fpn', data_idx=i, gradient=True),
            data_samples=dict(from_data='data_samples'))
        for i in levels})
