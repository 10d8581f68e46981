import os

import numpy as np
import pytest
import torch
from mmengine.fileio import get_file_backend
from mmengine.runner.checkpoint import _load_checkpoint

import mmkd  # noqa: F401  (registers the checkpoint I/O)
from mmkd.utils import load_checkpoint_file, strip_prefix
from mmkd.utils.checkpoint import AtomicLocalBackend


def full_checkpoint():
    # What mmengine's Runner saves: pickled non-tensor meta that torch>=2.6 refuses by default.
    return {'state_dict': {'w': torch.ones(2)}, 'meta': {'seed': np.int64(3), 'hook': object}}


def test_mmengine_loads_full_checkpoints_on_current_torch(tmp_path):
    path = str(tmp_path / 'full.pth')
    torch.save(full_checkpoint(), path)
    with pytest.raises(Exception):
        torch.load(path)  # the default that breaks mmengine 0.10.7's resume / load_from
    ckpt = _load_checkpoint(path, map_location='cpu')  # mmengine's loader, through mmkd's scheme
    assert torch.equal(ckpt['state_dict']['w'], torch.ones(2))
    assert load_checkpoint_file(path)['meta']['seed'] == 3


def test_checkpoint_files_are_replaced_atomically(tmp_path, monkeypatch):
    path = tmp_path / 'iter_10.pth'
    backend = get_file_backend(str(path))
    assert isinstance(backend, AtomicLocalBackend)
    backend.put(b'old complete checkpoint', str(path))

    def crash(*args):
        raise KeyboardInterrupt  # the process dies while writing

    monkeypatch.setattr(os, 'fsync', crash)
    with pytest.raises(KeyboardInterrupt):
        backend.put(b'new partial', str(path))
    assert path.read_bytes() == b'old complete checkpoint'
    assert sorted(os.listdir(tmp_path)) == ['iter_10.pth']  # no temporary left behind


def test_strip_prefix():
    assert strip_prefix({'student.a': 1, 'teacher.b': 2}, 'student.') == {'a': 1}
