"""mmdet hooks that inspect the model's modules, pointed at a Distiller's student.

Most hooks of mmdet and mmseg work on a Distiller unchanged: they read or set attributes of
``runner.model``, which the Distiller answers with its student's
(:mod:`mmkd.models.distillers.student_access`). ``NumClassCheckHook`` instead walks every
module of the model and compares each ``num_classes`` with the dataset's classes; on a
Distiller that walk also meets the frozen teachers, which may predict other classes (a
feature recipe reads none of their class scores; a logit recipe checks equal classes when the
Distiller is built). mmkd therefore registers, under mmdet's own name, a subclass that runs
mmdet's check on the student of a Distiller and on any other model exactly as mmdet does: a
config that names ``NumClassCheckHook`` needs no change.
"""
from mmdet.engine.hooks import NumClassCheckHook as MMDetNumClassCheckHook
from mmdet.registry import HOOKS as MMDET_HOOKS
from mmengine.model import is_model_wrapper


class _StudentRunner:
    """``runner`` with ``model`` replaced (every other attribute is the runner's)."""

    def __init__(self, runner, model):
        self._runner, self.model = runner, model

    def __getattr__(self, name):
        return getattr(self._runner, name)


@MMDET_HOOKS.register_module(name='NumClassCheckHook', force=True)
class NumClassCheckHook(MMDetNumClassCheckHook):
    """mmdet's ``NumClassCheckHook``; on a Distiller it checks the student's heads."""

    def _check_head(self, runner, mode: str) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        student = getattr(model, '_modules', {}).get('student')
        if student is not None and 'teachers' in model._modules:
            runner = _StudentRunner(runner, student)
        super()._check_head(runner, mode)
