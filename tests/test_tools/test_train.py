"""Real train -> distill -> evaluate -> export loops through the tools, on tiny data."""
import json
import os
import os.path as osp
import re
import shutil
import signal
import socket
import subprocess
import sys

import pytest
import torch

from tool_hooks import tool_env, with_hooks
from tool_runs import DET_DISTILL, REPO, SEG_DISTILL, run_tool, tiny_config


def checkpoint_keys(path):
    return set(torch.load(path, map_location='cpu', weights_only=False)['state_dict'])


def assert_loads_strictly(model, ckpt_path):
    state = torch.load(ckpt_path, map_location='cpu', weights_only=False)['state_dict']
    result = model.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys


def test_detection_distill_evaluate_and_export(digits_root, det_teacher_ckpt, tmp_path):
    cfg = tiny_config(DET_DISTILL, digits_root, tmp_path, **{
        'model.teacher_ckpt': det_teacher_ckpt,
        # untrained models score below mmdet's 0.05 threshold: evaluate every box
        'model.student.cfg_options': {'model.test_cfg.score_thr': 0.0},
        'model.teacher.cfg_options': {'model.test_cfg.score_thr': 0.0},
        'val_cfg.evaluate_teacher': True})
    run_tool('train.py', cfg)
    log = open(next(osp.join(r, f) for r, _, fs in os.walk(tmp_path) for f in fs
                    if f.endswith('.log'))).read()
    assert re.search(r'distill\.loss_fpn0: \d', log) and 'loss_cls' in log
    assert re.search(r'coco/bbox_mAP: [\d.]+ .*teacher/coco/bbox_mAP: [\d.]+', log)
    assert osp.exists(tmp_path / 'best_coco_bbox_mAP_iter_4.pth')  # chosen by the student

    ckpt = str(tmp_path / 'iter_4.pth')
    keys = checkpoint_keys(ckpt)
    assert any(k.startswith('student.') for k in keys)
    assert not any(k.startswith('teachers.') for k in keys)

    tested = run_tool('test.py', cfg, ckpt, '--work-dir', tmp_path / 'test')
    assert re.search(r'coco/bbox_mAP: [\d.]+', tested.stdout + tested.stderr)
    # mmdet's flip TTA around the student (the config defines none: mmdet's default), and the
    # visualization hook drawing the student's predictions, one image per validation image
    tta = run_tool('test.py', cfg, ckpt, '--work-dir', tmp_path / 'tta', '--tta',
                   '--show-dir', 'shown')
    assert re.search(r'coco/bbox_mAP: [\d.]+', tta.stdout + tta.stderr)
    drawn = [f for r, _, fs in os.walk(tmp_path / 'tta') if osp.basename(r) == 'shown'
             for f in fs if f.endswith('.png')]
    assert len(drawn) == 8, drawn

    exported = tmp_path / 'export' / 'student.pth'
    run_tool('export_student.py', ckpt, exported)
    from mmdet.apis import inference_detector, init_detector
    model = init_detector(str(exported.with_suffix('.py')), str(exported), device='cpu')
    assert_loads_strictly(model, exported)
    image = osp.join(str(digits_root), 'images', 'val', '000000.png')
    assert len(inference_detector(model, image).pred_instances) > 0


def test_segmentation_distill_evaluate_and_export(digits_root, seg_teacher_ckpt, tmp_path):
    cfg = tiny_config(SEG_DISTILL, digits_root, tmp_path, **{'model.teacher_ckpt': seg_teacher_ckpt})
    run_tool('train.py', cfg)
    ckpt = str(tmp_path / 'iter_4.pth')
    assert not any(k.startswith('teachers.') for k in checkpoint_keys(ckpt))
    tested = run_tool('test.py', cfg, ckpt, '--work-dir', tmp_path / 'test')
    assert re.search(r'mIoU: [\d.]+', tested.stdout + tested.stderr)
    failed = run_tool('test.py', cfg, ckpt, '--tta', check=False)
    # mmseg's runtime defines tta_model, the digits dataset config no tta_pipeline
    assert failed.returncode != 0
    assert "--tta needs the config to define ['tta_pipeline']" in failed.stderr

    exported = tmp_path / 'export' / 'student.pth'
    run_tool('export_student.py', ckpt, exported)
    from mmseg.apis import inference_model, init_model
    model = init_model(str(exported.with_suffix('.py')), str(exported), device='cpu')
    assert_loads_strictly(model, exported)
    image = osp.join(str(digits_root), 'images', 'val', '000000.png')
    assert inference_model(model, image).pred_sem_seg.data.shape[-2:] == (64, 64)


def test_killed_run_resumes_at_its_last_checkpoint(digits_root, det_teacher_ckpt, tmp_path):
    # The run SIGKILLs itself right after iteration 8's checkpoint is written (a crash at a
    # known point, tests/tool_hooks.py); the resumed run loads the same hook and goes past it.
    cfg = tiny_config(DET_DISTILL, digits_root, tmp_path, iters=12, ckpt_interval=4,
                      **{'model.teacher_ckpt': det_teacher_ckpt},
                      **with_hooks(dict(type='CrashAfterCheckpointHook', iteration=8)))
    killed = run_tool('train.py', cfg, check=False, env=tool_env(), timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert (tmp_path / 'last_checkpoint').read_text().strip().endswith('iter_8.pth')
    assert osp.exists(tmp_path / 'iter_8.pth') and not osp.exists(tmp_path / 'iter_12.pth')
    assert 'Iter(train) [ 9/12]' not in killed.stdout + killed.stderr

    out = run_tool('train.py', cfg, '--resume', env=tool_env(), timeout=600)
    text = out.stdout + out.stderr
    assert 'resumed epoch: 0, iter: 8' in text
    assert 'missing keys' not in text.lower()
    assert 'Iter(train) [ 8/12]' not in text and 'Iter(train) [ 9/12]' in text
    final = torch.load(tmp_path / 'iter_12.pth', map_location='cpu', weights_only=False)
    assert final['meta']['iter'] == 12


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.mark.slow  # two processes: about 40 s
def test_two_process_gloo_training(digits_root, det_teacher_ckpt, tmp_path):
    cfg = tiny_config(DET_DISTILL, digits_root, tmp_path, iters=2,
                      **{'model.teacher_ckpt': det_teacher_ckpt})
    env = dict(os.environ, PORT=str(free_port()), PYTHON=sys.executable)
    result = subprocess.run(['bash', osp.join(REPO, 'tools', 'dist_train.sh'), cfg, '2'],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    text = result.stdout + result.stderr
    assert result.returncode == 0, text[-5000:]
    assert 'Distributed launcher: pytorch' in text and 'Distributed training: True' in text
    assert osp.exists(tmp_path / 'iter_2.pth')


@pytest.mark.slow  # the teacher runner tests cover each setting
def test_teacher_settings_train_through_the_tools(digits_root, det_teacher_ckpt, tmp_path):
    # docs/en/user_guides/teacher_settings.md: the keys set from a config, through the
    # Runner (optimizer, checkpoint), with an NHWC teacher and student and an fp32 teacher.
    cfg = tiny_config(DET_DISTILL, digits_root, tmp_path, iters=2, **{
        'model.teacher_ckpt': det_teacher_ckpt, 'model.teacher_precision': 'fp32',
        'model.teacher_channels_last': True, 'model.student_channels_last': True})
    run_tool('train.py', cfg)
    keys = checkpoint_keys(str(tmp_path / 'iter_2.pth'))
    assert any(k.startswith('student.') for k in keys)
    assert not any(k.startswith('teachers.') for k in keys)


@pytest.mark.slow  # bfloat16 autocast trains these small convolutions far slower on CPU
def test_amp_on_cpu_trains(digits_root, det_teacher_ckpt, tmp_path):
    cfg = tiny_config(DET_DISTILL, digits_root, tmp_path, iters=2,
                      **{'model.teacher_ckpt': det_teacher_ckpt},
                      **with_hooks(dict(type='TrainingProbeHook')))
    run_tool('train.py', cfg, '--amp', env=tool_env())
    assert osp.exists(tmp_path / 'iter_2.pth')
    probe = json.loads((tmp_path / 'probe.json').read_text())
    # autocast was on in the student's training forwards
    assert 'torch.bfloat16' in probe['conv_output_dtypes'], probe['conv_output_dtypes']
    # finite losses, a distillation loss among them, and the weights were updated
    assert len(probe['losses']) == 2 and probe['losses_finite'], probe['losses']
    assert all(row['loss'] > 0 and any(k.startswith('distill.') for k in row)
               for row in probe['losses'])
    assert probe['changed'] > probe['trainable'] // 2, probe


def test_malformed_coco_json_fails_before_training(digits_root, tmp_path):
    data = tmp_path / 'data'
    shutil.copytree(digits_root, data)
    ann = data / 'annotations' / 'instances_train.json'
    coco = json.loads(ann.read_text())
    coco['annotations'][0]['image_id'] = 10 ** 6
    ann.write_text(json.dumps(coco))
    cfg = tiny_config(DET_DISTILL, data, tmp_path / 'work')
    result = run_tool('train.py', cfg, check=False)
    assert result.returncode != 0
    assert 'instances_train.json' in result.stderr and 'image_id' in result.stderr
    assert 'Iter(train)' not in result.stdout + result.stderr
