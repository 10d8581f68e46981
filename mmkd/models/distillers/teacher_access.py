"""The Distiller's frozen teachers: built with their weights, kept in eval mode and out of
checkpoints, and, in the single-teacher form, read as ``distiller.teacher``.

:class:`TeacherAccess` is the teachers' counterpart of :class:`.StudentAccess`: the
Distiller's ``teachers`` is a plain ``nn.ModuleDict`` submodule with ``requires_grad=False``,

* built from each teacher entry's model config, its weights loaded from its ``ckpt``
  (:func:`mmkd.utils.load_teacher_weights`) and frozen (:meth:`TeacherAccess.build_teachers`);
* in eval mode whatever ``train()`` is asked (BN statistics and dropout stay off);
* left out of ``state_dict()`` (checkpoints hold no teacher weights) and filled back from the
  current teachers by ``load_state_dict()``, so a checkpoint resumes whatever teacher the
  config names;
* in the single-teacher form, read through ``teacher``, ``teacher_recorders``,
  ``teacher_runner`` and ``teacher_forward_mode``; with several, those raise a KeyError that
  says to read them by name (``teachers``, ``recorders``, ``teacher_runners``,
  ``teacher_forward_modes``).
"""
import copy
from typing import Dict

from torch import nn

from mmkd.registry import MODELS
from mmkd.utils import load_teacher_weights
from ..recorders import RecorderManager
from .teacher_runner import TeacherRunner
from .teachers import setting_name


class TeacherAccess:
    """Mixin for :class:`~mmkd.models.distillers.Distiller` (an ``nn.Module`` with ``recorders``,
    ``teacher_runners`` and ``teacher_forward_modes`` by model name); see the module
    docstring."""

    def build_teachers(self, entries: Dict[str, dict], model_cfgs: Dict[str, tuple]) -> None:
        """Build :attr:`teachers` (``{name: model}``, frozen, in eval mode) from ``model_cfgs``
        (``{name: (model cfg, source)}``) and load each entry's ``ckpt``."""
        #: Every teacher by name (the single teacher's is 'teacher'), frozen, in eval mode.
        self.teachers = nn.ModuleDict({name: MODELS.build(copy.deepcopy(model_cfgs[name][0]))
                                       for name in entries})
        for name, model in self.teachers.items():
            load_teacher_weights(model, entries[name]['ckpt'], setting_name(name, 'ckpt'))
            model.requires_grad_(False)
            model.eval()
        # Checkpoints hold no teacher weights; loading fills them from the current teachers.
        self._register_state_dict_hook(_drop_teacher_keys)
        self._register_load_state_dict_pre_hook(_fill_teacher_keys, with_module=True)

    def train(self, mode: bool = True):
        super().train(mode)
        for teacher in self.teachers.values():  # frozen: BN statistics and dropout stay off
            teacher.train(False)
        return self

    @property
    def student_recorders(self) -> RecorderManager:
        return self.recorders['student']

    @property
    def teacher(self) -> nn.Module:
        """The teacher, in the single-teacher form (several: :attr:`teachers` by name)."""
        return self.teachers[self._sole_teacher_name('teacher')]

    @property
    def teacher_recorders(self) -> RecorderManager:
        return self.recorders[self._sole_teacher_name('teacher_recorders')]

    @property
    def teacher_runner(self) -> TeacherRunner:
        return self.teacher_runners[self._sole_teacher_name('teacher_runner')]

    @property
    def teacher_forward_mode(self) -> str:
        return self.teacher_forward_modes[self._sole_teacher_name('teacher_forward_mode')]

    def _sole_teacher_name(self, attribute: str) -> str:
        if len(self.teachers) != 1:
            # not an AttributeError: nn.Module.__getattr__ would replace this message
            raise KeyError(f'Distiller.{attribute} exists with one teacher; this one has '
                           f'{list(self.teachers)}: read them by name (Distiller.teachers, '
                           'recorders, teacher_runners, teacher_forward_modes).')
        return next(iter(self.teachers))


def _drop_teacher_keys(module: nn.Module, state_dict: dict, prefix: str, local_metadata) -> None:
    for key in [k for k in state_dict if k.startswith(prefix + 'teachers.')]:
        del state_dict[key]


def _fill_teacher_keys(module: nn.Module, state_dict: dict, prefix: str, *args) -> None:
    for key, value in module.teachers.state_dict().items():
        state_dict.setdefault(f'{prefix}teachers.{key}', value)
