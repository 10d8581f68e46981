"""The contract every distillation loss follows.

A loss subclasses :class:`BaseDistillLoss` and implements :meth:`BaseDistillLoss.compute`,
the unweighted value. Calling the loss (``loss(preds_S, preds_T, ...)``) then, in one place
for every loss:

1. turns off autocast and casts every half / bfloat16 tensor argument to float32 (the
   reductions and Gram matrices of large feature maps overflow or lose precision in half);
2. detaches every argument whose name ends in ``_T`` (the teacher's side: ``preds_T``,
   ``grads_T`` ...), so no gradient reaches the teacher or what produced its tensors;
3. returns ``weigh(compute(...))``, by default ``loss_weight * compute(...)``.

Argument names are shared across losses: ``preds_S`` / ``preds_T`` for what is compared,
``labels`` for ground-truth classes, ``data_samples`` for the batch's samples. What a loss
requires of its inputs is declared by class attributes the distiller checks:

- ``requires_same_shape``: ``preds_S`` and ``preds_T`` must have equal shapes (the distiller
  names the connector that fixes a mismatch);
- ``requires_equal_num_classes``: student and teacher must predict the same classes
  (checked when the models are built);
- ``create_graph``: a student gradient mapped with ``gradient=True`` keeps its graph (second
  order, e.g. GKD's double backward).

Losses that wrap another (dense-head selection, significance weighting, SoKD) build it with
:func:`build_wrapped_loss`, which checks it follows this contract.
"""
import inspect
import math
from typing import Any, Dict, List

import torch
from torch import Tensor, nn

from mmkd.registry import build_component
from .utils import detach, tensors_in, to_float32


def check_weight(owner: str, name: str, value: Any) -> float:
    """``value`` as a float if it is a finite number >= 0; else a TypeError (not a number) or
    ValueError (negative, inf, nan) naming the fix."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        hint = ''
        if isinstance(value, str):
            try:
                hint = f' Write {name}={float(value)!r} (a number, not a string).'
            except ValueError:
                pass
        raise TypeError(f'{owner}: {name} must be a number, got {value!r} '
                         f'({type(value).__name__}).{hint}')
    if not math.isfinite(value) or value < 0:
        raise ValueError(f'{owner}: {name} must be a finite number >= 0, got {value!r}. A '
                         'negative weight would maximise the loss; 0 turns it off.')
    return float(value)


class BaseDistillLoss(nn.Module):
    """Base of every mmkd distillation loss (see the module docstring for the contract).

    Args:
        loss_weight (float): Multiplies the loss; a finite number >= 0. Defaults to 1.0.
    """
    requires_same_shape = False
    requires_equal_num_classes = False
    create_graph = False

    def __init__(self, loss_weight: float = 1.0):
        super().__init__()
        self.loss_weight = check_weight(type(self).__name__, 'loss_weight', loss_weight)

    def compute(self, preds_S, preds_T, **kwargs) -> Tensor:
        """The unweighted loss. Tensors arrive float32 (when they were half) with autocast
        off; ``*_T`` arguments are detached."""
        raise NotImplementedError

    def weigh(self, value) -> Tensor:
        """The returned loss from what :meth:`compute` gave: ``loss_weight * value``."""
        return self.loss_weight * value

    def forward(self, *args, **kwargs) -> Tensor:
        signature = self.signature()
        inputs: Dict[str, Any] = dict(signature.bind(*args, **kwargs).arguments)
        for name, param in signature.parameters.items():
            if param.kind == param.VAR_KEYWORD and name in inputs:
                inputs.update(inputs.pop(name))
        tensors = tensors_in(list(inputs.values()))
        device_type = tensors[0].device.type if tensors else 'cpu'
        with torch.autocast(device_type=device_type, enabled=False):
            inputs = {name: detach(to_float32(value)) if name.endswith('_T')
                      else to_float32(value) for name, value in inputs.items()}
            return self.weigh(self.compute(**inputs))

    # ------------------------------------------------------------------ introspection
    @classmethod
    def signature(cls) -> inspect.Signature:
        """The signature of :meth:`compute` without ``self``: the loss's arguments."""
        cached = cls.__dict__.get('_compute_signature')
        if cached is None:
            cached = inspect.signature(cls.compute)
            cached = cached.replace(parameters=list(cached.parameters.values())[1:])
            cls._compute_signature = cached
        return cached

    def accepts(self, name: str) -> bool:
        """Whether the loss takes an argument ``name`` (or any keyword)."""
        params = self.signature().parameters
        return name in params or any(p.kind == p.VAR_KEYWORD for p in params.values())

    def argument_names(self) -> List[str]:
        """Named arguments of the loss, in order."""
        return [n for n, p in self.signature().parameters.items()
                if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]

    def required_arguments(self) -> List[str]:
        """Arguments without a default."""
        return [n for n, p in self.signature().parameters.items() if p.default is p.empty
                and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def check_feature_channels(owner: str, preds_S: Tensor, preds_T: Tensor,
                           student_channels: int, teacher_channels: int,
                           equal_size: bool = True) -> None:
    """For losses that adapt channels themselves (built with ``student_channels`` /
    ``teacher_channels``): (N, C, H, W) maps with those channels, and (``equal_size``) equal
    N, H and W; else a ValueError naming the setting or the connector that fixes it."""
    for arg, tensor, expected in (('preds_S', preds_S, student_channels),
                                  ('preds_T', preds_T, teacher_channels)):
        if tensor.dim() != 4 or tensor.shape[1] != expected:
            side = 'student' if arg == 'preds_S' else 'teacher'
            raise ValueError(f'{owner} was built with {side}_channels={expected}, but {arg} '
                             f'has shape {tuple(tensor.shape)}: set {side}_channels to its '
                             'channel count (or check the recorder and data_idx).')
    if equal_size and (preds_S.shape[0] != preds_T.shape[0]
                       or preds_S.shape[2:] != preds_T.shape[2:]):
        raise ValueError(f'{owner} needs equal N, H and W, got student {tuple(preds_S.shape)} '
                         f'and teacher {tuple(preds_T.shape)}: add a ResizeConnector to the '
                         'student side (the loss adapts the channels itself).')


def build_wrapped_loss(cfg: dict, owner: str) -> BaseDistillLoss:
    """Build the loss another loss wraps (``owner`` names the wrapper in errors)."""
    if not isinstance(cfg, dict) or 'type' not in cfg:
        raise TypeError(f"{owner}: loss must be the wrapped loss's config, e.g. "
                        f"dict(type='MSEFeatureLoss'), got {cfg!r}.")
    loss = build_component(cfg)
    if not isinstance(loss, BaseDistillLoss):
        raise TypeError(f'{owner} wraps {type(loss).__name__}, which is not a distillation '
                        'loss: wrapped losses subclass mmkd.models.losses.BaseDistillLoss.')
    return loss
