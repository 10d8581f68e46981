# RetinaNet X101-64x4d -> R50, COCO 2x (the published CrossKD RetinaNet config,
# crosskd_r50_retinanet_r101_fpn_2x_coco.py, distills an R101 teacher).
# CrossKD (Wang et al., CVPR 2024, https://arxiv.org/abs/2306.11369): the student's head
# features after conv 3 of 4 (reused_teacher_head_idx=3; conv output, before the ReLU),
# normalised per channel to the teacher's, run through the teacher's conv 4 and predictors.
# Published losses: quality focal KD on the class scores (beta 1, weight 1, label-weighted,
# over the positives) and GIoU on the decoded boxes weighted by the teacher's score (weight 1).
_base_ = '../_base_/coco_retina-x101_retina-r50.py'
model = dict(
    cross_heads=dict(crosskd=dict(head='bbox_head', reused_teacher_head_idx=3)),
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
