"""Backbone pretraining on digit classification: cache by content, loading into the configs."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from tool_runs import CONFIGS

from mmkd.datasets import digit_classification_set, render_image
from mmkd.engine import pretrain
from mmkd.engine.pretrain import pretrained_backbone, set_pretrained_backbone
from mmkd.registry import MODELS

TINY = dict(num_images=16, num_heldout=8, size=32, iters=2, batch_size=8)
DET_STUDENT = f'{CONFIGS}/digits/retinanet_r18-w32_digits.py'


def backbone_of(config):
    backbone = Config.fromfile(config).model.backbone.to_dict()
    backbone['_scope_'] = 'mmdet'
    return backbone


def test_classification_images_are_not_the_detection_images():
    images, labels = digit_classification_set(4, size=64, seed=0)
    assert images.shape == (4, 64, 64, 3) and images.dtype.name == 'uint8'
    assert labels.tolist() == [render_image(0, 'pretrain', i, size=64, min_digits=1,
                                            max_digits=1, min_scale=20, max_scale=56
                                            ).instances[0].digit for i in range(4)]
    for split in ('train', 'val'):
        other = render_image(0, split, 0, size=64, min_digits=1, max_digits=1,
                             min_scale=20, max_scale=56)
        assert not (other.image == images[0]).all()
    # a later range is a disjoint held-out set, the same images as drawn alone
    _, held = digit_classification_set(2, size=64, seed=0, start=4)
    assert held.tolist() == digit_classification_set(6, size=64, seed=0)[1][4:].tolist()


def test_cache_hit_miss_and_invalidation(tmp_path, monkeypatch):
    backbone = dict(backbone_of(DET_STUDENT), base_channels=8)
    calls = []
    real_train = pretrain.train_classifier

    def counting_train(*args, **kwargs):
        calls.append(args[1])
        return real_train(*args, **kwargs)

    monkeypatch.setattr(pretrain, 'train_classifier', counting_train)
    first = pretrained_backbone(backbone, str(tmp_path), **TINY)
    assert len(calls) == 1 and osp.isfile(first)
    meta = torch.load(first, weights_only=False)['meta']
    assert meta['settings']['iters'] == 2 and 0.0 <= meta['heldout_accuracy'] <= 1.0
    # hit: same inputs, no training; keys that do not change the weights do not matter
    again = dict(backbone, out_indices=(3, ), norm_eval=True)
    assert pretrained_backbone(again, str(tmp_path), **TINY) == first and len(calls) == 1
    # miss: other settings or another backbone
    other = pretrained_backbone(backbone, str(tmp_path), **dict(TINY, iters=1))
    assert other != first and len(calls) == 2
    # (16, not 4: torch 2.13's oneDNN corrupts the heap training a 4-channel ResNet after
    # another one at OMP_NUM_THREADS=1, "double free or corruption"; fine with mkldnn off)
    assert pretrained_backbone(dict(backbone, base_channels=16), str(tmp_path),
                               **TINY) not in (first, other)
    assert len(calls) == 3
    # invalidation: a change to the code that produces it gives a new key
    key = pretrain.pretrain_key(backbone, dict(pretrain.DEFAULT_SETTINGS, **TINY))
    assert osp.basename(first) == f'backbone_{key}.pth'
    source = tmp_path / 'pretrain_copy.py'
    source.write_text(open(pretrain.__file__).read() + '\n# changed\n')
    monkeypatch.setattr(pretrain, '__file__', str(source))
    assert pretrain.pretrain_key(backbone, dict(pretrain.DEFAULT_SETTINGS, **TINY)) != key
    with pytest.raises(KeyError, match='unknown pretraining settings'):
        pretrained_backbone(backbone, str(tmp_path), epochs=3)


@pytest.fixture(scope='module')
def student_backbone_ckpt(tmp_path_factory):
    return pretrained_backbone(backbone_of(DET_STUDENT), str(tmp_path_factory.mktemp('pre')),
                               **TINY)


@pytest.mark.parametrize('config, scope', [
    (DET_STUDENT, 'mmdet'),
    (f'{CONFIGS}/digits/semfpn_r18-w32_digits.py', 'mmseg'),
    (f'{CONFIGS}/distill/pkd/pkd_fpn_retina-r18_retina-r18w32_digits.py', 'mmdet'),
    (f'{CONFIGS}/distill/cwd/cwd_logits_semfpn-r18_semfpn-r18w32_digits.py', 'mmseg'),
    # Mask R-CNN's config sets the backbone's init_cfg=None (no ImageNet weights): replaced
    (f'{CONFIGS}/digits/mask-rcnn_r18-w32_digits.py', 'mmdet'),
    (f'{CONFIGS}/distill/maskkd/maskkd_mask-head_mask-rcnn-r18_mask-rcnn-r18w32_digits.py',
     'mmdet'),
    # DINO (the benchmark's detr task)
    (f'{CONFIGS}/digits/dino_r18-w32_digits.py', 'mmdet'),
])
def test_pretrained_checkpoint_loads_into_the_digits_configs(config, scope,
                                                             student_backbone_ckpt):
    """mmengine's own Pretrained init fills every backbone weight, det and seg alike."""
    cfg = set_pretrained_backbone(Config.fromfile(config), student_backbone_ckpt)
    cfg.model.pop('teacher_ckpt', None)
    init_default_scope(scope)
    model = MODELS.build(cfg.model)
    model.init_weights()
    backbone = model.student.backbone if hasattr(model, 'student') else model.backbone
    saved = torch.load(student_backbone_ckpt, weights_only=False)['state_dict']
    own = backbone.state_dict()
    assert set(own) == set(saved)  # no missing, no unexpected key
    assert all(torch.equal(own[k], saved[k]) for k in own)


def test_pretrained_false_student_is_refused(student_backbone_ckpt):
    cfg = Config(dict(model=dict(student=dict(cfg_path=DET_STUDENT, pretrained=False))))
    with pytest.raises(ValueError, match='pretrained=False'):
        set_pretrained_backbone(cfg, student_backbone_ckpt)
