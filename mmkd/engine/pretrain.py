"""Backbone pretraining on the embedded digits: the stand-in for ImageNet-pretrained weights.

On COCO and Cityscapes, students start from ImageNet-pretrained backbones and distillation
refines a model that already sees; no pretrained weight can be downloaded here, so
:func:`pretrained_backbone` trains the backbone of a digits config on a classification task
(:func:`~mmkd.datasets.digit_classification_set`: one digit per photo crop, 10 classes, from
the same sources as the detection / segmentation images but never those images) and caches the
result by the content of what produced it: the backbone config, the training settings and the
source code of this module and of the image generator. The same inputs give the same file; a
change to any of them trains a new one (the old file stays, under its own key).

The checkpoint holds the backbone's own state dict (``state_dict``, keys without a prefix) and
``meta`` (settings, held-out accuracy, cache key), so a config loads it with mmengine's own
initialiser, ``model.backbone.init_cfg = dict(type='Pretrained', checkpoint=PATH)``;
:func:`set_pretrained_backbone` writes that into a model or a distiller config (the distiller's
student).
"""
import copy
import hashlib
import json
import math
import os
import os.path as osp
import sys
from typing import Callable, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

#: Settings of the classification pretraining; any of them can be overridden.
DEFAULT_SETTINGS = dict(num_images=8000, num_heldout=1000, size=64, iters=600, batch_size=32,
                        lr=2e-3, weight_decay=0.05, seed=0)
# Keys of a backbone config that do not change its weights (which stages it returns, what
# stays frozen when training later): left out of the cache key.
_WEIGHT_NEUTRAL_KEYS = ('out_indices', 'frozen_stages', 'norm_eval', 'init_cfg', 'pretrained')
# ImageNet statistics, as in the digits configs' data preprocessors (RGB order).
_MEAN = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
_STD = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)


def pretrain_key(backbone: dict, settings: dict) -> str:
    """Cache key: a hash of the backbone config, the settings and the producing source code."""
    from mmkd.datasets import digits
    spec = {k: v for k, v in _plain(backbone).items() if k not in _WEIGHT_NEUTRAL_KEYS}
    h = hashlib.sha256(json.dumps(dict(backbone=spec, settings=settings),
                                  sort_keys=True).encode())
    for module in (sys.modules[__name__], digits):
        with open(module.__file__, 'rb') as f:
            h.update(f.read())
    return h.hexdigest()[:16]


def pretrained_backbone(backbone: dict, cache_dir: str, name: str = 'backbone',
                        log: Callable = print, train: bool = True, **overrides) -> str:
    """Path of the pretrained checkpoint of ``backbone``, trained first unless cached
    (``train=False``: the path it has or would have, training nothing).

    Args:
        backbone: The backbone config, with its ``_scope_`` (e.g. ``'mmdet'``), as in a model
            config's ``model.backbone``.
        cache_dir: Where checkpoints are kept, one file per cache key.
        name: Readable prefix of the file name.
        **overrides: Any of :data:`DEFAULT_SETTINGS`.
    """
    unknown = set(overrides) - set(DEFAULT_SETTINGS)
    if unknown:
        raise KeyError(f'unknown pretraining settings {sorted(unknown)}; valid: '
                       f'{sorted(DEFAULT_SETTINGS)}')
    settings = dict(DEFAULT_SETTINGS, **overrides)
    key = pretrain_key(backbone, settings)
    path = osp.join(cache_dir, f'{name}_{key}.pth')
    if not train:
        return path
    if osp.exists(path):
        log(f'pretrained backbone: cache hit {path}')
        return path
    log(f'pretrained backbone: training {name} ({settings})')
    state_dict, accuracy = train_classifier(backbone, settings, log)
    meta = dict(settings=settings, backbone=_plain(backbone), heldout_accuracy=accuracy,
                key=key)
    os.makedirs(cache_dir, exist_ok=True)
    tmp = f'{path}.tmp{os.getpid()}'
    torch.save(dict(state_dict=state_dict, meta=meta), tmp)
    os.replace(tmp, path)
    log(f'pretrained backbone: {path} (held-out accuracy {accuracy:.3f})')
    return path


def train_classifier(backbone: dict, settings: dict,
                     log: Callable = print) -> Tuple[dict, float]:
    """Train ``backbone`` + global pooling + a linear layer on digit classification.

    Returns the backbone's state dict and its accuracy on the held-out images.
    """
    from mmengine.registry import MODELS, DefaultScope

    from mmkd.datasets import digit_classification_set
    s = settings
    torch.manual_seed(s['seed'])
    cfg = copy.deepcopy(_plain(backbone))
    scope = cfg.pop('_scope_', 'mmdet')
    num_stages = cfg.get('num_stages', 4)
    cfg.update(out_indices=(num_stages - 1, ), frozen_stages=-1, norm_eval=False)
    cfg.pop('init_cfg', None)
    with DefaultScope.overwrite_default_scope(scope):
        net = MODELS.build(cfg)
    net.init_weights()
    net.eval()  # mmdet's ResNet.train() returns None: no chaining
    with torch.no_grad():
        channels = net(torch.zeros(1, 3, s['size'], s['size']))[-1].shape[1]
    model = _Classifier(net, channels)

    images, labels = digit_classification_set(s['num_images'], s['size'], s['seed'])
    held_images, held_labels = digit_classification_set(s['num_heldout'], s['size'],
                                                        s['seed'], start=s['num_images'])
    optimizer = torch.optim.AdamW(model.parameters(), lr=s['lr'],
                                  weight_decay=s['weight_decay'])
    warmup = max(1, s['iters'] // 20)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda i: min(1.0, (i + 1) / warmup) * 0.5 *
        (1 + math.cos(math.pi * min(i, s['iters']) / s['iters'])))
    generator = torch.Generator().manual_seed(s['seed'])
    order = torch.randperm(len(labels), generator=generator)
    position = 0
    model.train()
    for it in range(s['iters']):
        if position + s['batch_size'] > len(order):
            order, position = torch.randperm(len(labels), generator=generator), 0
        index = order[position:position + s['batch_size']]
        position += s['batch_size']
        loss = F.cross_entropy(model(_to_input(images[index.numpy()])),
                               torch.from_numpy(labels[index.numpy()]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        if (it + 1) % max(1, s['iters'] // 10) == 0:
            log(f'pretrain iter {it + 1}/{s["iters"]}: loss {loss.item():.4f}')
    accuracy = _accuracy(model, held_images, held_labels)
    return {k: v.detach().clone() for k, v in net.state_dict().items()}, accuracy


class _Classifier(nn.Module):

    def __init__(self, backbone: nn.Module, channels: int, num_classes: int = 10):
        super().__init__()
        self.backbone = backbone
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x):
        return self.fc(self.backbone(x)[-1].mean((2, 3)))


@torch.no_grad()
def _accuracy(model: nn.Module, images, labels, batch_size: int = 256) -> float:
    model.eval()
    correct = 0
    for start in range(0, len(labels), batch_size):
        logits = model(_to_input(images[start:start + batch_size]))
        correct += (logits.argmax(1).numpy() == labels[start:start + batch_size]).sum()
    return float(correct) / max(1, len(labels))


def _to_input(images) -> torch.Tensor:
    """uint8 RGB ``(N, H, W, 3)`` -> normalised float ``(N, 3, H, W)``."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float()
    return (x - _MEAN) / _STD


def _plain(cfg) -> dict:
    """A config dict as plain JSON-able Python (tuples as lists), for hashing and meta."""
    return json.loads(json.dumps(cfg.to_dict() if hasattr(cfg, 'to_dict') else dict(cfg)))


def set_pretrained_backbone(cfg, checkpoint: Optional[str]):
    """Point the backbone of ``cfg``'s model at ``checkpoint`` through mmengine's
    ``init_cfg=dict(type='Pretrained', ...)``; for a ``Distiller`` config, the student's
    backbone (its teacher comes from ``teacher_ckpt``). ``None`` leaves ``cfg`` unchanged.
    """
    if checkpoint is None:
        return cfg
    init_cfg = dict(type='Pretrained', checkpoint=checkpoint)
    model = cfg.model
    if 'student' in model:
        student = model.student
        if 'cfg_path' not in student:
            student.backbone.init_cfg = init_cfg
        elif student.get('pretrained', True) is False:
            raise ValueError('the student is built with pretrained=False, which drops a '
                             'Pretrained init_cfg; remove pretrained=False to load '
                             f'{checkpoint}.')
        else:
            from mmkd.models.distillers.model_config import load_model_file
            options = dict(student.get('cfg_options') or {})
            # a config that sets init_cfg=None (no ImageNet weights) is replaced, not merged
            backbone = load_model_file(student.cfg_path).model.backbone
            options['model.backbone.init_cfg'] = (
                dict(init_cfg, _delete_=True) if 'init_cfg' in backbone else init_cfg)
            student.cfg_options = options
    else:
        model.backbone.init_cfg = init_cfg
    return cfg
