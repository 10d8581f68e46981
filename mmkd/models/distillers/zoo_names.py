"""Model-zoo config names of earlier releases mapped to the installed package's files.

mmdet 3 and mmseg 1 renamed most model-zoo configs: mmdet 2's
``faster_rcnn/faster_rcnn_r50_fpn_1x_coco.py`` is ``faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py``,
``gfl/gfl_r101_fpn_mstrain_2x_coco.py`` is ``gfl/gfl_r101_fpn_ms-2x_coco.py``, and mmseg 0.x's
``pspnet/pspnet_r18-d8_512x1024_80k_cityscapes.py`` is
``pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py``. Configs written for those releases
(MMRazor's, the PCKA paper's) still use the old names. :func:`resolve_zoo_config` maps a
``'mmdet::'`` / ``'mmseg::'`` name that does not exist to the one installed file it can only
mean, in two steps:

1. the same name with ``_`` and ``-`` treated alike;
2. the same words in the same order, with mmdet 2's ``mstrain`` read as ``ms``, the GPUs x
   batch word that mmdet 3 / mmseg 1 added to the names (``4xb2``) ignored, and the crop
   size (``512x1024``) anywhere in the name (mmseg 1 moved it to the end).

An absolute path after ``'mmdet::'`` (a copy of the configs elsewhere, as the published PCKA
configs have) is read as its last folder and file. A step that finds exactly one file decides;
none or several raise ``FileNotFoundError`` naming the closest existing files (``difflib``).

mmkd reads a model-zoo name as its installed file (:func:`zoo_config_file`), so every file of
the installed zoo has a name, including those mmengine's own parser of ``'package::...'``
names rejects (:func:`mmengine_reads`: ``mmdet::gn+ws/...``, ``mmdet::legacy_1.x/...``).
"""
import difflib
import functools
import logging
import os
import os.path as osp
import re
from typing import Dict, List, Tuple

#: mmdet 2 word -> mmdet 3 word in config names.
_SYNONYMS = {'mstrain': 'ms'}
#: The ``'package::folder/...'`` names mmengine's parser accepts (``get_config`` and
#: ``_base_ = 'mmdet::...'`` call ``mmengine.config.utils._get_package_and_cfg_path``).
_MMENGINE_NAME = re.compile(r'\w*::\w*/\w*')
_GPU_BATCH = re.compile(r'^\d+xb\d+$')
_CROP_SIZE = re.compile(r'^\d+x\d+$')


def _words(rel_path: str) -> List[str]:
    name = rel_path.lower()
    name = name[:-len('.py')] if name.endswith('.py') else name
    return [w for w in re.split(r'[-_/]+', name) if w]


def _strict_key(rel_path: str) -> Tuple[str, ...]:
    return tuple(_words(rel_path))


def _loose_key(rel_path: str) -> Tuple[Tuple[str, ...], Tuple[str, ...]]:
    words = [_SYNONYMS.get(w, w) for w in _words(rel_path) if not _GPU_BATCH.match(w)]
    return (tuple(w for w in words if not _CROP_SIZE.match(w)),
            tuple(sorted(w for w in words if _CROP_SIZE.match(w))))


@functools.lru_cache(maxsize=None)
def _zoo_configs(package: str) -> Tuple[str, Tuple[str, ...]]:
    """(config root, every config file under it relative to it) of an installed package."""
    from mmengine.utils import get_installed_path, is_installed
    if not is_installed(package):
        raise FileNotFoundError(f'{package!r} is not installed, so its model-zoo configs '
                                f"('{package}::...') cannot be read: mmkd installs mmdet and "
                                f'mmseg; install {package} yourself or use a config file path.')
    root = osp.join(get_installed_path(package), '.mim', 'configs')
    if not osp.isdir(root):
        raise FileNotFoundError(f'{package} is installed without its model-zoo configs '
                                f'(no {root}): reinstall it with pip (not from a bare wheel).')
    files = []
    for folder, _, names in os.walk(root):
        files += [osp.relpath(osp.join(folder, n), root).replace(os.sep, '/')
                  for n in names if n.endswith('.py')]
    return root, tuple(sorted(files))


@functools.lru_cache(maxsize=None)
def _index(package: str) -> Dict[str, Dict[Tuple[str, ...], List[str]]]:
    _, files = _zoo_configs(package)
    index = {'strict': {}, 'loose': {}}
    for rel in files:
        index['strict'].setdefault(_strict_key(rel), []).append(rel)
        index['loose'].setdefault(_loose_key(rel), []).append(rel)
    return index


def resolve_zoo_config(path: str) -> str:
    """``path`` itself, or the installed model-zoo config an older release's name stands for.

    Args:
        path (str): a config path; only ``'package::relative/path.py'`` names are looked at.

    Returns:
        str: ``path`` when it is not a model-zoo name or its file exists, else
        ``'package::'`` + the one existing file it maps to (logged as a warning).

    Raises:
        FileNotFoundError: no file, or several, match; the message names the closest files.

    Example:
        >>> resolve_zoo_config('mmdet::faster_rcnn/faster_rcnn_r50_fpn_1x_coco.py')
        'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'
    """
    if '::' not in path:
        return path
    package, rel = path.split('::', 1)
    root, files = _zoo_configs(package)
    if rel.startswith('/'):
        # an absolute path after 'mmdet::' (the published PCKA configs name their own copy,
        # 'mmdet::/root/mmrazor/configs/mmdet/faster_rcnn/...'): its folder and file
        rel = '/'.join(rel.split('/')[-2:])
    elif osp.isfile(osp.join(root, rel)):
        return path
    index = _index(package)
    for kind, key in (('same', (rel, )), ('strict', _strict_key(rel)),
                      ('loose', _loose_key(rel))):
        found = [rel] if kind == 'same' and rel in files else index.get(kind, {}).get(key, [])
        if len(found) == 1:
            from mmengine.logging import print_log
            print_log(f"{path!r} does not exist in the installed {package}; using "
                      f"'{package}::{found[0]}', its name in this release.", logger='current',
                      level=logging.WARNING)
            return f'{package}::{found[0]}'
        if len(found) > 1:
            raise FileNotFoundError(
                f'{path!r} does not exist in the installed {package} and could be any of '
                f'{[f"{package}::{f}" for f in found]}: name one of them.')
    close = difflib.get_close_matches(rel.replace('_', '-'), [f.replace('_', '-') for f in files],
                                      n=5, cutoff=0.5)
    by_norm = {f.replace('_', '-'): f for f in files}
    hint = (f'the closest existing files: {[f"{package}::{by_norm[c]}" for c in close]}'
            if close else f'no existing file is close; the configs are under {root}')
    raise FileNotFoundError(f'{path!r} does not exist in the installed {package} and no file '
                            f'of it has the same name in another spelling; {hint}.')


def zoo_config_file(path: str) -> str:
    """The installed config file a model-zoo name stands for.

    Args:
        path (str): ``'package::relative/path.py'``; a name of an older release is mapped as
            :func:`resolve_zoo_config` maps it.

    Returns:
        str: The file's absolute path under the package's ``.mim/configs`` (the file
        mmengine's ``get_config`` reads for the names it can parse).

    Raises:
        ValueError: ``path`` is not a model-zoo name.
        FileNotFoundError: ``path`` names no installed file (see :func:`resolve_zoo_config`).
    """
    if '::' not in path:
        raise ValueError(f"{path!r} is not a model-zoo name ('package::relative/path.py').")
    package, rel = resolve_zoo_config(path).split('::', 1)
    root, _ = _zoo_configs(package)
    return osp.join(root, rel)


def mmengine_reads(name: str) -> bool:
    """Whether mmengine's parser of model-zoo names accepts ``name`` (word characters before
    and after ``'::'`` up to the first ``/``), as ``_base_ = name`` needs.

    Example:
        >>> mmengine_reads('mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py')
        True
        >>> mmengine_reads('mmdet::gn+ws/faster-rcnn_r50_fpn_gn-ws-all_1x_coco.py')
        False
    """
    return _MMENGINE_NAME.match(name) is not None
