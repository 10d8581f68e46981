# Semantic FPN R18 -> R18 (half width), embedded digits. GKD (GKDLoss) on the 4 FPN levels, with
# the segmentation loss in place of the detection loss: the teacher's own decode-head loss on the
# batch's label maps gives the Grad-CAM maps (gradient=True specs) that weight the imitation.
# No BMFI: it needs boxes, which segmentation samples do not have.
_base_ = '../_base_/digits_seg.py'
levels = (0, 1, 2, 3)
distill_loss = dict(type='GKDLoss', loss_weight=1.0, double_backward=False)
model = dict(
    student_recorders=dict(fpn=dict(type='ModuleOutputsRecorder', source='neck')),
    teacher_recorders=dict(fpn=dict(type='ModuleOutputsRecorder', source='neck')),
    distill_losses={f'loss_gkd_fpn{i}': distill_loss for i in levels},
    loss_forward_mappings={
        f'loss_gkd_fpn{i}': dict(
            preds_S=dict(from_student=True, recorder='fpn', data_idx=i),
            preds_T=dict(from_student=False, recorder='fpn', data_idx=i),
            grads_S=dict(from_student=True, recorder='fpn', data_idx=i, gradient=True),
            grads_T=dict(from_student=False, recorder='fpn', data_idx=i, gradient=True))
        for i in levels})
