# GFL R101 -> R50, COCO (the published CrossKD pair: crosskd_r50_gflv1_r101-2x-ms_fpn_1x_coco.py,
# 40.2 -> 43.7 box AP with the 1x schedule; this base trains 2x).
# CrossKD (Wang et al., CVPR 2024, https://arxiv.org/abs/2306.11369): the student's head
# features after conv 3 of 4 (reused_teacher_head_idx=3; GN output, before the ReLU), normalised
# per channel to the teacher's, run through the teacher's conv 4 and predictors. Published
# losses: quality focal KD on the class scores (beta 1, weight 1, label-weighted, over the
# positives) and the softmax KL of the box distributions (T 1, weight 4) weighted by the
# teacher's score. GFLHead.get_targets: labels are output 1, label weights output 2.
_base_ = '../_base_/coco_gfl-r101_gfl-r50.py'
model = dict(
    cross_heads=dict(crosskd=dict(head='bbox_head', reused_teacher_head_idx=3)),
    student_recorders=dict(
        targets=dict(type='MethodOutputsRecorder', source='bbox_head.get_targets')),
    teacher_recorders=dict(
        head=dict(type='MethodOutputsRecorder', source='bbox_head.forward')),
    distill_losses=dict(
        loss_crosskd_cls=dict(type='CrossKDClsLoss', beta=1.0, loss_weight=1.0),
        loss_crosskd_dist=dict(type='CrossKDDistributionLoss', tau=1.0, loss_weight=4.0)),
    loss_forward_mappings=dict(
        loss_crosskd_cls=dict(
            preds_S=dict(from_student=True, recorder='crosskd', data_idx='cls_score'),
            preds_T=dict(from_student=False, recorder='head', data_idx=0),
            labels=dict(from_student=True, recorder='targets', data_idx=1),
            label_weights=dict(from_student=True, recorder='targets', data_idx=2)),
        loss_crosskd_dist=dict(
            preds_S=dict(from_student=True, recorder='crosskd', data_idx='bbox_pred'),
            preds_T=dict(from_student=False, recorder='head', data_idx=1),
            logits_T=dict(from_student=False, recorder='head', data_idx=0),
            label_weights=dict(from_student=True, recorder='targets', data_idx=2))))
