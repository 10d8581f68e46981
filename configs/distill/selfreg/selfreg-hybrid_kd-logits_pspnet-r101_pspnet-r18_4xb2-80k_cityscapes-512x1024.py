# PSPNet R101 -> R18, Cityscapes. Self-regulated distillation (Mishra & Sundaram, 2021,
# https://arxiv.org/abs/2102.07125), hybrid mode: training keeps the 30% of the images whose
# labelled pixels the teacher gets most often wrong or unsure (budget 0.3; the 80k iterations
# stay, so each kept image is seen more often); each image's per-pixel KD term is weighted by
# that significance (floored at 0.1, normalised to mean 1 over the batch) and skipped where the
# student already predicts >= 90% of the labelled pixels with a ground-truth-class probability
# >= 0.5. The distilled term is KD on the decode heads' logits as in
# ../kd/kd_logits_pspnet-r101_pspnet-r18_4xb2-80k_cityscapes-512x1024.py, per image. Write the
# significance first (default output data/cityscapes/leftImg8bit/train.significance.json):
#   python tools/significance.py configs/distill/selfreg/<this file>
_base_ = '../_base_/cityscapes_pspnet-r101_pspnet-r18.py'
model = dict(recipes=[dict(type='KD', on='seg_logits', selfreg='hybrid')])
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='mmkd.SignificanceSubset',
        budget=0.3,
        # passed on to the wrapped dataset: train_dataloader.dataset.data_root moves both
        data_root={{_base_.data_root}},
        dataset={{_base_.train_dataloader.dataset}}))
