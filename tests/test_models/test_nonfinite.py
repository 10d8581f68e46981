"""A NaN or inf distillation loss stops the step before the optimizer touches the weights
(mmkd/models/distillers/nonfinite.py), or skips it with nonfinite='skip'."""
import copy

import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapper
from mmengine.registry import init_default_scope

from mmkd.models.distillers.nonfinite import NonFiniteDistillLoss
from mmkd.registry import MODELS
from mmkd.testing import det_batch

RETINA = dict(cfg_path='mmdet::retinanet/retinanet_r18_fpn_1x_coco.py', pretrained=False)


def build(**overrides):
    cfg = dict(
        _scope_='mmkd', type='Distiller', student=copy.deepcopy(RETINA),
        teacher=copy.deepcopy(RETINA),
        student_recorders=dict(fpn=dict(type='ModuleOutputsRecorder', source='neck')),
        teacher_recorders=dict(fpn=dict(type='ModuleOutputsRecorder', source='neck')),
        distill_losses=dict(loss_pkd=dict(type='PKDLoss', loss_weight=6.0)),
        loss_forward_mappings=dict(loss_pkd=dict(
            preds_S=dict(from_student=True, recorder='fpn', data_idx=0),
            preds_T=dict(from_student=False, recorder='fpn', data_idx=0))))
    cfg.update(overrides)
    init_default_scope('mmdet')
    torch.manual_seed(0)
    return MODELS.build(cfg)


@pytest.fixture(scope='module')
def teacher_ckpt_with_one_nan(tmp_path_factory):
    """What the issue reproduced: a teacher checkpoint holding one NaN weight."""
    state = build().teacher.state_dict()
    state['backbone.conv1.weight'][0, 0, 0, 0] = float('nan')
    path = tmp_path_factory.mktemp('ckpt') / 'teacher_nan.pth'
    torch.save({'state_dict': state}, path)
    return str(path)


def sgd(model):
    return OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))


def student_weights(model):
    return {k: v.clone() for k, v in model.student.state_dict().items()}


def test_nan_teacher_stops_the_step_naming_loss_iteration_and_side(teacher_ckpt_with_one_nan):
    model = build(teacher_ckpt=teacher_ckpt_with_one_nan)
    model.train()
    before = student_weights(model)
    MessageHub.get_current_instance().update_info('iter', 11)
    with pytest.raises(NonFiniteDistillLoss) as err:
        model.train_step(det_batch(), sgd(model))
    message = str(err.value)
    assert "'loss_pkd' is nan at iteration 12" in message
    assert 'teacher input preds_T' in message and 'teacher checkpoint' in message
    assert "nonfinite='skip'" in message
    after = student_weights(model)
    assert all(torch.equal(before[k], after[k]) for k in before)
    # the recorders were emptied: the next step starts clean
    assert all(not r.data_buffer for r in model.teacher_recorders)


def test_skip_mode_leaves_weights_and_optimizer_alone_and_counts(teacher_ckpt_with_one_nan):
    model = build(teacher_ckpt=teacher_ckpt_with_one_nan, nonfinite='skip')
    model.train()
    optim = sgd(model)
    before = student_weights(model)
    log_vars = model.train_step(det_batch(), optim)
    assert model.nonfinite_guard.skipped == 1
    assert float(log_vars['distill.loss_pkd']) == 0.0  # the NaN stays out of the averages
    assert all(torch.equal(before[k], v) for k, v in student_weights(model).items())
    assert not optim.optimizer.state  # no momentum was accumulated
    hub = MessageHub.get_current_instance()
    assert hub.get_scalar('train/distill_skipped_steps').current() == 1
    # a finite teacher again: the step updates the student
    model.teacher.backbone.conv1.weight.data.nan_to_num_(0.0)
    model.train_step(det_batch(), optim)
    assert model.nonfinite_guard.skipped == 1
    assert any(not torch.equal(before[k], v) for k, v in student_weights(model).items())


def test_a_loss_that_overflows_on_finite_inputs_is_named_as_such():
    model = build(distill_losses=dict(loss_pkd=dict(type='PKDLoss', loss_weight=6.0,
                                                    eps=1e-6)))
    model.train()
    model.distill_losses['loss_pkd'].compute = lambda preds_S, preds_T: (
        preds_S.sum() * float('inf'))
    with pytest.raises(NonFiniteDistillLoss, match="'loss_pkd' is (inf|nan).*inputs are finite"):
        model.train_step(det_batch(), sgd(model))


def test_bad_modes_and_arguments_fail_at_build():
    with pytest.raises(ValueError, match="nonfinite must be one of"):
        build(nonfinite='ignore')
    with pytest.raises(ValueError, match='takes no data_preprocessor'):
        build(data_preprocessor=dict(type='DetDataPreprocessor'))
    with pytest.raises(KeyError, match="reads the teacher, but losses detach only"):
        build(distill_losses=dict(loss_pkd=dict(type='KDLoss')),
              loss_forward_mappings=dict(loss_pkd=dict(
                  preds_S=dict(from_student=True, recorder='fpn', data_idx=0),
                  preds_T=dict(from_student=False, recorder='fpn', data_idx=0),
                  weight=dict(from_student=False, recorder='fpn', data_idx=1))))
    with pytest.raises(ValueError, match='loss_weight must be a finite number >= 0'):
        build(distill_losses=dict(loss_pkd=dict(type='PKDLoss', loss_weight=-6.0)))
    with pytest.raises(TypeError, match="Write loss_weight=6.0"):
        build(distill_losses=dict(loss_pkd=dict(type='PKDLoss', loss_weight='6')))
