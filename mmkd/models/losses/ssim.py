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
from .base import BaseDistillLoss
from .utils import no_autocast, spatial_min_max, to_float32

C1 = 0.01**2
C2 = 0.03**2


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


def _blur(maps: Tensor, window: Tensor) -> Tensor:
    """Separable Gaussian blur of every channel of (N, K, H, W), reflect padding."""
    k, size = maps.shape[1], window.numel()
    pad = size // 2
    maps = F.pad(maps, (pad, pad, pad, pad), mode='reflect') if pad else maps
    kernel = window.expand(k, size)
    maps = F.conv2d(maps, kernel[:, None, :, None], groups=k)
    return F.conv2d(maps, kernel[:, None, None, :], groups=k)


def _ssim_sum(s_raw: Tensor, s_low: Tensor, s_range: Tensor, t_raw: Tensor, t_low: Tensor,
              t_range: Tensor, window: Tensor) -> Tensor:
    """Sum of SSIM over (N, C, H, W) maps, after min-max normalisation with the given lows and
    ranges (N, C, 1, 1); ``window`` is the 1-D Gaussian."""
    s = (s_raw - s_low) / s_range
    with torch.no_grad():  # the teacher's statistics need no backward pass
        t = (t_raw - t_low) / t_range
        mu_t, tt = _blur(torch.cat([t, t * t], dim=1), window).chunk(2, dim=1)
    mu_s, ss, st = _blur(torch.cat([s, s * s, s * t], dim=1), window).chunk(3, dim=1)
    var_s = (ss - mu_s * mu_s).clamp_min(0)
    var_t = (tt - mu_t * mu_t).clamp_min(0)
    bound = (var_s + var_t) / 2
    cov = torch.maximum(torch.minimum(st - mu_s * mu_t, bound), -bound)
    ssim = ((2 * mu_s * mu_t + C1) * (2 * cov + C2)) / (
        (mu_s * mu_s + mu_t * mu_t + C1) * (var_s + var_t + C2))
    return ssim.sum()


class _ChannelChunkedSSIMSum(torch.autograd.Function):
    """:func:`_ssim_sum` taken over chunks of channels, with the gradient of each chunk
    computed while its intermediates are still in cache.

    SSIM is some twenty element-wise maps per input cell. Plain autograd keeps all of them at
    full size (1.6 GiB on a COCO FPN) and revisits them long after they left the CPU caches;
    here each chunk of ``chunk_channels`` channels runs forward and backward at once and only
    its input gradients are kept (with the teacher's blurs taken without autograd: 2.4 s ->
    0.6 s and 1.6 GiB -> 0.1 GiB on the COCO-sized benchmark). Not twice differentiable.
    """

    @staticmethod
    def forward(ctx, s_raw, s_low, s_range, t_raw, t_low, t_range, window, chunk_channels):
        student = (s_raw, s_low, s_range)
        grads = ([torch.empty_like(x) for x in student]
                 if any(ctx.needs_input_grad[:3]) else None)
        total = s_raw.new_zeros(())
        for start in range(0, s_raw.shape[1], chunk_channels):
            part = slice(start, start + chunk_channels)
            s_args = [x[:, part] for x in student]
            t_args = [x[:, part] for x in (t_raw, t_low, t_range)]
            if grads is None:
                total += _ssim_sum(*s_args, *t_args, window)
                continue
            with torch.enable_grad():
                leaves = [x.detach().requires_grad_() for x in s_args]
                value = _ssim_sum(*leaves, *t_args, window)
                for grad, part_grad in zip(grads, torch.autograd.grad(value, leaves)):
                    grad[:, part] = part_grad
            total += value.detach()
        if grads is not None:
            ctx.save_for_backward(*grads)
        return total

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_total):
        grads = [grad * grad_total for grad in ctx.saved_tensors]
        return (*grads, None, None, None, None, None)


def ssim_map_loss(preds_S: Tensor, preds_T: Tensor, window_size: int = 11, sigma: float = 1.5,
                  eps: float = 1e-6, chunk_numel: int = 2**18) -> Tensor:
    """Mean of (1 - SSIM) / 2 over all cells and channels; teacher detached, float32 result.

    Args:
        preds_S (Tensor): (N, C, H, W) student map.
        preds_T (Tensor): (N, C, H, W) teacher map, the same shape.
        window_size (int): Odd Gaussian window side; shrinks on small maps (see
            :func:`shrunk_window`). Defaults to 11.
        sigma (float): Gaussian standard deviation. Defaults to 1.5.
        eps (float): Added to the min-max range. Defaults to 1e-6.
        chunk_numel (int): About how many cells (N x channels x H x W) of one map are processed
            at a time; a speed / memory knob that does not change the result. Defaults to
            2**18 (1 MiB of float32, so a chunk's intermediates stay in cache).

    Returns:
        Tensor: a scalar in [0, 1].
    """
    if preds_S.dim() != 4 or preds_S.shape != preds_T.shape:
        raise ValueError(f'SSIMLoss needs (N, C, H, W) maps of equal shapes, got student '
                         f'{tuple(preds_S.shape)} and teacher {tuple(preds_T.shape)}: set '
                         'adapter_in_channels / adapter_out_channels (or add a ConvConnector) '
                         'for channels and a ResizeConnector for the size.')
    n, c, h, w = preds_S.shape
    size, sig = shrunk_window(h, w, window_size, sigma)
    with no_autocast(preds_S):
        # Every (image, channel) map is its own: as (1, N*C, H, W) maps, a chunk of them is a
        # contiguous slice (no copy on the way in or for its gradient on the way out).
        s = to_float32(preds_S).reshape(1, n * c, h, w)
        t = to_float32(preds_T.detach()).reshape(1, n * c, h, w)
        (s_low, s_high), (t_low, t_high) = spatial_min_max(s), spatial_min_max(t)
        s_range, t_range = s_high - s_low + eps, t_high - t_low + eps
        chunk_channels = max(1, chunk_numel // (h * w))
        total = _ChannelChunkedSSIMSum.apply(s, s_low, s_range, t, t_low, t_range,
                                             _gaussian(size, sig, s), chunk_channels)
        return (1 - total / s.numel()) / 2


@MODELS.register_module()
class SSIMLoss(BaseDistillLoss):
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
        super().__init__(loss_weight)
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
        self.window_size = window_size
        self.sigma = sigma
        self.eps = eps
        self.adapter = None
        if adapter_in_channels is not None:
            self.adapter = nn.Conv2d(adapter_in_channels, adapter_out_channels, 1)
        # the distiller checks shapes (and names the connector) only without an adapter
        self.requires_same_shape = self.adapter is None

    def compute(self, preds_S: Tensor, preds_T: Tensor) -> Tensor:
        """preds_S (N, C_S, H, W), preds_T (N, C_T, H, W). Returns a scalar."""
        if self.adapter is not None:
            if preds_S.dim() != 4 or preds_S.shape[1] != self.adapter.in_channels:
                raise ValueError(f'SSIMLoss adapter expects {self.adapter.in_channels} student '
                                 f'channels, got {tuple(preds_S.shape)}: set '
                                 f'adapter_in_channels={preds_S.shape[1]}.')
            preds_S = self.adapter(preds_S.to(self.adapter.weight.dtype))
        return ssim_map_loss(preds_S, preds_T, self.window_size, self.sigma, self.eps)
