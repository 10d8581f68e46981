# Mask R-CNN sized for 128 px images trained from scratch on CPU, on mmdet's Mask R-CNN base:
# a ResNet-18 without pretrained weights, 3 FPN levels (strides 8-32, as the digits RetinaNet)
# of 128 channels, anchors of 32-128 px for digits of 24-56 px, 2 FCs of 256 in the box head,
# 2 convs in the mask head (28x28 masks, as mmdet's), and fewer proposals and sampled RoIs.
_base_ = 'mmdet::_base_/models/mask-rcnn_r50_fpn.py'
backbone_width = 64  # ResNet base_channels; the student narrows it
strides = [8, 16, 32]
model = dict(
    backbone=dict(
        depth=18,
        base_channels=backbone_width,
        out_indices=(1, 2, 3),
        frozen_stages=-1,
        norm_eval=False,
        init_cfg=None),
    neck=dict(
        in_channels=[backbone_width * 2, backbone_width * 4, backbone_width * 8],
        out_channels=128,
        num_outs=3),
    rpn_head=dict(
        in_channels=128,
        feat_channels=128,
        anchor_generator=dict(scales=[4], strides=strides)),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=128, featmap_strides=strides),
        bbox_head=dict(in_channels=128, fc_out_channels=256, num_classes=10),
        mask_roi_extractor=dict(out_channels=128, featmap_strides=strides),
        mask_head=dict(num_convs=2, in_channels=128, conv_out_channels=128, num_classes=10)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=1000, max_per_img=300),
        rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(
        rpn=dict(nms_pre=500, max_per_img=300),
        rcnn=dict(max_per_img=30)))
