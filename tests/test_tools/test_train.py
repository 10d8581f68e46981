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
import time

import pytest
import torch

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
    assert not any(k.startswith('teacher.') for k in keys)

    tested = run_tool('test.py', cfg, ckpt, '--work-dir', tmp_path / 'test')
    assert re.search(r'coco/bbox_mAP: [\d.]+', tested.stdout + tested.stderr)

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
    assert not any(k.startswith('teacher.') for k in checkpoint_keys(ckpt))
    tested = run_tool('test.py', cfg, ckpt, '--work-dir', tmp_path / 'test')
    assert re.search(r'mIoU: [\d.]+', tested.stdout + tested.stderr)

    exported = tmp_path / 'export' / 'student.pth'
    run_tool('export_student.py', ckpt, exported)
    from mmseg.apis import inference_model, init_model
    model = init_model(str(exported.with_suffix('.py')), str(exported), device='cpu')
    assert_loads_strictly(model, exported)
    image = osp.join(str(digits_root), 'images', 'val', '000000.png')
    assert inference_model(model, image).pred_sem_seg.data.shape[-2:] == (64, 64)


def test_killed_run_resumes_at_its_last_checkpoint(digits_root, det_teacher_ckpt, tmp_path):
    cfg = tiny_config(DET_DISTILL, digits_root, tmp_path, iters=12, ckpt_interval=4,
                      **{'model.teacher_ckpt': det_teacher_ckpt})
    proc = subprocess.Popen([sys.executable, osp.join(REPO, 'tools', 'train.py'), cfg],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = tmp_path / 'last_checkpoint'
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if last.exists() and last.read_text().strip().endswith('iter_8.pth'):
            break
        time.sleep(0.05)
    assert proc.poll() is None, 'training finished before it could be killed'
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not osp.exists(tmp_path / 'iter_12.pth')

    out = run_tool('train.py', cfg, '--resume')
    text = out.stdout + out.stderr
    assert 'resumed epoch: 0, iter: 8' in text
    assert 'missing keys' not in text.lower()
    final = torch.load(tmp_path / 'iter_12.pth', map_location='cpu', weights_only=False)
    assert final['meta']['iter'] == 12


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


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


@pytest.mark.slow  # bfloat16 autocast trains these small convolutions far slower on CPU
def test_amp_on_cpu_trains(digits_root, det_teacher_ckpt, tmp_path):
    cfg = tiny_config(DET_DISTILL, digits_root, tmp_path, iters=2,
                      **{'model.teacher_ckpt': det_teacher_ckpt})
    run_tool('train.py', cfg, '--amp')
    assert osp.exists(tmp_path / 'iter_2.pth')


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
