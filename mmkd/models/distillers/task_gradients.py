"""Task-loss gradients as loss inputs (``gradient=True`` in a mapping spec, e.g. GKD).

For the frozen teacher, its recorded outputs become leaves of a graph that starts at them, so
the backward pass of its own task loss stops there (the teacher then runs in
``teacher_forward_mode='loss'``). For the student, the gradient is taken with
``retain_graph`` (its task loss is backpropagated again by the optimizer) and with
``create_graph`` when a loss asks for second order (``create_graph = True``).
"""
from typing import Callable, Dict, Set

import torch
from torch import Tensor, nn

from ..recorders import ModuleInputsRecorder, ModuleOutputsRecorder, RecorderManager
from ..losses.utils import tensors_in
from .loss_inputs import sum_loss_values


class TaskGradients:
    """Finds which recorders need task-loss gradients, takes them, and hands them out.

    Args:
        mappings (dict): ``loss_forward_mappings``.
        losses (nn.ModuleDict): the distillation losses.
        recorders (dict): ``{'student': RecorderManager, <teacher name>: RecorderManager,
            ...}``.
        side_of (callable): ``side_of(spec)``, the model a spec reads (``'student'`` or a
            teacher's name): :meth:`.LossInputs.side_of`.
    """

    def __init__(self, mappings: Dict[str, dict], losses: nn.ModuleDict,
                 recorders: Dict[str, RecorderManager], side_of: Callable[[dict], str]):
        self.recorders = recorders
        self.names: Dict[str, Set[str]] = {side: set() for side in recorders}
        self.create_graph = False
        self._gradients: Dict[int, Tensor] = {}  # id(recorded tensor) -> its gradient
        for name, mapping in mappings.items():
            for arg, spec in mapping.items():
                if not spec.get('gradient'):
                    continue
                side = side_of(spec)
                recorder = recorders[side][spec['recorder']]
                if not isinstance(recorder, ModuleOutputsRecorder) or isinstance(
                        recorder, ModuleInputsRecorder):
                    raise TypeError(f'loss_forward_mappings[{name!r}][{arg!r}]: gradient=True '
                                    f'needs a ModuleOutputsRecorder, but {side} recorder '
                                    f"{spec['recorder']!r} is a {type(recorder).__name__}.")
                self.names[side].add(spec['recorder'])
                if side != 'student':
                    recorder.outputs_as_grad_leaves = True
                else:
                    self.create_graph |= bool(losses[name].create_graph)

    def needed(self, side: str) -> bool:
        return bool(self.names[side])

    def store(self, losses: dict, side: str) -> None:
        """d(sum of ``side``'s task losses) / d(its recorded tensors), kept for this step."""
        tensors = [t for name in sorted(self.names[side])
                   for t in tensors_in(self.recorders[side][name].data_buffer)
                   if t.requires_grad]
        if not tensors:
            return
        student = side == 'student'
        grads = torch.autograd.grad(sum_loss_values(losses), tensors, retain_graph=student,
                                    create_graph=student and self.create_graph,
                                    allow_unused=True)
        for tensor, grad in zip(tensors, grads):
            self._gradients[id(tensor)] = torch.zeros_like(tensor) if grad is None else grad

    def of(self, value):
        """The gradient of a recorded tensor (or of each in a list / tuple)."""
        if isinstance(value, Tensor):
            if id(value) not in self._gradients:
                raise RuntimeError('No gradient was recorded for this tensor: it did not take '
                                   'part in the task loss.')
            return self._gradients[id(value)]
        if isinstance(value, (list, tuple)):
            return type(value)(self.of(v) for v in value)
        raise TypeError(f'gradient=True needs recorded tensors, got {type(value).__name__}.')

    def clear(self) -> None:
        self._gradients.clear()
