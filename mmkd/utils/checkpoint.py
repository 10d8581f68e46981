"""Checkpoint reading that works on torch >= 2.6 and atomic checkpoint writing.

torch >= 2.6 defaults ``torch.load`` to ``weights_only=True``, and mmengine 0.10.7 calls it
without the argument, so full mmengine checkpoints (which pickle ``meta``, message hub state,
numpy scalars ...) fail to load: ``load_from``, ``resume`` and ``teacher_ckpt`` all break.
:func:`register_checkpoint_io` fixes both directions through mmengine's own extension points:

* reading: a local-file scheme for mmengine's ``CheckpointLoader`` that passes
  ``weights_only=False``. Like mmengine before torch 2.6, this trusts the checkpoint files a
  config names; do not point configs at checkpoints from untrusted sources.
* writing: a ``local`` file backend whose ``put`` writes to a temporary file in the same folder,
  fsyncs and renames, so a run killed while saving never leaves a half-written checkpoint.
"""
import os
import os.path as osp
import tempfile
from collections import OrderedDict
from typing import Union

import torch
from mmengine.fileio import register_backend
from mmengine.fileio.backends import LocalBackend
from mmengine.runner.checkpoint import CheckpointLoader


def load_checkpoint_file(filename: str, map_location='cpu') -> dict:
    """Read a checkpoint file written by mmengine / torch, with a clear error when it cannot.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file exists but is not a readable torch checkpoint.
    """
    if not osp.isfile(filename):
        raise FileNotFoundError(f'Checkpoint {filename!r} does not exist. Check the path '
                                '(e.g. `teacher_ckpt` in the config) or train that model first.')
    try:
        return torch.load(filename, map_location=map_location, weights_only=False)
    except Exception as err:  # torch raises many types for corrupt / foreign files
        raise ValueError(f'Checkpoint {filename!r} could not be read as a torch checkpoint '
                         f'({type(err).__name__}: {err}). It may be truncated or not a '
                         '.pth file; re-save or re-download it.') from err


def strip_prefix(state_dict: dict, prefix: str) -> 'OrderedDict':
    """Keys of ``state_dict`` that start with ``prefix``, with the prefix removed."""
    return OrderedDict((k[len(prefix):], v) for k, v in state_dict.items() if k.startswith(prefix))


def load_from_local(filename: str, map_location=None) -> Union[dict, OrderedDict]:
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return torch.load(filename, map_location=map_location, weights_only=False)


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend, but ``put`` replaces the target file atomically."""

    def put(self, obj: bytes, filepath) -> None:
        self._write_atomically(obj, filepath, 'wb')

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        self._write_atomically(obj.encode(encoding), filepath, 'wb')

    @staticmethod
    def _write_atomically(data: bytes, filepath, mode: str) -> None:
        filepath = str(filepath)
        folder = osp.dirname(osp.abspath(filepath))
        os.makedirs(folder, exist_ok=True)
        fd, tmp_path = tempfile.mkstemp(dir=folder, prefix='.' + osp.basename(filepath), suffix='.tmp')
        try:
            with os.fdopen(fd, mode) as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp_path, filepath)
        except BaseException:
            if osp.exists(tmp_path):
                os.remove(tmp_path)
            raise


def register_checkpoint_io() -> None:
    """Install the reading scheme and the atomic backend (idempotent; done on ``import mmkd``)."""
    CheckpointLoader.register_scheme(prefixes='', loader=load_from_local, force=True)
    register_backend('local', AtomicLocalBackend, force=True, prefixes='')
