"""Turn a distillation checkpoint into a plain student checkpoint and config."""
import copy
import io
import os
import os.path as osp
from typing import Optional, Tuple

import torch
from mmengine.config import Config

from mmkd.models.distillers.model_config import resolve_model_cfg
from mmkd.utils import load_checkpoint_file, strip_prefix
from mmkd.utils.checkpoint import AtomicLocalBackend

#: Distillation-only settings that a plain student config must not carry.
DISTILL_ONLY_KEYS = ('model_wrapper_cfg', 'find_unused_parameters')


def student_config(distill_cfg: Config) -> Config:
    """The runnable config of the student: the distill config with ``model`` = the student."""
    cfg = copy.deepcopy(distill_cfg)
    if cfg.model.get('type') not in ('Distiller', 'mmkd.Distiller'):
        raise ValueError(f"Config model type is {cfg.model.get('type')!r}, not a Distiller: "
                         'there is no student to extract.')
    student_model, _ = resolve_model_cfg(cfg.model['student'], 'student', buildable=False)
    cfg.model = student_model
    for key in DISTILL_ONLY_KEYS:
        cfg.pop(key, None)
    val_cfg = cfg.get('val_cfg')
    if isinstance(val_cfg, dict) and 'Distill' in str(val_cfg.get('type', '')):
        cfg.val_cfg = dict(type='ValLoop')
    return cfg


def export_student(checkpoint: str, out: str,
                   config: Optional[str] = None) -> Tuple[str, Optional[str]]:
    """Write ``out`` (student weights only) and, if a config is known, ``out``'s ``.py`` config.

    Args:
        checkpoint (str): A checkpoint saved while training a ``Distiller``.
        out (str): Output checkpoint path.
        config (str, optional): The distillation config. Defaults to the config that mmengine
            stored in the checkpoint's ``meta``.

    Returns:
        tuple: (checkpoint path, config path or None).
    """
    ckpt = load_checkpoint_file(checkpoint)
    state_dict = ckpt.get('state_dict', ckpt)
    student_state = strip_prefix(state_dict, 'student.')
    if not student_state:
        raise ValueError(f'{checkpoint!r} has no `student.` weights: it is not a checkpoint of a '
                         'Distiller. A plain model checkpoint needs no export.')
    meta = dict(ckpt.get('meta') or {})
    cfg_text = meta.pop('cfg', None)
    distill_cfg = Config.fromfile(config) if config else (
        Config.fromstring(cfg_text, file_format='.py') if cfg_text else None)
    out_cfg_path = None
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    if distill_cfg is not None:
        cfg = student_config(distill_cfg)
        out_cfg_path = osp.splitext(out)[0] + '.py'
        cfg.dump(out_cfg_path)
        meta['cfg'] = cfg.pretty_text
    meta['exported_from'] = osp.abspath(checkpoint)
    with io.BytesIO() as buffer:
        torch.save({'state_dict': student_state, 'meta': meta}, buffer)
        AtomicLocalBackend().put(buffer.getvalue(), out)
    return out, out_cfg_path
