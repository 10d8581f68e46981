"""PCKA written the slow, obvious way: the reference that ``pcka_loss`` is tested against
(tests/test_models/test_losses/test_cka.py) and timed against (tools/benchmark_losses.py).

Not part of the mmkd package: nothing in mmkd uses it.
"""
import math

import torch
import torch.nn.functional as F
from torch import Tensor


def pcka_loop_reference(preds_S: Tensor, preds_T: Tensor, patch_size: int = 16,
                        intra_weight: float = 1.0, inter_weight: float = 0.0,
                        centered: bool = True, eps: float = 1e-8) -> Tensor:
    """:func:`mmkd.models.losses.pcka_loss` with Python loops.

    Loops over channels like the published code, cuts patches with ``F.unfold`` and uses the
    published Gram-trace formula, so it shares no patch or CKA code with ``pcka_loss``: the
    patch grid (a side shorter than a patch keeps its size, the maps are resized up to a
    multiple of the patch) is computed here again. No input checks.

    Example:
        >>> import torch
        >>> from mmkd.models.losses import pcka_loss
        >>> s, t = torch.randn(2, 3, 20, 12), torch.randn(2, 3, 20, 12)
        >>> bool(torch.allclose(pcka_loss(s, t, 8), pcka_loop_reference(s, t, 8), atol=1e-5))
        True
    """
    s, t = preds_S, preds_T.detach()
    if s.dtype in (torch.float16, torch.bfloat16):
        s = s.float()
    if t.dtype in (torch.float16, torch.bfloat16):
        t = t.float()
    h, w = t.shape[-2:]
    ph, pw = min(patch_size, h), min(patch_size, w)
    height, width = math.ceil(h / ph) * ph, math.ceil(w / pw) * pw
    s = F.interpolate(s, size=(height, width), mode='bilinear', align_corners=False)
    t = F.interpolate(t, size=(height, width), mode='bilinear', align_corners=False)

    def rows(x: Tensor) -> Tensor:  # (N, C, H, W) -> (C, P, N*ph*pw)
        n, c = x.shape[:2]
        cols = F.unfold(x, kernel_size=(ph, pw), stride=(ph, pw))  # (N, C*ph*pw, P)
        return cols.reshape(n, c, ph * pw, -1).permute(1, 3, 0, 2).reshape(c, cols.shape[-1], -1)

    def cka(a: Tensor, b: Tensor) -> Tensor:
        if centered:
            a, b = a - a.mean(0), b - b.mean(0)
        ka, kb = a @ a.t(), b @ b.t()
        return torch.trace(ka @ kb.t()) / (
            torch.sqrt(torch.trace(ka @ ka.t()) * torch.trace(kb @ kb.t())) + eps)

    s_rows, t_rows = rows(s), rows(t)
    loss = s.new_zeros(())
    for c in range(s.shape[1]):
        s_c, t_c = s_rows[c], t_rows[c]
        loss = loss + intra_weight * (1 - cka(s_c, t_c)) / s.shape[1]
        loss = loss + inter_weight * (1 - cka(s_c.t(), t_c.t())) / s.shape[1]
    return loss
