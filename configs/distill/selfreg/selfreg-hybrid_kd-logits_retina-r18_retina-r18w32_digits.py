# RetinaNet R18 -> R18 (half width), embedded digits. Self-regulated distillation, hybrid mode:
# the regulated config (the student skips images it already detects confidently) plus the
# teacher's significance: training keeps the 30% most significant images (budget 0.3) and
# weights each image's KD term by its significance (floored at min_weight 0.1, normalised to
# mean 1 over the batch). Write the significance first (the default output is
# data/digits/annotations/instances_train.significance.json, where SignificanceSubset looks):
#   python tools/significance.py configs/distill/selfreg/<this file>
_base_ = '../_base_/digits_det.py'
model = dict(recipes=[dict(type='KD', on='dense_cls_logits', selfreg='hybrid')])
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='mmkd.SignificanceSubset',
        budget=0.3,
        # passed on to the wrapped dataset: train_dataloader.dataset.data_root moves both
        data_root={{_base_.data_root}},
        dataset={{_base_.train_dataloader.dataset}}))
