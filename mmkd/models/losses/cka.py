r"""CKA losses: linear centered kernel alignment (RCKA) and its patch-wise detection form (PCKA).

Rethinking Centered Kernel Alignment in Knowledge Distillation (IJCAI 2024),
https://arxiv.org/abs/2401.11824 (code: https://github.com/Klayand/PCKA)

For X (n, d1) and Y (n, d2), rows = samples, with columns centered (X <- X - mean over rows):

.. math::

    \mathrm{CKA}(X, Y) = \frac{\|Y^\top X\|_F^2}{\|X^\top X\|_F \, \|Y^\top Y\|_F + \epsilon}
    = \frac{\langle XX^\top, YY^\top \rangle_F}{\|XX^\top\|_F \, \|YY^\top\|_F + \epsilon},
    \qquad L = w \cdot (1 - \mathrm{CKA}(S, T))

CKA is invariant to orthogonal transforms and isotropic scaling of either side and does not
need equal widths, so ``CKALoss`` needs no connector. Both forms are implemented and the
cheaper is chosen: the d x d cross products when n is large, the n x n Gram matrices when n is
small; the n x n Gram is never built for many samples.

Centering: ``centered=True`` (the default, what "centered" KA means) subtracts the mean over
the samples (rows) from every column. The published code does *not* center (its Gram matrices
are used as they are); ``centered=False`` reproduces that. Centering needs at least 3 samples
to carry information (with 2 samples, centered CKA is always 1; with 1, it is 0), uncentered
CKA at least 2. The losses warn when a term is constant for this reason. The published losses
return ``-CKA``; ours return ``1 - CKA`` (same gradient, 0 at a perfect match).

**Measured on segmentation logits: no gain at any weight** (digits Semantic FPN pair,
benchmarks/RESULTS.md, 3 seeds, mIoU gain over the student):

- weight 10, the Cityscapes config's: -13.70, with 2 seeds of 3 collapsing to 10 mIoU. In the
  first 20 iterations its gradient is 31x the task's, and pixel accuracy falls to 0.15%;
- weight 1: +0.15 [-2.58, +2.89];
- weight 0.3: +0.30 [-0.80, +1.39].

CKA is invariant to orthogonal transforms of the class dimension, so it cannot say which logit
is which class. Strong, it scrambles a fresh classifier; weak, it adds nothing the
cross-entropy does not. Use it on features (PCKA on detection necks gains +9.7 bbox mAP there),
and use CWD on segmentation logits.

**PCKA on the segmentation FPN** (same pair). At weight 1 per level it loses 1.10 mIoU [-1.29,
-0.92]; at 0.3 it gains +0.60 [+0.20, +0.99] (+1.70 [+1.34, +2.06] over weight 1, paired by
seed). The weight was the cause, and the gain stays small next to PKD's +7.07 on the same
levels.

**RCKA's feature term on the detection FPN: no gain at any weight tried** (digits RetinaNet
pair, 5 seeds, bbox mAP gain): weight 10 (the COCO configs') -6.54 [-12.66, -0.42]; 3: -4.50,
not resolved; 1: +1.68, not resolved. Its samples are the batch's 8 images, so it matches two
8 x 8 Gram matrices, a target that says nothing about any location, while its neck gradient is
7-14x the task's per level at cosine < 0.01. PCKA (patches as samples) gains +9.68 on the same
pair: use it on detection necks.
"""
import math
import warnings
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmkd.registry import MODELS
from .base import BaseDistillLoss, check_weight
from .utils import no_autocast, to_float32

_FORMS = ('auto', 'gram', 'cross')
#: How PCKALoss treats a level side shorter than a patch (see :class:`PCKALoss`).
SMALL_LEVELS = ('shrink_patch', 'upsample')


def batched_linear_cka(x: Tensor, y: Tensor, centered: bool = True, eps: float = 1e-8,
                       form: str = 'auto') -> Tensor:
    """Linear CKA of B pairs of matrices at once (``torch.bmm``); pure math, no detaching.

    Args:
        x (Tensor): (B, n, d1), rows are samples.
        y (Tensor): (B, n, d2), the same n samples.
        centered (bool): Subtract the mean over rows from every column. Defaults to True.
        eps (float): Added to the denominator. Defaults to 1e-8.
        form (str): ``'gram'`` (n x n Gram matrices), ``'cross'`` (d x d cross products) or
            ``'auto'``: the one with fewer multiply-adds, Gram when
            ``n * (d1 + d2) <= d1**2 + d1 * d2 + d2**2`` (n <= 1.5 d for equal widths).
            Defaults to 'auto'.

    Returns:
        Tensor: (B,) CKA values in [0, 1], float32 for half inputs.

    Example:
        >>> import torch
        >>> x = torch.randn(3, 20, 5)
        >>> batched_linear_cka(x, 2 * x).round(decimals=4)
        tensor([1., 1., 1.])
    """
    if x.dim() != 3 or y.dim() != 3 or x.shape[:2] != y.shape[:2]:
        raise ValueError(f'batched_linear_cka expects x (B, n, d1) and y (B, n, d2) with the '
                         f'same B and n, got {tuple(x.shape)} and {tuple(y.shape)}.')
    if form not in _FORMS:
        raise ValueError(f'form must be one of {_FORMS}, got {form!r}.')
    x, y = to_float32(x), to_float32(y)
    if centered:
        x = x - x.mean(dim=1, keepdim=True)
        y = y - y.mean(dim=1, keepdim=True)
    n, d1, d2 = x.shape[1], x.shape[2], y.shape[2]
    if form == 'auto':
        form = 'gram' if n * (d1 + d2) <= d1 * d1 + d1 * d2 + d2 * d2 else 'cross'
    with no_autocast(x):
        if form == 'gram':
            gram_x = torch.bmm(x, x.transpose(1, 2))
            gram_y = torch.bmm(y, y.transpose(1, 2))
            hsic = (gram_x * gram_y).sum(dim=(1, 2))
            norm_x = torch.linalg.matrix_norm(gram_x)
            norm_y = torch.linalg.matrix_norm(gram_y)
        else:
            hsic = torch.bmm(y.transpose(1, 2), x).square().sum(dim=(1, 2))
            norm_x = torch.linalg.matrix_norm(torch.bmm(x.transpose(1, 2), x))
            norm_y = torch.linalg.matrix_norm(torch.bmm(y.transpose(1, 2), y))
        return hsic / (norm_x * norm_y + eps)


def linear_cka(x: Tensor, y: Tensor, centered: bool = True, eps: float = 1e-8,
               form: str = 'auto') -> Tensor:
    """Linear CKA of two matrices with the same rows (samples); pure math, no detaching.

    Args:
        x (Tensor): (n, d1).
        y (Tensor): (n, d2).
        centered (bool): Subtract the column means. Defaults to True.
        eps (float): Added to the denominator. Defaults to 1e-8.
        form (str): ``'auto'``, ``'gram'`` or ``'cross'``, see :func:`batched_linear_cka`.
            Defaults to 'auto'.

    Returns:
        Tensor: a scalar in [0, 1].

    Example:
        >>> import torch
        >>> x = torch.randn(50, 8)
        >>> q, _ = torch.linalg.qr(torch.randn(8, 8))
        >>> round(float(linear_cka(x, 3 * x @ q)), 4)
        1.0
    """
    if x.dim() != 2 or y.dim() != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f'linear_cka expects x (n, d1) and y (n, d2) with the same n, got '
                         f'{tuple(x.shape)} and {tuple(y.shape)}.')
    return batched_linear_cka(x[None], y[None], centered, eps, form)[0]


def _warn_constant(term: str, n: int, centered: bool) -> None:
    warnings.warn(f'{term}: {"centered" if centered else "uncentered"} CKA over {n} sample(s) '
                  'is constant, so this term gives no gradient. Centered CKA needs >= 3 '
                  'samples, uncentered >= 2: use a larger batch / patch grid or centered=False.')


def _is_constant(n: int, centered: bool) -> bool:
    return n < (3 if centered else 2)


_LOGIT_TERMS = ('pixels', 'published')


def _check_logit_terms(logit_terms: str, centered: bool) -> None:
    """A ValueError naming the fix for an unknown ``logit_terms`` or a centred published one."""
    if logit_terms not in _LOGIT_TERMS:
        raise ValueError(f'CKALoss: logit_terms must be one of {_LOGIT_TERMS}, got '
                         f'{logit_terms!r}.')
    if logit_terms == 'published' and centered:
        raise ValueError("CKALoss: logit_terms='published' reproduces the published code, "
                         'which does not center: set centered=False.')


def published_seg_cka(x: Tensor, y: Tensor, eps: float = 1e-8) -> Tuple[Tensor, Tensor]:
    r"""The published segmentation terms (``CenterKernelAlignmentSeg``, ``with_l2_norm=True``,
    uncentered) of x and y (N, D): 'intra' with the N rows as samples, 'inter' with the D
    columns as samples. Returns (CKA intra, CKA inter).

    The published code divides each row of a Gram matrix by the norm of that row's sample,
    :math:`\hat G = G / \sqrt{\mathrm{diag}(G)}`, and takes
    :math:`\mathrm{tr}(\hat G_X \hat G_Y^\top) / \sqrt{\mathrm{tr}(\hat G_X \hat G_X^\top)
    \mathrm{tr}(\hat G_Y \hat G_Y^\top)}`. For 'inter' that Gram is D x D; with the
    columns normalised (:math:`\hat X`) the same traces are
    :math:`\langle X Y^\top, \hat X \hat Y^\top\rangle` and
    :math:`\langle X X^\top, \hat X \hat X^\top\rangle`, all N x N.
    """
    gxx, gyy, gxy = x @ x.t(), y @ y.t(), x @ y.t()
    # intra: Ĝx_ij = Gx_ij / |x_i|
    rx = gxx.diagonal().clamp_min(1e-30).sqrt()[:, None]
    ry = gyy.diagonal().clamp_min(1e-30).sqrt()[:, None]
    intra = (gxx * gyy / (rx * ry)).sum() / (
        ((gxx / rx).square().sum() * (gyy / ry).square().sum()).sqrt() + eps)
    # inter: the columns are the samples
    xh = x / x.norm(dim=0).clamp_min(1e-30)
    yh = y / y.norm(dim=0).clamp_min(1e-30)
    inter = (gxy * (xh @ yh.t())).sum() / (
        ((gxx * (xh @ xh.t())).sum() * (gyy * (yh @ yh.t())).sum()).sqrt() + eps)
    return intra, inter


def cka_loss(preds_S: Tensor, preds_T: Tensor, centered: bool = True, eps: float = 1e-8,
             feature_weight: float = 1.0, intra_weight: float = 0.0,
             inter_weight: float = 0.0, logit_terms: str = 'pixels') -> Tensor:
    """RCKA loss without ``loss_weight``; the teacher is detached, the result is float32.

    ``feature_weight * (1 - CKA(S.flatten(1), T.flatten(1)))`` (samples = the N images,
    features = C*H*W, so channel counts and sizes may differ) plus the logit terms
    ``intra_weight * (1 - CKA(S_pix, T_pix))`` on (N*H*W, K) (pixels as samples, K classes)
    and ``inter_weight * (1 - CKA(S_pix^T, T_pix^T))`` on (K, N*H*W), each with its rows
    l2-normalised (then centered when ``centered``). With ``logit_terms='published'`` the two
    logit terms are the published code's instead (:func:`published_seg_cka` on (N, K*H*W),
    uncentered only). The logit terms need equal shapes.

    Args:
        preds_S (Tensor): (N, C_S, ...) student features or logits.
        preds_T (Tensor): (N, C_T, ...) teacher features or logits.
        centered (bool): Defaults to True.
        eps (float): Defaults to 1e-8.
        feature_weight (float): Defaults to 1.0.
        intra_weight (float): Defaults to 0.0.
        inter_weight (float): Defaults to 0.0.
        logit_terms (str): ``'pixels'`` or ``'published'``. Defaults to 'pixels'.
    """
    _check_logit_terms(logit_terms, centered)
    if preds_S.dim() < 2 or preds_T.dim() < 2 or preds_S.shape[0] != preds_T.shape[0]:
        raise ValueError(f'CKALoss compares the N samples of a batch and needs (N, C, ...) '
                         f'inputs with the same N, got student {tuple(preds_S.shape)} and '
                         f'teacher {tuple(preds_T.shape)}.')
    s, t = to_float32(preds_S), to_float32(preds_T.detach())
    loss = s.new_zeros(())
    if feature_weight:
        if _is_constant(s.shape[0], centered):
            _warn_constant('CKALoss feature term (samples = images of the batch)',
                           s.shape[0], centered)
        cka = linear_cka(s.reshape(s.shape[0], -1), t.reshape(t.shape[0], -1), centered, eps)
        loss = loss + feature_weight * (1 - cka)
    if intra_weight or inter_weight:
        if s.shape != t.shape:
            raise ValueError(f'The intra/inter terms of CKALoss compare class scores pixel by '
                             f'pixel and need equal shapes, got student {tuple(s.shape)} and '
                             f'teacher {tuple(t.shape)}: use logits with the same classes and '
                             'add a ResizeConnector for the size.')
        if logit_terms == 'published':
            intra, inter = published_seg_cka(s.reshape(s.shape[0], -1),
                                             t.reshape(t.shape[0], -1), eps)
            return loss + intra_weight * (1 - intra) + inter_weight * (1 - inter)
        # (N, K, *spatial) -> (N * pixels, K): one copy each.
        s_pix = s.movedim(1, -1).reshape(-1, s.shape[1])
        t_pix = t.movedim(1, -1).reshape(-1, t.shape[1])
        if intra_weight:
            cka = linear_cka(F.normalize(s_pix, dim=1), F.normalize(t_pix, dim=1), centered, eps)
            loss = loss + intra_weight * (1 - cka)
        if inter_weight:
            cka = linear_cka(F.normalize(s_pix.t(), dim=1), F.normalize(t_pix.t(), dim=1),
                             centered, eps)
            loss = loss + inter_weight * (1 - cka)
    return loss


@MODELS.register_module()
class CKALoss(BaseDistillLoss):
    """RCKA: ``loss_weight * (1 - CKA)`` between student and teacher (any channel counts).

    The batch's N images are the samples and the flattened C*H*W maps their features, so a
    student with other channels or resolution needs no connector. For segmentation logits, the
    RCKA 'intra' (pixels x classes) and 'inter' (classes x pixels) terms of the published code
    can be added; their rows are l2-normalised as there. The published segmentation config
    (``intra_weight=10, inter_weight=10``, uncentered) is closest to ``loss_weight=10,
    feature_weight=0, intra_weight=1, inter_weight=1, centered=False``. Differences: the
    published 'intra' term uses images as samples, (N, K*H*W) like our feature term, and its
    'inter' term the transpose (K*H*W, N), which needs a (K*H*W)^2 Gram matrix; we use pixels
    as samples, (N*H*W, K), and its transpose. It divides each Gram row by that row's own norm
    (we normalise the rows of the data, which keeps the Gram symmetric) and weights 'inter' by
    ``intra_weight``. ``logit_terms='published'`` computes the published two terms exactly
    (uncentered, rows of each Gram divided by their sample's norm; the K*H*W-sample term in an
    N x N form, see :func:`published_seg_cka`): ``loss_weight=10, feature_weight=0,
    intra_weight=1, inter_weight=1, centered=False, logit_terms='published'`` is the published
    loss plus a constant (it returns ``-CKA``), what converted published configs use.

    Args:
        loss_weight (float): Scales the whole loss. Defaults to 1.0.
        centered (bool): Center the columns (subtract the mean over samples). The published
            code does not center. Centered CKA over a batch of 2 images is always 1 (a warning
            says so): use >= 3 images per GPU or ``centered=False``. Defaults to True.
        eps (float): Added to the CKA denominator. Defaults to 1e-8.
        feature_weight (float): Weight of the flattened-feature term. Defaults to 1.0.
        intra_weight (float): Weight of the pixels-as-samples logit term. Defaults to 0.0.
        inter_weight (float): Weight of the classes-as-samples logit term. Defaults to 0.0.
        logit_terms (str): ``'pixels'`` (the terms above) or ``'published'`` (the published
            code's images-as-samples 'intra' and its transpose; needs ``centered=False``).
            Defaults to 'pixels'.

    Example:
        >>> import torch
        >>> s, t = torch.randn(4, 8, 5, 5), torch.randn(4, 16, 10, 10)
        >>> CKALoss()(s, t).shape
        torch.Size([])
        >>> abs(float(CKALoss(loss_weight=2.0)(t, 3 * t))) < 1e-5
        True
    """
    def __init__(self, loss_weight: float = 1.0, centered: bool = True, eps: float = 1e-8,
                 feature_weight: float = 1.0, intra_weight: float = 0.0,
                 inter_weight: float = 0.0, logit_terms: str = 'pixels'):
        super().__init__(loss_weight)
        _check_weights(self, dict(feature_weight=feature_weight, intra_weight=intra_weight,
                                  inter_weight=inter_weight), eps)
        _check_logit_terms(logit_terms, centered)
        self.logit_terms = logit_terms
        self.centered = centered
        self.eps = eps
        self.feature_weight = feature_weight
        self.intra_weight = intra_weight
        self.inter_weight = inter_weight

    def compute(self, preds_S: Tensor, preds_T: Tensor) -> Tensor:
        """preds_S (N, C_S, H_S, W_S), preds_T (N, C_T, H_T, W_T). Returns a scalar."""
        return cka_loss(preds_S, preds_T, self.centered, self.eps, self.feature_weight,
                        self.intra_weight, self.inter_weight, self.logit_terms)


def _check_weights(module: nn.Module, weights: dict, eps: float) -> None:
    name = type(module).__name__
    for key, value in weights.items():
        check_weight(name, key, value)
    if not eps > 0:
        raise ValueError(f'{name}: eps must be > 0, got {eps!r}.')


def _patch_grid(size: Tuple[int, int], patch_size: int,
                small_levels: str = 'shrink_patch') -> Tuple[int, int, int, int]:
    """(ph, pw, H', W'): patch sides and the size the maps are resized to.

    ``'shrink_patch'``: a side shorter than a patch keeps its size and the patch shrinks to it;
    ``'upsample'``: patches are always ``patch_size`` square and every side is resized to the
    next multiple of it (the published code)."""
    (h, w), ps = size, patch_size
    if small_levels == 'upsample':
        ph = pw = ps
    else:
        ph, pw = min(ps, h), min(ps, w)
    return ph, pw, math.ceil(h / ph) * ph, math.ceil(w / pw) * pw


def _check_small_levels(small_levels: str) -> None:
    if small_levels not in SMALL_LEVELS:
        raise ValueError(f'PCKALoss: small_levels must be one of {SMALL_LEVELS}, got '
                         f"{small_levels!r} ('upsample' reproduces the published code).")


def _check_pcka_inputs(preds_S: Tensor, preds_T: Tensor, patch_size: int) -> None:
    if preds_S.dim() != 4 or preds_T.dim() != 4:
        raise ValueError(f'PCKALoss expects (N, C, H, W) maps, got student '
                         f'{tuple(preds_S.shape)} and teacher {tuple(preds_T.shape)}.')
    if preds_S.shape[0] != preds_T.shape[0]:
        raise ValueError(f'PCKALoss needs the same batch size, got student {preds_S.shape[0]} '
                         f'and teacher {preds_T.shape[0]}.')
    if preds_S.shape[1] != preds_T.shape[1]:
        raise ValueError(f'PCKALoss compares patches channel by channel and needs equal channel '
                         f'counts, got student {preds_S.shape[1]} and teacher '
                         f'{preds_T.shape[1]}: add dict(type=\'ConvConnector\', in_channels='
                         f'{preds_S.shape[1]}, out_channels={preds_T.shape[1]}) to the student '
                         'side (or use CKALoss, which needs none).')
    if isinstance(patch_size, bool) or not isinstance(patch_size, int) or patch_size < 1:
        raise ValueError(f'patch_size must be a positive int, got {patch_size!r}.')


def _to_patch_rows(x: Tensor, ph: int, pw: int, height: int, width: int) -> Tensor:
    """(N, C, H, W) -> (C, P, N*ph*pw), resizing (bilinear) to (height, width) if needed."""
    if x.shape[-2:] != (height, width):
        x = F.interpolate(x, size=(height, width), mode='bilinear', align_corners=False)
    n, c = x.shape[:2]
    u, v = height // ph, width // pw
    # the only copy of the map: (N, C, U, ph, V, pw) -> (C, U, V, N, ph, pw)
    return x.reshape(n, c, u, ph, v, pw).permute(1, 2, 4, 0, 3, 5).reshape(c, u * v, -1)


def _centered_gram(rows: Tensor, centered: bool) -> Tensor:
    """(B, n, d) -> (B, n, n) Gram matrices of the rows, of the column-centered rows when
    ``centered``: H K H with H = I - 11^T / n, i.e. K minus its row and column means plus its
    mean. Centering the n x n Gram instead of the (n, d) rows saves two full-size passes over
    the feature map (and their backward) when d >> n, as for patches."""
    gram = torch.bmm(rows, rows.transpose(1, 2))
    if centered:
        row_means = gram.mean(dim=2, keepdim=True)
        gram = (gram - row_means - row_means.transpose(1, 2)
                + row_means.mean(dim=1, keepdim=True))
    return gram


def pcka_loss(preds_S: Tensor, preds_T: Tensor, patch_size: int = 16,
              intra_weight: float = 1.0, inter_weight: float = 0.0, centered: bool = True,
              eps: float = 1e-8, small_levels: str = 'shrink_patch') -> Tensor:
    """PCKA loss of one FPN level without ``loss_weight``, batched over channels.

    The teacher is detached and the result is float32; see :class:`PCKALoss` for the math.

    Args:
        preds_S (Tensor): (N, C, H_S, W_S).
        preds_T (Tensor): (N, C, H, W); the patch grid follows the teacher's size.
        patch_size (int): Defaults to 16.
        intra_weight (float): Defaults to 1.0.
        inter_weight (float): Defaults to 0.0.
        centered (bool): Defaults to True.
        eps (float): Defaults to 1e-8.
        small_levels (str): ``'shrink_patch'`` or ``'upsample'``, see :class:`PCKALoss`.
            Defaults to 'shrink_patch'.
    """
    _check_pcka_inputs(preds_S, preds_T, patch_size)
    _check_small_levels(small_levels)
    s, t = to_float32(preds_S), to_float32(preds_T.detach())
    ph, pw, height, width = _patch_grid(t.shape[-2:], patch_size, small_levels)
    s_rows = _to_patch_rows(s, ph, pw, height, width)
    t_rows = _to_patch_rows(t, ph, pw, height, width)
    loss = s.new_zeros(())
    if intra_weight:
        if _is_constant(s_rows.shape[1], centered):
            _warn_constant(f'PCKALoss intra term (samples = patches of a {t.shape[-2]}x'
                           f'{t.shape[-1]} level, patch_size {patch_size})',
                           s_rows.shape[1], centered)
        # The Gram form (patches are few, their rows long), the teacher's side without autograd.
        with torch.no_grad():
            gram_t = _centered_gram(t_rows, centered)
            norm_t = torch.linalg.matrix_norm(gram_t)
        gram_s = _centered_gram(s_rows, centered)
        cka = (gram_s * gram_t).sum(dim=(1, 2)) / (torch.linalg.matrix_norm(gram_s) * norm_t
                                                    + eps)
        loss = loss + intra_weight * (1 - cka).mean()
    if inter_weight:
        cka = batched_linear_cka(s_rows.transpose(1, 2), t_rows.transpose(1, 2), centered, eps)
        loss = loss + inter_weight * (1 - cka).mean()
    return loss


@MODELS.register_module()
class PCKALoss(BaseDistillLoss):
    r"""PCKA: patch-wise CKA for one FPN level (the paper's detection loss).

    Both maps are resized (bilinear) to the smallest multiple of the patch size that is >= the
    teacher's size. With ``small_levels='shrink_patch'`` (the default) a side shorter than a
    patch is kept and the patch shrinks to it (a 7x20 level with ``patch_size=16`` gives 1x2
    patches of 7x16), so no level is blown up. Deviation: the published code upsamples such a
    side to the patch size instead (7x20 -> 16x32, 1x2 patches of 16x16); the patch count is
    the same but the patches are interpolated, and the loss and its gradient differ (on a 13x21
    level by about half). ``small_levels='upsample'`` reproduces the published handling
    exactly; on levels of at least a patch a side the two are identical. Each map is cut into P
    patches and reshaped to (C, P, N*ph*pw); for every channel c the P patch rows of the
    student and teacher are compared, all channels at once with ``bmm``:

    .. math::

        L = w \left[\lambda_{intra} \frac{1}{C}\sum_c (1 - \mathrm{CKA}(S_c, T_c))
            + \lambda_{inter} \frac{1}{C}\sum_c (1 - \mathrm{CKA}(S_c^\top, T_c^\top))\right]

    Patches are compared per channel, so channel counts must be equal (add a
    ``ConvConnector``); sizes may differ. The paper uses weight 10 on the first 4 FPN levels,
    intra only for RetinaNet / FCOS, intra + inter for Faster R-CNN / GFL: ``loss_weight=10,
    inter_weight=1.0`` here (the published code weights 'inter' by its ``intra_weight`` too).
    The published code does not center (``centered=False``) and returns ``-CKA`` instead of
    ``1 - CKA``. A level with fewer than 3 patches (2 uncentered) makes the intra term constant
    (a warning says so); the inter term still works there.

    Args:
        loss_weight (float): Defaults to 1.0.
        patch_size (int): Side of a patch in feature cells. Defaults to 16.
        intra_weight (float): Weight of the patches-as-samples term. Defaults to 1.0.
        inter_weight (float): Weight of the transposed term. Defaults to 0.0.
        centered (bool): Center the columns. Defaults to True.
        eps (float): Added to the CKA denominator. Defaults to 1e-8.
        small_levels (str): A level side shorter than ``patch_size``: ``'shrink_patch'``
            shrinks the patch to it, ``'upsample'`` resizes the side up to the patch size as
            the published code does (what converted PCKA configs use). Defaults to
            'shrink_patch'.

    Example:
        >>> import torch
        >>> s, t = torch.randn(2, 4, 40, 50), torch.randn(2, 4, 20, 25)
        >>> PCKALoss(loss_weight=10.0, inter_weight=1.0)(s, t).shape
        torch.Size([])
        >>> abs(float(PCKALoss()(t, 2 * t))) < 1e-5
        True
    """
    def __init__(self, loss_weight: float = 1.0, patch_size: int = 16, intra_weight: float = 1.0,
                 inter_weight: float = 0.0, centered: bool = True, eps: float = 1e-8,
                 small_levels: str = 'shrink_patch'):
        super().__init__(loss_weight)
        _check_weights(self, dict(intra_weight=intra_weight, inter_weight=inter_weight), eps)
        _check_small_levels(small_levels)
        self.small_levels = small_levels
        if isinstance(patch_size, bool) or not isinstance(patch_size, int) or patch_size < 1:
            raise ValueError(f'PCKALoss: patch_size must be a positive int, got {patch_size!r}.')
        self.patch_size = patch_size
        self.intra_weight = intra_weight
        self.inter_weight = inter_weight
        self.centered = centered
        self.eps = eps

    def compute(self, preds_S: Tensor, preds_T: Tensor) -> Tensor:
        """preds_S (N, C, H_S, W_S), preds_T (N, C, H, W). Returns a scalar."""
        return pcka_loss(preds_S, preds_T, self.patch_size, self.intra_weight,
                         self.inter_weight, self.centered, self.eps, self.small_levels)
