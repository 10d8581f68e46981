# Teacher: Semantic FPN ResNet-18 (base width 64), trained from scratch on the embedded digits set.
_base_ = [
    '../_base_/models/semfpn_r18_digits.py',
    '../_base_/datasets/digits_segmentation.py',
    '../_base_/schedules/adamw_600it.py',
    '../_base_/seg_runtime.py',
]
