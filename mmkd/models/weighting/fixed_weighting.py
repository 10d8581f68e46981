from typing import Dict, Optional

from torch import Tensor

from mmkd.registry import MODELS
from .base_weighting import BaseWeighting


@MODELS.register_module()
class FixedWeighting(BaseWeighting):
    """Constant weights: ``L = sum_i w_i L_i`` (the default when no weighting is configured).

    Args:
        weights (dict, optional): ``{path: weight}``; unnamed paths get ``default``.
        default (float): Defaults to 1.0.

    Example:
        >>> import torch
        >>> w = FixedWeighting(weights=dict(a=2.0))
        >>> w.bind(['a', 'b'], None)
        >>> w(dict(a=torch.tensor(1.0), b=torch.tensor(3.0)))
        ({'a': tensor(2.), 'b': tensor(3.)}, {'a': 2.0, 'b': 1.0})
    """

    def __init__(self, weights: Optional[Dict[str, float]] = None, default: float = 1.0):
        super().__init__()
        self.weights = dict(weights or {})
        self.default = default

    def bind(self, paths, student) -> None:
        super().bind(paths, student)
        unknown = set(self.weights) - set(paths)
        if unknown:
            raise KeyError(f'FixedWeighting names unknown paths {sorted(unknown)}; the '
                           f'distillation losses are {sorted(paths)}.')

    def forward(self, losses: Dict[str, Tensor], task_loss: Optional[Tensor] = None):
        weights = {name: float(self.weights.get(name, self.default)) for name in losses}
        return {name: weights[name] * loss for name, loss in losses.items()}, weights
