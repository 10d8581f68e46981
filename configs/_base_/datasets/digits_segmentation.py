# The embedded "digits on photos" dataset for mmseg: 11 classes, 'background' and '0'..'9'.
# Generate it first with
#   python tools/make_digits_dataset.py --out data/digits
# Label maps are seg_labels/<split>/NNNNNN.png (0 background, d + 1 for digit d); see
# mmkd/datasets/digits.py.
dataset_type = 'DigitsSegDataset'
data_root = 'data/digits/'
# Registers DigitsSegDataset in mmseg's DATASETS registry.
custom_imports = dict(imports=['mmkd.datasets'], allow_failed_imports=False)

# No RandomFlip: a mirrored digit is not that digit. No resizing: images are generated at the
# size the model should see (tools/make_digits_dataset.py --size).
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
# num_workers=0: decoding eight 128 px PNGs takes about a millisecond, far less than a training
# step, and on small CPU machines worker processes would only compete with the model for cores.
train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='images/train', seg_map_path='seg_labels/train'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='images/val', seg_map_path='seg_labels/val'),
        test_mode=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
