r"""Af-DCD: augmentation-free dense contrastive distillation on the backbone's last stage.

Augmentation-free Dense Contrastive Knowledge Distillation for Efficient Semantic Segmentation
(Fan et al., NeurIPS 2023), https://arxiv.org/abs/2312.04168; official code OSVAI/Af-DCD
(``losses/ocmgd.py``, ``train_ocmgd.py``).

The student's last backbone stage :math:`F_S` (N, C_s, H, W) is aligned to the teacher's
channels by a 1x1 conv (identity when C_s = C_t), masked at spatial positions, and regenerated
by a projector :math:`\mathcal{P}` (3x3 conv, ReLU, 3x3 conv; the "enhanced" variant averages
the outputs of two stacked conv-ReLU blocks, each followed by its own 3x3 conv):

.. math::

    S' = \mathcal{P}\bigl(f_{align}(F_S) \odot m\bigr), \qquad
    L_{fd} = \frac{1}{N} \sum_{n,c,h,w} (S' - F_T)^2_{n,c,h,w}

with :math:`m_{n,h,w} \in \{0, 1\}` shared by the channels: ``mask_mode='random'`` zeroes each
position with probability ``mask_ratio`` (:math:`L_{fd}` is MGD's
:func:`~mmkd.models.losses.mgd.masked_generative_loss`), ``'center'`` zeroes the fixed block
``[H//3 : 2H//3, W//3 : 2W//3]`` of every image (``mask_ratio`` is then unused).

For the contrastive term, :math:`S'` and :math:`F_T` are max-pooled (kernel = stride = k), cut
into :math:`p_h \times p_w` spatial patches and their :math:`C_t` channels into :math:`M`
contiguous groups of :math:`d = C_t / M`. Inside a patch with positions :math:`P`
(:math:`|P| = p_h p_w`), the token :math:`s_{i,g} \in \mathbb{R}^d` is group :math:`g` of the
student at position :math:`i` (:math:`t_{j,g'}` the teacher's), and

.. math::

    \ell_{i,g} = -\log \frac{\exp(-\lVert s_{i,g} - t_{i,g} \rVert_1 / \tau)}
    {\exp(-\lVert s_{i,g} - t_{i,g} \rVert_1 / \tau)
     + \sum_{j \in P} \sum_{g' \ne g} \exp(-\lVert s_{i,g} - t_{j,g'} \rVert_1 / \tau)},
    \qquad
    L_{ctr} = \frac{1}{N \, H_c W_c} \sum_{n} \sum_{\text{patches}} \sum_{i \in P}
    \sum_{g=1}^{M} \ell_{i,g}

so the positive is the teacher token of the same position and group, the negatives are the
teacher tokens of every other group at every position of the patch (the same group at other
positions is neither), and :math:`H_c W_c` is the number of pooled positions used: the
cross-entropy is summed over groups and averaged over positions and images. The loss returns

.. math::

    L = w \, (\lambda_{fd} L_{fd} + \lambda_{ctr} L_{ctr})

with :math:`w` = ``loss_weight``, :math:`\lambda_{fd}` = ``feature_weight`` and
:math:`\lambda_{ctr}` = ``contrast_weight``.

Published settings (Cityscapes, DeepLabV3-R101 -> DeepLabV3-R18, ``train_scripts/cityscape/
deeplabv3_r101_deeplabv3_r18_ocmgd.sh``): features ``c4`` of the dilated ResNets (stride 8,
512 -> 2048 channels), :math:`\lambda_{fd} = 2 \times 10^{-6}`, :math:`\lambda_{ctr} = 0.005`
(``train_ocmgd.py``'s argparse defaults are 4e-5 and 0.001; the scripts override them),
``mask_ratio`` 0.75, M = 16, :math:`\tau` = 0.07, k = 4, 4x4 patches. The published total
objective is ``CE (+ 0.4 aux CE) + KD(T = 1, weight 1) on the logits + this loss``: the CE and
KD terms are the recipe's job (a task loss and a ``KDLoss`` on the decode-head logits), not
this loss's.

Deviations from the official code, and choices where it does not say:

- **Mask mode.** The R18 script passes ``--rand_mask False --enhance_projector True``, but the
  argparse of ``train_ocmgd.py`` defines ``--rand-mask`` / ``--enhance-projector`` (hyphens;
  argparse does not map ``_`` to ``-``), so the script as published stops with
  "unrecognized arguments"; and spelled right, ``type=bool`` turns the string ``'False'``
  into ``True``. The only configuration the published code can train from its command line
  is therefore the random mask (MGD's) with the plain projector (its argparse defaults);
  that is our default (``mask_mode='random'``, ``enhanced_projector=False``). The
  script's apparent intent is ``mask_mode='center', enhanced_projector=True``.
- **Gradient clipping.** The official loop clips the gradient norm of the align / projector
  parameters alone at 15 (``clip_grad_norm_(criterion.parameters(), 15)``). This loss does not
  clip. The nearest mmengine setting, ``optim_wrapper=dict(clip_grad=dict(max_norm=15))``,
  clips all the optimizer's parameters together (the student's too), so it is not the same.
- **Equal channels.** The official loss only builds ``align`` when the channels differ but
  always calls it (it fails for C_s = C_t); here it is the identity then, as in MGD.
- **Small maps.** The official code max-pools with k = 4 and requires the pooled map to be
  divisible by the patch (``view`` fails otherwise; a CamVid special case crops the top-left
  44x44 instead of pooling). Here, for any H, W >= 1, :func:`contrast_geometry`:
  (1) clips the square pool kernel to ``k = min(pool_size, max(1, H // p_h), max(1, W // p_w))``
  so the pooled map keeps a whole patch where the map allows; (2) clips the patch to the pooled
  map, ``(min(p_h, H // k), min(p_w, W // k))``; (3) drops the remainder rows / columns at the
  bottom / right that do not fill a patch (as max-pooling drops those that do not fill a
  kernel). No padding is used (padded tokens would be fake negatives). On the 4x4 last stage of
  128 px images this gives k = 1 and one 4x4 patch; a 1x1 map gives one position whose
  negatives are its M - 1 other groups; on the published 64x128 map it is the official k = 4
  and 4x4 patches.
  :math:`L_{ctr}` averages over the positions used (the official code divides by all pooled
  positions; the two agree whenever the patches tile the pooled map).
- ``pool_size=1`` means no pooling (the official code writes 0 for that).
- ``num_groups`` must divide ``teacher_channels`` and be >= 2 (with one group there are no
  negatives and :math:`L_{ctr} \equiv 0`; set ``contrast_weight=0`` to turn the term off).

Scale: :math:`L_{fd}` is summed over C, H and W, so at a given ``feature_weight`` it grows with
the map's area (the published 2e-6 was set for 64x128 maps, 512 times the area of the 4x4 last
stage of 128 px images; calibrate it with ``tools/analysis/loss_balance.py`` as for MGD), while
:math:`L_{ctr}` is a mean over positions, of order :math:`M \log(|P| (M - 1) + 1)` at chance.
The contrast holds one (|P| M) x (|P| M) distance matrix per patch (256 x 256 by default).

The mask is drawn from torch's global RNG or from the ``generator`` passed to ``forward``, in
train and eval mode alike. The align conv and projector are trained with the student and
discarded after distillation; the teacher side is detached.
"""
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmkd.registry import MODELS
from .base import BaseDistillLoss, check_feature_channels, check_weight
from .mgd import masked_generative_loss

MASK_MODES = ('random', 'center')


def contrast_geometry(height: int, width: int, pool_size: int,
                      patch_size: Tuple[int, int]) -> Tuple[int, int, int, int, int]:
    """How an (H, W) map is pooled and cut into patches for the contrastive term.

    Returns ``(kernel, patch_h, patch_w, used_h, used_w)``: the square max-pool kernel (and
    stride), the patch actually used and the top-left ``used_h x used_w`` part of the pooled
    map that the patches tile (the rest is dropped). See the module docstring, "Small maps".

    Example:
        >>> contrast_geometry(64, 128, 4, (4, 4))     # published Cityscapes c4: as official
        (4, 4, 4, 16, 32)
        >>> contrast_geometry(4, 4, 4, (4, 4))        # 128 px images, stride 32
        (1, 4, 4, 4, 4)
        >>> contrast_geometry(3, 5, 4, (4, 4))        # patch clipped, last column dropped
        (1, 3, 4, 3, 4)
    """
    patch_h, patch_w = patch_size
    kernel = min(pool_size, max(1, height // patch_h), max(1, width // patch_w))
    pooled_h, pooled_w = height // kernel, width // kernel
    patch_h, patch_w = min(patch_h, pooled_h), min(patch_w, pooled_w)
    return (kernel, patch_h, patch_w,
            pooled_h - pooled_h % patch_h, pooled_w - pooled_w % patch_w)


def _tokens(x: Tensor, num_groups: int, patch_h: int, patch_w: int) -> Tensor:
    """(N, C, Hc, Wc) -> (N * patches, patch_h * patch_w * num_groups, C // num_groups);
    token ``i * num_groups + g`` is group ``g`` (channels ``g*d .. (g+1)*d - 1``) at the
    patch's row-major position ``i``."""
    N, C, H, W = x.shape
    x = x.reshape(N, num_groups, C // num_groups, H // patch_h, patch_h, W // patch_w, patch_w)
    x = x.permute(0, 3, 5, 4, 6, 1, 2)  # N, rows, cols, patch_h, patch_w, M, d
    return x.reshape(-1, patch_h * patch_w * num_groups, C // num_groups)


def dense_contrastive_loss(feat_S: Tensor, feat_T: Tensor, num_groups: int = 16,
                           tau: float = 0.07, pool_size: int = 4,
                           patch_size: Tuple[int, int] = (4, 4)) -> Tensor:
    """Af-DCD's omni-contrastive term :math:`L_{ctr}` between two (N, C, H, W) maps.

    Cross-entropy of each student token against its teacher token (positive) and the teacher
    tokens of the other groups anywhere in its patch (negatives), logits = -L1 / ``tau``;
    summed over groups, averaged over the pooled positions used and the images.

    Args:
        feat_S (Tensor): Regenerated student map S', (N, C, H, W).
        feat_T (Tensor): Teacher map, (N, C, H, W); detached here.
        num_groups (int): Channel groups M; must divide C. Defaults to 16.
        tau (float): Temperature. Defaults to 0.07.
        pool_size (int): Max-pool kernel and stride (clipped on small maps). Defaults to 4.
        patch_size (tuple[int, int]): Patch (h, w) (clipped on small maps). Defaults to (4, 4).

    Returns:
        Tensor: Scalar loss (without a weight).
    """
    N, C, H, W = feat_T.shape
    kernel, patch_h, patch_w, used_h, used_w = contrast_geometry(H, W, pool_size, patch_size)
    feat_T = feat_T.detach()
    if kernel > 1:
        feat_S, feat_T = F.max_pool2d(feat_S, kernel), F.max_pool2d(feat_T, kernel)
    feat_S, feat_T = feat_S[:, :, :used_h, :used_w], feat_T[:, :, :used_h, :used_w]
    tokens_S = _tokens(feat_S, num_groups, patch_h, patch_w)
    tokens_T = _tokens(feat_T, num_groups, patch_h, patch_w)
    logits = -torch.cdist(tokens_S, tokens_T, p=1) / tau  # (B', P*M, P*M)
    positions = patch_h * patch_w
    group = torch.arange(num_groups, device=logits.device).repeat(positions)
    # Allowed logits of each row: the positive (the diagonal) and every other group's token.
    allowed = (group[:, None] != group[None, :]) | torch.eye(
        positions * num_groups, dtype=torch.bool, device=logits.device)
    log_normaliser = logits.masked_fill(~allowed, float('-inf')).logsumexp(dim=-1)
    cross_entropy = log_normaliser - logits.diagonal(dim1=1, dim2=2)
    return cross_entropy.sum() / (N * used_h * used_w)


class EnhancedProjector(nn.Module):
    """The official "enhanced" projector: two stacked 3x3 conv-ReLU blocks, each followed by
    its own 3x3 conv; the output is the mean of the two."""

    def __init__(self, channels: int):
        super().__init__()
        self.block_1 = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU())
        self.block_2 = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU())
        self.adaptor_1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.adaptor_2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        x_1 = self.block_1(x)
        x_2 = self.block_2(x_1)
        return (self.adaptor_1(x_1) + self.adaptor_2(x_2)) / 2


def _int_at_least(owner: str, name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f'{owner}: {name} must be an integer >= {minimum}, got {value!r}.')
    return value


@MODELS.register_module()
class AfDCDLoss(BaseDistillLoss):
    r"""Af-DCD on the backbone's last stage: ``loss_weight * (feature_weight * L_fd +
    contrast_weight * L_ctr)`` (see the module docstring), with its own align conv and
    projector.

    Args:
        student_channels (int): Channels of ``preds_S``.
        teacher_channels (int): Channels of ``preds_T``; a 1x1 conv aligns the student when
            they differ. Must be divisible by ``num_groups``.
        loss_weight (float): Multiplies the whole loss. Defaults to 1.0.
        feature_weight (float): :math:`\lambda_{fd}`. Defaults to 2e-6 (published).
        contrast_weight (float): :math:`\lambda_{ctr}`. Defaults to 0.005 (published).
        mask_ratio (float): Probability in [0, 1] that a position is masked out
            (``mask_mode='random'``). Defaults to 0.75.
        mask_mode (str): ``'random'`` or ``'center'`` (the fixed middle-third block). Defaults
            to ``'random'``, the mask the published code actually trains with.
        enhanced_projector (bool): Use the official two-branch projector instead of
            conv-ReLU-conv. Defaults to False.
        num_groups (int): Channel groups M, >= 2. Defaults to 16.
        tau (float): Contrastive temperature, > 0. Defaults to 0.07.
        pool_size (int): Max-pool kernel (and stride) before the contrast, >= 1 (1: none);
            clipped on small maps. Defaults to 4.
        patch_size (int | tuple[int, int]): Patch (h, w) of the contrast, clipped on small
            maps. Defaults to 4 (4x4).

    Example:
        >>> import torch
        >>> loss = AfDCDLoss(student_channels=8, teacher_channels=32)
        >>> s, t = torch.randn(2, 8, 16, 16), torch.randn(2, 32, 16, 16)
        >>> value = loss(s, t, generator=torch.Generator().manual_seed(0))
        >>> value.shape, value.dtype, bool(value > 0)
        (torch.Size([]), torch.float32, True)
        >>> AfDCDLoss(8, 24)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: AfDCDLoss: teacher_channels=24 is not divisible by num_groups=16: ...
    """

    def __init__(self, student_channels: int, teacher_channels: int, loss_weight: float = 1.0,
                 feature_weight: float = 2e-6, contrast_weight: float = 0.005,
                 mask_ratio: float = 0.75, mask_mode: str = 'random',
                 enhanced_projector: bool = False, num_groups: int = 16, tau: float = 0.07,
                 pool_size: int = 4, patch_size: Union[int, Sequence[int]] = 4):
        super().__init__(loss_weight)
        owner = type(self).__name__
        self.student_channels = _int_at_least(owner, 'student_channels', student_channels, 1)
        self.teacher_channels = _int_at_least(owner, 'teacher_channels', teacher_channels, 1)
        self.feature_weight = check_weight(owner, 'feature_weight', feature_weight)
        self.contrast_weight = check_weight(owner, 'contrast_weight', contrast_weight)
        if isinstance(mask_ratio, bool) or not isinstance(mask_ratio, (int, float)) or not (
                0.0 <= mask_ratio <= 1.0):
            raise ValueError(f'{owner}: mask_ratio is the probability of masking a position '
                             f'and must lie in [0, 1], got {mask_ratio!r}.')
        if mask_mode not in MASK_MODES:
            raise ValueError(f'{owner}: mask_mode must be one of {MASK_MODES}, got '
                             f'{mask_mode!r}.')
        if isinstance(num_groups, int) and not isinstance(num_groups, bool) and num_groups == 1:
            raise ValueError(f'{owner}: num_groups=1 leaves the contrast without negatives '
                             '(L_ctr would be 0): use num_groups >= 2 (16 published), or '
                             'contrast_weight=0 to turn the contrastive term off.')
        self.num_groups = _int_at_least(owner, 'num_groups', num_groups, 2)
        if teacher_channels % num_groups:
            divisors = [m for m in range(2, num_groups) if teacher_channels % m == 0]
            hint = f' (e.g. num_groups={divisors[-1]})' if divisors else ''
            raise ValueError(f'{owner}: teacher_channels={teacher_channels} is not divisible by '
                             f'num_groups={num_groups}: set num_groups to a divisor of '
                             f'{teacher_channels}{hint}.')
        if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not tau > 0:
            raise ValueError(f'{owner} needs a positive temperature tau, got {tau!r}.')
        self.pool_size = _int_at_least(owner, 'pool_size', pool_size, 1)
        if isinstance(patch_size, int) and not isinstance(patch_size, bool):
            patch_size = (patch_size, patch_size)
        if (not isinstance(patch_size, (tuple, list)) or len(patch_size) != 2
                or any(isinstance(p, bool) or not isinstance(p, int) or p < 1
                       for p in patch_size)):
            raise ValueError(f'{owner}: patch_size must be an integer >= 1 or a pair (h, w) of '
                             f'them, got {patch_size!r}.')
        self.patch_size = tuple(patch_size)
        self.mask_ratio = float(mask_ratio)
        self.mask_mode = mask_mode
        self.tau = float(tau)
        self.align = (nn.Conv2d(student_channels, teacher_channels, kernel_size=1)
                      if student_channels != teacher_channels else None)
        self.projector = EnhancedProjector(teacher_channels) if enhanced_projector else \
            nn.Sequential(nn.Conv2d(teacher_channels, teacher_channels, 3, padding=1),
                          nn.ReLU(),
                          nn.Conv2d(teacher_channels, teacher_channels, 3, padding=1))

    def regenerate_and_imitate(self, preds_S: Tensor, preds_T: Tensor,
                               generator: Optional[torch.Generator] = None
                               ) -> Tuple[Tensor, Tensor]:
        """``(S', L_fd)``: the masked, aligned and projected student and its summed squared
        error to the teacher over N (MGD's :func:`masked_generative_loss`)."""
        H, W = preds_T.shape[2:]
        center = None
        if self.mask_mode == 'center':
            center = torch.ones(1, 1, H, W, device=preds_S.device)
            center[:, :, H // 3:2 * H // 3, W // 3:2 * W // 3] = 0
        regenerated = []

        def project(x: Tensor) -> Tensor:
            out = self.projector(x if center is None else x * center)
            regenerated.append(out)
            return out
        ratio = self.mask_ratio if center is None else 0.0
        loss_fd = masked_generative_loss(preds_S, preds_T, project, ratio, self.align, generator)
        return regenerated[0], loss_fd

    def compute(self, preds_S: Tensor, preds_T: Tensor,
                generator: Optional[torch.Generator] = None) -> Tensor:
        """preds_S: (N, student_channels, H, W), preds_T: (N, teacher_channels, H, W).

        ``generator`` (optional) draws the random mask; None uses torch's global RNG. Returns
        the float32 scalar ``feature_weight * L_fd + contrast_weight * L_ctr``.
        """
        check_feature_channels('AfDCDLoss', preds_S, preds_T, self.student_channels,
                               self.teacher_channels)
        regenerated, loss_fd = self.regenerate_and_imitate(preds_S, preds_T, generator)
        loss = self.feature_weight * loss_fd
        if self.contrast_weight > 0:
            loss = loss + self.contrast_weight * dense_contrastive_loss(
                regenerated, preds_T, self.num_groups, self.tau, self.pool_size,
                self.patch_size)
        return loss
