# mmdet's runtime, iteration-based (checkpoints and logs count iterations, not epochs).
_base_ = 'mmdet::_base_/default_runtime.py'
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=200, max_keep_ckpts=2,
                    save_best='coco/bbox_mAP', rule='greater'))
log_processor = dict(type='LogProcessor', window_size=20, by_epoch=False)
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)
