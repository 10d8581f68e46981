# KD-DETR (Wang et al., CVPR 2024, https://arxiv.org/abs/2211.08071) for any DINO / two-stage
# Deformable DETR pair: the same distillation points (the teacher's best queries' reference boxes
# and random boxes; 300 + 300 as published) run through both decoders (the Distiller's
# distill_points, mmkd/models/distillers/distill_points.py); at those points the student's
# predictions of every decoder layer imitate the teacher's last layer: sigmoid KD on the class
# scores (weight 1) and L1 (weight 5) and GIoU (weight 2) on the boxes, every point weighted by
# the teacher's confidence (mmkd/models/losses/kddetr.py). A method config takes it as its
# model's delta: _base_ = [PAIR, '../_base_/kddetr_points.py']; model = {{_base_.kddetr}} (its
# own name: two bases cannot both set model).
points = dict(from_student=True, recorder='kddetr')
points_T = dict(from_student=False, recorder='kddetr')
kddetr = dict(
    distill_points=dict(kddetr=dict(teacher_points=300, random_points=300)),
    distill_losses=dict(
        loss_kddetr_cls=dict(type='KDDETRClsLoss', mode='sigmoid', tau=1.0, loss_weight=1.0),
        loss_kddetr_l1=dict(type='KDDETRBoxLoss', metric='l1', loss_weight=5.0),
        loss_kddetr_giou=dict(type='KDDETRBoxLoss', metric='giou', loss_weight=2.0)),
    loss_forward_mappings=dict(
        loss_kddetr_cls=dict(preds_S=dict(points, data_idx='cls_scores'),
                             preds_T=dict(points_T, data_idx='cls_scores')),
        loss_kddetr_l1=dict(preds_S=dict(points, data_idx='bbox_preds'),
                            preds_T=dict(points_T, data_idx='bbox_preds'),
                            logits_T=dict(points_T, data_idx='cls_scores')),
        loss_kddetr_giou=dict(preds_S=dict(points, data_idx='bbox_preds'),
                              preds_T=dict(points_T, data_idx='bbox_preds'),
                              logits_T=dict(points_T, data_idx='cls_scores'))))
