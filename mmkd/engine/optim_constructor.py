"""The optimizer of a distiller: the student's (and connectors', losses', weighting's) params."""
from typing import List, Optional

from mmengine.optim import DefaultOptimWrapperConstructor
from torch import nn

from mmkd.registry import OPTIM_WRAPPER_CONSTRUCTORS


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class DistillOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """mmengine's default constructor, adapted to a ``Distiller``.

    * The frozen teachers' parameters are left out of the optimizer entirely (mmengine's
      constructor would add them, untouched but carried in every optimizer state).
    * Parameters under ``weighting`` (e.g. ``UncertaintyWeighting``'s log-variances) get no
      weight decay, which would pull every path weight back to 1.

    Use it with ``optim_wrapper = dict(constructor='mmkd.DistillOptimWrapperConstructor', ...)``;
    ``paramwise_cfg`` works as in mmengine.
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None):
        paramwise_cfg = dict(paramwise_cfg or {})
        custom_keys = dict(paramwise_cfg.get('custom_keys', {}))
        custom_keys.setdefault('weighting.', dict(decay_mult=0.0))
        paramwise_cfg['custom_keys'] = custom_keys
        super().__init__(optim_wrapper_cfg, paramwise_cfg)

    def add_params(self, params: List[dict], module: nn.Module, prefix: str = '',
                   is_dcn_module=None) -> None:
        if prefix == 'teachers':
            return
        super().add_params(params, module, prefix, is_dcn_module)
