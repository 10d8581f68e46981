from typing import Optional, Sequence

import torch.nn.functional as F
from torch import Tensor

from mmkd.registry import MODELS
from .base_connector import BaseConnector


@MODELS.register_module()
class ResizeConnector(BaseConnector):
    """Resizes the student map to the teacher map's spatial size (or to a fixed ``size``).

    Args:
        size (Sequence[int], optional): Fixed (H, W). Defaults to None: follow the target.
        mode (str): Interpolation mode of ``F.interpolate``. Defaults to ``'bilinear'``.
        align_corners (bool): Defaults to False.

    Example:
        >>> import torch
        >>> ResizeConnector()(torch.rand(1, 4, 5, 5), torch.rand(1, 4, 10, 8)).shape
        torch.Size([1, 4, 10, 8])
    """

    def __init__(self, size: Optional[Sequence[int]] = None, mode: str = 'bilinear',
                 align_corners: bool = False, init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        self.size = tuple(size) if size is not None else None
        self.mode = mode
        self.align_corners = align_corners if mode in ('linear', 'bilinear', 'bicubic') else None

    def forward(self, feature: Tensor, target: Optional[Tensor] = None) -> Tensor:
        size = self.size or (tuple(target.shape[2:]) if target is not None else None)
        if size is None:
            raise ValueError('ResizeConnector needs a fixed `size` or the teacher tensor to follow.')
        if tuple(feature.shape[2:]) == size:
            return feature
        return F.interpolate(feature, size=size, mode=self.mode, align_corners=self.align_corners)
