# Faster R-CNN R101 -> R50, COCO 2x. Self-regulated distillation (Mishra & Sundaram, 2021,
# https://arxiv.org/abs/2102.07125), significance mode: training keeps the 30% of the images on
# which the teacher misses the most objects (budget 0.3; the 2x schedule's 24 epochs then take
# 30% of the iterations), and each image's distillation term is weighted by that significance
# (floored at 0.1, normalised to mean 1 over the batch). The distilled term is CWD on the 5 FPN
# levels (tau 1, weight 10) as in ../cwd/cwd_fpn_frcnn-r101_frcnn-r50_8xb2-2x_coco.py, per image.
# No regulated / hybrid variant: Faster R-CNN's class scores are per RoI, not per image cell,
# so the student has no dense map to regulate itself on. Write the significance first (default
# output data/coco/annotations/instances_train2017.significance.json):
#   python tools/significance.py configs/distill/selfreg/<this file>
_base_ = '../_base_/coco_frcnn-r101_frcnn-r50.py'
model = dict(recipes=[dict(type='CWD', on='neck', selfreg='significance')])
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='mmkd.SignificanceSubset',
        budget=0.3,
        # passed on to the wrapped dataset: train_dataloader.dataset.data_root moves both
        data_root={{_base_.data_root}},
        dataset={{_base_.train_dataloader.dataset}}))
