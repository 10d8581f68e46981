"""A stage mmkd does not ship (mmkd/models/distillers/stages.py), configured through the
Distiller's ``stages`` argument: built by the wiring, its recorders added, its outputs read by
a loss like a recorder, run after the student's forward, reset after the step; the Distiller
is not edited for it (issue 26)."""
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config

from mmkd.models.distillers.loss_inputs import PerSide
from mmkd.models.distillers.stages import STAGES, DistillStage, build_stage, stage_configs
from mmkd.testing import build_random_distiller, det_batch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DIGITS_DET = osp.join(REPO, 'configs', 'distill', '_base_', 'digits_det.py')


class PooledLevels(DistillStage):
    """Each model's neck levels, average-pooled to (N, C) per level; counts its runs."""

    sides = ('student', 'teacher')

    def __init__(self, cfgs, student, teacher):
        super().__init__(cfgs, student, teacher)
        self.runs = 0
        for name, options in self.cfgs.items():
            if set(options) - {'source'}:
                raise KeyError(f'{self.argument}[{name!r}] takes only source.')

    def recorders(self, side):
        return {f'{name}_levels': dict(type='ModuleOutputsRecorder', source=o['source'])
                for name, o in self.cfgs.items()}

    def reads(self):
        return [dict(from_student=False, recorder=f'{name}_levels') for name in self.cfgs]

    def run(self, step):
        self.runs += 1
        for name in self.cfgs:
            output = PerSide()
            for side in self.sides:
                levels = step.recorders[side].get_record_data(f'{name}_levels')
                output[side] = [F.adaptive_avg_pool2d(x, 1).flatten(1) for x in levels]
            self.outputs[name] = output


@pytest.fixture
def registered():
    STAGES.register_module(module=PooledLevels, force=True)
    yield PooledLevels
    STAGES.module_dict.pop('PooledLevels', None)


def pooled_config(name='pooled'):
    cfg = Config.fromfile(DIGITS_DET)
    cfg.merge_from_dict(dict(model=dict(
        stages=dict(PooledLevels={name: dict(source='neck')}),
        distill_losses=dict(loss_pooled=dict(type='MSEFeatureLoss', loss_weight=1.0)),
        loss_forward_mappings=dict(loss_pooled=dict(
            preds_S=dict(from_student=True, recorder=name, data_idx=2),
            preds_T=dict(from_student=False, recorder=name, data_idx=2))))))
    return cfg


def test_a_registered_stage_feeds_a_loss_and_is_reset_after_the_step(registered):
    torch.manual_seed(0)
    model = build_random_distiller(pooled_config()).train()
    stage = model.stages['PooledLevels']
    assert isinstance(stage, PooledLevels) and stage.names == ['pooled']
    assert 'pooled_levels' in model.student_recorders.recorders
    assert 'pooled_levels' in model.teacher_recorders.recorders
    kept = {}
    reset = stage.reset
    stage.reset = lambda: (kept.update(stage.outputs), reset())
    batch = model.data_preprocessor(det_batch(size=64), True)
    losses = model(**batch, mode='loss')
    assert stage.runs == 1 and stage.outputs == {}        # run once, reset after the losses
    # The loss read the stage's output: MSE of the pooled coarsest levels, computed by hand.
    with torch.no_grad():
        neck_S = model.student.neck(model.student.backbone(batch['inputs']))
        neck_T = model.teacher.neck(model.teacher.backbone(batch['inputs']))
    pooled_S, pooled_T = (F.adaptive_avg_pool2d(x[2], 1).flatten(1) for x in (neck_S, neck_T))
    torch.testing.assert_close(kept['pooled']['student'][2].detach(), pooled_S,
                               rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(losses['distill.loss_pooled'].detach(),
                               F.mse_loss(pooled_S, pooled_T), rtol=1e-4, atol=1e-6)
    losses['distill.loss_pooled'].backward()
    assert model.student.neck.fpn_convs[2].conv.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.teacher.parameters())


def test_a_failing_step_resets_the_stages_too(registered):
    model = build_random_distiller(pooled_config()).train()
    stage = model.stages['PooledLevels']

    def broken(step):
        PooledLevels.run(stage, step)
        raise RuntimeError('stage failed')
    stage.run = broken
    with pytest.raises(RuntimeError, match='stage failed'):
        model(**model.data_preprocessor(det_batch(size=64), True), mode='loss')
    assert stage.outputs == {}


def test_stage_configs_keep_the_running_order_and_refuse_a_stage_configured_twice(registered):
    order = stage_configs(dict(PooledLevels=dict(a=dict(source='neck'))),
                          teacher_replays=dict(r=dict()), cross_heads=None, distill_points=None)
    assert list(order) == ['TeacherReplays', 'CrossHeads', 'DistillPoints', 'PooledLevels']
    with pytest.raises(KeyError, match="use that one"):
        stage_configs(dict(CrossHeads=dict(x=dict())), cross_heads=None)
    with pytest.raises(KeyError, match='No distillation stage is configured by'):
        stage_configs(None, crossheads=dict())


def test_build_errors_name_the_fix(registered):
    with pytest.raises(KeyError, match='custom_imports'):
        build_stage('PoolLevels', dict(a=dict()), None, None)
    with pytest.raises(TypeError, match=r"stages\['PooledLevels'\] must be a dict"):
        build_stage('PooledLevels', [('a', {})], None, None)
    with pytest.raises(KeyError, match=r"stages\['PooledLevels'\]\['a'\] takes only source"):
        build_stage('PooledLevels', dict(a=dict(level=2)), None, None)
    # A stage output may not take a recorder's name on a side that reads it.
    assert 'fpn' in Config.fromfile(DIGITS_DET).model.student_recorders
    with pytest.raises(KeyError, match=r"\['fpn'\] has the name of a student recorder"):
        build_random_distiller(pooled_config('fpn'))
