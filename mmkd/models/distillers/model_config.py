"""Resolve the teacher / student entries of a distiller config into buildable model configs.

An entry is either

* ``dict(cfg_path='mmdet::retinanet/retinanet_r50_fpn_1x_coco.py', pretrained=False,
  cfg_options={...})``: the ``model`` of that config file, built in the file's
  ``default_scope`` (an mmdet 2 / mmseg 0.x model-zoo name is mapped to its file in the
  installed release, see :mod:`.zoo_names`); or
* a model config dict, e.g. ``dict(_scope_='mmdet', type='RetinaNet', ...)`` (usually taken
  from an inherited base config), whose scope is its ``_scope_`` or a ``scope.Type`` prefix.
"""
import copy
from typing import Optional, Tuple

from mmengine.config import Config, ConfigDict
from mmengine.hub import get_config

from .zoo_names import resolve_zoo_config


def resolve_model_cfg(entry, role: str) -> Tuple[ConfigDict, Optional[Config]]:
    """Return ``(model_cfg with _scope_ set, the source Config or None)`` for ``entry``.

    Args:
        entry (dict): A ``cfg_path`` entry or a model config (see the module docstring).
        role (str): ``'student'`` or ``'teacher'``, for error messages.
    """
    if not isinstance(entry, dict):
        raise TypeError(f'`{role}` must be a dict (a model config or dict(cfg_path=...)), '
                        f'got {type(entry).__name__}.')
    entry = ConfigDict(copy.deepcopy(dict(entry)))
    source_cfg = None
    if 'cfg_path' in entry:
        unknown = set(entry) - {'cfg_path', 'pretrained', 'cfg_options'}
        if unknown:
            raise KeyError(f'`{role}` with cfg_path accepts only cfg_path, pretrained and '
                           f'cfg_options; got also {sorted(unknown)}.')
        try:
            source_cfg = load_model_file(entry['cfg_path'])
        except FileNotFoundError as err:
            raise FileNotFoundError(f'`{role}.cfg_path` {entry["cfg_path"]!r} was not found '
                                    f'({err}). Use a path or a `mmdet::` / `mmseg::` '
                                    'model-zoo config name.') from err
        if entry.get('cfg_options'):
            source_cfg.merge_from_dict(entry['cfg_options'])
        if 'model' not in source_cfg:
            raise KeyError(f'`{role}.cfg_path` {entry["cfg_path"]!r} defines no `model`.')
        model_cfg = copy.deepcopy(source_cfg.model)
        scope = source_cfg.get('default_scope')
        if scope and '_scope_' not in model_cfg and '.' not in model_cfg['type']:
            model_cfg['_scope_'] = scope
        if not entry.get('pretrained', True):
            model_cfg = drop_pretrained_init(model_cfg)
    else:
        model_cfg = entry
    if 'type' not in model_cfg:
        raise KeyError(f'`{role}` has no `type`: give a model config or dict(cfg_path=...).')
    if '_scope_' not in model_cfg and '.' not in str(model_cfg['type']):
        raise ValueError(
            f'`{role}` type {model_cfg["type"]!r} has no scope, so it would be looked up in '
            "mmkd's registry. Add _scope_='mmdet' (or 'mmseg') to it, write the type as "
            f"'mmdet.{model_cfg['type']}', or use dict(cfg_path=...).")
    return model_cfg, source_cfg


def load_model_file(path: str) -> Config:
    """The config file a model entry's ``cfg_path`` names (a path, or ``mmdet::...`` /
    ``mmseg::...`` of the installed package)."""
    if '::' in path:  # a model-zoo config of an installed package, e.g. 'mmdet::...'
        # an mmdet 2 / mmseg 0.x name is mapped to its file here, or fails naming close ones
        return get_config(resolve_zoo_config(path), pretrained=False)
    return Config.fromfile(path)


def drop_pretrained_init(cfg):
    """A copy of ``cfg`` without any ``init_cfg`` of type 'Pretrained' (no download on build)."""
    if isinstance(cfg, dict):
        out = type(cfg)()
        for key, value in cfg.items():
            if key == 'init_cfg' and isinstance(value, dict) and value.get('type') == 'Pretrained':
                continue
            out[key] = drop_pretrained_init(value)
        return out
    if isinstance(cfg, (list, tuple)):
        return type(cfg)(drop_pretrained_init(v) for v in cfg)
    return cfg


def get_num_classes(model) -> Optional[int]:
    """Number of classes predicted by an mmdet detector or mmseg segmentor (None if unknown)."""
    for path in ('bbox_head', 'roi_head.bbox_head', 'decode_head', 'mask_head'):
        module = model
        for part in path.split('.'):
            module = getattr(module, part, None)
        if module is not None and hasattr(module, 'num_classes'):
            return module.num_classes
    return None
