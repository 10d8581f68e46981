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
model = dict(recipes=[dict(type='KD', on='dense_cls_logits', selfreg='hybrid')])
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='mmkd.SignificanceSubset',
        budget=0.3,
        # passed on to the wrapped dataset: train_dataloader.dataset.data_root moves both
        data_root={{_base_.data_root}},
        dataset={{_base_.train_dataloader.dataset}}))
