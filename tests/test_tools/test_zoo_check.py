"""tools/analysis/zoo_check.py (mmkd.apis.zoo_check): pairs, the dry-run rows, the ledger and
its table."""
import json
import random
import time

import pytest
from tool_runs import load_tool

from mmkd.apis import zoo_check
from mmkd.apis.run_ledger import RunLedger
from mmkd.apis.zoo_check import Pair, choose_pair, dataset_of, model_size


def test_dataset_is_the_last_name_part_with_its_variant_words():
    assert dataset_of('retinanet_r50_fpn_1x_coco.py') == 'coco'
    assert dataset_of('mask2former_r50_8xb2-lsj-50e_coco-panoptic.py') == 'coco-panoptic'
    assert dataset_of('pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py') == 'cityscapes-512x1024'
    assert dataset_of('condinst_r50_fpn_ms-poly-90k_coco_instance.py') == 'coco_instance'
    assert dataset_of('fcos_r50_fpn_8x4_sample1e-3_mstrain_v3det_2x.py') == 'v3det_2x'


def test_sizes_follow_the_names():
    order = [
        ['retinanet_r18_fpn_1x_coco', 'retinanet_r50_fpn_1x_coco', 'retinanet_r101_fpn_1x_coco',
         'retinanet_x101-32x4d_fpn_1x_coco', 'retinanet_x101-64x4d_fpn_1x_coco'],
        ['mask-rcnn_swin-t-p4-w7_fpn_1x_coco', 'mask-rcnn_swin-s-p4-w7_fpn_1x_coco',
         'ddq-detr-4scale_swinl_8xb2-30e_coco'],
        ['yolox_nano_8xb8-300e_coco', 'yolox_tiny_8xb8-300e_coco', 'yolox_s_8xb8-300e_coco',
         'yolox_l_8xb8-300e_coco', 'yolox_x_8xb8-300e_coco'],
        ['rtmdet-ins_tiny_8xb32-300e_coco', 'rtmdet-ins_m_8xb32-300e_coco'],
        ['segformer_mit-b0_8xb2-160k_ade20k-512x512', 'segformer_mit-b5_8xb2-160k_ade20k-512x512'],
        ['fcn_hr18s_4xb2-40k_cityscapes-512x1024', 'fcn_hr18_4xb2-40k_cityscapes-512x1024',
         'fcn_hr48_4xb2-40k_cityscapes-512x1024'],
        ['faster-rcnn_regnetx-400MF_fpn_ms-3x_coco', 'faster-rcnn_regnetx-3.2GF_fpn_1x_coco'],
        ['mobilenet-v3-d8-s_lraspp_4xb4-320k_cityscapes-512x1024',
         'mobilenet-v3-d8_lraspp_4xb4-320k_cityscapes-512x1024'],
        ['segmenter_vit-t_mask_8xb1-160k_ade20k-512x512', 'segmenter_vit-l_mask_8xb1-160k_'
         'ade20k-512x512'],
    ]
    for names in order:
        sizes = [model_size(n + '.py') for n in names]
        assert None not in sizes and sizes == sorted(set(sizes)), (names, sizes)
    assert model_size('erfnet_fcn_4xb4-160k_cityscapes-512x1024.py') is None
    assert model_size('unet-s5-d16_fcn_4xb4-40k_drive-64x64.py') is None  # 's5' is no ResNeSt


RETINA = ['retinanet_r50_fpn_1x_coco.py', 'retinanet_r101_fpn_1x_coco.py',
          'retinanet_r18_fpn_1x_coco.py', 'retinanet_x101-64x4d_fpn_1x_coco.py',
          'retinanet_r50_fpn_90k_coco.py', 'retinanet_r101_fpn_ms-640-800-3x_coco.py',
          'retinanet_r50_fpn_1x_voc0712.py', 'retinanet_tta.py', 'metafile.yml', 'README.md']


def test_the_teacher_is_a_larger_model_of_the_same_dataset():
    # r18 is the smallest; of the larger ones, the names otherwise closest to the student's
    # ('retinanet_#_fpn_1x_coco'), the largest: x101-64x4d (its two size words count as one)
    assert choose_pair(RETINA) == Pair('retinanet_r18_fpn_1x_coco.py',
                                       'retinanet_x101-64x4d_fpn_1x_coco.py', 'size', 'coco')
    shuffled = RETINA[:]
    random.Random(0).shuffle(shuffled)
    assert choose_pair(shuffled) == choose_pair(RETINA)  # the order of the listing is no input
    # a config that is not a model is passed over, the next best taken
    assert choose_pair(RETINA, lambda n: 'x101' not in n and 'r18' not in n) == Pair(
        'retinanet_r50_fpn_1x_coco.py', 'retinanet_r101_fpn_1x_coco.py', 'size', 'coco')
    # the same algorithm is preferred to a smaller student of another one
    assert choose_pair(['centernet_r18_8xb16-crop512-140e_coco.py',
                        'centernet-update_r50_fpn_8xb8-amp-lsj-200e_coco.py',
                        'centernet-update_r18_fpn_8xb8-amp-lsj-200e_coco.py']) == Pair(
        'centernet-update_r18_fpn_8xb8-amp-lsj-200e_coco.py',
        'centernet-update_r50_fpn_8xb8-amp-lsj-200e_coco.py', 'size', 'coco')


def test_without_sizes_two_configs_of_a_dataset_else_self_distillation():
    names = ['cgnet_fcn_4xb4-60k_cityscapes-680x680.py',
             'cgnet_fcn_4xb8-60k_cityscapes-512x1024.py', 'unet_fcn_4xb4-40k_drive-64x64.py',
             'unet_pspnet_4xb4-40k_drive-64x64.py']
    # no group has sizes: the larger group, then by name
    assert choose_pair(names) == Pair('unet_fcn_4xb4-40k_drive-64x64.py',
                                      'unet_pspnet_4xb4-40k_drive-64x64.py', 'same dataset',
                                      'drive-64x64')
    # the dataset of a size-ranked pair comes before a larger one without
    assert choose_pair(names + ['fcn_r18-d8_4xb2-80k_voc12aug-512x512.py',
                                'fcn_r50-d8_4xb2-80k_voc12aug-512x512.py']).how == 'size'
    assert choose_pair(['erfnet_fcn_4xb4-160k_cityscapes-512x1024.py']) == Pair(
        'erfnet_fcn_4xb4-160k_cityscapes-512x1024.py',
        'erfnet_fcn_4xb4-160k_cityscapes-512x1024.py', 'self', 'cityscapes-512x1024')
    assert choose_pair(['rtmdet_tta.py', 'README.md'], lambda n: False) is None
    assert choose_pair([]) is None


def test_unknown_only_names_close_families():
    families = ['mmdet::retinanet', 'mmdet::fcos', 'mmseg::fcn']
    assert zoo_check.select_families(families, ['fcn']) == ['mmseg::fcn']
    assert zoo_check.select_families(families, None, 'mmdet') == families[:2]
    with pytest.raises(ValueError, match=r"--only names no family .* \['retinanett'\]"):
        zoo_check.select_families(families, ['retinanett'])


def test_a_real_family_dry_runs_through_the_forked_child(tmp_path):
    """mmdet::retinanet as the tool runs it: R18 <- X101-64x4d, PKD on the neck and KD on the
    dense head's logits, each built by tools/distill.py --dry-run in a forked child."""
    ledger = tmp_path / 'zoo.json'
    report = load_tool('analysis/zoo_check.py').main([
        '--only', 'mmdet::retinanet', '--ledger', str(ledger), '--work-dir',
        str(tmp_path / 'work'), '--timeout', '300'])
    row = json.loads(ledger.read_text())['mmdet::retinanet']
    assert (row['student'], row['teacher'], row['pair'], row['task']) == (
        'mmdet::retinanet/retinanet_r18_fpn_1x_coco.py',
        'mmdet::retinanet/retinanet_x101-64x4d_fpn_1x_coco.py', 'size', 'det')
    assert sorted(row['methods']) == ['kd --on dense_cls_logits', 'pkd']
    assert row['methods']['pkd']['on'] == 'neck'
    assert row['verdict'] == 'ok' and row['framework'] is None, row
    assert (tmp_path / 'work' / 'mmdet_retinanet' / 'pkd_default.py').exists()
    text = open(report).read()
    assert report == str(tmp_path / 'zoo.md')
    assert ('| retinanet | retinanet_r18_fpn_1x_coco ← retinanet_x101-64x4d_fpn_1x_coco | '
            'ok (neck) | ok (dense_cls_logits) | — | builds |') in text


def _sleep(spec):
    zoo_check._write_json(spec['out'], dict(methods={'pkd': dict(status='ok')}))
    time.sleep(60)


def _raise(spec):
    raise RuntimeError('no kernel for this op')


def test_a_hung_or_crashed_child_costs_its_row_only(tmp_path):
    spec = dict(work_dir=str(tmp_path), out=str(tmp_path / 'row.json'))
    start = time.time()
    result, _ = zoo_check.run_child(_sleep, spec, 2, str(tmp_path / 'sleep.log'))
    assert time.time() - start < 30
    assert result == dict(methods={'pkd': dict(status='ok')}, crash='timed out after 2 s')
    result, _ = zoo_check.run_child(_raise, spec, 60, str(tmp_path / 'raise.log'))
    assert result == dict(crash='the process exited with 1: RuntimeError: no kernel for this op')


def test_a_package_that_is_not_installed_is_told_apart(tmp_path):
    config = tmp_path / 'needs.py'
    config.write_text("custom_imports = dict(imports=['mmkd_no_such_package'])\n"
                      "default_scope = 'mmdet'\nmodel = dict(type='RetinaNet')\n")
    check = zoo_check.framework_check(str(config), 'det')
    assert check['status'] == 'failed' and check['kind'] == 'package'
    assert 'mmkd_no_such_package' in check['error']
    failed = dict(status='failed', error='x')
    assert zoo_check.verdict({'pkd': failed}, {'student': check}) == 'package'
    assert zoo_check.verdict({'pkd': failed}, {'student': dict(status='ok')}) == 'mmkd'
    assert zoo_check.verdict({'pkd': dict(status='ok')}, None) == 'ok'


def test_the_framework_check_retries_at_the_configs_own_size():
    from mmengine.config import Config
    ssd = Config(dict(model=dict(type='SingleStageDetector'), test_pipeline=[
        dict(type='LoadImageFromFile'), dict(type='Resize', scale=(300, 300))]))
    assert zoo_check.native_size(ssd) == 300
    coco = Config(dict(model=dict(type='RetinaNet'), test_dataloader=dict(dataset=dict(
        pipeline=[dict(type='Resize', scale=(1333, 800), keep_ratio=True)]))))
    assert zoo_check.native_size(coco) == zoo_check.NATIVE_SIZE_CAP == 640
    seg = Config(dict(model=dict(type='EncoderDecoder',
                                 data_preprocessor=dict(size=(512, 512)))))
    assert zoo_check.native_size(seg) == 512
    assert zoo_check.native_size(Config(dict(model=dict(type='X')))) is None


def _row(verdict, methods, **extra):
    return dict(dict(task='det', package='mmdet', student='mmdet::x/a_r18_fpn_1x_coco.py',
                     teacher='mmdet::x/a_r50_fpn_1x_coco.py', pair='size',
                     command='python tools/x.py', mmkd_commit='abc1234'),
                verdict=verdict, methods=methods, **extra)


OK = dict(status='ok', on='neck', error=None, seconds=1.0)


def test_resume_skips_finished_families_and_reruns_failed_ones(tmp_path, monkeypatch):
    ledger = str(tmp_path / 'zoo.json')
    RunLedger(ledger).record('mmdet::done', _row('ok', {'pkd': OK}, family='mmdet::done'))
    RunLedger(ledger).record('mmdet::bad', _row('mmkd', {'pkd': dict(OK, status='failed',
                                                                      error='E')},
                                                 family='mmdet::bad'))
    ran = []

    def check(family, work_root, timeout):
        ran.append(family)
        return _row('ok', {'pkd': OK}, family=family, seconds=1.0)

    monkeypatch.setattr(zoo_check, 'check_family', check)
    monkeypatch.setattr(zoo_check, 'warm_imports', lambda: None)
    families = ['mmdet::done', 'mmdet::bad', 'mmdet::new']
    zoo_check.sweep(families, ledger, str(tmp_path), log=lambda line: None)
    assert ran == ['mmdet::new']
    zoo_check.sweep(families, ledger, str(tmp_path), rerun_failed=True, log=lambda line: None)
    assert ran == ['mmdet::new', 'mmdet::bad']
    assert RunLedger(ledger).entries()['mmdet::bad']['verdict'] == 'ok'
    zoo_check.sweep(families, ledger, str(tmp_path), resume=False, log=lambda line: None)
    assert ran == ['mmdet::new', 'mmdet::bad'] + families


def test_the_report_separates_whose_failure_and_shows_training(tmp_path):
    failed = dict(status='failed', on='neck', error="ValueError: has no neck", seconds=1.0)
    entries = {
        'mmdet::retinanet': _row('ok', {'pkd': OK, 'kd --on dense_cls_logits': OK},
                                 family='mmdet::retinanet'),
        'mmdet::cornernet': _row('mmkd', {'pkd': failed}, family='mmdet::cornernet',
                                 framework={'student': dict(status='ok', kind=None,
                                                            error=None)}),
        'mmdet::carafe': _row('framework', {'pkd': dict(failed, error='RuntimeError: cpu')},
                              family='mmdet::carafe',
                              framework={'student': dict(status='failed', kind='framework',
                                                         error='RuntimeError: cpu')}),
        # a logit recipe refused at build by name (YOLOX's head has no assigner labels)
        'mmdet::yolox': _row('mmkd', {'pkd': OK, 'kd --on dense_cls_logits': dict(
            failed, on='dense_cls_logits', error='ValueError: recipes[0] (KD on '
            'dense_cls_logits) ... YOLOXHead does not have')}, family='mmdet::yolox',
            framework={'student': dict(status='ok', kind=None, error=None)}),
        'mmdet::reid': dict(family='mmdet::reid', package='mmdet', verdict='skipped',
                            methods={}, skipped='video models only'),
        'mmseg::fcn': _row('ok', {'cwd': dict(OK, on='seg_logits'), 'pkd': OK},
                           family='mmseg::fcn', package='mmseg', pair='self'),
        'train:yolox': dict(status='ok', reason='', family='mmdet::retinanet',
                            last_val={'coco/bbox_mAP': 0.125, 'coco/bbox_mAP_50': 0.3},
                            exported=dict(checkpoint='s.pth', metrics={'coco/bbox_mAP': 0.125,
                                                                       'coco/bbox_mAP_50': 0.3}),
                            equal=True, seconds=30.0, switches={'YOLOXModeSwitchHook': 3},
                            hooks_fired=['YOLOXModeSwitchHook', 'EMAHook']),
        'train:pidnet': dict(status='failed', reason='KeyError: boom', family=None,
                             last_val=None, exported=None, equal=False, seconds=3.0),
    }
    ledger = tmp_path / 'zoo.json'
    ledger.write_text(json.dumps(entries))
    out = tmp_path / 'table.md'
    load_tool('analysis/zoo_check.py').main(['--report-only', '--ledger', str(ledger),
                                             '--report', str(out)])
    text = out.read_text()
    assert text.startswith('# Model-zoo compatibility')
    assert 'python tools/analysis/zoo_check.py --report-only --ledger' in text
    assert '| mmdet | 4 | 1 | 1 | 1 | 1 | 0 | 0 | 1 |' in text
    assert '| all | 5 | 2 | 1 | 1 | 1 | 0 | 0 | 1 |' in text
    assert '- mmdet `pkd`: 2 / 4' in text
    # carafe is not mmkd's: the target counts retinanet, cornernet, yolox and fcn
    assert ('**3 of 4** build their feature recipe and every logit recipe that reads their '
            'heads (not met: mmdet::cornernet). Of those, 1 refuse') in text
    assert ('| yolox | a_r18_fpn_1x_coco ← a_r50_fpn_1x_coco | ok (neck) | refused | — | '
            'builds; a logit recipe refused by name |') in text
    assert '**1 of 2** cases train' in text and '(not: pidnet)' in text
    assert ('| cornernet | a_r18_fpn_1x_coco ← a_r50_fpn_1x_coco | failed | — | — | '
            'mmkd fails | — | `pkd`: ValueError: has no neck |') in text
    assert ('| carafe | a_r18_fpn_1x_coco ← a_r50_fpn_1x_coco | failed | — | — | mmdet/mmseg '
            'cannot run it here | — | `pkd`: RuntimeError: cpu; student alone: RuntimeError: '
            'cpu |') in text
    assert ('| retinanet | a_r18_fpn_1x_coco ← a_r50_fpn_1x_coco | ok (neck) | ok (neck) | — | '
            'builds | yolox: ok; last val coco/bbox_mAP 0.1250, exported coco/bbox_mAP '
            '0.1250, equal: True |  |') in text
    assert '| reid | — | — | — | — | not run | — | video models only |' in text
    assert ('| fcn | a_r18_fpn_1x_coco ← a_r50_fpn_1x_coco (self-distillation) | '
            'ok (seg_logits) | ok (neck) | builds |') in text
    assert '| pidnet | — | failed | — | — | False | — | 3.0 | KeyError: boom |' in text
    assert ('| yolox | mmdet::retinanet | ok | coco/bbox_mAP 0.1250 | coco/bbox_mAP 0.1250 | '
            'True | YOLOXModeSwitchHook (3), EMAHook | 30.0 |  |') in text


def test_training_cases_map_to_their_family():
    assert zoo_check.case_family(dict(student='mmdet::yolox/yolox_tiny_8xb8-300e_coco.py',
                                      epochs=3)) == 'mmdet::yolox'
    assert zoo_check.case_family(dict(family='mmseg::pidnet')) == 'mmseg::pidnet'
    assert zoo_check.case_family(dict(student='configs/digits/x.py')) is None
