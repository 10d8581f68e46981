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
from typing import Callable, Dict

import torch
from torch import nn

from mmkd.utils import get_submodule_or_raise
from .loss_inputs import LossInputs


class TeacherReplays:
    """Checks the replays at build; runs them, and keeps their outputs, per step.

    Args:
        replays (dict): ``{name: dict(method='module.method', args=[spec, ...])}``.
        teacher (nn.Module): the teacher model.
        loss_inputs (LossInputs): checks the argument specs (replays read recorders only).
    """

    def __init__(self, replays: Dict[str, dict], teacher: nn.Module, loss_inputs: LossInputs):
        self.methods: Dict[str, Callable] = {}
        self.args: Dict[str, list] = {}
        self.outputs: Dict[str, object] = {}
        for name, replay in (replays or {}).items():
            if name in loss_inputs.recorders['teacher']:
                raise KeyError(f'teacher_replays[{name!r}] has the name of a teacher recorder; '
                               'give it its own name.')
            if set(replay) != {'method', 'args'}:
                raise KeyError(f"teacher_replays[{name!r}] needs exactly 'method' (e.g. "
                               "'roi_head._bbox_forward') and 'args' (a list of specs).")
            module_name, _, method_name = replay['method'].rpartition('.')
            module = get_submodule_or_raise(teacher, module_name, 'teacher')
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

    def __bool__(self) -> bool:
        return bool(self.methods)

    def __contains__(self, name: str) -> bool:
        return name in self.methods

    def run(self, resolve: Callable[[dict], object]) -> None:
        """Call every replay; ``resolve(spec)`` gives the value of an argument spec."""
        with torch.no_grad():
            for name, method in self.methods.items():
                self.outputs[name] = method(*[resolve(spec) for spec in self.args[name]])

    def clear(self) -> None:
        self.outputs.clear()
