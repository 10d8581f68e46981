"""What the tests, the benchmarks and the analysis tools share: hand-made batches, as a
dataloader and its pipeline would give them (one builder for all of them), a random-init
distiller of a config, and slow reference implementations that the fast code is checked and
timed against.

Images are uint8 ``(3, H, W)`` tensors; data samples carry the meta information mmdet /
mmseg models read. ``generator`` (a seeded :class:`torch.Generator`) makes a batch
reproducible without touching torch's global random state; without it the global state is
used.
"""
import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

#: One box per image by default; tests that need other layouts pass their own.
DEFAULT_BOXES = ([[4.0, 6.0, 30.0, 40.0]], [[4.0, 6.0, 30.0, 40.0]])


def _size(size):
    return (size, size) if isinstance(size, int) else tuple(size)


def _meta(size, significance: Optional[float], img_id: int) -> dict:
    h, w = size
    meta = dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w), scale_factor=(1.0, 1.0),
                img_id=img_id)
    if significance is not None:  # what SignificanceWeightedLoss reads (datasets/significance)
        meta['significance'] = significance
    return meta


def _images(n: int, size, generator) -> list:
    return [torch.randint(0, 255, (3, *size), dtype=torch.uint8, generator=generator)
            for _ in range(n)]


def det_batch(size=64, boxes: Sequence = DEFAULT_BOXES, labels: Optional[Sequence] = None,
              generator: Optional[torch.Generator] = None,
              significance: Optional[Sequence[float]] = None, masks: bool = False) -> dict:
    """A detection batch: one image and one ``DetDataSample`` per entry of ``boxes``.

    Args:
        size (int | tuple): image side, or (H, W).
        boxes: per image, a list of (x1, y1, x2, y2) boxes.
        labels: per image, a list of class ids; defaults to image index % 3 for every box.
        significance: per image, a ``significance`` meta value (optional).
        masks: also give each box an instance mask (``BitmapMasks``): the box's pixels.
    """
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    size = _size(size)
    samples = []
    for i, image_boxes in enumerate(boxes):
        sample = DetDataSample(metainfo=_meta(
            size, None if significance is None else significance[i], i))
        image_labels = labels[i] if labels is not None else [i % 3] * len(image_boxes)
        sample.gt_instances = InstanceData(
            bboxes=torch.as_tensor(image_boxes, dtype=torch.float32).reshape(-1, 4),
            labels=torch.as_tensor(image_labels, dtype=torch.long))
        if masks:
            sample.gt_instances.masks = _box_masks(image_boxes, size)
        samples.append(sample)
    return dict(inputs=_images(len(boxes), size, generator), data_samples=samples)


def _box_masks(boxes: Sequence, size):
    """mmdet ``BitmapMasks`` of (H, W), one per box, 1 on the box's pixels."""
    import numpy as np
    from mmdet.structures.mask import BitmapMasks
    masks = np.zeros((len(boxes), *size), np.uint8)
    for mask, (x1, y1, x2, y2) in zip(masks, boxes):
        mask[int(y1):int(math.ceil(y2)), int(x1):int(math.ceil(x2))] = 1
    return BitmapMasks(masks, *size)


def seg_batch(size=64, n: int = 2, num_classes: int = 19,
              generator: Optional[torch.Generator] = None,
              significance: Optional[Sequence[float]] = None) -> dict:
    """A segmentation batch of ``n`` images with random label maps."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    size = _size(size)
    samples = []
    for i in range(n):
        sample = SegDataSample(metainfo=_meta(
            size, None if significance is None else significance[i], i))
        sample.gt_sem_seg = PixelData(
            data=torch.randint(0, num_classes, (1, *size), generator=generator))
        samples.append(sample)
    return dict(inputs=_images(n, size, generator), data_samples=samples)


def trains_masks(model) -> bool:
    """Whether an mmdet detector's RoI head has a mask head (its batches need gt masks)."""
    return bool(getattr(getattr(model, 'roi_head', None), 'with_mask', False))


def random_batch(task: str, num_classes: int, batch_size: int, size, seed: int = 0,
                 boxes_per_image: int = 4, masks: bool = False) -> dict:
    """A reproducible random batch for ``task`` ('det', 'seg' or 'ins'): random images, random
    ground truth (boxes of 8 px to 30% of the image, any class; ``masks`` or 'ins': each box's
    pixels as its instance mask), random significance."""
    g = torch.Generator().manual_seed(seed)
    h, w = _size(size)
    significance = [float(torch.rand(1, generator=g)) for _ in range(batch_size)]
    if task == 'seg':
        return seg_batch((h, w), batch_size, num_classes, g, significance)
    if task not in ('det', 'ins'):
        raise ValueError(f"task must be 'det', 'seg' or 'ins', got {task!r}.")
    masks = masks or task == 'ins'
    boxes, labels = [], []
    for _ in range(batch_size):
        xy = torch.rand(boxes_per_image, 2, generator=g) * torch.tensor([w * 0.7, h * 0.7])
        wh = 8 + torch.rand(boxes_per_image, 2, generator=g) * torch.tensor([w * 0.3, h * 0.3])
        boxes.append(torch.cat([xy, xy + wh], 1).tolist())
        labels.append(torch.randint(0, num_classes, (boxes_per_image, ), generator=g).tolist())
    return det_batch((h, w), boxes, labels, g, significance, masks)


def build_random_distiller(cfg, cfg_options: Optional[dict] = None, device=None,
                           seed: Optional[int] = 0):
    """A distillation config's Distiller with random init: no teacher checkpoints, no
    pretrained weights (nothing is read or downloaded), for tests and benchmarks whose
    figures do not depend on the weights.

    Args:
        cfg (Config): a distillation config (it is not modified).
        cfg_options (dict, optional): merged into both models' ``cfg_options`` (e.g. plain BN
            instead of SyncBN, a smaller input size); into an inline model dict (keys
            ``'model.'`` + the key) directly.
        device: build on this device (``'meta'``: structure only, no memory, no init).
        seed (int, optional): torch's seed before building; None leaves it.
    """
    import copy

    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from mmkd.models.distillers import drop_pretrained_init
    from mmkd.registry import MODELS
    model_cfg = copy.deepcopy(cfg.model)
    if 'teachers' in model_cfg:
        sides = [model_cfg.student, *model_cfg.teachers.values()]
        for entry in model_cfg.teachers.values():
            entry.ckpt = None
    else:
        sides = [model_cfg.student, model_cfg.teacher]
        model_cfg.teacher_ckpt = None
    for entry in sides:
        if 'cfg_path' in entry:
            entry.pretrained = False
            if cfg_options:
                entry.cfg_options = dict(cfg_options, **entry.get('cfg_options', {}))
        else:  # an inline model dict: the same edits on it directly
            inline = Config(dict(model=drop_pretrained_init(entry)))
            inline.merge_from_dict(cfg_options or {})
            entry.clear()
            entry.update(inline.model)
    use_test_tokens(model_cfg)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    if seed is not None:
        torch.manual_seed(seed)
    if device is None:
        return fill_uninitialised(MODELS.build(model_cfg))
    with torch.device(device):
        return fill_uninitialised(MODELS.build(model_cfg))


#: Receptive tokens for MasKD recipes in tests (8 tokens, N(0, 0.01) with seed 0, written
#: by ``mmkd.apis.maskd_tokens.write_tokens_file``), per class count: what a random teacher
#: would get instead of the file ``tools/maskd_tokens.py`` writes from a trained one.
TEST_TOKENS = 'tests/data/maskd_tokens_c{}.pth'


def use_test_tokens(model_cfg) -> None:
    """Point every MasKD recipe of ``model_cfg`` whose ``tokens`` file does not exist (it is
    written from the trained teacher, which tests do not have) at :data:`TEST_TOKENS` of the
    teacher's class count."""
    import os.path as osp

    from mmkd.apis import CONFIGS
    from mmkd.models.distillers.model_config import resolve_model_cfg
    for recipe in model_cfg.get('recipes') or []:
        if (str(recipe.get('type', '')).lower() != 'maskd' or 'tokens' not in recipe
                or osp.exists(recipe.tokens)):
            continue
        teacher, _ = resolve_model_cfg(model_cfg.teacher, 'teacher')
        heads = teacher.decode_head if isinstance(teacher.decode_head, list) else [
            teacher.decode_head]
        recipe.tokens = osp.join(osp.dirname(CONFIGS), TEST_TOKENS.format(heads[-1].num_classes))


def fill_uninitialised(model):
    """``model`` with the parameters mmdet allocates uninitialised filled as its
    ``init_weights`` would: the DETRs' ``level_embed`` (``torch.Tensor(levels, dims)``, normal
    init). Without it a random-init DETR reads whatever the memory held (NaN at times)."""
    for module in model.modules():
        embed = getattr(module, 'level_embed', None)
        if isinstance(embed, torch.nn.Parameter) and embed.device.type != 'meta':
            with torch.no_grad():
                torch.nn.init.normal_(embed)
    return model


def pcka_loop_reference(preds_S: Tensor, preds_T: Tensor, patch_size: int = 16,
                        intra_weight: float = 1.0, inter_weight: float = 0.0,
                        centered: bool = True, eps: float = 1e-8,
                        small_levels: str = 'shrink_patch') -> Tensor:
    """:func:`mmkd.models.losses.pcka_loss` with Python loops.

    Loops over channels like the published code, cuts patches with ``F.unfold`` and uses the
    published Gram-trace formula, so it shares no patch or CKA code with ``pcka_loss``: the
    patch grid (a side shorter than a patch keeps its size, the maps are resized up to a
    multiple of the patch; with ``small_levels='upsample'`` patches are always square) is
    computed here again. No input checks.

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
    if small_levels == 'upsample':
        ph = pw = patch_size
    else:
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


def pcka_published_reference(student: Tensor, teacher: Tensor, intra_weight: float = 15.0,
                             inter_weight: Optional[float] = None) -> Tensor:
    """The published PCKA detection loss (``CenterKernelAlignmentRKD`` of the paper's code,
    its default ``with_l2_norm=False``) in its own conventions, for checking
    ``PCKALoss(small_levels='upsample', centered=False)`` against: both maps resized
    (bilinear) to the next multiple of 16 of the teacher's sides however small, cut into
    16x16 patches, one uncentered CKA per channel with no epsilon, ``-CKA`` rather than
    ``1 - CKA``, and the inter term (present when ``inter_weight`` is truthy) weighted by
    ``intra_weight``. Written independently of both ``pcka_loss`` and
    :func:`pcka_loop_reference` (``torch.Tensor.unfold`` patches, traces of Gram products).

    Example:
        >>> import torch
        >>> s, t = torch.randn(2, 3, 13, 21), torch.randn(2, 3, 13, 21)
        >>> float(pcka_published_reference(s, t, 10.0)) < 0
        True
    """
    t = teacher.detach()
    size = [-(-side // 16) * 16 for side in t.shape[-2:]]
    s = F.interpolate(student, size=size, mode='bilinear', align_corners=False)
    t = F.interpolate(t, size=size, mode='bilinear', align_corners=False)

    def patches(x: Tensor) -> Tensor:  # (N, C, H, W) -> (C, P, N*256), patches row-major
        x = x.unfold(2, 16, 16).unfold(3, 16, 16)  # (N, C, U, V, 16, 16)
        return x.permute(1, 2, 3, 0, 4, 5).reshape(x.shape[1], x.shape[2] * x.shape[3], -1)

    def cka(a: Tensor, b: Tensor) -> Tensor:
        ka, kb = a @ a.t(), b @ b.t()
        return torch.trace(ka @ kb.t()) / torch.sqrt(torch.trace(ka @ ka.t())
                                                     * torch.trace(kb @ kb.t()))

    s_p, t_p = patches(s), patches(t)
    total = s.new_zeros(())
    for c in range(s.shape[1]):
        total = total - intra_weight * cka(s_p[c], t_p[c])
        if inter_weight:
            total = total - intra_weight * cka(s_p[c].t(), t_p[c].t())
    return total / s.shape[1]


def pcka_plain_loop(preds_S: Tensor, preds_T: Tensor, patch_size: int = 16,
                    centered: bool = True, eps: float = 1e-8) -> Tensor:
    """PCKA's intra term (the RetinaNet / FCOS setting) as a plain per-channel loop: the maps
    resized (bilinear) to a multiple of the patch, cut into patches once, then one Gram CKA
    per channel. The fair loop to race :func:`mmkd.models.losses.pcka_loss` against (the
    published code, :func:`pcka_loop_reference`, also pays ``F.unfold`` and P^3 traces).

    Example:
        >>> import torch
        >>> from mmkd.models.losses import pcka_loss
        >>> s, t = torch.randn(2, 3, 20, 12), torch.randn(2, 3, 20, 12)
        >>> bool(torch.allclose(pcka_loss(s, t, 8), pcka_plain_loop(s, t, 8), atol=1e-5))
        True
    """
    s, t = preds_S.float(), preds_T.detach().float()
    h, w = t.shape[-2:]
    ph, pw = min(patch_size, h), min(patch_size, w)
    height, width = math.ceil(h / ph) * ph, math.ceil(w / pw) * pw
    if (height, width) != (h, w) or s.shape[-2:] != (h, w):
        s = F.interpolate(s, size=(height, width), mode='bilinear', align_corners=False)
    if (height, width) != (h, w):
        t = F.interpolate(t, size=(height, width), mode='bilinear', align_corners=False)
    n, c = s.shape[:2]

    def rows(x: Tensor) -> Tensor:  # (N, C, H, W) -> (C, P, N*ph*pw)
        x = x.reshape(n, c, height // ph, ph, width // pw, pw)
        return x.permute(1, 2, 4, 0, 3, 5).reshape(c, (height // ph) * (width // pw), -1)

    s_rows, t_rows = rows(s), rows(t)
    loss = s.new_zeros(())
    for channel in range(c):
        a, b = s_rows[channel], t_rows[channel]
        if centered:
            a, b = a - a.mean(0), b - b.mean(0)
        gram_a, gram_b = a @ a.t(), b @ b.t()
        cka = (gram_a * gram_b).sum() / (gram_a.norm() * gram_b.norm() + eps)
        loss = loss + (1 - cka) / c
    return loss


def cka_seg_published_reference(student: Tensor, teacher: Tensor, intra_weight: float = 15.0,
                                inter_weight: Optional[float] = None) -> Tensor:
    """The published segmentation CKA loss (``CenterKernelAlignmentSeg``, its default
    ``with_l2_norm=True``, no softening) in its own conventions, built the slow way: the
    logits flattened to (N, K*H*W), full Gram matrices (the 'inter' one K*H*W squared: small
    inputs only), each Gram row divided by the norm of its sample, ``-CKA`` and 'inter'
    (present when ``inter_weight`` is truthy) weighted by ``intra_weight``.

    Example:
        >>> import torch
        >>> s, t = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
        >>> float(cka_seg_published_reference(s, t, 10.0)) < 0
        True
    """
    def cka(a: Tensor, b: Tensor) -> Tensor:
        ka, kb = a @ a.t(), b @ b.t()
        ka = ka / torch.sqrt(torch.diag(ka))[:, None]
        kb = kb / torch.sqrt(torch.diag(kb))[:, None]
        return torch.trace(ka @ kb.t()) / torch.sqrt(torch.trace(ka @ ka.t())
                                                     * torch.trace(kb @ kb.t()))

    s = student.reshape(student.shape[0], -1)
    t = teacher.detach().reshape(teacher.shape[0], -1)
    total = -intra_weight * cka(t, s)
    if inter_weight:
        total = total - intra_weight * cka(t.t(), s.t())
    return total
