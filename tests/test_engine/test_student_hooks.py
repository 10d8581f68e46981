"""mmdet's / mmseg's hooks that inspect the model's modules, on a Distiller."""
import os
import socket
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmengine.registry import init_default_scope

from mmkd.registry import MODELS

RETINA_S = dict(cfg_path='mmdet::retinanet/retinanet_r18_fpn_1x_coco.py', pretrained=False)


def distiller(teacher_classes: int = 80):
    init_default_scope('mmdet')
    teacher = dict(RETINA_S, cfg_options={'model.bbox_head.num_classes': teacher_classes})
    return MODELS.build(dict(
        _scope_='mmkd', type='Distiller', student=dict(RETINA_S), teacher=teacher,
        recipes=[dict(type='PKD', on='neck')], input_size=64))


def runner_for(model, classes: int):
    dataset = SimpleNamespace(metainfo=dict(classes=tuple(str(i) for i in range(classes))))
    loader = SimpleNamespace(dataset=dataset)
    return SimpleNamespace(model=model, train_dataloader=loader, val_dataloader=loader,
                           logger=SimpleNamespace(warning=print))


def test_num_class_check_hook_checks_the_student_only():
    """A teacher trained on other classes (a feature recipe reads none of its scores) passes
    mmdet's NumClassCheckHook, built by name from mmdet's registry as configs name it; a
    student whose head does not match the dataset still fails it."""
    from mmdet.registry import HOOKS
    model = distiller(teacher_classes=20)  # a Runner, too, builds the model before the hooks
    hook = HOOKS.build(dict(type='NumClassCheckHook'))
    hook.before_train_epoch(runner_for(model, 80))
    hook.before_val_epoch(runner_for(model, 80))
    with pytest.raises(AssertionError, match=r'The `num_classes` \(80\) in RetinaHead of '
                       r'RetinaNet does not matches the length of `classes` 10\)'):
        hook.before_train_epoch(runner_for(model, 10))
    plain = model.student  # any other model: mmdet's check as it is
    with pytest.raises(AssertionError, match='RetinaNet does not matches'):
        hook.before_val_epoch(runner_for(plain, 10))


def _sync_norm_worker(rank: int, port: int, out: dict) -> None:
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group('gloo', rank=rank, world_size=2)
    try:
        torch.manual_seed(0)
        model = distiller()
        bn = model.student.backbone.bn1
        bn.running_mean.fill_(float(rank))  # the ranks' statistics differ
        teacher_bn = model.teacher.backbone.bn1.running_mean.clone()
        from mmdet.engine.hooks import SyncNormHook
        SyncNormHook().before_val_epoch(SimpleNamespace(model=model))
        out[rank] = (bn.running_mean.clone(),
                     torch.equal(model.teacher.backbone.bn1.running_mean, teacher_bn))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # two processes importing mmdet: about a minute here
def test_sync_norm_hook_averages_the_students_statistics_across_processes():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(_sync_norm_worker, args=(port, out), nprocs=2)
        results = dict(out)
    for rank in (0, 1):
        mean, teacher_unchanged = results[rank]
        assert torch.allclose(mean, torch.full_like(mean, 0.5)) and teacher_unchanged
