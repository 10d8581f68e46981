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
from typing import Optional, Union

import torch
from mmengine.fileio import register_backend
from mmengine.fileio.backends import LocalBackend
from mmengine.logging import print_log
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


def load_teacher_weights(teacher: torch.nn.Module, teacher_ckpt: Optional[str],
                         key: str = 'teacher_ckpt') -> None:
    """Load a frozen teacher's weights (a path, or a URL such as mmdet's model zoo links), with
    errors that say when the checkpoint belongs to another model. None keeps the random
    initialisation, with a warning (only tests want that). ``key`` names the setting in the
    messages (``"teachers['gfl'].ckpt"`` for one of several teachers)."""
    if teacher_ckpt is None:
        print_log(f'{key} is None: the teacher keeps its random initialisation, '
                  'which only makes sense for tests.', logger='current', level=30)
        return
    if '://' in teacher_ckpt:  # a URL (e.g. mmdet's model zoo): mmengine downloads it
        checkpoint = CheckpointLoader.load_checkpoint(teacher_ckpt, map_location='cpu')
    else:
        checkpoint = load_checkpoint_file(teacher_ckpt)
    state_dict = checkpoint.get('state_dict', checkpoint)
    if not isinstance(state_dict, dict):
        raise ValueError(f'{key} {teacher_ckpt!r} holds no state dict.')
    try:
        result = teacher.load_state_dict(state_dict, strict=False)
    except RuntimeError as err:  # shape mismatches
        details = str(err).split('\n')[1:4]
        raise ValueError(f'{key} {teacher_ckpt!r} does not fit the teacher config: '
                         f'{" ".join(d.strip() for d in details)} Is it a checkpoint of this '
                         'teacher model?') from None
    if result.missing_keys:
        raise ValueError(
            f'{key} {teacher_ckpt!r} does not fit the teacher config: '
            f'{len(result.missing_keys)} teacher weights are missing from it, e.g. '
            f'{result.missing_keys[:5]}. Is it a checkpoint of this teacher model?')
    if result.unexpected_keys:
        print_log(f'{key} has {len(result.unexpected_keys)} keys the teacher does '
                  f'not use, e.g. {result.unexpected_keys[:5]}', logger='current', level=30)
    # mmengine's Runner calls init_weights() after building: keep the loaded weights.
    teacher._is_init = True


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
