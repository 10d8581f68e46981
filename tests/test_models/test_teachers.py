"""Several teachers (mmkd/models/distillers/teachers.py): each loss reads its own teacher's
tensors, each teacher has its own preprocessing, forward mode and execution settings, none is
in a checkpoint, loading a checkpoint keeps the teachers' own weights, and the adaptive path
weighting combines paths of both teachers. Tiny models: the digits RetinaNet R18 and GFL R18
teachers, the half-width RetinaNet student, 64 px images."""
import copy
import os.path as osp

import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint, save_checkpoint

from mmkd.models.distillers.teachers import teacher_entries
from mmkd.registry import MODELS
from mmkd.testing import det_batch

DIGITS = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs',
                  'digits')
STUDENT = dict(cfg_path=f'{DIGITS}/retinanet_r18-w32_digits.py')
FPN = dict(type='ModuleOutputsRecorder', source='neck')
#: The GFL teacher normalises differently from the student (no mean / std): its own inputs.
GFL = dict(cfg_path=f'{DIGITS}/gfl_r18_digits.py', recorders=dict(fpn=FPN),
           cfg_options={'model.data_preprocessor.mean': [0.0, 0.0, 0.0],
                        'model.data_preprocessor.std': [1.0, 1.0, 1.0]})
RETINA = dict(cfg_path=f'{DIGITS}/retinanet_r18_digits.py', recorders=dict(fpn=FPN))


def mapping(teacher, level):
    return dict(preds_S=dict(from_student=True, recorder='fpn', data_idx=level),
                preds_T=dict(from_student=False, teacher=teacher, recorder='fpn',
                             data_idx=level))


def two_teacher_cfg(gfl=None, retina=None, **overrides):
    """GFL level 0 and RetinaNet level 1 against the student's, one path each."""
    cfg = dict(
        _scope_='mmkd',
        type='Distiller',
        student=copy.deepcopy(STUDENT),
        teachers=dict(gfl=dict(copy.deepcopy(GFL), **(gfl or {})),
                      retina=dict(copy.deepcopy(RETINA), **(retina or {}))),
        student_recorders=dict(fpn=FPN),
        distill_losses=dict(loss_gfl=dict(type='MSEFeatureLoss'),
                            loss_retina=dict(type='MSEFeatureLoss')),
        loss_forward_mappings=dict(loss_gfl=mapping('gfl', 0), loss_retina=mapping('retina', 1)),
        weighting=dict(type='UncertaintyWeighting'))
    cfg.update(overrides)
    return cfg


def build(cfg):
    init_default_scope('mmdet')
    torch.manual_seed(0)
    return MODELS.build(cfg)


@pytest.fixture(scope='module')
def distiller():
    return build(two_teacher_cfg(gfl=dict(forward_mode='tensor'),
                                 retina=dict(forward_mode='tensor', early_stop=False)))


def by_hand(model, batch):
    """Each teacher's FPN maps on its own preprocessing of ``batch``, and the student's."""
    model.train()
    student_data = model.student.data_preprocessor(copy.deepcopy(batch), True)
    with torch.no_grad():
        return dict(
            gfl=model.teachers['gfl'].extract_feat(
                model.teachers['gfl'].data_preprocessor(copy.deepcopy(batch), True)['inputs']),
            retina=model.teachers['retina'].extract_feat(student_data['inputs']),
            student=model.student.extract_feat(student_data['inputs']))


def received_arguments(model, batch):
    """The keyword arguments each distillation loss receives in one training forward, and the
    loss dict."""
    seen, handles = {}, []
    for name, loss in model.distill_losses.items():
        handles.append(loss.register_forward_pre_hook(
            lambda _, args, kwargs, name=name: seen.__setitem__(name, kwargs), with_kwargs=True))
    try:
        model.train()
        losses = model(**model.data_preprocessor(copy.deepcopy(batch), True), mode='loss')
    finally:
        for handle in handles:
            handle.remove()
    return seen, losses


def test_each_loss_receives_its_own_teachers_tensors(distiller):
    batch = det_batch()
    expected = by_hand(distiller, batch)
    seen, losses = received_arguments(distiller, batch)

    assert torch.equal(seen['loss_gfl']['preds_T'], expected['gfl'][0])
    assert torch.equal(seen['loss_retina']['preds_T'], expected['retina'][1])
    assert not torch.allclose(expected['gfl'][1], expected['retina'][1]), 'teachers differ'
    for name, teacher, level in (('loss_gfl', 'gfl', 0), ('loss_retina', 'retina', 1)):
        raw = torch.mean((expected['student'][level] - expected[teacher][level]) ** 2)
        log_var = distiller.weighting.log_vars[name].detach()
        assert losses[f'distill.{name}'].item() == pytest.approx(
            (torch.exp(-log_var) * raw + log_var).item(), rel=1e-5)


def test_each_teacher_has_its_own_preprocessing():
    model = build(two_teacher_cfg())
    batch = det_batch()
    data = model.data_preprocessor(copy.deepcopy(batch), True)
    raw = torch.stack(batch['inputs'])[:, [2, 1, 0]].float()  # bgr_to_rgb, no normalisation
    assert set(data['teacher_inputs']) == {'gfl'}, 'RetinaNet preprocesses like the student'
    assert torch.allclose(data['teacher_inputs']['gfl'], raw)
    assert not torch.allclose(data['inputs'], raw)
    assert data['teacher_data_samples']['gfl'][0] is not data['data_samples'][0]


def test_each_teacher_runs_in_its_own_mode_precision_and_early_stop(distiller):
    assert distiller.teacher_forward_modes == dict(gfl='tensor', retina='tensor')
    assert distiller.teacher_runners['gfl'].stops_early
    assert not distiller.teacher_runners['retina'].stops_early
    head_calls = dict(gfl=0, retina=0)
    handles = [distiller.teachers[name].bbox_head.cls_convs[0].register_forward_hook(
        lambda *_, name=name: head_calls.__setitem__(name, head_calls[name] + 1))
        for name in head_calls]
    try:
        received_arguments(distiller, det_batch())
    finally:
        for handle in handles:
            handle.remove()
    # GFL stops once its neck is recorded; RetinaNet (early_stop=False) runs its head too,
    # once per FPN level
    assert head_calls == dict(gfl=0, retina=3)

    model = build(two_teacher_cfg(retina=dict(precision='bf16')))
    assert model.teacher_forward_modes == dict(gfl='extract_feat', retina='extract_feat')
    assert model.teacher_runners['gfl'].precision is None
    assert model.teacher_runners['retina'].precision == 'bf16'


def test_teachers_are_frozen_and_out_of_the_optimizer(distiller):
    from mmkd.engine import DistillOptimWrapperConstructor
    wrapper = DistillOptimWrapperConstructor(
        dict(optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05)))(distiller)
    in_optimizer = {id(p) for g in wrapper.optimizer.param_groups for p in g['params']}
    distiller.train()
    for teacher in distiller.teachers.values():
        assert not teacher.training
        assert not any(p.requires_grad or id(p) in in_optimizer for p in teacher.parameters())


def test_uncertainty_weighting_weighs_paths_of_both_teachers(distiller):
    with torch.no_grad():
        distiller.weighting.log_vars['loss_gfl'].fill_(1.0)
        distiller.weighting.log_vars['loss_retina'].fill_(-0.5)
    hub = MessageHub.get_instance('test_teachers_weighting')
    try:
        batch = det_batch()
        expected = by_hand(distiller, batch)
        _, losses = received_arguments(distiller, batch)
        for name, teacher, level, alpha in (('loss_gfl', 'gfl', 0, 1.0),
                                            ('loss_retina', 'retina', 1, -0.5)):
            raw = torch.mean((expected['student'][level] - expected[teacher][level]) ** 2)
            assert losses[f'distill.{name}'].item() == pytest.approx(
                (torch.exp(torch.tensor(-alpha)) * raw + alpha).item(), rel=1e-5)
            assert hub.get_scalar(f'train/distill_weight.{name}').current() == pytest.approx(
                torch.exp(torch.tensor(-alpha)).item())
        total = losses['distill.loss_gfl'] + losses['distill.loss_retina']
        grads = torch.autograd.grad(total, [distiller.weighting.log_vars['loss_gfl'],
                                            distiller.weighting.log_vars['loss_retina']])
        assert all(g.abs() > 0 for g in grads), 'both paths train their weight'
    finally:
        with torch.no_grad():
            for log_var in distiller.weighting.log_vars.values():
                log_var.zero_()


def teacher_ckpt(path, model, value):
    state = {k: torch.full_like(v, value) if v.is_floating_point() else v
             for k, v in model.state_dict().items()}
    torch.save({'state_dict': state}, path)
    return str(path)


def test_checkpoints_hold_no_teacher_and_loading_one_keeps_the_teachers_ckpts(
        distiller, tmp_path):
    ckpts = dict(gfl=teacher_ckpt(tmp_path / 'gfl.pth', distiller.teachers['gfl'], 0.25),
                 retina=teacher_ckpt(tmp_path / 'retina.pth', distiller.teachers['retina'], 0.5))
    cfg = two_teacher_cfg(gfl=dict(ckpt=ckpts['gfl']), retina=dict(ckpt=ckpts['retina']))
    model = build(cfg)
    for name, path in ckpts.items():
        assert all(torch.equal(v, torch.load(path)['state_dict'][k])
                   for k, v in model.teachers[name].state_dict().items())
    with torch.no_grad():
        model.student.backbone.conv1.weight.fill_(0.75)
    save_checkpoint(model.state_dict(), str(tmp_path / 'distill.pth'))
    saved = torch.load(tmp_path / 'distill.pth')
    assert saved and not any(k.startswith('teachers.') for k in saved)
    assert any(k.startswith('student.') for k in saved)

    fresh = build(cfg)  # resume: a new model from the config, then the checkpoint
    load_checkpoint(fresh, str(tmp_path / 'distill.pth'), strict=True)
    assert torch.all(fresh.student.backbone.conv1.weight == 0.75)
    for name, path in ckpts.items():
        stored = torch.load(path)['state_dict']
        assert all(torch.equal(v, stored[k]) for k, v in fresh.teachers[name].state_dict().items())


DEFAULTS = dict(ckpt=None, recorders=None, forward_mode='auto', precision=None,
                channels_last=False, early_stop=True, compile=False, cast_weights=False)


def test_single_teacher_form_is_the_entry_named_teacher():
    entries = teacher_entries(dict(cfg_path='t.py'), None,
                              dict(DEFAULTS, ckpt='t.pth', precision='bf16'))
    assert entries == dict(teacher=dict(DEFAULTS, ckpt='t.pth', precision='bf16',
                                        model=dict(cfg_path='t.py')))


def test_entry_settings_override_the_shared_ones():
    entries = teacher_entries(None, dict(a=dict(cfg_path='a.py', precision='fp32'),
                                         b=dict(cfg_path='b.py')),
                              dict(DEFAULTS, precision='bf16'))
    assert entries['a']['precision'] == 'fp32' and entries['b']['precision'] == 'bf16'
    assert entries['b']['model'] == dict(cfg_path='b.py')


@pytest.mark.parametrize('teacher, teachers, defaults, error, match', [
    (dict(cfg_path='t.py'), dict(a=dict(cfg_path='a.py')), {}, ValueError, 'not both'),
    (None, None, {}, ValueError, 'needs a teacher'),
    (None, dict(a=dict(cfg_path='a.py')), dict(ckpt='t.pth'), ValueError,
     r"\['teacher_ckpt'\] belong to the single-teacher form"),
    (None, dict(a=dict(cfg_path='a.py')), dict(recorders=dict(fpn=FPN)), ValueError,
     r"\['teacher_recorders'\] belong to the single-teacher form"),
    (None, dict(student=dict(cfg_path='a.py')), {}, KeyError, 'not a valid teacher name'),
    (None, {}, {}, TypeError, 'non-empty dict'),
])
def test_teacher_arguments_errors(teacher, teachers, defaults, error, match):
    with pytest.raises(error, match=match):
        teacher_entries(teacher, teachers, dict(DEFAULTS, **defaults))


@pytest.mark.parametrize('overrides, error, match', [
    (dict(loss_forward_mappings=dict(loss_gfl=mapping('gfll', 0),
                                     loss_retina=mapping('retina', 1))),
     KeyError, r"no teacher named 'gfll'; the teachers are \['gfl', 'retina'\]"),
    (dict(loss_forward_mappings=dict(
        loss_gfl=dict(preds_S=dict(from_student=True, recorder='fpn'),
                      preds_T=dict(from_student=False, recorder='fpn')),
        loss_retina=mapping('retina', 1))),
     KeyError, 'reads a teacher but does not say which'),
    (dict(loss_forward_mappings=dict(
        loss_gfl=dict(preds_S=dict(from_student=True, teacher='gfl', recorder='fpn'),
                      preds_T=dict(from_student=False, teacher='gfl', recorder='fpn')),
        loss_retina=mapping('retina', 1))),
     KeyError, 'reads the student'),
    (dict(teacher=STUDENT), ValueError, 'not both'),
    (dict(recipes=[dict(type='PKD', on='neck')]), ValueError,
     r"\['recipes'\] work with the single-teacher form"),
    (dict(teacher_precision='fp16'), ValueError, 'runs on CUDA only'),
])
def test_distiller_errors_before_training(overrides, error, match):
    if 'CUDA' in match and torch.cuda.is_available():
        pytest.skip('fp16 is allowed where CUDA is')
    with pytest.raises(error, match=match):
        build(two_teacher_cfg(**overrides))


def test_a_teacher_recorder_error_names_the_teacher():
    with pytest.raises(KeyError, match=r"no teacher 'retina' recorder named 'neck'; "
                                       r"teachers\['retina'\].recorders defines \['fpn'\]"):
        build(two_teacher_cfg(loss_forward_mappings=dict(
            loss_gfl=mapping('gfl', 0),
            loss_retina=dict(preds_S=dict(from_student=True, recorder='fpn'),
                             preds_T=dict(from_student=False, teacher='retina',
                                          recorder='neck')))))


def test_single_teacher_accessors_name_the_teachers_when_there_are_several(distiller):
    with pytest.raises(KeyError, match=r"exists with one teacher; this one has \['gfl', "
                                       r"'retina'\]"):
        distiller.teacher
