# Semantic FPN R18 -> R18 (half width), embedded digits. Self-regulated distillation, hybrid
# mode: the regulated config (the student skips images it already segments confidently) plus
# the teacher's significance: training keeps the 30% most significant images (budget 0.3) and
# weights each image's KD term by its significance (floored at min_weight 0.1, normalised to
# mean 1 over the batch). Write the significance first (the default output is
# data/digits/images/train.significance.json, beside the image folder):
#   python tools/significance.py configs/distill/selfreg/<this file>
_base_ = '../_base_/digits_seg.py'
model = dict(recipes=[dict(type='KD', on='seg_logits', selfreg='hybrid')])
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='mmkd.SignificanceSubset',
        budget=0.3,
        # passed on to the wrapped dataset: train_dataloader.dataset.data_root moves both
        data_root={{_base_.data_root}},
        dataset={{_base_.train_dataloader.dataset}}))
