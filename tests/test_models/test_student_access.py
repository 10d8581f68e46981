"""The Distiller seen by mmdet's / mmseg's hooks as its student (student_access.py)."""
import copy
from types import SimpleNamespace

import pytest
import torch
from model_steps import train_step_losses
from test_distiller import RETINA_S, RETINA_T, build, distiller_cfg

from mmkd.testing import det_batch

YOLOX_S = dict(cfg_path='mmdet::yolox/yolox_tiny_8xb8-300e_coco.py', pretrained=False)
YOLOX_T = dict(cfg_path='mmdet::yolox/yolox_s_8xb8-300e_coco.py', pretrained=False)


@pytest.fixture(scope='module')
def distiller():
    return build(distiller_cfg())


def test_reads_reach_the_student_and_own_attributes_win(distiller):
    assert distiller.bbox_head is distiller.student.bbox_head
    assert distiller.with_neck is True and distiller.test_cfg is distiller.student.test_cfg
    # the Distiller's own submodules, methods and attributes are never the student's
    assert distiller.data_preprocessor is not distiller.student.data_preprocessor
    assert distiller.train_step.__func__ is type(distiller).train_step
    with pytest.raises(AttributeError, match=r"no attribute 'no_such_thing', and neither has "
                       r'its student \(RetinaNet\)'):
        distiller.no_such_thing


def test_sets_reach_the_student_only_for_its_attributes(distiller):
    test_cfg = distiller.student.test_cfg
    try:
        distiller.test_cfg = dict(score_thr=0.3)  # a hook changing the model's test_cfg
        assert distiller.student.test_cfg == dict(score_thr=0.3)
        assert 'test_cfg' not in distiller.__dict__
    finally:
        distiller.student.test_cfg = test_cfg
    distiller.my_flag = 1  # a new name stays on the Distiller
    assert distiller.__dict__['my_flag'] == 1 and not hasattr(distiller.student, 'my_flag')
    del distiller.my_flag


def test_yolox_mode_switch_hook_switches_the_student():
    """mmdet's YOLOXModeSwitchHook at its switch epoch: it sets model.bbox_head.use_l1 (the
    AttributeError of issue 24, at epoch 285 of 300 on COCO) and drops the mosaic pipeline."""
    from mmdet.engine.hooks import YOLOXModeSwitchHook
    model = build(distiller_cfg(YOLOX_S, YOLOX_T))
    assert model.student.bbox_head.use_l1 is False
    skipped = []
    loader = SimpleNamespace(dataset=SimpleNamespace(update_skip_type_keys=skipped.extend),
                             persistent_workers=False)
    runner = SimpleNamespace(model=model, epoch=3, max_epochs=5, train_dataloader=loader,
                             logger=SimpleNamespace(info=lambda message: None))
    hook = YOLOXModeSwitchHook(num_last_epochs=2, skip_type_keys=('Mosaic', 'RandomAffine'))
    hook.before_train_epoch(runner)
    assert model.student.bbox_head.use_l1 is True and skipped == ['Mosaic', 'RandomAffine']
    assert 'use_l1' not in model.__dict__ and model.teacher.bbox_head.use_l1 is False


@pytest.mark.parametrize('ema, update_buffers', [
    (dict(type='ExpMomentumEMA', gamma=1), True), (dict(type='ExpMomentumEMA', gamma=1), False),
    (dict(type='ExponentialMovingAverage'), False)])
def test_ema_averages_the_student_and_shares_the_frozen_teacher(ema, update_buffers):
    """mmengine's EMAHook builds its average from a deepcopy of the model: the copy shares the
    teacher (no second copy), whose weights no update or swap changes, while the student's
    average moves; checkpoints of the average hold no teacher either."""
    from mmdet.registry import MODELS as DET_MODELS
    model = build(distiller_cfg(RETINA_S, RETINA_T))
    ema = DET_MODELS.build(dict(ema, momentum=0.5, update_buffers=update_buffers),
                           default_args=dict(model=model))
    assert ema.module.teachers is model.teachers
    assert ema.module.student is not model.student
    teacher_before = copy.deepcopy(model.teacher.state_dict())
    opt = torch.optim.SGD(model.student.parameters(), lr=0.1)
    for _ in range(2):
        losses = train_step_losses(model, det_batch())
        model.parse_losses(losses)[0].backward()
        opt.step()
        opt.zero_grad()
        ema.update_parameters(model)
    for key, value in model.teacher.state_dict().items():
        assert torch.equal(value, teacher_before[key]), key
    weight = 'bbox_head.retina_cls.weight'
    averaged = ema.module.student.state_dict()[weight]
    current = model.student.state_dict()[weight]
    assert (averaged - current).abs().max() > 1e-4  # between the last two steps' weights
    assert not any(k.startswith('module.teachers.') for k in ema.state_dict())
