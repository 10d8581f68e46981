"""Mixed precision on machines without CUDA."""
from contextlib import contextmanager

import torch
from mmengine.optim import OptimWrapper
from torch import nn

from mmkd.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class CPUAmpOptimWrapper(OptimWrapper):
    """``--amp`` on CPU: bfloat16 autocast around the forward pass, no loss scaling.

    mmengine's ``AmpOptimWrapper`` requires CUDA (it uses a float16 ``GradScaler``). bfloat16
    has float32's exponent range, so it needs no loss scaling. Distillation losses still run in
    float32 (the distiller disables autocast around them).
    """

    @contextmanager
    def optim_context(self, model: nn.Module):
        with super().optim_context(model), torch.autocast('cpu', dtype=torch.bfloat16):
            yield
