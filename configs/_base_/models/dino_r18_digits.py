# DINO (mmdet's DINO: two-stage, box refinement, contrastive denoising) sized for 128 px digits
# trained from scratch on CPU, on the digits RetinaNet's ResNet-18 (stages 2-4, strides 8, 16,
# 32: 16x16, 8x8 and 4x4 cells at 128 px): its levels mapped to a 256-d transformer (mmdet's
# DINO decoder fixes 256: its sine encoding of the reference boxes is 4 x 128 wide) of 1 encoder
# and 2 decoder layers (8 heads, FFN 512), 30 queries (at most 4 digits an image) and 20
# denoising queries. mmdet's COCO DINO: 4 levels, 6 + 6 layers, FFN 2048, 900 queries.
_base_ = './retinanet_r18_digits.py'
backbone_width = 64  # ResNet base_channels; the student narrows it
embed_dims = 256
model = dict(
    type='DINO',
    num_queries=30,
    with_box_refine=True,
    as_two_stage=True,
    num_feature_levels=3,
    data_preprocessor=dict(pad_size_divisor=1),
    neck=dict(
        _delete_=True,
        type='ChannelMapper',
        in_channels=[backbone_width * 2, backbone_width * 4, backbone_width * 8],
        kernel_size=1,
        out_channels=embed_dims,
        act_cfg=None,
        norm_cfg=dict(type='GN', num_groups=32),
        num_outs=3),
    encoder=dict(
        num_layers=1,
        layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=embed_dims, num_levels=3, num_heads=8, dropout=0.0),
            ffn_cfg=dict(embed_dims=embed_dims, feedforward_channels=512, ffn_drop=0.0))),
    decoder=dict(
        num_layers=2,
        return_intermediate=True,
        layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=embed_dims, num_heads=8, dropout=0.0),
            cross_attn_cfg=dict(embed_dims=embed_dims, num_levels=3, num_heads=8, dropout=0.0),
            ffn_cfg=dict(embed_dims=embed_dims, feedforward_channels=512, ffn_drop=0.0)),
        post_norm_cfg=None),
    positional_encoding=dict(num_feats=embed_dims // 2, normalize=True, offset=0.0,
                             temperature=20),
    bbox_head=dict(
        _delete_=True,
        type='DINOHead',
        num_classes=10,
        embed_dims=embed_dims,
        sync_cls_avg_factor=True,
        loss_cls=dict(
            type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
        loss_bbox=dict(type='L1Loss', loss_weight=5.0),
        loss_iou=dict(type='GIoULoss', loss_weight=2.0)),
    dn_cfg=dict(
        label_noise_scale=0.5,
        box_noise_scale=1.0,
        group_cfg=dict(dynamic=True, num_groups=None, num_dn_queries=20)),
    train_cfg=dict(
        _delete_=True,
        assigner=dict(
            type='HungarianAssigner',
            match_costs=[
                dict(type='FocalLossCost', weight=2.0),
                dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
                dict(type='IoUCost', iou_mode='giou', weight=2.0)
            ])),
    test_cfg=dict(_delete_=True, max_per_img=30))
