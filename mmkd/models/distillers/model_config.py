"""Resolve the teacher / student entries of a distiller config into buildable model configs.

An entry is either

* ``dict(cfg_path='mmdet::retinanet/retinanet_r50_fpn_1x_coco.py', pretrained=False,
  cfg_options={...})``: the ``model`` of that config file, built in the file's
  ``default_scope`` (an mmdet 2 / mmseg 0.x model-zoo name is mapped to its file in the
  installed release, see :mod:`.zoo_names`); or
* a model config dict, e.g. ``dict(_scope_='mmdet', type='RetinaNet', ...)`` (usually taken
  from an inherited base config), whose scope is its ``_scope_`` or a ``scope.Type`` prefix.

A package the model needs (its config's ``custom_imports``, the scope of a type such as
``'mmpretrain.ConvNeXt'``) that is not installed fails here, naming the package and the
command that installs it (:mod:`mmkd.utils.packages`). Outside a distributed run, mmcv's
``MMSyncBN`` layers are built as torch's ``SyncBN`` (see :func:`single_process_norms`).
"""
import copy
import logging
from typing import Optional, Tuple

from mmengine.config import Config, ConfigDict
from mmengine.dist import is_distributed
from mmengine.logging import print_log

from mmkd.utils.packages import check_model_scopes, import_custom_modules
from .zoo_names import zoo_config_file

#: mmcv's synchronised BN: its constructor asks the default process group for its size.
MMCV_SYNC_BN = 'MMSyncBN'
#: Arguments of mmcv's SyncBN that torch's does not take.
_MMCV_SYNC_BN_ONLY = ('group', 'stats_mode')


def resolve_model_cfg(entry, role: str,
                      buildable: bool = True) -> Tuple[ConfigDict, Optional[Config]]:
    """Return ``(model_cfg with _scope_ set, the source Config or None)`` for ``entry``.

    Args:
        entry (dict): A ``cfg_path`` entry or a model config (see the module docstring).
        role (str): ``'student'`` or ``'teacher'``, for error messages.
        buildable (bool): Make the model config buildable in this process: outside a
            distributed run, ``MMSyncBN`` becomes ``SyncBN`` (:func:`single_process_norms`).
            False gives the model config as its file writes it (to write it out).
            Defaults to True.
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
            source_cfg = load_model_file(entry['cfg_path'], role)
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
    check_model_scopes(model_cfg, f'`{role}`' + (f' ({entry["cfg_path"]})'
                                                 if 'cfg_path' in entry else ''))
    if buildable:
        model_cfg = single_process_norms(model_cfg, role)
    return model_cfg, source_cfg


def load_model_file(path: str, role: Optional[str] = None) -> Config:
    """The config file a model entry's ``cfg_path`` names: a path, or a model-zoo name
    (``mmdet::...`` / ``mmseg::...``) read as its installed file (:func:`.zoo_config_file`:
    an mmdet 2 / mmseg 0.x name is mapped to its file, or fails naming close ones; a name
    mmengine's parser rejects, such as ``mmdet::gn+ws/...``, is read too).

    Its ``custom_imports`` are imported as ``Config.fromfile`` does, except that a missing
    package fails naming itself and the command that installs it
    (:func:`mmkd.utils.packages.import_custom_modules`).

    Args:
        path (str): A config file or a model-zoo name.
        role (str, optional): What the config is for (``'student'``), for errors.
            Defaults to None.
    """
    cfg = Config.fromfile(zoo_config_file(path) if '::' in path else path,
                          import_custom_modules=False)
    import_custom_modules(cfg, f'`{role}` ({path})' if role else path)
    return cfg


def single_process_norms(model_cfg, role: str = 'model'):
    """``model_cfg`` with mmcv's ``MMSyncBN`` norm layers as torch's ``SyncBN``, outside a
    distributed run (in one, ``model_cfg`` itself).

    mmengine's Runner reverts every SyncBN layer (torch's and mmcv's) to BatchNorm when it
    trains in one process, after building the model; but mmcv's ``MMSyncBN`` cannot be built
    without a process group ("Default process group has not been initialized"), so a config
    with it (mmdet's ``strong_baselines``, ``simple_copy_paste``) cannot be built, probed or
    trained in one process. Torch's ``SyncBN`` can: without a process group it normalises as
    BatchNorm does, and the Runner then reverts it as it reverts any SyncBN. mmcv's own
    arguments (``group``, ``stats_mode``) are dropped with it.

    Args:
        model_cfg (dict): A model config.
        role (str): What the model is, for the log line. Defaults to 'model'.

    Returns:
        dict: ``model_cfg`` unchanged in a distributed run or without ``MMSyncBN``, else a
        copy with each ``MMSyncBN`` as ``SyncBN`` (logged).
    """
    if is_distributed():
        return model_cfg
    count = [0]

    def convert(cfg):
        if isinstance(cfg, dict):
            out = type(cfg)()
            for key, value in cfg.items():
                out[key] = convert(value)
            if str(out.get('type', '')).split('.')[-1] == MMCV_SYNC_BN:
                count[0] += 1
                out['type'] = 'SyncBN'
                for key in _MMCV_SYNC_BN_ONLY:
                    out.pop(key, None)
            return out
        if isinstance(cfg, (list, tuple)):
            return type(cfg)(convert(value) for value in cfg)
        return cfg

    converted = convert(model_cfg)
    if not count[0]:
        return model_cfg
    print_log(f"{role}: {count[0]} norm layer config(s) of type 'MMSyncBN' built as 'SyncBN' "
              "(torch's): this is not a distributed run, and mmcv's MMSyncBN cannot be built "
              "without a process group; mmengine's Runner reverts SyncBN to BatchNorm in one "
              'process, as it does for any SyncBN.', logger='current', level=logging.INFO)
    return converted


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
