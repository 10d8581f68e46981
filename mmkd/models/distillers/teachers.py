"""The Distiller's teachers: one, or several by name, each with its own settings.

Two forms, one mechanism. The single-teacher form, ``teacher=dict(cfg_path=...)`` with
``teacher_ckpt``, ``teacher_recorders`` and the ``teacher_*`` execution settings, is the
one-entry case of the general form, named ``'teacher'``::

    teachers=dict(
        gfl=dict(cfg_path='mmdet::gfl/gfl_r101_fpn_ms-2x_coco.py', pretrained=False,
                 ckpt='https://...', recorders=dict(fpn=dict(type='ModuleOutputsRecorder',
                                                             source='neck'))),
        retina=dict(cfg_path='mmdet::retinanet/retinanet_x101-64x4d_fpn_2x_coco.py',
                    pretrained=False, ckpt='https://...', precision='bf16',
                    recorders=dict(...)))

An entry is a model entry (``cfg_path`` / ``pretrained`` / ``cfg_options``, or a model
config; see :func:`.model_config.resolve_model_cfg`) plus the teacher's own settings, the keys
of :data:`SETTINGS`: ``ckpt`` and ``recorders``, and ``forward_mode``, ``precision``,
``channels_last``, ``early_stop``, ``compile``, ``cast_weights``, which default to the
Distiller's ``teacher_<key>`` arguments. Each teacher keeps its own data preprocessor (from its
config), runs frozen, and is left out of checkpoints; a loss-input spec names the teacher it
reads: ``dict(from_student=False, teacher='gfl', recorder='fpn', data_idx=0)``.
"""
from typing import Dict, Optional

#: The name of the single teacher (``teacher=``), and the side its specs read by default.
DEFAULT_TEACHER = 'teacher'
#: A teacher entry's own settings; each but ``ckpt`` and ``recorders`` defaults to the
#: Distiller's argument ``teacher_<key>``.
SETTINGS = ('ckpt', 'recorders', 'forward_mode', 'precision', 'channels_last', 'early_stop',
            'compile', 'cast_weights')
#: Settings that exist per teacher only in the form with several (no shared default).
OWN_SETTINGS = ('ckpt', 'recorders')


def teacher_entries(teacher: Optional[dict], teachers: Optional[Dict[str, dict]],
                    defaults: Dict[str, object]) -> Dict[str, dict]:
    """``{name: dict(model=<model entry>, ckpt=..., recorders=..., forward_mode=..., ...)}``
    from the Distiller's ``teacher`` / ``teachers`` arguments.

    Args:
        teacher (dict, optional): The single-teacher form's model entry.
        teachers (dict, optional): ``{name: entry}`` (see the module docstring).
        defaults (dict): ``{setting: the Distiller's teacher_<setting> argument}`` for every
            key of :data:`SETTINGS`.

    Example:
        >>> defaults = dict(ckpt=None, recorders=None, forward_mode='auto', precision=None,
        ...                 channels_last=False, early_stop=True, compile=False,
        ...                 cast_weights=False)
        >>> entries = teacher_entries(None, dict(a=dict(cfg_path='a.py', ckpt='a.pth',
        ...                                             precision='bf16')), defaults)
        >>> entries['a']['model'], entries['a']['ckpt'], entries['a']['precision']
        ({'cfg_path': 'a.py'}, 'a.pth', 'bf16')
        >>> list(teacher_entries(dict(cfg_path='t.py'), None, defaults))
        ['teacher']
    """
    if teacher is not None and teachers is not None:
        raise ValueError('Give either teacher=dict(...) (one teacher) or teachers=dict(name='
                         'dict(...), ...) (several), not both.')
    if teachers is None:
        if teacher is None:
            raise ValueError('The Distiller needs a teacher: teacher=dict(cfg_path=...) or '
                             'teachers=dict(name=dict(cfg_path=..., ckpt=...), ...).')
        return {DEFAULT_TEACHER: dict(defaults, model=teacher)}
    if not isinstance(teachers, dict) or not teachers:
        raise TypeError(f'teachers must be a non-empty dict {{name: dict(cfg_path=..., '
                        f'ckpt=...)}}, got {teachers!r}.')
    given = [f'teacher_{key}' for key in OWN_SETTINGS if defaults[key] is not None]
    if given:
        raise ValueError(f'{given} belong to the single-teacher form (teacher=...); with '
                         'teachers=..., give each teacher its own ' +
                         ' and '.join(f'`{key}`' for key in OWN_SETTINGS) + ' in its entry.')
    entries = {}
    for name, entry in teachers.items():
        if not isinstance(name, str) or not name.isidentifier() or name == 'student':
            raise KeyError(f'teachers: {name!r} is not a valid teacher name (a Python '
                           "identifier other than 'student').")
        if not isinstance(entry, dict):
            raise TypeError(f'teachers[{name!r}] must be a dict (cfg_path=..., ckpt=..., '
                            f'recorders=...), got {type(entry).__name__}.')
        entry = dict(entry)
        settings = {key: entry.pop(key, defaults[key]) for key in SETTINGS}
        entries[name] = dict(settings, model=entry)
    return entries


def teacher_role(name: str) -> str:
    """How errors and warnings name a teacher: ``'teacher'`` (the single form's),
    ``"teachers['gfl']"`` otherwise."""
    return 'teacher' if name == DEFAULT_TEACHER else f'teachers[{name!r}]'


def setting_name(name: str, key: str) -> str:
    """A teacher setting as the config writes it: ``teacher_<key>`` or
    ``teachers['gfl'].<key>``.

    Example:
        >>> setting_name('teacher', 'ckpt'), setting_name('gfl', 'ckpt')
        ('teacher_ckpt', "teachers['gfl'].ckpt")
    """
    return f'teacher_{key}' if name == DEFAULT_TEACHER else f'{teacher_role(name)}.{key}'
