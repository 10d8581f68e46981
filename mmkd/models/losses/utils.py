"""Numerics shared by the losses: they compute in float32 even under mixed precision."""
import torch
from torch import Tensor


def to_float32(x: Tensor) -> Tensor:
    """Half and bfloat16 become float32; float32 / float64 stay as they are."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def no_autocast(x: Tensor):
    """A context with autocast off on ``x``'s device: reductions and Gram matrices of large
    feature maps overflow or lose precision in half."""
    return torch.autocast(device_type=x.device.type, enabled=False)
