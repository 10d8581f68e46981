"""Fixtures shared by the test suite."""
import os
import os.path as osp

import pytest
import torch
from tool_runs import DET_TEACHER, DETR_TEACHER, MASK_TEACHER, SEG_TEACHER, run_tool, tiny_config

from mmkd.datasets import make_digits_dataset

# test inputs (e.g. MMRazor's configs), not test modules: --doctest-modules must not import them
collect_ignore = ['data']

if os.environ.get('PYTEST_XDIST_WORKER'):
    # README's test command runs 2 worker processes (pytest-xdist): one torch thread each, for
    # them and for the tools they start, so that 2 cores run 2 workers without oversubscribing.
    torch.set_num_threads(1)
    os.environ['OMP_NUM_THREADS'] = '1'


@pytest.fixture(scope='session', autouse=True)
def unformatted_config_dumps():
    """mmengine formats every config it dumps with yapf, about 1.3 s a dump on this machine
    and several dumps per Runner (the work dir's copy, the visualizer's, ours): the suite
    skips that cosmetic step in its own process. The text is the same Python, unindented.
    Tools started with ``run_tool`` (their own interpreters) still format."""
    from mmengine.config import config
    original = config.FormatCode
    config.FormatCode = lambda text, **kwargs: (text, False)
    yield
    config.FormatCode = original


@pytest.fixture(scope='session')
def digits_root(tmp_path_factory):
    """Root of a tiny generated digits dataset: 16 train / 8 val images of 64 px, seed 0.

    Shared by the whole session, so treat it as read-only. The generation arguments are in
    each COCO file's ``info``.
    """
    root = tmp_path_factory.mktemp('digits')
    make_digits_dataset(str(root), num_train=16, num_val=8, size=64, seed=0)
    return root


@pytest.fixture(scope='session')
def det_teacher_ckpt(digits_root, tmp_path_factory):
    """A RetinaNet teacher trained for 4 iterations (weights are what matters, not accuracy)."""
    out = tmp_path_factory.mktemp('det_teacher')
    run_tool('train.py', tiny_config(DET_TEACHER, digits_root, out))
    return osp.join(str(out), 'iter_4.pth')


@pytest.fixture(scope='session')
def seg_teacher_ckpt(digits_root, tmp_path_factory):
    out = tmp_path_factory.mktemp('seg_teacher')
    run_tool('train.py', tiny_config(SEG_TEACHER, digits_root, out))
    return osp.join(str(out), 'iter_4.pth')


@pytest.fixture(scope='session')
def mask_teacher_ckpt(digits_root, tmp_path_factory):
    """A Mask R-CNN teacher trained for 4 iterations on the digits masks (and evaluated once,
    box and mask mAP, by tools/train.py)."""
    out = tmp_path_factory.mktemp('mask_teacher')
    run_tool('train.py', tiny_config(MASK_TEACHER, digits_root, out))
    return osp.join(str(out), 'iter_4.pth')


@pytest.fixture(scope='session')
def detr_teacher_ckpt(digits_root, tmp_path_factory):
    """A DINO teacher trained for 4 iterations (configs/digits/dino_r18_digits.py)."""
    out = tmp_path_factory.mktemp('detr_teacher')
    run_tool('train.py', tiny_config(DETR_TEACHER, digits_root, out))
    return osp.join(str(out), 'iter_4.pth')
