"""MasKD stage 1: learn the receptive tokens on a frozen segmentation teacher and write them.

:func:`learn_maskd_tokens` builds the teacher of a teacher or distillation config (as
:mod:`mmkd.apis.significance` does), loads and freezes it, runs it (eval mode) over the
config's ``train_dataloader`` (its training pipeline with its augmentation, cycled when
exhausted), and trains only the tokens on :func:`mmkd.models.losses.maskd.token_objective`
with SGD (momentum 0.9) and poly decay (power 0.9). The file it writes is what
``MasKDLoss(tokens=PATH)`` reads (format in :mod:`mmkd.models.losses.maskd`).
``tools/maskd_tokens.py`` is its command line.

Published stage 1 (Cityscapes): 10k iterations, batch 16, lr 0.1, weight decay 1e-3, 8 tokens.
The defaults here keep those but the length: :data:`DEFAULT_ITERS` iterations.
"""
import copy
import io
import itertools
import os.path as osp
from typing import Callable, Iterable, Iterator, Optional, Tuple

import torch
from mmengine.registry import MODELS, init_default_scope
from mmengine.runner import Runner, load_checkpoint, set_random_seed
from torch import Tensor

from mmkd.apis.significance import teacher_of
from mmkd.engine.runtime import load_config
from mmkd.models.losses.maskd import init_tokens, receptive_masks, token_objective
from mmkd.utils.checkpoint import AtomicLocalBackend
from mmkd.version import __version__

#: The digits benchmark's stage-1 length (published: 10000 iterations on Cityscapes).
DEFAULT_ITERS = 200
PUBLISHED = dict(iters=10000, batch_size=16, lr=0.1, momentum=0.9, weight_decay=1e-3,
                 num_tokens=8, poly_power=0.9)
TOOL = 'tools/maskd_tokens.py'


def segmentor_head(model):
    """The single decode head of an mmseg ``EncoderDecoder`` teacher; else a TypeError."""
    head = getattr(model, 'decode_head', None)
    if head is None or not hasattr(model, 'extract_feat') or isinstance(head, torch.nn.ModuleList):
        raise TypeError(f'MasKD tokens are learned on the decode-head logits of an mmseg '
                        f'EncoderDecoder teacher with one decode head; {type(model).__name__} '
                        'is not one.')
    return head


def teacher_batches(model, dataloader: Iterable) -> Iterator[Tuple[Tensor, Tensor]]:
    """``(logits (N, C, h, w), labels (N, H, W))`` of the frozen teacher, batch after batch,
    the dataloader cycled (a new epoch, so a new shuffle, each time it is exhausted)."""
    head = segmentor_head(model)
    for epoch in itertools.count():
        sampler = getattr(dataloader, 'sampler', None)
        if hasattr(sampler, 'set_epoch'):
            sampler.set_epoch(epoch)
        empty = True
        for data in dataloader:
            empty = False
            with torch.no_grad():
                data = model.data_preprocessor(data, training=True)
                logits = head.forward(model.extract_feat(data['inputs']))
            if not isinstance(logits, Tensor) or logits.dim() != 4:
                raise TypeError(f'{type(head).__name__}.forward returned '
                                f'{type(logits).__name__}, not (N, C, h, w) logits.')
            labels = torch.stack([s.gt_sem_seg.data for s in data['data_samples']])
            yield logits.detach().float(), labels.squeeze(1).to(logits.device)
        if empty:
            raise ValueError('The train dataloader is empty.')


def train_tokens(batches: Iterator[Tuple[Tensor, Tensor]], iters: int, num_tokens: int = 8,
                 lr: float = 0.1, momentum: float = 0.9, weight_decay: float = 1e-3,
                 seed: int = 0, ignore_index: int = 255, align_corners: bool = False,
                 log: Optional[Callable[[str], None]] = None) -> Tuple[Tensor, dict]:
    """Learn ``num_tokens`` tokens on ``iters`` batches of fixed teacher logits.

    SGD on the tokens alone, lr ``lr * (1 - i / iters) ** 0.9`` at iteration ``i`` (0-based),
    tokens drawn from N(0, 0.01^2) with ``seed``.

    Returns:
        tuple: ``(tokens (T, C) on the CPU, history)``; ``history`` holds per-iteration
        ``loss``, ``ce`` and ``dice`` lists and ``coverage``, the mean of each final token's
        mask over the last batch's pixels.
    """
    if iters < 1:
        raise ValueError(f'MasKD stage 1 needs iters >= 1, got {iters}.')
    if num_tokens < 1:
        raise ValueError(f'MasKD needs num_tokens >= 1, got {num_tokens}.')
    logits, labels = next(batches)
    generator = torch.Generator().manual_seed(seed)
    tokens = init_tokens(num_tokens, logits.shape[1], generator).to(logits.device)
    tokens.requires_grad_(True)
    optimizer = torch.optim.SGD([tokens], lr=lr, momentum=momentum, weight_decay=weight_decay)
    history = dict(loss=[], ce=[], dice=[])
    every = max(iters // 10, 1)
    for i in range(iters):
        if i:
            logits, labels = next(batches)
        for group in optimizer.param_groups:
            group['lr'] = lr * (1 - i / iters)**PUBLISHED['poly_power']
        total, ce, dice = token_objective(tokens, logits, labels, ignore_index, align_corners)
        if not torch.isfinite(total):
            raise FloatingPointError(f'MasKD stage 1 diverged at iteration {i + 1} (loss '
                                     f'{total.item()}): lower --lr (now {lr}).')
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        for key, value in (('loss', total), ('ce', ce), ('dice', dice)):
            history[key].append(value.item())
        if log is not None and ((i + 1) % every == 0 or i == 0):
            log(f'iter {i + 1}/{iters}: loss {history["loss"][-1]:.4f} (ce '
                f'{history["ce"][-1]:.4f}, dice {history["dice"][-1]:.4f}), lr '
                f'{optimizer.param_groups[0]["lr"]:.4g}')
    tokens = tokens.detach()
    with torch.no_grad():
        history['coverage'] = receptive_masks(tokens, logits).mean((0, 2, 3)).tolist()
    return tokens.cpu(), history


def default_tokens_file(checkpoint: str, work_dir: str) -> str:
    """``<checkpoint without .pth>.maskd_tokens.pth`` next to a local checkpoint; for a URL,
    that name in ``work_dir``."""
    stem = osp.splitext(checkpoint)[0] if checkpoint.endswith('.pth') else checkpoint
    if '://' in checkpoint:
        return osp.join(work_dir, osp.basename(stem) + '.maskd_tokens.pth')
    return stem + '.maskd_tokens.pth'


def write_tokens_file(path: str, tokens: Tensor, meta: dict) -> None:
    """``torch.save(dict(tokens=..., num_classes=C, meta=meta))`` written atomically (temp file,
    fsync, rename); serialised in memory first, so equal inputs give equal bytes."""
    buffer = io.BytesIO()
    torch.save(dict(tokens=tokens.detach().float().cpu().contiguous(),
                    num_classes=int(tokens.shape[1]), meta=meta), buffer)
    AtomicLocalBackend._write_atomically(buffer.getvalue(), path, 'wb')


def summary(tokens: Tensor, history: dict, settings: dict, path: str) -> str:
    """What is printed: the run, first and last losses, each token's mean mask coverage."""
    loss, ce, dice = history['loss'], history['ce'], history['dice']
    coverage = ' '.join(f'{c:.3f}' for c in history['coverage'])
    return '\n'.join([
        f'MasKD tokens: {tokens.shape[0]} x {tokens.shape[1]} learned in {len(loss)} iterations '
        f'(batch {settings["batch_size"]}, SGD lr {settings["lr"]} poly, weight decay '
        f'{settings["weight_decay"]}, seed {settings["seed"]})',
        f'  loss: first {loss[0]:.4f} (ce {ce[0]:.4f}, dice {dice[0]:.4f}), last {loss[-1]:.4f} '
        f'(ce {ce[-1]:.4f}, dice {dice[-1]:.4f})',
        f'  mean mask coverage per token (last batch): {coverage}',
        f'wrote {path}'])


def learn_maskd_tokens(config: str, checkpoint: Optional[str] = None, out: Optional[str] = None,
                       num_tokens: int = 8, iters: int = DEFAULT_ITERS, lr: float = 0.1,
                       weight_decay: float = 1e-3, batch_size: Optional[int] = None,
                       device: Optional[str] = None, cfg_options: Optional[dict] = None,
                       seed: int = 0, log=print) -> str:
    """Learn the tokens, write them and print a summary; returns the path written.

    Args:
        config (str): the teacher's config, or a distillation config (its ``model.teacher``).
        checkpoint (str, optional): the teacher's weights; a distillation config defaults to
            its ``model.teacher_ckpt``.
        out (str, optional): the file to write; defaults to ``<checkpoint without .pth>
            .maskd_tokens.pth`` (for a URL checkpoint: that name in the config's work dir).
        num_tokens (int): T. Defaults to 8 (published).
        iters (int): SGD iterations. Defaults to :data:`DEFAULT_ITERS` (published: 10000).
        lr (float): Initial learning rate, poly decay. Defaults to 0.1 (published).
        weight_decay (float): Defaults to 1e-3 (published).
        batch_size (int, optional): Images per iteration; defaults to the config's
            ``train_dataloader.batch_size`` (published: 16).
        device (str, optional): defaults to CUDA where available, else the CPU.
        cfg_options (dict, optional): config overrides, as ``--cfg-options`` gives them.
        seed (int): Seeds the tokens, the sampler's shuffle and the augmentation. Defaults to 0.
        log: receives the progress lines and the summary.
    """
    cfg = load_config(config, cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    is_distill = cfg.model.get('type') in ('Distiller', 'mmkd.Distiller')
    if not (checkpoint or (is_distill and cfg.model.get('teacher_ckpt'))):
        raise ValueError(f'Give the teacher CHECKPOINT (`python {TOOL} CONFIG CHECKPOINT`): '
                         'tokens learned on random weights mean nothing.')
    model_cfg, checkpoint = teacher_of(cfg, checkpoint)
    set_random_seed(seed)

    model = MODELS.build(model_cfg)
    load_checkpoint(model, checkpoint, map_location='cpu', strict=True, logger='silent')
    head = segmentor_head(model)
    model.to(device or ('cuda' if torch.cuda.is_available() else 'cpu')).eval()
    model.requires_grad_(False)

    loader_cfg = copy.deepcopy(cfg.get('train_dataloader'))
    if not loader_cfg:
        raise KeyError('The config has no train_dataloader: stage 1 learns on its data.')
    if batch_size is not None:
        loader_cfg.batch_size = batch_size
    if isinstance(loader_cfg.get('sampler'), dict):
        loader_cfg.sampler.seed = seed
    dataloader = Runner.build_dataloader(loader_cfg, seed=seed)

    tokens, history = train_tokens(
        teacher_batches(model, dataloader), iters, num_tokens, lr, PUBLISHED['momentum'],
        weight_decay, seed, getattr(head, 'ignore_index', 255),
        getattr(head, 'align_corners', False), log)

    path = out or default_tokens_file(checkpoint, cfg.work_dir)
    settings = dict(batch_size=loader_cfg.batch_size, lr=lr, weight_decay=weight_decay,
                    seed=seed)
    meta = dict(tool=TOOL, mmkd_version=__version__, config=config, checkpoint=checkpoint,
                num_tokens=num_tokens, iters=iters, momentum=PUBLISHED['momentum'],
                poly_power=PUBLISHED['poly_power'], first_loss=history['loss'][0],
                final_loss=history['loss'][-1], final_ce=history['ce'][-1],
                final_dice=history['dice'][-1], coverage=history['coverage'], **settings)
    write_tokens_file(path, tokens, meta)
    log(summary(tokens, history, settings, path))
    return path


def tokens_options(config: str, tokens: str) -> dict:
    """``--cfg-options`` that point every MasKD recipe of the distillation ``config`` at the
    ``tokens`` file (``model.recipes.<i>.tokens``); empty for a config without one."""
    from mmengine.config import Config
    recipes = Config.fromfile(config).model.get('recipes') or []
    return {f'model.recipes.{i}.tokens': tokens for i, recipe in enumerate(recipes)
            if str(recipe.get('type', '')).lower() == 'maskd'}
