"""A NaN or inf in a distillation loss stops the step before the optimizer sees it.

One non-finite loss is enough to turn most of the student's weights into NaN in one or two
optimizer steps (e.g. from a teacher checkpoint holding one NaN weight), and nothing says
which loss or why. :class:`NonFiniteGuard` checks every distillation loss each step (one
host-device synchronisation for all of them) and, when one is NaN or inf, says which loss, at
which iteration, and which side of its inputs (teacher, student or neither) holds non-finite
values. With ``nonfinite='error'`` (the default) it raises; with ``'skip'`` the Distiller skips
that optimizer step and logs the running count as ``distill_skipped_steps``.
"""
from typing import Dict, List

import torch
from mmengine.logging import MessageHub, print_log
from torch import Tensor

from ..losses.utils import tensors_in

MODES = ('error', 'skip')


class NonFiniteDistillLoss(FloatingPointError):
    """Raised (mode ``'error'``) when a distillation loss is NaN or inf."""


class NonFiniteGuard:
    """Args:
        mode (str): ``'error'`` or ``'skip'``.
    """

    def __init__(self, mode: str = 'error'):
        if mode not in MODES:
            raise ValueError(f"nonfinite must be one of {MODES} ('error': stop training with "
                             f"an error naming the loss; 'skip': skip the optimizer step and "
                             f'count it), got {mode!r}.')
        self.mode = mode
        self.skipped = 0
        #: Whether the last checked step must not update the weights.
        self.skip_step = False

    def check(self, values: Dict[str, Tensor], inputs: Dict[str, dict]) -> None:
        """``values``: each loss's value; ``inputs``: each loss's keyword arguments."""
        self.skip_step = False
        if not values:
            return
        finite = torch.stack([torch.isfinite(v.detach()).all() for v in values.values()])
        if bool(finite.all()):
            return
        bad = [name for name, ok in zip(values, finite.tolist()) if not ok]
        message = self.describe(bad, values, inputs)
        if self.mode == 'error':
            raise NonFiniteDistillLoss(
                message + " The step was stopped before the optimizer updated the weights. "
                "To skip such steps instead, set nonfinite='skip' in the Distiller config.")
        self.skipped += 1
        self.skip_step = True
        print_log(message + f' Step skipped ({self.skipped} so far).', logger='current',
                  level=30)

    @staticmethod
    def describe(bad: List[str], values: Dict[str, Tensor], inputs: Dict[str, dict]) -> str:
        hub = MessageHub.get_current_instance()
        iteration = hub.get_info('iter')
        where = f' at iteration {iteration + 1}' if iteration is not None else ''
        parts = []
        for name in bad:
            value = float(values[name].detach().float().sum())
            sides = {'teacher': [], 'student': []}
            for arg, arg_value in inputs.get(name, {}).items():
                count = sum(int((~torch.isfinite(t)).sum()) for t in tensors_in(arg_value)
                            if t.is_floating_point())
                if count:
                    sides['teacher' if arg.endswith('_T') else 'student'].append(
                        f'{arg} ({count} non-finite values)')
            if sides['teacher']:
                cause = (f"its teacher input {', '.join(sides['teacher'])} is non-finite: "
                         'check the teacher checkpoint (teacher_ckpt) and, for fp16 teachers, '
                         'overflow')
            elif sides['student']:
                cause = (f"its student input {', '.join(sides['student'])} is non-finite: the "
                         'student diverged (lower the learning rate or the loss weights, or '
                         'clip gradients)')
            else:
                cause = ('its inputs are finite, so the loss itself overflowed or divided by '
                         'zero on them (check its weight and eps)')
            parts.append(f'distillation loss {name!r} is {value}{where}; {cause}.')
        return ' '.join(p[0].upper() + p[1:] for p in parts)

    def log(self) -> None:
        if self.skipped:
            MessageHub.get_current_instance().update_scalar('train/distill_skipped_steps',
                                                            self.skipped)
