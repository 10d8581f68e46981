# RetinaNet X101 -> R50, COCO 2x. Self-regulated distillation (Mishra & Sundaram, 2021,
# https://arxiv.org/abs/2102.07125), hybrid mode: training keeps the 30% of the images on which
# the teacher misses the most objects (budget 0.3; the 2x schedule's 24 epochs then take 30% of
# the iterations); each image's KD term is weighted by that significance (floored at 0.1,
# normalised to mean 1 over the batch) and skipped where the student already detects every
# object confidently (sigmoid score of its class >= 0.5 at the cell of its centre). The
# distilled term is KD on the dense head's class logits as in
# ../kd/kd_logits_retina-x101_retina-r50_8xb2-2x_coco.py, per image (max_locations per image).
# Write the significance first (default output
# data/coco/annotations/instances_train2017.significance.json):
#   python tools/significance.py configs/distill/selfreg/<this file>
_base_ = '../_base_/coco_retina-x101_retina-r50.py'
model = dict(
    student_recorders=dict(
        cls=dict(type='MethodOutputsRecorder', source='bbox_head.forward'),
        targets=dict(type='MethodOutputsRecorder', source='bbox_head.get_targets')),
    teacher_recorders=dict(
        cls=dict(type='MethodOutputsRecorder', source='bbox_head.forward')),
    distill_losses=dict(
        loss_kd_cls=dict(
            type='SignificanceWeightedLoss', mode='hybrid', name='loss_kd_cls',
            num_classes=80, conf_thr=0.5, min_weight=0.1,
            loss=dict(
                type='DenseHeadLogitLoss', num_classes=80, loss_weight=1.0,
                select=('positive', 'confident'), score_thr=0.5, max_locations=2000,
                loss=dict(type='KDLoss', mode='sigmoid', tau=1.0)))),
    loss_forward_mappings=dict(
        loss_kd_cls=dict(
            data_samples=dict(from_data='data_samples'),
            student_logits=dict(from_student=True, recorder='cls', data_idx=0),
            preds_S=dict(from_student=True, recorder='cls', data_idx=0),
            preds_T=dict(from_student=False, recorder='cls', data_idx=0),
            labels=dict(from_student=True, recorder='targets', data_idx=0))))
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='mmkd.SignificanceSubset',
        budget=0.3,
        # passed on to the wrapped dataset: train_dataloader.dataset.data_root moves both
        data_root={{_base_.data_root}},
        dataset={{_base_.train_dataloader.dataset}}))
