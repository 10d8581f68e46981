# Teacher: DINO ResNet-18 (base width 64), trained from scratch on the embedded digits set.
# The optimizer is mmdet's DINO recipe (AdamW, weight decay 1e-4, gradient clipped at 0.1) at
# twice its learning rate (no pretrained backbone here to protect); the 600-iteration schedule
# is the other digits models'. Its accuracy after 600 iterations has not been measured yet.
_base_ = [
    '../_base_/models/dino_r18_digits.py',
    '../_base_/datasets/digits_detection.py',
    '../_base_/schedules/adamw_600it.py',
    '../_base_/det_runtime.py',
]
optim_wrapper = dict(
    optimizer=dict(lr=2e-4, weight_decay=1e-4),
    clip_grad=dict(max_norm=0.1, norm_type=2))
