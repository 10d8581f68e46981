r"""Weight each distillation path by how well its gradient agrees with the task's.

Adapting Auxiliary Losses Using Gradient Similarity (Du et al., 2018),
https://arxiv.org/abs/1812.02224, applied to distillation paths:

.. math::

    c_i \leftarrow m \, c_i + (1 - m) \cos\bigl(\nabla_\theta L_i, \nabla_\theta L_{task}\bigr),
    \qquad w_i = \max(c_i, 0), \qquad L = \sum_i w_i L_i

with :math:`\theta` the parameters of one shared student module (default: the neck, where
feature paths act), so only K + 1 partial backward passes through that module are added. A path
whose gradient is unrelated to the task (noise) or opposes it is down-weighted towards 0, not
just rescaled; one that helps the task keeps a weight near 1.
"""
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from mmkd.registry import MODELS
from mmkd.utils import get_submodule_or_raise
from .base_weighting import BaseWeighting


@MODELS.register_module()
class GradientSimilarityWeighting(BaseWeighting):
    """Gradient-cosine weights, smoothed over iterations (see the module docstring).

    Args:
        shared_module (str): Student module whose parameters define the gradients compared.
            Defaults to ``'neck'``.
        momentum (float): Smoothing of the cosines across iterations. Defaults to 0.9.
        min_weight (float): Floor of every weight. Defaults to 0.0.
    """

    def __init__(self, shared_module: str = 'neck', momentum: float = 0.9,
                 min_weight: float = 0.0):
        super().__init__()
        if not 0 <= momentum < 1:
            raise ValueError(f'momentum must be in [0, 1), got {momentum}.')
        self.shared_module = shared_module
        self.momentum = momentum
        self.min_weight = min_weight
        self.register_buffer('cosines', torch.ones(0), persistent=True)

    def bind(self, paths, student) -> None:
        super().bind(paths, student)
        module = get_submodule_or_raise(student, self.shared_module, 'student')
        self._params = [p for p in module.parameters() if p.requires_grad]
        if not self._params:
            raise ValueError(f'Student module {self.shared_module!r} has no trainable '
                             'parameters to compare gradients on.')
        self.cosines = torch.ones(len(self.paths))

    def _flat_grad(self, loss: Tensor) -> Tensor:
        grads = torch.autograd.grad(loss, self._params, retain_graph=True, allow_unused=True)
        return torch.cat([(g if g is not None else torch.zeros_like(p)).flatten()
                          for g, p in zip(grads, self._params)])

    def forward(self, losses: Dict[str, Tensor], task_loss: Optional[Tensor] = None):
        if task_loss is None:
            raise ValueError('GradientSimilarityWeighting needs the task loss.')
        if self.training and torch.is_grad_enabled() and task_loss.requires_grad:
            task_grad = self._flat_grad(task_loss)
            for i, name in enumerate(self.paths):
                loss = losses[name]
                cos = (F.cosine_similarity(self._flat_grad(loss), task_grad, dim=0)
                       if loss.requires_grad else task_grad.new_zeros(()))
                self.cosines[i] = self.momentum * self.cosines[i] + (1 - self.momentum) * cos
        weights = {name: max(float(self.cosines[i]), self.min_weight)
                   for i, name in enumerate(self.paths)}
        return {name: weights[name] * loss for name, loss in losses.items()}, weights
