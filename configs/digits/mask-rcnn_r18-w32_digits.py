# Student: the same Mask R-CNN with a ResNet-18 of half the width (base_channels=32).
_base_ = './mask-rcnn_r18_digits.py'
model = dict(
    backbone=dict(base_channels=32),
    neck=dict(in_channels=[64, 128, 256]))
