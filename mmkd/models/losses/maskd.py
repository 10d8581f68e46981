r"""MasKD: the student's logits imitate the teacher's under masks from learned receptive tokens.

Masked Distillation with Receptive Tokens (Huang et al., ICLR 2023),
https://arxiv.org/abs/2205.14589; official code: hunto/MasKD, ``segmentation/losses/maskd.py``
(the tokens and both losses) and ``segmentation/train_mask_module.py`` (stage 1).

**Masks.** :math:`T` receptive tokens :math:`Q \in \mathbb{R}^{T \times C}` (:math:`C` = the
classes) turn the teacher's decode-head logits :math:`z^T \in \mathbb{R}^{N \times C \times h
\times w}` into one soft mask per token and pixel :math:`p`:

.. math::

    M_{n,t,p} = \sigma\bigl(q_t^\top z^T_{n,:,p}\bigr)

(:func:`receptive_masks`; raw logits, not normalised, as the official code).

**Stage 1** (:func:`token_objective`; ``tools/maskd_tokens.py`` runs it): only the tokens
learn, on the frozen teacher. The masked output :math:`o = \sum_t M_t \odot z^T` (which is
:math:`z^T` scaled per pixel by :math:`\sum_t M_{t,p}`) must still classify the pixels, and the
masks must differ from each other (Dice coefficient of every ordered pair of distinct tokens,
per image):

.. math::

    L_1 = \mathrm{CE}\bigl(\mathrm{up}(o), y\bigr)
        + \frac{1}{N T (T - 1)} \sum_{n} \sum_{t \ne t'}
          \frac{2 \sum_p M_{n,t,p} M_{n,t',p}}
               {\sum_p M_{n,t,p}^2 + \sum_p M_{n,t',p}^2}

with :math:`\mathrm{up}` bilinear upsampling to the labels' size and the CE averaged over the
labelled pixels (:func:`dice_diversity` is the second term; 1e-12 is added to each sum of
squares, as the official code).

**Stage 2** (:class:`MasKDLoss`): the tokens are frozen; each mask weighs the squared
difference of the logits, normalised by the mask's area:

.. math::

    L_{MasKD} = w \cdot \frac{1}{N T C} \sum_{n,t,c}
        \frac{\sum_p M_{n,t,p}^2 \, (z^S_{n,c,p} - z^T_{n,c,p})^2}{\sum_p M_{n,t,p} + 10^{-5}}

**Published settings** (Cityscapes, DeepLabV3-R101 teacher, 19 classes). Tokens: :math:`T = 8`,
initialised :math:`\mathcal{N}(0, 0.01^2)`. Stage 1: 10k iterations, batch 16 (8 GPUs x 2),
SGD lr 0.1, momentum 0.9, weight decay 1e-3, poly decay (power 0.9), the training crops with
their augmentation. Stage 2: :math:`w = 0.5` on the main logits and :math:`0.4 \cdot 0.5` on
the auxiliary head's logits (same tokens; the recipe places that second loss), with the
student's CE and no plain KD.

**Deviations.**

- Stage 1 runs the teacher in eval mode (the official script calls it under ``no_grad`` but in
  train mode, so its BN uses batch statistics and its dropout is on): the tokens learn on the
  logits the stage-2 teacher gives.
- Stage 1's CE is plain (no class weights), ignores the decode head's ``ignore_index`` (255 in
  mmseg) and upsamples with the head's ``align_corners`` (the official code: ``align_corners=True``
  and label -1). The official total adds the teacher's auxiliary CE, which does not depend on
  the tokens; it is left out.
- Stage 1 length: 10k iterations on Cityscapes; ``tools/maskd_tokens.py`` defaults to 200
  (``--iters``) for the digits benchmark, whose 8 x 11 token values settle in about 60
  iterations (a digits teacher, 64 px images: loss 1.65 to 0.18, the Dice term from 1.0 to
  0.02); 200 take a few minutes on a CPU. Give ``--iters 10000`` for the published schedule.
  There, the Dice term was lowered mostly by switching masks off: 6 of the 8 tokens ended
  with a mean coverage below 0.01 (the tool prints each token's coverage). Such tokens add
  almost nothing to stage 2, whose mean over :math:`T` then dilutes the others' terms.
- With a single token there is no pair: the diversity term is 0 (the official code divides
  0 by 0).
- The tokens are a buffer, not a parameter: no gradient reaches them, nor the teacher
  (``preds_T`` is detached). The buffer is persistent, so a distillation checkpoint holds the
  tokens it was trained with (loading it replaces the ones read from ``tokens`` at build).

**Tokens file** (what ``python tools/maskd_tokens.py CONFIG [CHECKPOINT] --out PATH`` writes,
:func:`load_maskd_tokens` reads): ``torch.save(dict(tokens=Tensor(T, C), num_classes=C,
meta=dict(config=..., checkpoint=..., iters=..., final_loss=..., ...)))``. The official
stage-1 file (the mask module's state dict, ``{'mask_token': Tensor(T, C)}``) is read too.
"""
import os.path as osp
from typing import Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from mmkd.registry import MODELS
from .base import BaseDistillLoss

#: The command that writes a tokens file (stage 1), named in errors.
TOKENS_TOOL = 'python tools/maskd_tokens.py CONFIG [CHECKPOINT] --out PATH'


def init_tokens(num_tokens: int, num_classes: int, generator=None) -> Tensor:
    """Receptive tokens drawn from N(0, 0.01^2), (num_tokens, num_classes), as published."""
    return torch.randn(num_tokens, num_classes, generator=generator) * 0.01


def receptive_masks(tokens: Tensor, logits_T: Tensor) -> Tensor:
    """``M[n, t, h, w] = sigmoid(tokens[t] . logits_T[n, :, h, w])``.

    Args:
        tokens (Tensor): (T, C).
        logits_T (Tensor): The teacher's logits, (N, C, H, W).

    Returns:
        Tensor: (N, T, H, W) masks in (0, 1).
    """
    if logits_T.dim() != 4 or tokens.dim() != 2 or tokens.shape[1] != logits_T.shape[1]:
        raise ValueError(f'MasKD tokens of shape {tuple(tokens.shape)} (T, C) need (N, C, H, W) '
                         f'logits with C = {tokens.shape[-1]} channels, got '
                         f'{tuple(logits_T.shape)}: learn the tokens on this teacher (its '
                         f'classes) with `{TOKENS_TOOL}`.')
    tokens = tokens.to(device=logits_T.device, dtype=logits_T.dtype)
    return torch.einsum('tc,nchw->nthw', tokens, logits_T).sigmoid()


def dice_diversity(masks: Tensor, eps: float = 1e-12) -> Tensor:
    """Mean Dice coefficient of every ordered pair of distinct masks of an image.

    Args:
        masks (Tensor): (N, T, H, W).
        eps (float): Added to each mask's sum of squares. Defaults to 1e-12 (official).

    Returns:
        Tensor: Scalar; 0 when T < 2 (no pair).
    """
    N, T = masks.shape[:2]
    if T < 2:
        return masks.sum() * 0
    flat = masks.flatten(2)                                    # (N, T, P)
    overlap = flat @ flat.transpose(1, 2)                      # (N, T, T)
    squares = flat.pow(2).sum(-1) + eps                        # (N, T)
    dice = 2 * overlap / (squares[:, :, None] + squares[:, None, :])
    distinct = ~torch.eye(T, dtype=torch.bool, device=masks.device)
    return dice[:, distinct].mean()


def token_objective(tokens: Tensor, logits_T: Tensor, labels: Tensor, ignore_index: int = 255,
                    align_corners: bool = False) -> Tuple[Tensor, Tensor, Tensor]:
    """Stage 1's objective of the tokens on fixed teacher logits.

    Args:
        tokens (Tensor): (T, C), the tokens being learned.
        logits_T (Tensor): The teacher's decode-head logits, (N, C, h, w) (no gradient needed).
        labels (Tensor): (N, H, W) class indices; ``ignore_index`` marks unlabelled pixels.
        ignore_index (int): Defaults to 255 (mmseg).
        align_corners (bool): Of the bilinear upsampling to the labels' size; the decode
            head's own. Defaults to False.

    Returns:
        tuple[Tensor]: ``(total, ce, dice)`` scalars, ``total = ce + dice``. With no
        labelled pixel the CE is 0.
    """
    if labels.dim() != 3 or labels.shape[0] != logits_T.shape[0]:
        raise ValueError(f'MasKD stage 1 needs (N, H, W) labels for (N, C, h, w) logits, got '
                         f'{tuple(labels.shape)} and {tuple(logits_T.shape)}.')
    masks = receptive_masks(tokens, logits_T)
    out = logits_T * masks.sum(1, keepdim=True)                # = sum_t M_t * z_T
    if out.shape[2:] != labels.shape[1:]:
        out = F.interpolate(out, labels.shape[1:], mode='bilinear', align_corners=align_corners)
    labels = labels.long()
    if (labels != ignore_index).any():
        ce = F.cross_entropy(out, labels, ignore_index=ignore_index)
    else:
        ce = out.sum() * 0
    dice = dice_diversity(masks)
    return ce + dice, ce, dice


def masked_logit_distance(preds_S: Tensor, preds_T: Tensor, tokens: Tensor,
                          eps: float = 1e-5) -> Tensor:
    """Stage 2's value without the weight: per image, token and class, the mask-weighted sum of
    squared logit differences over the mask's area, averaged.

    Args:
        preds_S (Tensor): Student logits, (N, C, H, W).
        preds_T (Tensor): Teacher logits, (N, C, H, W); the masks come from them.
        tokens (Tensor): (T, C).
        eps (float): Added to each mask's area. Defaults to 1e-5 (official).

    Returns:
        Tensor: Scalar.
    """
    if preds_S.shape != preds_T.shape:
        raise ValueError(f'MasKDLoss needs student and teacher logits of equal shape, got '
                         f'{tuple(preds_S.shape)} and {tuple(preds_T.shape)}: add a '
                         'ResizeConnector to the student side.')
    masks = receptive_masks(tokens, preds_T)                   # (N, T, H, W)
    squared = (preds_S - preds_T).pow(2)                       # (N, C, H, W)
    weighted = torch.einsum('nthw,nchw->ntc', masks.pow(2), squared)
    return (weighted / (masks.sum((2, 3)) + eps)[..., None]).mean()


def load_maskd_tokens(path: str) -> Tensor:
    """The (T, C) tokens of a file written by ``tools/maskd_tokens.py`` (or the official
    stage-1 mask module's state dict), as float32.

    Raises:
        FileNotFoundError: no file at ``path`` (the message names the command writing it).
        ValueError: the file is not a tokens file.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'MasKD tokens file {path!r} does not exist: learn the tokens '
                                f'on the teacher first with `{TOKENS_TOOL}` (stage 1) and set '
                                'tokens= to PATH.')
    try:
        content = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:  # torch raises many types for corrupt / foreign files
        reason = (str(err).splitlines() or [''])[0][:200]
        raise ValueError(f'MasKD tokens file {path!r} could not be read ({type(err).__name__}: '
                         f'{reason}); write it again with `{TOKENS_TOOL}`.') from err
    tokens = None
    if isinstance(content, dict):
        tokens = content.get('tokens', content.get('mask_token'))
    if not isinstance(tokens, Tensor) or tokens.dim() != 2:
        keys = sorted(content) if isinstance(content, dict) else type(content).__name__
        raise ValueError(f'MasKD tokens file {path!r} holds no (T, C) tensor under "tokens" '
                         f'(found {keys}); write it with `{TOKENS_TOOL}`.')
    num_classes = content.get('num_classes', tokens.shape[1])
    if num_classes != tokens.shape[1]:
        raise ValueError(f'MasKD tokens file {path!r} is inconsistent: num_classes '
                         f'{num_classes} but tokens of shape {tuple(tokens.shape)}.')
    return tokens.float()


@MODELS.register_module()
class MasKDLoss(BaseDistillLoss):
    """MasKD stage 2: ``loss_weight * masked_logit_distance(S, T, tokens, eps)``.

    Args:
        tokens (str | Tensor): The tokens file written by ``tools/maskd_tokens.py`` (stage 1),
            or the (T, C) tokens themselves.
        loss_weight (float): Defaults to 0.5 (published, main logits; 0.2 on aux logits).
        eps (float): Added to each mask's area, > 0. Defaults to 1e-5.

    Example:
        >>> import torch
        >>> loss = MasKDLoss(tokens=torch.zeros(8, 2))   # every mask 0.5 everywhere
        >>> t = torch.zeros(1, 2, 1, 2)
        >>> s = torch.tensor([[[[1.0, 1.0]], [[0.0, 0.0]]]])
        >>> round(float(loss(s, t)), 4)                  # 0.5 * mean over c of (0.25 * 2 / 1, 0)
        0.125
        >>> float(loss(t, t))
        0.0
    """
    requires_same_shape = True
    requires_equal_num_classes = True

    def __init__(self, tokens: Union[str, Tensor], loss_weight: float = 0.5, eps: float = 1e-5):
        super().__init__(loss_weight)
        if isinstance(tokens, Tensor):
            if tokens.dim() != 2:
                raise ValueError(f'MasKDLoss tokens must be a (T, C) tensor, got shape '
                                 f'{tuple(tokens.shape)}.')
            tokens = tokens.detach().float().clone()
        elif isinstance(tokens, str):
            tokens = load_maskd_tokens(tokens)
        else:
            raise TypeError(f'MasKDLoss tokens must be the path of the file `{TOKENS_TOOL}` '
                            f'writes (or a (T, C) tensor), got {type(tokens).__name__}.')
        if not torch.isfinite(tokens).all():
            raise ValueError('MasKDLoss tokens hold inf / nan: learn them again (a lower '
                             '--lr).')
        if not eps > 0:
            raise ValueError(f'MasKDLoss needs eps > 0, got {eps}.')
        self.eps = float(eps)
        self.register_buffer('tokens', tokens)

    def compute(self, preds_S: Tensor, preds_T: Tensor) -> Tensor:
        """preds_S, preds_T: (N, C, H, W) logits of equal shape, C = the tokens' C."""
        if preds_T.dim() != 4 or preds_T.shape[1] != self.tokens.shape[1]:
            raise ValueError(
                f'MasKDLoss tokens of shape {tuple(self.tokens.shape)} have C = '
                f'{self.tokens.shape[1]} classes, but the logits have shape '
                f'{tuple(preds_T.shape)} (N, C, H, W): the tokens were learned on another '
                f'teacher; learn them on this one with `{TOKENS_TOOL}`.')
        return masked_logit_distance(preds_S, preds_T, self.tokens, self.eps)
