# COCO, 12 epochs: DINO-4scale R50 (teacher, mmdet model zoo, 49.0 box AP) -> DINO-4scale R18
# (student, ImageNet backbone; mmdet's DINO with a ResNet-18, whose stages 2-4 give 128, 256 and
# 512 channels). mmdet's DINO recipe: its data pipeline, AdamW 1e-4 with the backbone at 0.1x,
# gradient clipped at 0.1, 12 epochs, 8 GPUs x 2 images.
_base_ = 'mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)
teacher_ckpt = 'https://download.openmmlab.com/mmdetection/v3.0/dino/dino-4scale_r50_8xb2-12e_coco/dino-4scale_r50_8xb2-12e_coco_20221202_182705-55b2bba2.pth'  # noqa: E501
model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='Distiller',
    student=dict(
        cfg_path='mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py',
        pretrained=True,
        cfg_options={
            'model.backbone.depth': 18,
            'model.backbone.init_cfg.checkpoint': 'torchvision://resnet18',
            'model.neck.in_channels': [128, 256, 512]}),
    teacher=dict(cfg_path='mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py', pretrained=False),
    teacher_ckpt=teacher_ckpt)
val_cfg = dict(_delete_=True, type='mmkd.DistillValLoop')
