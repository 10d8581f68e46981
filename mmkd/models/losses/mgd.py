r"""Masked generative distillation (MGD): regenerate the teacher's feature from a masked student.

Masked Generative Distillation (Yang et al., ECCV 2022), https://arxiv.org/abs/2205.01529

The (channel-aligned) student feature is masked at random spatial positions, a small generator
:math:`\mathcal{G}` (3x3 conv, ReLU, 3x3 conv) rebuilds the full feature from it, and the result
imitates the teacher:

.. math::

    M_{n,h,w} = \mathbb{1}[u_{n,h,w} \ge \lambda], \quad u \sim \mathcal{U}[0, 1), \qquad
    L_{MGD} = w \cdot \frac{1}{N} \sum_{n,c,h,w}
    \bigl(\mathcal{G}(f_{align}(S) \odot M) - T\bigr)^2_{n,c,h,w}

so each position is masked out (zeroed in every channel) with probability :math:`\lambda`
(``lambda_mgd``: 0.65 for detection, 0.75 for segmentation in the paper). The reduction is
the paper code's: squared error summed over everything, divided by the batch size only, hence
the small weight (2e-5 for COCO detection). The loss therefore grows with the feature map's
area: the COCO weight, set for P3 maps of about 100 x 168 cells, is about 65 times weaker on
the 16 x 16 P3 of 128 px images; on the digits RetinaNet pair its neck gradient is 0.04-0.48 of
the task's (``tools/analysis/loss_balance.py``, benchmarks/RESULTS.md). Measured there, gain
over the student at the COCO weight / ten times it / 65 times it (the area ratio), paired by
seed: detection +12.66 / +19.60 / +19.46 bbox mAP (5 seeds; x10 over x1 +6.94 [+1.70, +12.18]),
segmentation +4.61 / +1.71 / +1.36 mIoU (3 seeds). So the area ratio is not the rule: at the
COCO weight, segmentation's four levels (a stride-4 one among them) already put 3.0x the task's
gradient on the neck, detection's three 0.66x. On both tasks the best weight was the one whose
neck gradient at initialisation is a few times the task's (3x seg, 6.6x det); set
``loss_weight`` that way on images much smaller than COCO's, with ``loss_balance.py``.

The alignment (a 1x1 conv, only when the channel counts differ) and the generator are trained
with the student; they are discarded after distillation. The mask is drawn from torch's global
RNG (so ``torch.manual_seed`` makes it reproducible) or from the ``generator`` passed to
``forward``; it is drawn in train and eval mode alike.
"""
from typing import Optional

import torch
from torch import Tensor, nn

from mmkd.registry import MODELS
from .base import BaseDistillLoss, check_feature_channels
from .utils import no_autocast


def masked_generative_loss(preds_S: Tensor, preds_T: Tensor, generation: nn.Module,
                           lambda_mgd: float = 0.65, align: Optional[nn.Module] = None,
                           generator: Optional[torch.Generator] = None) -> Tensor:
    """Sum of squared errors between the regenerated masked student and the teacher, / N.

    Computed in float32 with autocast off; the teacher side is detached.

    Args:
        preds_S (Tensor): Student map, (N, C_s, H, W).
        preds_T (Tensor): Teacher map, (N, C_t, H, W).
        generation (nn.Module): Maps (N, C_t, H, W) to (N, C_t, H, W).
        lambda_mgd (float): Probability that a spatial position is masked out. Defaults to
            0.65.
        align (nn.Module, optional): Maps the student to C_t channels. Defaults to None.
        generator (torch.Generator, optional): RNG of the mask; None uses torch's global RNG.
            Defaults to None.

    Returns:
        Tensor: Scalar loss (without a loss weight).
    """
    if preds_S.dim() != 4 or preds_T.dim() != 4 or (
            preds_S.shape[0] != preds_T.shape[0] or preds_S.shape[2:] != preds_T.shape[2:]):
        raise ValueError(f'MGDLoss needs (N, C, H, W) maps with equal N, H and W, got student '
                         f'{tuple(preds_S.shape)} and teacher {tuple(preds_T.shape)}: add a '
                         'ResizeConnector to the student side (channels are aligned by the '
                         'loss itself).')
    N, _, H, W = preds_T.shape
    with no_autocast(preds_S):
        feat_S = preds_S.float()
        if align is not None:
            feat_S = align(feat_S)
        target = preds_T.detach().float()
        if feat_S.shape != target.shape:
            raise ValueError(f'MGDLoss: the aligned student has shape {tuple(feat_S.shape)}, the '
                             f'teacher {tuple(target.shape)}: set student_channels / '
                             'teacher_channels to the recorded tensors\' channel counts.')
        rand_device = generator.device if generator is not None else preds_S.device
        rand = torch.rand((N, 1, H, W), generator=generator, device=rand_device)
        keep = (rand >= lambda_mgd).to(device=feat_S.device, dtype=feat_S.dtype)
        new_feat = generation(feat_S * keep)
        return (new_feat - target).pow(2).sum() / N


@MODELS.register_module()
class MGDLoss(BaseDistillLoss):
    """Masked generative distillation with its own alignment and generator.

    Args:
        student_channels (int): Channels of ``preds_S``.
        teacher_channels (int): Channels of ``preds_T``; a 1x1 conv aligns the student when
            they differ.
        loss_weight (float): Defaults to 2e-5 (the paper's COCO detection weight).
        lambda_mgd (float): Probability, in [0, 1], that a spatial position of the student is
            masked out. Defaults to 0.65 (detection; the paper uses 0.75 for segmentation).

    Example:
        >>> import torch
        >>> loss = MGDLoss(student_channels=8, teacher_channels=16)
        >>> s, t = torch.randn(2, 8, 10, 10), torch.randn(2, 16, 10, 10)
        >>> g = torch.Generator().manual_seed(0)
        >>> value = loss(s, t, generator=g)
        >>> value.shape, value.dtype
        (torch.Size([]), torch.float32)
    """
    def __init__(self, student_channels: int, teacher_channels: int,
                 loss_weight: float = 2e-5, lambda_mgd: float = 0.65):
        super().__init__(loss_weight)
        if not 0.0 <= lambda_mgd <= 1.0:
            raise ValueError(f'MGDLoss: lambda_mgd is the probability of masking a position and '
                             f'must lie in [0, 1], got {lambda_mgd}.')
        self.student_channels = student_channels
        self.teacher_channels = teacher_channels
        self.lambda_mgd = lambda_mgd
        self.align = (nn.Conv2d(student_channels, teacher_channels, kernel_size=1)
                      if student_channels != teacher_channels else None)
        self.generation = nn.Sequential(
            nn.Conv2d(teacher_channels, teacher_channels, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(teacher_channels, teacher_channels, kernel_size=3, padding=1))

    def compute(self, preds_S: Tensor, preds_T: Tensor,
                generator: Optional[torch.Generator] = None) -> Tensor:
        """preds_S: (N, student_channels, H, W), preds_T: (N, teacher_channels, H, W).

        ``generator`` (optional) draws the mask; None uses torch's global RNG. Returns a
        float32 scalar.
        """
        check_feature_channels('MGDLoss', preds_S, preds_T, self.student_channels,
                               self.teacher_channels, equal_size=False)
        return masked_generative_loss(
            preds_S, preds_T, self.generation, self.lambda_mgd, self.align, generator)
