"""Teacher replays: teacher methods called on recorded data after the student's forward.

``teacher_replays=dict(roi=dict(method='roi_head._bbox_forward', args=[spec, ...]))`` calls
that teacher method under ``no_grad`` with the values the specs name (see
:mod:`.loss_inputs`), e.g. the teacher's RoI head on the teacher's features and the RoIs the
student sampled (recorded with ``MethodInputsRecorder``), so both classify the same
proposals. A teacher-side spec with ``recorder='roi'`` then reads the replay's output
(``data_idx`` may be a dict key such as ``'cls_score'``). Mask R-CNN's mask head is replayed
the same way, ``method='roi_head._mask_forward'`` on the student's positive RoIs (the inputs
of its own ``_mask_forward``), for ``MaskKDLoss`` (configs/distill/_base_/mask_replay.py).
"""
from typing import Callable, Dict, List, Optional

import torch
from torch import nn

from mmkd.utils import get_submodule_or_raise
from .stages import STAGES, DistillStage, StageStep
from .teachers import DEFAULT_TEACHER


@STAGES.register_module()
class TeacherReplays(DistillStage):
    """Checks the replays once the loss inputs exist; runs them, and keeps their outputs, per
    step (a :class:`~.stages.DistillStage` read on the teacher's side).

    Args:
        cfgs (dict, optional): ``{name: dict(method='module.method', args=[spec, ...])}``.
        student (nn.Module): The student model (unused: replays run teacher methods).
        teacher (nn.Module, optional): The teacher model.
    """

    argument = 'teacher_replays'
    sides = (DEFAULT_TEACHER, )

    def __init__(self, cfgs: Optional[Dict[str, dict]], student: nn.Module,
                 teacher: Optional[nn.Module]):
        super().__init__(cfgs, student, teacher)
        self.teacher = teacher
        self.methods: Dict[str, Callable] = {}
        self.args: Dict[str, list] = {}

    def bind(self, loss_inputs) -> None:
        """Check every replay's method and argument specs (replays read recorders only)."""
        for name, replay in self.cfgs.items():
            if set(replay) != {'method', 'args'}:
                raise KeyError(f"teacher_replays[{name!r}] needs exactly 'method' (e.g. "
                               "'roi_head._bbox_forward') and 'args' (a list of specs).")
            module_name, _, method_name = replay['method'].rpartition('.')
            module = get_submodule_or_raise(self.teacher, module_name, 'teacher')
            method = getattr(module, method_name, None)
            if not callable(method):
                raise KeyError(f"teacher module {module_name!r} has no method {method_name!r} "
                               f"(teacher_replays[{name!r}]).")
            for i, spec in enumerate(replay['args']):
                loss_inputs.check_spec(f'teacher_replays[{name!r}].args[{i}]', spec,
                                       allow_replays=False)
                if spec.get('gradient') or spec.get('connector'):
                    raise KeyError(f'teacher_replays[{name!r}].args[{i}]: replays take plain '
                                   'recorded data (no gradient, no connector).')
            self.methods[name] = method
            self.args[name] = list(replay['args'])

    def reads(self) -> List[dict]:
        """Every argument spec (the teacher's early stop waits for the teacher's)."""
        return [spec for args in self.args.values() for spec in args]

    def run(self, step: StageStep) -> None:
        """Call every replay in the teacher's precision, its arguments resolved by
        ``step.resolve``."""
        with step.teacher_precision(), torch.no_grad():
            for name, method in self.methods.items():
                self.outputs[name] = method(*[step.resolve(spec) for spec in self.args[name]])
