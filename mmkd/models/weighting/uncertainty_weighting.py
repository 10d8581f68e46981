r"""Learned homoscedastic-uncertainty weighting of distillation paths.

Adaptive Distillation: Aggregating Knowledge from Multiple Paths for Efficient Distillation
(Chennupati et al., BMVC 2021), https://arxiv.org/abs/2110.09674, following Kendall et al.,
CVPR 2018:

.. math::

    L = \sum_i \bigl(e^{-\alpha_i} L_i + \alpha_i\bigr), \qquad
    \alpha_i \in [\alpha_{min}, \alpha_{max}]

One learnable log-variance :math:`\alpha_i` per path, initialised to 0 and trained with the
student. The stationary point is :math:`e^{-\alpha_i} = 1 / L_i`: a path whose loss stays high
(one the student cannot follow, or noise) gets a small weight. :math:`\alpha` is clamped so a
path whose loss goes to 0 cannot push its weight to infinity, and it must not be weight-decayed
(which would pull every weight back to 1): ``mmkd.DistillOptimWrapperConstructor`` excludes
parameters under ``weighting`` from weight decay.
"""
from typing import Optional

import torch
from torch import nn

from mmkd.registry import MODELS
from .base_weighting import BaseWeighting


@MODELS.register_module()
class UncertaintyWeighting(BaseWeighting):
    """Learnable per-path log-variances (see the module docstring).

    Args:
        min_log_var (float): Lower clamp of alpha (largest weight ``exp(-min)``). Defaults to
            -4.0 (weight <= 54.6).
        max_log_var (float): Upper clamp of alpha. Defaults to 6.0 (weight >= 0.0025).
    """

    def __init__(self, min_log_var: float = -4.0, max_log_var: float = 6.0):
        super().__init__()
        if min_log_var >= max_log_var:
            raise ValueError(f'min_log_var ({min_log_var}) must be < max_log_var ({max_log_var}).')
        self.min_log_var = min_log_var
        self.max_log_var = max_log_var
        self.log_vars = nn.ParameterDict()

    def bind(self, paths, student) -> None:
        super().bind(paths, student)
        for name in paths:
            self.log_vars[name] = nn.Parameter(torch.zeros(()))

    def forward(self, losses, task_loss: Optional[torch.Tensor] = None):
        weighted, weights = {}, {}
        for name, loss in losses.items():
            log_var = self.log_vars[name].clamp(self.min_log_var, self.max_log_var)
            weight = torch.exp(-log_var)
            weighted[name] = weight * loss + log_var
            weights[name] = float(weight.detach())
        return weighted, weights
