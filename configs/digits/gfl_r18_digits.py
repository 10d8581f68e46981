# Second digits teacher, of another family: GFL (generalized focal loss, quality-focal
# classification + distribution box regression, ATSS assignment) on the RetinaNet R18 teacher's
# backbone and neck (3 FPN levels, strides 8-32, 128 channels), trained from scratch like it.
# One square anchor per location of 4x the stride (32-128 px; the digits' sides are 24-56 px at
# 128 px, their boxes tighter); mmdet's COCO GFL uses 8x for objects of 32-800 px.
_base_ = './retinanet_r18_digits.py'
model = dict(
    type='GFL',
    bbox_head=dict(
        type='GFLHead',
        anchor_generator=dict(ratios=[1.0], octave_base_scale=4, scales_per_octave=1),
        bbox_coder=dict(_delete_=True, type='DistancePointBBoxCoder'),
        loss_cls=dict(
            _delete_=True, type='QualityFocalLoss', use_sigmoid=True, beta=2.0, loss_weight=1.0),
        loss_dfl=dict(type='DistributionFocalLoss', loss_weight=0.25),
        reg_max=16,
        loss_bbox=dict(type='GIoULoss', loss_weight=2.0)),
    train_cfg=dict(
        _delete_=True,
        assigner=dict(type='ATSSAssigner', topk=9),
        allowed_border=-1,
        pos_weight=-1,
        debug=False),
    test_cfg=dict(nms=dict(iou_threshold=0.6)))
