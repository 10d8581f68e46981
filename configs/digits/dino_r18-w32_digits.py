# Student: the same DINO with a ResNet-18 of half the width (base_channels=32).
_base_ = './dino_r18_digits.py'
model = dict(
    backbone=dict(base_channels=32),
    neck=dict(in_channels=[64, 128, 256]))
