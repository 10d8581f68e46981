# Semantic FPN with a ResNet-18 (non-dilated: dilated ResNets are too slow on CPU at this size),
# 128-channel FPN, for 128 px digit images with 11 classes (background + 10 digits).
backbone_width = 64  # ResNet base_channels; the student narrows it
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(
        type='SegDataPreProcessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_val=0,
        seg_pad_val=255,
        size_divisor=32),
    backbone=dict(
        type='ResNet',
        depth=18,
        base_channels=backbone_width,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        dilations=(1, 1, 1, 1),
        strides=(1, 2, 2, 2),
        norm_cfg=norm_cfg,
        norm_eval=False,
        style='pytorch'),
    neck=dict(
        type='FPN',
        in_channels=[backbone_width, backbone_width * 2, backbone_width * 4, backbone_width * 8],
        out_channels=128,
        num_outs=4),
    decode_head=dict(
        type='FPNHead',
        in_channels=[128, 128, 128, 128],
        in_index=[0, 1, 2, 3],
        feature_strides=[4, 8, 16, 32],
        channels=64,
        dropout_ratio=0.1,
        num_classes=11,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss',
            use_sigmoid=False,
            loss_weight=1.0,
            # Background covers most pixels; down-weight it so digits get learned.
            class_weight=[0.1] + [1.0] * 10,
            avg_non_ignore=True)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
