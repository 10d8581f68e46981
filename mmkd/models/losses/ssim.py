r"""Structural feature imitation: 1 - SSIM between student and teacher maps, per channel.

Structural Knowledge Distillation for Object Detection (NeurIPS 2022),
https://arxiv.org/abs/2211.13133

Both maps are min-max normalised to [0, 1] per image and channel, then local statistics are
taken with a Gaussian window (depthwise, separable, reflect padding so every cell counts):

.. math::

    \mathrm{SSIM} = l \cdot c \cdot s
    = \frac{(2\mu_S\mu_T + C_1)(2\sigma_{ST} + C_2)}
           {(\mu_S^2 + \mu_T^2 + C_1)(\sigma_S^2 + \sigma_T^2 + C_2)}, \qquad
    L = w \cdot \operatorname{mean}\frac{1 - \mathrm{SSIM}}{2}

with :math:`C_1 = 0.01^2`, :math:`C_2 = 0.03^2` and :math:`C_3 = C_2 / 2`, for which the
product of luminance, contrast and structure terms reduces to the usual two-factor formula
above (no square roots needed). Variances are clamped at 0 and the covariance to
:math:`\pm(\sigma_S^2 + \sigma_T^2)/2` (a looser Cauchy-Schwarz bound), which keeps SSIM in
[-1, 1] and exactly 1 for identical maps despite float32 rounding.
"""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmkd.registry import MODELS
from .utils import no_autocast, to_float32

C1 = 0.01**2
C2 = 0.03**2


def _min_max(x: Tensor, eps: float) -> Tensor:
    """Min-max normalise (N, C, H, W) to [0, 1] per image and channel."""
    low = x.amin(dim=(2, 3), keepdim=True)
    high = x.amax(dim=(2, 3), keepdim=True)
    return (x - low) / (high - low + eps)


def _gaussian(window_size: int, sigma: float, like: Tensor) -> Tensor:
    coords = torch.arange(window_size, device=like.device, dtype=like.dtype)
    g = torch.exp(-(coords - (window_size - 1) / 2).square() / (2 * sigma**2))
    return g / g.sum()


def shrunk_window(height: int, width: int, window_size: int, sigma: float):
    """The window used on a (height, width) map: ``(window_size, sigma)``.

    A map smaller than the window uses the largest odd size <= min(height, width), with sigma
    scaled by the same ratio (so the window keeps its shape relative to its size).

    Example:
        >>> shrunk_window(4, 6, 11, 1.5)
        (3, 0.4090909090909091)
    """
    side = min(height, width)
    if side >= window_size:
        return window_size, sigma
    size = side if side % 2 else side - 1
    return size, sigma * size / window_size


def ssim_map_loss(preds_S: Tensor, preds_T: Tensor, window_size: int = 11, sigma: float = 1.5,
                  eps: float = 1e-6) -> Tensor:
    """Mean of (1 - SSIM) / 2 over all cells and channels; teacher detached, float32 result.

    Args:
        preds_S (Tensor): (N, C, H, W) student map.
        preds_T (Tensor): (N, C, H, W) teacher map, the same shape.
        window_size (int): Odd Gaussian window side; shrinks on small maps (see
            :func:`shrunk_window`). Defaults to 11.
        sigma (float): Gaussian standard deviation. Defaults to 1.5.
        eps (float): Added to the min-max range. Defaults to 1e-6.

    Returns:
        Tensor: a scalar in [0, 1].
    """
    if preds_S.dim() != 4 or preds_S.shape != preds_T.shape:
        raise ValueError(f'SSIMLoss needs (N, C, H, W) maps of equal shapes, got student '
                         f'{tuple(preds_S.shape)} and teacher {tuple(preds_T.shape)}: set '
                         'adapter_in_channels / adapter_out_channels (or add a ConvConnector) '
                         'for channels and a ResizeConnector for the size.')
    s = _min_max(to_float32(preds_S), eps)
    t = _min_max(to_float32(preds_T.detach()), eps)
    n, c, h, w = s.shape
    size, sig = shrunk_window(h, w, window_size, sigma)
    pad = size // 2
    with no_autocast(s):
        g = _gaussian(size, sig, s).repeat(5 * c, 1)  # (5C, size)
        maps = torch.cat([s, t, s * s, t * t, s * t], dim=1)  # (N, 5C, H, W)
        maps = F.pad(maps, (pad, pad, pad, pad), mode='reflect') if pad else maps
        maps = F.conv2d(maps, g[:, None, :, None], groups=5 * c)
        maps = F.conv2d(maps, g[:, None, None, :], groups=5 * c)
        mu_s, mu_t, ss, tt, st = maps.split(c, dim=1)
        var_s = (ss - mu_s * mu_s).clamp_min(0)
        var_t = (tt - mu_t * mu_t).clamp_min(0)
        bound = (var_s + var_t) / 2
        cov = torch.maximum(torch.minimum(st - mu_s * mu_t, bound), -bound)
        ssim = ((2 * mu_s * mu_t + C1) * (2 * cov + C2)) / (
            (mu_s * mu_s + mu_t * mu_t + C1) * (var_s + var_t + C2))
        return ((1 - ssim) / 2).mean()


@MODELS.register_module()
class SSIMLoss(nn.Module):
    """Structural feature imitation: ``loss_weight * mean((1 - SSIM(S, T)) / 2)``.

    One FPN level per call; the distiller sums the levels. The paper uses weight 2..4. Not
    confirmed from the full paper: the min-max normalisation granularity (we use per image and
    channel) and the padding (we use reflect padding; the reference SSIM of Wang et al. uses
    'valid' windows, which under-weight border cells).

    Args:
        loss_weight (float): Defaults to 2.0.
        window_size (int): Odd side of the Gaussian window; on a level smaller than it, the
            largest odd size <= min(H, W) is used and sigma scaled by the same ratio.
            Defaults to 11.
        sigma (float): Defaults to 1.5.
        adapter_in_channels (int, optional): Student channels of an optional 1x1 conv adapter
            applied to ``preds_S`` (trained with the student). Defaults to None.
        adapter_out_channels (int, optional): Teacher channels of that adapter; give both or
            neither. Defaults to None.
        eps (float): Added to the min-max range. Defaults to 1e-6.

    Example:
        >>> import torch
        >>> t = torch.randn(2, 4, 16, 16)
        >>> float(SSIMLoss()(2 * t + 1, t)) < 1e-5
        True
        >>> SSIMLoss(adapter_in_channels=8, adapter_out_channels=4)(
        ...     torch.randn(2, 8, 16, 16), t).shape
        torch.Size([])
    """

    def __init__(self, loss_weight: float = 2.0, window_size: int = 11, sigma: float = 1.5,
                 adapter_in_channels: Optional[int] = None,
                 adapter_out_channels: Optional[int] = None, eps: float = 1e-6):
        super().__init__()
        if isinstance(window_size, bool) or not isinstance(window_size, int) or \
                window_size < 1 or window_size % 2 == 0:
            raise ValueError(f'SSIMLoss: window_size must be a positive odd int, got '
                             f'{window_size!r}.')
        if not sigma > 0 or not eps > 0:
            raise ValueError(f'SSIMLoss: sigma and eps must be > 0, got sigma={sigma!r}, '
                             f'eps={eps!r}.')
        if (adapter_in_channels is None) != (adapter_out_channels is None):
            raise ValueError('SSIMLoss: give both adapter_in_channels and adapter_out_channels '
                             f'(or neither), got {adapter_in_channels!r} and '
                             f'{adapter_out_channels!r}.')
        self.loss_weight = loss_weight
        self.window_size = window_size
        self.sigma = sigma
        self.eps = eps
        self.adapter = None
        if adapter_in_channels is not None:
            self.adapter = nn.Conv2d(adapter_in_channels, adapter_out_channels, 1)
        # the distiller checks shapes (and names the connector) only without an adapter
        self.requires_same_shape = self.adapter is None

    def forward(self, preds_S: Tensor, preds_T: Tensor) -> Tensor:
        """preds_S (N, C_S, H, W), preds_T (N, C_T, H, W). Returns a scalar."""
        if self.adapter is not None:
            if preds_S.dim() != 4 or preds_S.shape[1] != self.adapter.in_channels:
                raise ValueError(f'SSIMLoss adapter expects {self.adapter.in_channels} student '
                                 f'channels, got {tuple(preds_S.shape)}: set '
                                 f'adapter_in_channels={preds_S.shape[1]}.')
            with no_autocast(preds_S):
                preds_S = self.adapter(preds_S.to(self.adapter.weight.dtype))
        return self.loss_weight * ssim_map_loss(preds_S, preds_T, self.window_size,
                                                self.sigma, self.eps)
