"""Packages a config needs, checked when the config is loaded: a missing one is named with the
command that installs it, before anything is built or trained.

A config needs packages in two ways:

* its ``custom_imports`` (``dict(imports='mmdet.models')`` or a list of module names, as
  mmengine reads them), e.g. ``imports=['mmpretrain.models']`` for a ConvNeXt backbone;
* the scope of a model type (``type='mmpretrain.ConvNeXt'``, ``_scope_='mmpretrain'``), whose
  registry mmengine fills by importing ``<scope>.models`` when the model is built.

Without these checks mmengine reports the first as ``Failed to import custom modules from
{...}, the current sys.path is: ...`` and the second as a type missing from a registry.
"""
import importlib
import importlib.util
import warnings
from typing import List, Optional, Tuple

#: Import name -> pip distribution, where they differ.
DISTRIBUTIONS = {'skimage': 'scikit-image', 'sklearn': 'scikit-learn', 'mmseg': 'mmsegmentation',
                 'cv2': 'opencv-python', 'PIL': 'pillow', 'yaml': 'pyyaml'}
#: Distributions that ``tools/install.sh`` installs (requirements/runtime.txt, torch, mmcv and
#: the torchvision of that torch).
MMKD_INSTALLS = ('torch', 'torchvision', 'mmcv', 'numpy', 'mmengine', 'mmdet', 'mmsegmentation',
                 'mmpretrain', 'scikit-image', 'scikit-learn', 'pycocotools', 'matplotlib',
                 'ftfy', 'regex')


def install_command(package: str) -> str:
    """How to install the package imported as ``package`` (a top-level module name).

    Example:
        >>> install_command('skimage')
        '`bash tools/install.sh` (it installs scikit-image) or `pip install scikit-image`'
        >>> install_command('timm')
        '`pip install timm`'
    """
    dist = DISTRIBUTIONS.get(package, package)
    if dist == 'torchvision':
        return torchvision_install_command()
    if dist in MMKD_INSTALLS:
        return f'`bash tools/install.sh` (it installs {dist}) or `pip install {dist}`'
    return f'`pip install {dist}`'


def torchvision_requirement(torch_version: str) -> Tuple[Optional[str], Optional[str]]:
    """``(pip requirement, index URL or None)`` of the torchvision release made for
    ``torch_version`` (torch 2.N goes with torchvision 0.(N+15)); ``(None, None)`` for a torch
    outside that rule. Its compiled ops link to one torch build, so a torch built for a
    device (``2.13.0+cpu``, ``2.5.1+cu121``) takes its torchvision from PyTorch's index of
    that build. ``tools/install.sh`` installs what this gives.

    Example:
        >>> torchvision_requirement('2.13.0')
        ('torchvision==0.28.0', None)
        >>> torchvision_requirement('2.13.0+cpu')
        ('torchvision==0.28.0+cpu', 'https://download.pytorch.org/whl/cpu')
    """
    version, _, build = torch_version.partition('+')
    parts = version.split('.')
    if len(parts) < 2 or parts[0] != '2' or not parts[1].isdigit():
        return None, None
    patch = parts[2] if len(parts) > 2 and parts[2].isdigit() else '0'
    spec = f'torchvision==0.{int(parts[1]) + 15}.{patch}'
    if build:
        return f'{spec}+{build}', f'https://download.pytorch.org/whl/{build}'
    return spec, None


def torchvision_install_command() -> str:
    """The pip command for the torchvision of the installed torch
    (:func:`torchvision_requirement`)."""
    import torch
    spec, index = torchvision_requirement(torch.__version__)
    if spec is None:
        return f'`pip install torchvision` (the release made for your torch {torch.__version__})'
    return (f'`pip install {spec}' + (f' --index-url {index}' if index else '') +
            f'` (the torchvision of your torch {torch.__version__})')


def custom_import_names(custom_imports, where: str) -> Tuple[List[str], bool]:
    """``(module names, allow_failed_imports)`` of a ``custom_imports`` entry, in both forms
    mmengine accepts (a module name or a list of them).

    Args:
        custom_imports (dict | None): The entry, e.g. ``dict(imports='mmdet.models')``.
        where (str): The config it comes from, for errors.

    Returns:
        tuple: The module names (``[]`` without an entry) and its ``allow_failed_imports``
        (``False`` when not given, as in mmengine).

    Example:
        >>> custom_import_names(dict(imports='mmdet.models'), 'cfg.py')
        (['mmdet.models'], False)
    """
    if not custom_imports:
        return [], False
    if not isinstance(custom_imports, dict):
        raise TypeError(f'{where}: custom_imports must be a dict(imports=..., '
                        f'allow_failed_imports=...), got {custom_imports!r}.')
    imports = custom_imports.get('imports', [])
    if isinstance(imports, str):
        imports = [imports]
    if not isinstance(imports, (list, tuple)) or not all(isinstance(i, str) for i in imports):
        raise TypeError(f'{where}: custom_imports.imports must be a module name or a list of '
                        f"them (e.g. imports=['mmpretrain.models']), got {imports!r}.")
    return list(imports), bool(custom_imports.get('allow_failed_imports', False))


def import_or_raise(module: str, needed_by: str) -> None:
    """Import ``module``; if a package it needs is missing, a ``ModuleNotFoundError`` that
    names the package, what needs it, and the command that installs it."""
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as err:
        missing = (err.name or module).split('.')[0]
        if importlib.util.find_spec(missing) is not None:  # installed, without that module
            raise ModuleNotFoundError(
                f'{needed_by}: there is no module {err.name!r} (the package {missing!r} is '
                'installed): check the module name.', name=err.name) from err
        chain = (f' (importing {module!r} needs it)' if missing != module.split('.')[0]
                 else '')
        raise ModuleNotFoundError(
            f'{needed_by} needs the package {missing!r}{chain}, which is not installed: '
            f'install it with {install_command(missing)}.', name=missing) from err


def import_custom_modules(cfg, where: str) -> None:
    """Import ``cfg``'s ``custom_imports`` as mmengine's ``Config.fromfile`` does (load the
    config with ``import_custom_modules=False`` and call this instead), but naming a missing
    package and its install command. With ``allow_failed_imports=True`` a module that fails
    to import is skipped with a warning, as in mmengine."""
    imports, allow_failed = custom_import_names(cfg.get('custom_imports'), where)
    for module in imports:
        try:
            import_or_raise(module, f"{where} (custom_imports={module!r})")
        except ImportError as err:
            if not allow_failed:
                raise
            warnings.warn(f'{module} failed to import and is ignored '
                          f'(allow_failed_imports=True): {err}', UserWarning)


def check_model_scopes(model_cfg, where: str) -> None:
    """Make sure the packages of the scopes that ``model_cfg`` names (``type='pkg.Type'``,
    ``_scope_='pkg'``) are installed and their models import, naming a missing package and
    its install command otherwise (mmengine would report a type missing from its registry
    when the model is built)."""
    for scope in sorted(_scopes(model_cfg)):
        if not scope.isidentifier():
            continue  # not a module name: mmengine reports such a type when it builds it
        if importlib.util.find_spec(scope) is None:
            raise ModuleNotFoundError(
                f"{where} builds types of the scope {scope!r}, whose package is not installed: "
                f'install it with {install_command(scope)}.', name=scope)
        if importlib.util.find_spec(f'{scope}.models') is not None:
            import_or_raise(f'{scope}.models', f'{where} (types of the scope {scope!r})')


def _scopes(cfg) -> set:
    """The scopes named in a config: ``_scope_`` values and the prefix of dotted ``type``
    strings (``'mmpretrain.ConvNeXt'``; a type given as a class has none)."""
    found = set()
    if isinstance(cfg, dict):
        if isinstance(cfg.get('_scope_'), str):
            found.add(cfg['_scope_'])
        kind = cfg.get('type')
        if isinstance(kind, str) and '.' in kind:
            found.add(kind.split('.')[0])
        for value in cfg.values():
            found |= _scopes(value)
    elif isinstance(cfg, (list, tuple)):
        for value in cfg:
            found |= _scopes(value)
    return found
