"""Numerics shared by the losses: they compute in float32 even under mixed precision, and
never send a gradient to the teacher."""
import torch
from torch import Tensor


def to_float32(value):
    """Half / bfloat16 tensors (also inside lists and tuples) as float32; float32 / float64
    tensors and everything else unchanged."""
    if isinstance(value, Tensor):
        return value.float() if value.dtype in (torch.float16, torch.bfloat16) else value
    if isinstance(value, (list, tuple)):
        return type(value)(to_float32(v) for v in value)
    return value


def detach(value):
    """Tensors (also inside lists and tuples) detached; everything else unchanged."""
    if isinstance(value, Tensor):
        return value.detach()
    if isinstance(value, (list, tuple)):
        return type(value)(detach(v) for v in value)
    return value


def no_autocast(x: Tensor):
    """A context with autocast off on ``x``'s device: reductions and Gram matrices of large
    feature maps overflow or lose precision in half."""
    return torch.autocast(device_type=x.device.type, enabled=False)
