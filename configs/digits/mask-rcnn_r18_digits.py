# Teacher: Mask R-CNN ResNet-18 (base width 64), trained from scratch on the embedded digits set
# with its exact instance masks; evaluated with COCO box and mask mAP.
_base_ = [
    '../_base_/models/mask-rcnn_r18_digits.py',
    '../_base_/datasets/digits_instance.py',
    '../_base_/schedules/adamw_600it.py',
    '../_base_/det_runtime.py',
]
