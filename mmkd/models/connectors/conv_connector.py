from typing import Optional

from mmcv.cnn import ConvModule
from torch import Tensor

from mmkd.registry import MODELS
from .base_connector import BaseConnector


@MODELS.register_module()
class ConvConnector(BaseConnector):
    """A 1x1 (or k x k) convolution, optionally followed by a norm and an activation.

    The usual FitNet-style adapter that maps student channels to teacher channels.

    Args:
        in_channels (int): Student channels.
        out_channels (int): Teacher channels.
        kernel_size (int): Defaults to 1.
        norm_cfg (dict, optional): e.g. ``dict(type='BN')``. Defaults to None.
        act_cfg (dict, optional): e.g. ``dict(type='ReLU')``. Defaults to None.

    Example:
        >>> import torch
        >>> ConvConnector(8, 16)(torch.rand(2, 8, 5, 5)).shape
        torch.Size([2, 16, 5, 5])
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1,
                 norm_cfg: Optional[dict] = None, act_cfg: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        self.conv = ConvModule(in_channels, out_channels, kernel_size,
                               padding=kernel_size // 2, norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.in_channels = in_channels

    def forward(self, feature: Tensor, target: Optional[Tensor] = None) -> Tensor:
        if feature.shape[1] != self.in_channels:
            raise ValueError(f'ConvConnector expects {self.in_channels} input channels, got a '
                             f'tensor of shape {tuple(feature.shape)}: set in_channels='
                             f'{feature.shape[1]}.')
        return self.conv(feature)
