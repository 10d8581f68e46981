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
``mmseg::`` model-zoo names stay as they are.
"""
import os.path as osp
from typing import List, Optional

from mmengine.config import Config
from mmengine.hub import get_config

from mmkd.models.distillers.recipes import lookup_recipe

#: The place a recipe reads when ``--on`` is not given, per task (first that the method has).
DEFAULT_PLACES = {'det': ('neck', 'dense_cls_logits'), 'seg': ('seg_logits', 'neck')}


def load_config(path: str) -> Config:
    """A config file, or an installed package's model-zoo config (``'mmdet::...'``)."""
    return get_config(path, pretrained=False) if '::' in path else Config.fromfile(path)


def task_of(cfg: Config) -> str:
    """``'seg'`` for an mmseg config (its default scope), else ``'det'``."""
    return 'seg' if cfg.get('default_scope') == 'mmseg' else 'det'


def default_place(method: str, task: str) -> str:
    """Where ``method`` reads by default for ``task``: necks for detection (dense-head logits
    for KD), logits for segmentation (the neck for methods that read only necks)."""
    _, spec = lookup_recipe(method)
    for place in DEFAULT_PLACES[task]:
        if place in spec.settings:
            return place
    raise ValueError(f'Recipe {method} reads {sorted(spec.settings)}, none of which a '
                     f'{task} model has by default: give --on.')


def _path(path: str) -> str:
    return path if '::' in path else osp.abspath(path)


def _stem(path: str) -> str:
    return osp.splitext(osp.basename(path))[0]


def config_name(method: str, on: str, student: str, teacher: str) -> str:
    """e.g. ``pkd_neck_retinanet_r18_digits_retinanet_r18-w32_digits``: method, place,
    teacher, student, as the shipped configs are named."""
    return f'{method.lower()}_{on}_{_stem(teacher)}_{_stem(student)}'


def distill_config_text(student: str, teacher: str, teacher_ckpt: Optional[str],
                        recipes: List[dict], student_cfg: Config, command: str = '') -> str:
    """The Python text of the distillation config (see the module docstring)."""
    imports = list((student_cfg.get('custom_imports') or {}).get('imports', []))
    imports += [] if 'mmkd' in imports else ['mmkd']
    recipe_text = '[' + ', '.join(
        'dict(' + ', '.join(f'{k}={v!r}' for k, v in recipe.items()) + ')'
        for recipe in recipes) + ']'
    lines = [
        f'# Written by tools/distill.py{": " + command if command else ""}',
        "# The student's data, schedule and runtime come from its config (_base_); the model",
        '# is a Distiller of the two configs with the recipe below. Its build log prints the',
        '# pairing the recipe expands into (README, "Recipes: a method in one line").',
        f'_base_ = {_path(student)!r}',
        f'custom_imports = dict(imports={imports!r}, allow_failed_imports=False)',
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
    return '\n'.join(lines) + '\n'
