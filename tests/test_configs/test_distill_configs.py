"""Every distillation config under configs/distill loads, and the COCO / Cityscapes ones build
their Distiller and compute every distillation loss on a tiny batch (random init, no download):
each finite and > 0 unless the batch makes it 0 by construction, together a gradient for the
student.

Building one model-zoo pair with real weights takes 2-4 s on 2 CPU cores (the teachers have up
to 95M parameters), so every zoo config is built on the 'meta' device (no memory, no init: the
recorders, connectors, losses and mappings are all validated at build), and a real forward
runs for one config per detector family and for Cityscapes by default; the other forwards are
marked slow (``pytest -m slow``). The embedded-dataset configs are trained for a few
iterations in test_embedded_distill_training.py. New config files are picked up by the glob. The zoo
builds are also compared with the models of the explicit files the recipes replaced
(test_config_identity.py has the digits configs).
"""
import copy
import functools
import glob
import json
import math
import os.path as osp

import pytest
import torch
from config_fingerprint import FIXTURE, fingerprint
from mmengine.config import Config

from mmkd.testing import build_random_distiller, det_batch, seg_batch, trains_masks

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DISTILL_DIR = osp.join(REPO, 'configs', 'distill')
CONFIGS = sorted(p for p in glob.glob(f'{DISTILL_DIR}/**/*.py', recursive=True)
                 if f'{osp.sep}_base_{osp.sep}' not in p)
ZOO_CONFIGS = [p for p in CONFIGS if not p.endswith('_digits.py')]
# One real forward per detector family and for Cityscapes in the default run, each with another
# method (the digits trainings run every method in the default run too), and CrossKD's
# published pair (its cross head runs the teacher's GFL head on the student's features).
FAST_FORWARD = ('fgd_fpn_retina-x101', 'mgd_fpn_fcos-r101', 'pcka_fpn_gfl-r101',
                'crosskd_head_gfl-r101',
                'pcka_fpn_frcnn-r101', 'ssim_head_pspnet-r101',
                # the auxiliary heads' logits: the teacher runs its auxiliary head too
                'dist_logits_deeplabv3-r101_deeplabv3-r18')
# PSPNet's SyncBN needs a process group: plain BN, and 64x64 crops instead of 512x1024.
SMALL_SEG = {'model.data_preprocessor.size': (64, 64),
             'model.backbone.norm_cfg': dict(type='BN', requires_grad=True),
             'model.decode_head.norm_cfg': dict(type='BN', requires_grad=True),
             'model.auxiliary_head.norm_cfg': dict(type='BN', requires_grad=True)}


def config_id(path):
    return osp.relpath(path, DISTILL_DIR)


@functools.lru_cache(maxsize=None)
def _load(path):
    return Config.fromfile(path)


def load(path):
    """A fresh copy of the config (each file is parsed once per session)."""
    return copy.deepcopy(_load(path))


def is_seg(cfg):
    return cfg.get('default_scope') == 'mmseg'


def det_size(model) -> int:
    """64 px, or 256 px for a DETR that picks its queries among its encoder's tokens (mmdet's
    DINO takes the best 900 of them: 85 at 64 px, 1360 at 256 px)."""
    models = [model.student, *model.teachers.values()]
    return 256 if any(getattr(m, 'num_queries', 0) > 85 for m in models) else 64


def build_distiller(cfg, device=None):
    """The config's Distiller with random init: no teacher_ckpt, no ImageNet weights."""
    return build_random_distiller(cfg, SMALL_SEG if is_seg(cfg) else None, device)


def test_the_glob_finds_every_kind_of_config():
    names = [osp.basename(p) for p in CONFIGS]
    assert len(names) == len(set(names)), 'config file names must be unique'
    assert any(n.endswith('_coco.py') for n in names)
    assert any('cityscapes' in n for n in names)
    assert any(n.endswith('_digits.py') for n in names)


@pytest.mark.parametrize('path', CONFIGS, ids=config_id)
def test_config_loads_and_wires_every_loss(path):
    cfg = load(path)
    model = cfg.model
    assert model.type == 'Distiller' and model._scope_ == 'mmkd'
    assert cfg.val_cfg.type == 'mmkd.DistillValLoop'
    assert model.get('distill_losses') or model.get('recipes'), \
        'a distillation config needs at least one loss or recipe'
    losses = model.get('distill_losses') or {}
    assert set(losses) == set(model.get('loss_forward_mappings') or {})
    assert all(name.startswith('loss_') for name in losses)
    teachers = model.get('teachers') or {'teacher': dict(model.teacher, ckpt=model.teacher_ckpt)}
    for teacher in teachers.values():
        if path.endswith('_digits.py'):
            assert teacher['ckpt'].startswith('work_dirs/') and teacher['ckpt'].endswith(
                'iter_600.pth')
        else:  # a model-zoo teacher: its published weights
            assert teacher['ckpt'].startswith('https://download.openmmlab.com/')
            assert teacher['pretrained'] is False  # its weights come from its ckpt
    if not path.endswith('_digits.py'):
        assert cfg.train_dataloader.dataset.data_root in ('data/coco/', 'data/cityscapes/')


@functools.lru_cache(maxsize=None)
def stored_fingerprints():
    with open(FIXTURE) as f:
        return json.load(f)


@pytest.mark.parametrize('path', ZOO_CONFIGS, ids=config_id)
def test_zoo_config_builds(path):
    cfg = load(path)
    model = build_random_distiller(cfg, device='meta')  # structure only, at the config's size
    # the model of the explicit file this one replaced (recipes, shared bases: issue 12)
    assert fingerprint(cfg, model, REPO) == stored_fingerprints()[config_id(path)]
    for name, teacher in model.teachers.items():
        assert not any(p.requires_grad for p in teacher.parameters())
        # a teacher recorder past the neck needs the teacher to run its head
        if any(r.source.split('.')[0] not in ('backbone', 'neck') for r in model.recorders[name]):
            assert model.teacher_forward_modes[name] != 'extract_feat'


def forward_params():
    for path in ZOO_CONFIGS:
        fast = any(key in osp.basename(path) for key in FAST_FORWARD)
        yield pytest.param(path, id=config_id(path), marks=() if fast else pytest.mark.slow)


#: Losses that normalise each channel over its spatial positions (AT's attention map, CWD's
#: spatial softmax, SSIM's min-max range): on a map of one location both sides normalise to the
#: same constant and the loss is exactly 0, whatever the features. At 64 px the FPN levels of
#: stride >= 64 are 1x1.
SPATIALLY_NORMALISED = ('ATLoss', 'CWDLoss', 'SSIMLoss')


def computing_loss(module):
    """The loss module that does the computing (SignificanceWeightedLoss and
    DenseHeadLogitLoss wrap another one in ``.loss``)."""
    while isinstance(getattr(module, 'loss', None), torch.nn.Module):
        module = module.loss
    return module


def zero_by_construction(module, preds_T):
    """'exact' where ``module`` is 0 on this teacher map whatever the features, 'eps' where it
    is 0 up to its eps, None where it must be > 0."""
    loss = computing_loss(module)
    if not isinstance(preds_T, torch.Tensor) or preds_T.dim() != 4:
        return None
    height, width = preds_T.shape[-2:]
    if type(loss).__name__ in SPATIALLY_NORMALISED and height * width == 1:
        return 'exact'
    # PCKA's intra term compares the patches of a level: a level within one patch gives one
    # sample, and (uncentered) CKA over one sample is 1; without the inter term the loss is
    # then eps / (||K_S|| ||K_T|| + eps). PCKALoss warns about it (filtered below).
    if type(loss).__name__ == 'PCKALoss' and not loss.inter_weight and \
            height <= loss.patch_size and width <= loss.patch_size:
        return 'eps'
    return None


@pytest.fixture
def past_every_warmup():
    """The forward runs as at a late iteration: a warm-up (DKD's ``warmup_iters``, factor
    iteration / warmup_iters) would make the loss 0 at the first iteration."""
    from mmengine.logging import MessageHub
    hub = MessageHub.get_current_instance()
    before = hub.get_info('iter', 0)
    hub.update_info('iter', 10**6)
    yield
    hub.update_info('iter', before)


@pytest.mark.parametrize('path', list(forward_params()))
# 64 px inputs leave the coarse FPN levels smaller than one 16-cell PCKA patch
@pytest.mark.filterwarnings('ignore:PCKALoss intra term:UserWarning')
def test_zoo_config_computes_every_distill_loss(path, past_every_warmup):
    """Every distillation loss is finite and > 0 for a random teacher (0 only where the
    batch makes it 0 by construction, ``zero_by_construction``), and together they give the
    student a gradient."""
    cfg = load(path)
    model = build_distiller(cfg)
    if hasattr(model.student, 'bbox_head') and any(
            getattr(loss, 'mode', None) in ('regulated', 'hybrid')
            for loss in model.distill_losses.values()):
        # Self-regulation skips the images the student already detects. A dense head that is
        # not initialised scores every class near sigmoid(0) = 0.5 >= conf_thr, so every image
        # would be skipped; the Runner initialises it (RetinaNet: prior probability 0.01).
        model.student.bbox_head.init_weights()
    teacher_maps = {}
    for name, module in model.distill_losses.items():
        module.register_forward_pre_hook(
            lambda _, args, kwargs, name=name: teacher_maps.__setitem__(
                name, kwargs.get('preds_T')), with_kwargs=True)
    model.train()
    batch = seg_batch() if is_seg(cfg) else det_batch(det_size(model),
                                                      masks=trains_masks(model.student))
    losses = model(**model.data_preprocessor(batch, True), mode='loss')

    for name in model.distill_losses:
        value = losses[f'distill.{name}']
        assert value.dim() == 0 and math.isfinite(float(value.detach())), (name, value)
        zero = zero_by_construction(model.distill_losses[name], teacher_maps[name])
        if zero == 'exact':
            assert float(value) == 0.0, (name, float(value))
        elif zero is None:
            assert float(value) > 0, (name, float(value))
    task_losses = [k for k in losses if not k.startswith('distill.')]
    assert task_losses, 'the student must still compute its own losses'
    total = sum(losses[f'distill.{name}'] for name in model.distill_losses)
    params = [p for p in model.student.parameters() if p.requires_grad]
    grads = torch.autograd.grad(total, params, allow_unused=True)
    assert any(g is not None and bool(g.abs().sum() > 0) for g in grads), \
        'the distillation losses give the student no gradient'


def test_every_family_has_a_default_forward():
    fast = [p for p in ZOO_CONFIGS if any(k in osp.basename(p) for k in FAST_FORWARD)]
    assert len(fast) == len(FAST_FORWARD)
