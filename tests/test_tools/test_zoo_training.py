"""Model-zoo training cases (mmkd/apis/zoo_training.py, mmkd/apis/zoo_adaptation.py): short
distillation runs of mmdet / mmseg model-zoo configs through their own hooks, on digits."""
import json
import os.path as osp

import pytest
from mmengine.config import Config

from mmkd.apis.zoo_adaptation import adapt_model, class_count, scale_size
from mmkd.apis.zoo_training import (TRAINING_CASES, ZooCase, run_training_case,
                                    write_case_config)
from mmkd.models.distillers.model_config import load_model_file

#: The tests' run: 64 px images, 2 training images in 1 batch (one iteration an epoch).
TINY = dict(size=64, num_train=2, num_val=2, batch_size=2)
#: Trained by the default suite; the others are `slow`.
FAST_CASES = ('yolox', 'segmenter')


def _settings(**kwargs):
    return dict(dict(TINY, seed=0), **kwargs)


def _failure(result: dict) -> str:
    return f"{result['name']}: {result['reason']} (see {osp.dirname(result['config'] or '')})"


def test_yolox_config_moves_the_switch_into_the_short_run(tmp_path):
    path = write_case_config('yolox', str(tmp_path), str(tmp_path / 'digits'), 3,
                             _settings(num_train=8, size=96))
    cfg = Config.fromfile(path)
    hooks = {h['type']: h for h in cfg.custom_hooks}
    # YOLOXModeSwitchHook switches when epoch + 1 >= max_epochs - num_last_epochs
    assert hooks['YOLOXModeSwitchHook']['num_last_epochs'] == 0
    assert hooks['EMAHook']['momentum'] == 0.0001  # kept as the config has it
    assert 'mmkd.ZooCaseRecorderHook' in hooks
    assert cfg.train_cfg.max_epochs == 3 and cfg.train_cfg.val_interval == 1
    assert cfg.default_hooks.checkpoint.interval == 1
    # 8 images in batches of 2: 4 iterations an epoch, 12 in all; YOLOX's cosine phase ends
    # at 285 of 300 epochs, so at iteration round(285 / 300 * 12) = 11
    schedulers = {s['type']: s for s in cfg.param_scheduler}
    assert all(s['by_epoch'] is False for s in cfg.param_scheduler)
    assert schedulers['CosineAnnealingLR']['end'] == 11
    assert schedulers['mmdet.QuadraticWarmupLR']['end'] == 1  # 5 / 300 rounds to 0: 1 iter
    # the config's own pipeline and wrapper, on the digits, sizes scaled by 96 / 416
    # (YOLOX-tiny's test size)
    train = cfg.train_dataloader.dataset
    assert train.type == 'MultiImageMixDataset' and train.dataset.type == 'CocoDataset'
    assert train.dataset.data_root == str(tmp_path / 'digits') + '/'
    assert train.dataset.metainfo['classes'] == tuple('0123456789')
    assert [t['type'] for t in train.pipeline][:2] == ['Mosaic', 'RandomAffine']
    assert train.pipeline[0]['img_scale'] == (160, 160)
    assert cfg.val_dataloader.dataset.pipeline[1]['scale'] == (96, 96)
    assert cfg.val_evaluator.ann_file == str(tmp_path / 'digits/annotations/instances_val.json')
    student = cfg.model.student
    assert student.pretrained is False
    assert student.cfg_options == {
        'model.bbox_head.num_classes': 10,
        'model.data_preprocessor.batch_augments.0.random_size_range': (64, 160)}
    assert cfg.model.teacher.cfg_options['model.bbox_head.num_classes'] == 10
    assert cfg.model.input_size == (96, 96)
    # the config tools/distill.py writes, next to it, is what was adapted
    written = osp.join(str(tmp_path), 'yolox_distill.py')
    assert "recipes=[dict(type='PKD', on='neck')]" in open(written).read()


def test_iteration_schedule_and_segmentation_data(tmp_path):
    path = write_case_config('pidnet', str(tmp_path), str(tmp_path / 'digits'), 3,
                             _settings(num_train=4))
    cfg = Config.fromfile(path)
    assert cfg.train_cfg.type == 'IterBasedTrainLoop'
    assert (cfg.train_cfg.max_iters, cfg.train_cfg.val_interval) == (6, 2)
    assert cfg.default_hooks.checkpoint.interval == 2
    assert cfg.default_hooks.checkpoint.by_epoch is False
    assert [(s['type'], s['begin'], s['end']) for s in cfg.param_scheduler] == [
        ('PolyLR', 0, 6)]
    dataset = cfg.train_dataloader.dataset
    assert dataset.type == 'DigitsSegDataset'
    assert dataset.data_prefix == dict(img_path='images/train',
                                       seg_map_path='seg_labels/train')
    crop = [t for t in dataset.pipeline if t['type'] == 'RandomCrop'][0]
    assert crop['crop_size'] == (64, 64)  # 1024 x 1024 crops, 64 / 1024 of them
    assert 'mmkd.datasets' in cfg.custom_imports['imports']
    options = cfg.model.student.cfg_options
    assert options['model.data_preprocessor.size'] == (64, 64)
    assert options['model.decode_head.num_classes'] == 11
    # Cityscapes' 19 class weights become 11 weights (their mean, 1.000005); the case's own
    # option drops those of the first loss (an mmseg bug, see TRAINING_CASES)
    weights = options['model.decode_head.loss_decode.1.class_weight']
    assert weights == [pytest.approx(1.0000053, abs=1e-6)] * 11
    assert options['model.decode_head.loss_decode.0.class_weight'] is None
    assert cfg.val_evaluator.type == 'IoUMetric'


def test_adapt_model_classes_with_no_object_weight():
    model = load_model_file('mmdet::mask2former/mask2former_r50_8xb2-lsj-50e_coco.py').model
    assert class_count(model) == 80
    adapted = adapt_model(model, 'det', 10, 0.125)
    head = adapted.panoptic_head
    assert (head.num_things_classes, head.num_stuff_classes) == (10, 0)
    assert head.loss_cls.class_weight == [1.0] * 10 + [0.1]
    assert adapted.panoptic_fusion_head.num_things_classes == 10
    pad = adapted.data_preprocessor.batch_augments[0]
    assert pad.size == (128, 128)  # 1024 * 0.125


def test_scale_size_keeps_strides_and_relative_sizes():
    assert scale_size((640, 640), 0.15) == (96, 96)
    assert scale_size((1024, 1024), 0.01) == (32, 32)  # a multiple of 32 stays one
    assert scale_size((0.6, 0.6), 0.1) == (0.6, 0.6)  # relative crop
    assert scale_size(-320, 0.2) == -64


def test_unknown_case_and_options(tmp_path):
    with pytest.raises(KeyError, match="Unknown training case 'nope'; the cases are"):
        run_training_case('nope', str(tmp_path))
    with pytest.raises(TypeError, match=r"unknown options \['widht'\]; the options are"):
        run_training_case('yolox', str(tmp_path), widht=2)


def test_failure_is_reported_with_its_stage(tmp_path, monkeypatch):
    yolox = TRAINING_CASES['yolox']
    monkeypatch.setitem(TRAINING_CASES, 'bad', ZooCase(yolox.student, yolox.teacher,
                                                       method='PKD', on='seg_logits'))
    result = run_training_case('bad', str(tmp_path), **TINY)
    assert result['status'] == 'failed' and result['equal'] is False
    assert result['reason'].startswith('train: ValueError:'), result['reason']
    assert 'seg_logits' in result['reason']
    assert 'Traceback' in open(tmp_path / 'bad' / 'error.txt').read()
    assert json.load(open(tmp_path / 'bad' / 'zoo_case_result.json'))['status'] == 'failed'


def test_yolox_mode_switch_fires_in_the_last_epoch(tmp_path):
    result = run_training_case('yolox', str(tmp_path), epochs=3, **TINY)
    assert result['status'] == 'ok', _failure(result)
    assert result['switches'] == {'YOLOXModeSwitchHook': 3}
    assert result['hooks_fired'] == ['YOLOXModeSwitchHook', 'SyncNormHook', 'EMAHook']
    assert result['checks'] and all(result['checks'].values()), result['checks']
    assert result['equal'] is True
    assert set(result['last_val']) >= {'coco/bbox_mAP', 'coco/bbox_mAP_50'}
    assert result['exported']['metrics'] == {
        k: v for k, v in result['last_val'].items() if k in result['exported']['metrics']}
    record = json.load(open(tmp_path / 'yolox' / 'zoo_case_record.json'))
    # before the switch: mosaic on, no L1 loss; in the last epoch: mosaic off, L1 loss on
    assert [e['use_l1'] for e in record['epochs']] == [False, False, True]
    assert 'Mosaic' in record['epochs'][1]['transforms']
    assert 'Mosaic' not in record['epochs'][2]['transforms']
    assert len(record['val']) == 3


def test_mask_classification_segmentor_case(tmp_path):
    result = run_training_case('segmenter', str(tmp_path), epochs=3, **TINY)
    assert result['status'] == 'ok', _failure(result)
    assert result['equal'] is True
    assert set(result['last_val']) == {'aAcc', 'mIoU', 'mAcc'}
    config = open(tmp_path / 'segmenter' / 'segmenter_distill.py').read()
    assert "recipes=[dict(type='CWD', on='seg_logits')]" in config


@pytest.mark.slow
@pytest.mark.parametrize('name', sorted(set(TRAINING_CASES) - set(FAST_CASES)))
def test_training_case(name, tmp_path):
    result = run_training_case(name, str(tmp_path), epochs=3)
    assert result['status'] == 'ok', _failure(result)
    assert result['equal'] is True
