# Student: the same Semantic FPN with a ResNet-18 of half the width (base_channels=32). mmseg's
# ResNet keeps a 64-channel stem unless told: stem_channels=32 halves it too, so the student's
# backbone is the detection student's (configs/digits/retinanet_r18-w32_digits.py) weight for
# weight and takes the same pretrained checkpoint (mmkd/engine/pretrain.py).
_base_ = './semfpn_r18_digits.py'
model = dict(
    backbone=dict(base_channels=32, stem_channels=32),
    neck=dict(in_channels=[32, 64, 128, 256]))
