# RetinaNet R18 -> R18 (half width), embedded digits.
# CrossKD (Wang et al., CVPR 2024, https://arxiv.org/abs/2306.11369): the student's head
# features after conv 1 of 2 (both heads are 128 channels wide there), normalised per channel
# to the teacher's, run through the teacher's last head conv and predictors; the cross-head
# predictions imitate the teacher's: quality focal KD on the class scores (beta 1, weight 1,
# label-weighted) and GIoU on the decoded boxes weighted by the teacher's score (weight 1), as
# the published RetinaNet config (crosskd_r50_retinanet_r101_fpn_2x_coco.py), whose 4-conv
# heads cross after conv 3 (reused_teacher_head_idx=3): here one conv before the predictors too.
_base_ = '../_base_/digits_det.py'
model = dict(
    cross_heads=dict(crosskd=dict(head='bbox_head', reused_teacher_head_idx=1)),
    student_recorders=dict(
        targets=dict(type='MethodOutputsRecorder', source='bbox_head.get_targets')),
    teacher_recorders=dict(
        head=dict(type='MethodOutputsRecorder', source='bbox_head.forward')),
    distill_losses=dict(
        loss_crosskd_cls=dict(type='CrossKDClsLoss', beta=1.0, loss_weight=1.0),
        loss_crosskd_box=dict(type='CrossKDBoxLoss', iou='giou', loss_weight=1.0)),
    loss_forward_mappings=dict(
        loss_crosskd_cls=dict(
            preds_S=dict(from_student=True, recorder='crosskd', data_idx='cls_score'),
            preds_T=dict(from_student=False, recorder='head', data_idx=0),
            labels=dict(from_student=True, recorder='targets', data_idx=0),
            label_weights=dict(from_student=True, recorder='targets', data_idx=1)),
        loss_crosskd_box=dict(
            preds_S=dict(from_student=True, recorder='crosskd', data_idx='bbox_pred'),
            preds_T=dict(from_student=False, recorder='head', data_idx=1),
            logits_T=dict(from_student=False, recorder='head', data_idx=0),
            priors=dict(from_student=True, recorder='crosskd', data_idx='priors'),
            bbox_coder=dict(from_student=True, recorder='crosskd', data_idx='bbox_coder'),
            labels=dict(from_student=True, recorder='targets', data_idx=0),
            label_weights=dict(from_student=True, recorder='targets', data_idx=1))))
