"""The distillation config ``tools/distill.py`` writes from a student and a teacher config.

The written config inherits the student's config (its data, schedule and runtime: what the
student would train with alone) and replaces its model by a Distiller of the two configs with
one recipe (:mod:`mmkd.models.distillers.recipes`)::

    _base_ = 'configs/digits/retinanet_r18-w32_digits.py'
    model = dict(_delete_=True, _scope_='mmkd', type='Distiller',
                 student=dict(cfg_path=...), teacher=dict(cfg_path=..., pretrained=False),
                 teacher_ckpt=..., recipes=[dict(type='PKD', on='neck')])
    val_cfg = dict(_delete_=True, type='mmkd.DistillValLoop')

Local paths are written absolute, so the file works from any folder; ``mmdet::`` /
``mmseg::`` model-zoo names stay names (an older release's name as the installed file's
name), except in ``_base_`` where mmengine's parser rejects them (``mmdet::gn+ws/...``): there
the installed file's absolute path is written, with a comment naming it. ``custom_imports``
are those of both configs (a teacher from another package needs its own), plus ``'mmkd'``.
"""
import os.path as osp
from typing import List, Optional

from mmengine.config import Config

from mmkd.models.distillers.model_config import load_model_file
from mmkd.models.distillers.recipes import lookup_recipe
from mmkd.models.distillers.zoo_names import mmengine_reads, resolve_zoo_config, zoo_config_file
from mmkd.utils.packages import custom_import_names

#: The place a recipe reads when ``--on`` is not given, per task (first that the method has).
DEFAULT_PLACES = {'det': ('neck', 'dense_cls_logits'), 'seg': ('seg_logits', 'neck')}


def load_config(path: str) -> Config:
    """A config file, or an installed package's model-zoo config (``'mmdet::...'``), read as
    a distiller reads its models' configs
    (:func:`mmkd.models.distillers.model_config.load_model_file`: any installed name, a
    missing package named with its install command)."""
    return load_model_file(path)


def task_of(cfg: Config) -> str:
    """``'seg'`` for an mmseg config (its default scope), else ``'det'``."""
    return 'seg' if cfg.get('default_scope') == 'mmseg' else 'det'


def default_place(method: str, task: str, student_cfg: Optional[Config] = None,
                  teacher_cfg: Optional[Config] = None) -> str:
    """Where ``method`` reads by default for ``task``: necks for detection (dense-head logits
    for KD), logits for segmentation (the neck for methods that read only necks); the
    backbone's stages instead of the neck when the student's or the teacher's config (if
    given) has a model without a neck (CornerNet, TridentNet, MaskFormer, PSPNet ...).

    Args:
        method (str): A recipe type (any case).
        task (str): ``'det'`` or ``'seg'`` (:func:`task_of`).
        student_cfg, teacher_cfg (Config, optional): The two configs. Defaults to None.
    """
    _, spec = lookup_recipe(method)
    for place in DEFAULT_PLACES[task]:
        if place in spec.settings:
            if place == 'neck' and any(cfg is not None and not cfg.model.get('neck')
                                       for cfg in (student_cfg, teacher_cfg)):
                return 'backbone'
            return place
    raise ValueError(f'Recipe {method} reads {sorted(spec.settings)}, none of which a '
                     f'{task} model has by default: give --on.')


def _path(path: str) -> str:
    return resolve_zoo_config(path) if '::' in path else osp.abspath(path)


def _stem(path: str) -> str:
    return osp.splitext(osp.basename(path))[0]


def config_name(method: str, on: str, student: str, teacher: str) -> str:
    """e.g. ``pkd_neck_retinanet_r18_digits_retinanet_r18-w32_digits``: method, place,
    teacher, student, as the shipped configs are named."""
    return f'{method.lower()}_{on}_{_stem(teacher)}_{_stem(student)}'


def base_lines(path: str) -> List[str]:
    """The ``_base_ = ...`` line (after a comment, when there is one) that inherits ``path``: a
    file's absolute path, a model-zoo name as the installed release names it, or, for a name
    mmengine's parser rejects (``mmdet::gn+ws/...``), the installed file's absolute path."""
    if '::' not in path:
        return [f'_base_ = {osp.abspath(path)!r}']
    name = resolve_zoo_config(path)
    if mmengine_reads(name):
        return [f'_base_ = {name!r}']
    return [f"# {name} (mmengine cannot parse this model-zoo name: its installed file)",
            f'_base_ = {zoo_config_file(name)!r}']


def merged_custom_imports(configs: List[tuple]) -> dict:
    """One ``custom_imports`` for the distillation config: the modules of every config, in
    order and once, then ``'mmkd'``.

    Args:
        configs (list[tuple]): ``(name for errors, Config or None)`` of the student, then the
            teacher.

    Returns:
        dict: ``dict(imports=[...], allow_failed_imports=...)``, which allows failed imports
        when a config allows them for its own: each model's config is read again, with its
        own setting, when the distiller builds it.
    """
    imports, allow_failed = [], False
    for name, cfg in configs:
        if cfg is None:
            continue
        names, allowed = custom_import_names(cfg.get('custom_imports'), name)
        imports += [module for module in names if module not in imports]
        allow_failed = allow_failed or (allowed and bool(names))
    if 'mmkd' not in imports:
        imports.append('mmkd')
    return dict(imports=imports, allow_failed_imports=allow_failed)


def distill_config_text(student: str, teacher: str, teacher_ckpt: Optional[str],
                        recipes: List[dict], student_cfg: Config, command: str = '',
                        teacher_cfg: Optional[Config] = None) -> str:
    """The Python text of the distillation config (see the module docstring).

    Args:
        student (str): The student's config (a file or a model-zoo name).
        teacher (str): The teacher's config.
        teacher_ckpt (str, optional): The teacher's weights.
        recipes (list[dict]): The recipes, e.g. ``[dict(type='PKD', on='neck')]``.
        student_cfg (Config): The student's config, loaded.
        command (str): The command that wrote it, for the first comment. Defaults to ''.
        teacher_cfg (Config, optional): The teacher's config, loaded, for its
            ``custom_imports``. Defaults to None (the student's only).
    """
    custom_imports = merged_custom_imports([(student, student_cfg), (teacher, teacher_cfg)])
    recipe_text = '[' + ', '.join(
        'dict(' + ', '.join(f'{k}={v!r}' for k, v in recipe.items()) + ')'
        for recipe in recipes) + ']'
    lines = [
        f'# Written by tools/distill.py{": " + command if command else ""}',
        "# The student's data, schedule and runtime come from its config (_base_); the model",
        '# is a Distiller of the two configs with the recipe below. Its build log prints the',
        '# pairing the recipe expands into (docs/en/user_guides/distill_your_own_model.md,',
        '# "Recipes").',
        *base_lines(student),
        f'custom_imports = dict(imports={custom_imports["imports"]!r}, '
        f'allow_failed_imports={custom_imports["allow_failed_imports"]!r})',
        'model = dict(',
        '    _delete_=True,',
        "    _scope_='mmkd',",
        "    type='Distiller',",
        f'    student=dict(cfg_path={_path(student)!r}),',
        f'    teacher=dict(cfg_path={_path(teacher)!r}, pretrained=False),',
        f'    teacher_ckpt={teacher_ckpt!r},',
        f'    recipes={recipe_text})',
    ]
    if student_cfg.get('val_cfg') is not None:
        lines.append("val_cfg = dict(_delete_=True, type='mmkd.DistillValLoop')")
    if student_cfg.get('data_preprocessor') is not None:
        # mmseg configs keep it at the top level too, and mmengine's Runner hands a top-level
        # data_preprocessor to the model it builds; each model keeps its own in its config
        lines += ["# the student's data_preprocessor stays in its model config (the Runner would",
                  '# give a top-level one to the Distiller)',
                  'data_preprocessor = None']
    return '\n'.join(lines) + '\n'
