"""The Distiller as mmdet's and mmseg's runner machinery sees it: the student it trains.

Hooks, loops and tools written for a detector or segmentor trained alone reach into
``runner.model`` (unwrapped from DDP): mmdet's ``YOLOXModeSwitchHook`` sets
``model.bbox_head.use_l1 = True`` at the last epochs, ``SetEpochInfoHook`` calls
``model.set_epoch(epoch)``, a user's hook may read ``model.with_neck`` or ``model.test_cfg``.
:class:`StudentAccess` makes each of those act on the student, explicitly and nowhere else:

* **reading** an attribute the Distiller does not have (its own attributes, submodules,
  parameters and buffers always win) returns the student's: ``distiller.bbox_head`` is
  ``distiller.student.bbox_head``;
* **setting** an attribute the Distiller does not have but the student does sets the student's
  (``distiller.test_cfg = ...``); any other name is set on the Distiller as usual;
* **its parameters are what it trains**: ``named_parameters()`` / ``parameters()`` list the
  student's, the connectors', trainable losses' and the weighting's, not the frozen teachers'
  (``distiller.teachers[name].parameters()`` has those; checkpoints hold no teacher either);
* **deep copies share the frozen teachers** instead of copying them. mmengine's ``EMAHook``
  averages a ``deepcopy`` of ``runner.model``: with both rules, its average covers what trains
  (``update_buffers=False`` averages ``named_parameters()``, ``True`` the state dict, neither
  has a teacher), there is no second copy of any teacher, and its parameter swaps before
  validation line up (both models list the same parameters and buffers in the same order; a
  shared teacher buffer is swapped with itself). Averaging a shared teacher tensor would
  corrupt it (mmdet's ``ExpMomentumEMA`` computes ``p.mul_(1 - m).add_(p, alpha=m)``), which
  the first rule rules out.

The model's own methods (``train_step``, ``val_step``, ``test_step``, ``forward``) stay the
Distiller's: validation and test already predict with the student.
"""
import copy

from torch import nn


class StudentAccess:
    """Mixin for :class:`~mmkd.models.distillers.Distiller` (an ``nn.Module`` with a
    ``student`` submodule and a ``teachers`` ModuleDict); see the module docstring.

    Example:
        >>> import torch
        >>> class Model(StudentAccess, nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.student = nn.Sequential(nn.Linear(2, 2))
        ...         self.student.flag = False
        ...         self.teachers = nn.ModuleDict(dict(teacher=nn.Linear(2, 2)))
        >>> model = Model()
        >>> model.flag = True  # the student's attribute
        >>> model.student.flag, '0' in model._modules
        (True, False)
        >>> copy.deepcopy(model).teachers is model.teachers
        True
        >>> [name for name, _ in model.named_parameters()]
        ['student.0.weight', 'student.0.bias']
    """

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)  # nn.Module: submodules, parameters, buffers
        except AttributeError:
            student = _student(self)
            if student is None or name.startswith('__'):
                raise
        try:
            return getattr(student, name)
        except AttributeError:
            raise AttributeError(f"'{type(self).__name__}' object has no attribute {name!r}, "
                                 f'and neither has its student ({type(student).__name__}).'
                                 ) from None

    def __setattr__(self, name: str, value) -> None:
        student = _student(self)
        if student is not None and not _has_own(self, name) and _has_own(student, name):
            setattr(student, name, value)
        else:
            super().__setattr__(name, value)

    def named_parameters(self, prefix: str = '', recurse: bool = True,
                         remove_duplicate: bool = True):
        """``nn.Module.named_parameters`` without the frozen teachers' (see the module
        docstring)."""
        teachers = f'{prefix}.teachers.' if prefix else 'teachers.'
        for name, param in super().named_parameters(prefix, recurse, remove_duplicate):
            if not name.startswith(teachers):
                yield name, param

    def __deepcopy__(self, memo: dict):
        teachers = self.__dict__['_modules'].get('teachers')
        if teachers is not None:  # shared, not copied: frozen, so identical in every copy
            for module in teachers.modules():
                memo[id(module)] = module
            for tensor in list(teachers.parameters()) + list(teachers.buffers()):
                memo[id(tensor)] = tensor
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        for key, value in self.__dict__.items():
            object.__setattr__(new, key, copy.deepcopy(value, memo))
        return new


def _student(model) -> nn.Module:
    """The student submodule, or None (before it is built, or while an object is being
    unpickled / copied and has no ``__dict__`` entries yet)."""
    return model.__dict__.get('_modules', {}).get('student')


def _has_own(obj, name: str) -> bool:
    """Whether ``obj`` itself has ``name``: an instance attribute, a submodule / parameter /
    buffer, or a class attribute (a method, a property); no delegation involved."""
    if name in obj.__dict__ or hasattr(type(obj), name):
        return True
    return any(name in obj.__dict__.get(key, {})
               for key in ('_modules', '_parameters', '_buffers'))
