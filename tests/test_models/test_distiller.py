"""Distiller wiring on real model-zoo configs (random init, tiny inputs, no data)."""
import copy

import pytest
import torch
from mmengine.registry import init_default_scope
from model_steps import train_step_losses

from mmkd.models.losses import BaseDistillLoss
from mmkd.registry import MODELS
from mmkd.testing import det_batch, seg_batch

RETINA_S = dict(cfg_path='mmdet::retinanet/retinanet_r18_fpn_1x_coco.py', pretrained=False)
RETINA_T = dict(cfg_path='mmdet::retinanet/retinanet_r50_fpn_1x_coco.py', pretrained=False)
FASTER_S = dict(cfg_path='mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py', pretrained=False)
FASTER_T = dict(cfg_path='mmdet::faster_rcnn/faster-rcnn_r101_fpn_1x_coco.py', pretrained=False)
SMALL_SEG = {'model.data_preprocessor.size': (64, 64),
             'model.backbone.norm_cfg': dict(type='BN', requires_grad=True),
             'model.decode_head.norm_cfg': dict(type='BN', requires_grad=True),
             'model.auxiliary_head.norm_cfg': dict(type='BN', requires_grad=True)}
PSP_S = dict(cfg_path='mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py',
             pretrained=False, cfg_options=SMALL_SEG)
PSP_T = dict(cfg_path='mmseg::pspnet/pspnet_r101-d8_4xb2-80k_cityscapes-512x1024.py',
             pretrained=False, cfg_options=SMALL_SEG)


def feature_mapping(recorder='fpn', data_idx=0, connector=None):
    preds_S = dict(from_student=True, recorder=recorder, data_idx=data_idx)
    if connector:
        preds_S['connector'] = connector
    return dict(preds_S=preds_S,
                preds_T=dict(from_student=False, recorder=recorder, data_idx=data_idx))


def distiller_cfg(student=RETINA_S, teacher=RETINA_T, source='neck', **overrides):
    cfg = dict(
        _scope_='mmkd',
        type='Distiller',
        student=copy.deepcopy(student),
        teacher=copy.deepcopy(teacher),
        student_recorders=dict(fpn=dict(type='ModuleOutputsRecorder', source=source)),
        teacher_recorders=dict(fpn=dict(type='ModuleOutputsRecorder', source=source)),
        distill_losses=dict(loss_fpn0=dict(type='MSEFeatureLoss', loss_weight=1.0)),
        loss_forward_mappings=dict(loss_fpn0=feature_mapping()))
    cfg.update(overrides)
    return cfg


def build(cfg, scope='mmdet'):
    init_default_scope(scope)
    return MODELS.build(cfg)


@pytest.fixture(scope='module')
def retina_distiller():
    return build(distiller_cfg())


def test_retinanet_pair_distills_fpn_and_freezes_teacher(retina_distiller):
    model = retina_distiller
    assert model.teacher_forward_mode == 'extract_feat'  # only the neck is recorded
    losses = train_step_losses(model, det_batch())
    assert {'loss_cls', 'loss_bbox', 'distill.loss_fpn0'} <= set(losses)
    assert losses['distill.loss_fpn0'].dim() == 0 and losses['distill.loss_fpn0'] > 0
    assert not model.teacher.training and model.student.training
    assert not any(p.requires_grad for p in model.teacher.parameters())
    losses['distill.loss_fpn0'].backward()
    assert model.student.neck.fpn_convs[0].conv.weight.grad is not None
    assert all(p.grad is None for p in model.teacher.parameters())


def test_checkpoints_hold_no_teacher_and_load_back(retina_distiller):
    model = retina_distiller
    state = model.state_dict()
    assert state and not any(k.startswith('teachers.') for k in state)
    assert any(k.startswith('student.') for k in state)
    teacher_before = copy.deepcopy(model.teacher.state_dict())
    for value in state.values():
        value.data.fill_(0.5) if value.is_floating_point() else None
    result = model.load_state_dict(state, strict=True)  # teacher keys filled, none missing
    assert not result.missing_keys and not result.unexpected_keys
    for key, value in model.teacher.state_dict().items():
        assert torch.equal(value, teacher_before[key]), key


def test_faster_rcnn_pair_builds_and_distills():
    model = build(distiller_cfg(FASTER_S, FASTER_T))
    losses = train_step_losses(model, det_batch())
    assert {'loss_rpn_cls', 'loss_cls', 'distill.loss_fpn0'} <= set(losses)
    assert torch.isfinite(losses['distill.loss_fpn0'])


def test_pspnet_pair_distills_logits_through_the_teacher_head():
    cfg = distiller_cfg(PSP_S, PSP_T, source='decode_head.conv_seg')
    cfg['loss_forward_mappings'] = dict(loss_fpn0=feature_mapping(data_idx=None))
    model = build(cfg, 'mmseg')
    assert model.teacher_forward_mode == 'tensor'  # the head must run
    losses = train_step_losses(model, seg_batch())
    assert {'decode.loss_ce', 'distill.loss_fpn0'} <= set(losses)
    assert losses['distill.loss_fpn0'] > 0
    model.eval()
    with torch.no_grad():
        preds = model.val_step(seg_batch(n=1))
    assert preds[0].pred_sem_seg.data.shape[-2:] == (64, 64)


def test_teacher_with_its_own_preprocessing_gets_its_own_inputs():
    teacher = dict(RETINA_T, cfg_options={'model.data_preprocessor.mean': [0.0, 0.0, 0.0],
                                          'model.data_preprocessor.std': [1.0, 1.0, 1.0]})
    model = build(distiller_cfg(teacher=teacher))
    model.train()
    batch = det_batch()
    data = model.data_preprocessor(batch, True)
    raw = torch.stack(batch['inputs'])[:, [2, 1, 0]].float()  # bgr_to_rgb
    assert torch.allclose(data['teacher_inputs']['teacher'], raw)
    assert not torch.allclose(data['inputs'], raw)
    assert data['teacher_data_samples']['teacher'][0] is not data['data_samples'][0]
    assert 'distill.loss_fpn0' in model(**data, mode='loss')


def test_wrong_recorder_source_lists_closest_names():
    cfg = distiller_cfg()
    cfg['teacher_recorders'] = dict(fpn=dict(type='ModuleOutputsRecorder', source='nek'))
    with pytest.raises(KeyError, match=r"teacher \(RetinaNet\) has no module named 'nek'.*'neck'"):
        build(cfg)


def test_shape_mismatch_names_both_shapes_and_the_connector_to_add():
    cfg = distiller_cfg(source='backbone')
    model = build(cfg)
    with pytest.raises(ValueError, match=r'preds_S \(2, 64, 16, 16\) \(student\) and preds_T '
                       r"\(2, 256, 16, 16\).*ConvConnector', in_channels=64, out_channels=256"):
        train_step_losses(model, det_batch())
    cfg['connectors'] = dict(c0=dict(type='ConvConnector', in_channels=64, out_channels=256))
    cfg['loss_forward_mappings'] = dict(loss_fpn0=feature_mapping(connector='c0'))
    model = build(cfg)
    assert train_step_losses(model, det_batch())['distill.loss_fpn0'] > 0


@pytest.mark.parametrize('mapping, message', [
    (dict(loss_fpn0=dict(preds_S=dict(from_student=True, recorder='fpm'),
                         preds_T=dict(from_student=False, recorder='fpn'))),
     r"no student recorder named 'fpm'; student_recorders defines \['fpn'\]"),
    (dict(loss_fpn0=dict(preds_S=dict(from_student=True, recorder='fpn'))),
     r"does not map the required arguments \['preds_T'\]"),
    (dict(loss_fpn0=dict(preds_S=dict(from_student=True, recorder='fpn'),
                         preds_T=dict(from_student=False, recorder='fpn'),
                         gt=dict(from_data='data_samples'))),
     r"MSEFeatureLoss.forward has no argument 'gt'"),
    (dict(other=feature_mapping()), r"without mapping: \['loss_fpn0'\], without loss: \['other'\]"),
    (dict(loss_fpn0=dict(feature_mapping(connector='nope'))),
     r"no connector named 'nope'"),
])
def test_bad_loss_mappings_fail_at_build(mapping, message):
    with pytest.raises(KeyError, match=message):
        build(distiller_cfg(loss_forward_mappings=mapping))


class ToyLogitLoss(BaseDistillLoss):
    """Stands for any loss comparing class scores (KD, DKD ...)."""
    requires_equal_num_classes = True

    def compute(self, preds_S, preds_T, data_samples=None):
        return (preds_S - preds_T).abs().mean()


def test_class_count_mismatch_is_refused_for_losses_that_compare_classes():
    MODELS.register_module(module=ToyLogitLoss, force=True)
    cfg = distiller_cfg(
        student=dict(RETINA_S, cfg_options={'model.bbox_head.num_classes': 10}),
        distill_losses=dict(loss_fpn0=dict(type='ToyLogitLoss')))
    with pytest.raises(ValueError, match='student predicts 10 classes and the teacher 80'):
        build(cfg)


def test_teacher_checkpoint_errors(tmp_path, retina_distiller):
    with pytest.raises(FileNotFoundError, match='does not exist'):
        build(distiller_cfg(teacher_ckpt=str(tmp_path / 'missing.pth')))
    garbage = tmp_path / 'garbage.pth'
    garbage.write_bytes(b'not a checkpoint')
    with pytest.raises(ValueError, match='could not be read as a torch checkpoint'):
        build(distiller_cfg(teacher_ckpt=str(garbage)))
    wrong = tmp_path / 'student.pth'
    torch.save({'state_dict': retina_distiller.student.state_dict()}, wrong)
    with pytest.raises(ValueError, match='does not fit the teacher config'):
        build(distiller_cfg(teacher_ckpt=str(wrong)))


def test_teacher_checkpoint_is_loaded_and_survives_init_weights(tmp_path, retina_distiller):
    ckpt = tmp_path / 'teacher.pth'
    teacher_state = {k: torch.full_like(v, 0.25) if v.is_floating_point() else v
                     for k, v in retina_distiller.teacher.state_dict().items()}
    torch.save({'state_dict': teacher_state, 'meta': {'note': object.__name__}}, ckpt)
    model = build(distiller_cfg(teacher_ckpt=str(ckpt)))
    model.init_weights()  # what mmengine's Runner does after building
    weight = model.teacher.backbone.conv1.weight
    assert torch.all(weight == 0.25)


def test_unscoped_inline_model_gets_a_clear_error():
    with pytest.raises(ValueError, match=r"Add _scope_='mmdet'"):
        build(distiller_cfg(student=dict(type='RetinaNet')))


def test_gt_aware_loss_receives_the_batch_data_samples(retina_distiller):
    """FGD reads ground-truth boxes through `from_data='data_samples'`."""
    cfg = distiller_cfg(
        distill_losses=dict(loss_fgd=dict(type='FGDLoss', student_channels=256,
                                          teacher_channels=256)),
        loss_forward_mappings=dict(loss_fgd=dict(
            feature_mapping(), data_samples=dict(from_data='data_samples'))))
    model = build(cfg)
    seen = []
    original = model.distill_losses['loss_fgd'].forward
    model.distill_losses['loss_fgd'].forward = lambda preds_S, preds_T, data_samples: (
        seen.append(data_samples) or original(preds_S, preds_T, data_samples))
    model.train()
    data = model.data_preprocessor(det_batch(), True)
    losses = model(**data, mode='loss')
    assert seen[0] is data['data_samples']  # the batch's own samples, with their GT boxes
    assert seen[0][0].metainfo['batch_input_shape'] == (64, 64)
    assert torch.isfinite(losses['distill.loss_fgd']) and losses['distill.loss_fgd'] > 0


def test_distill_losses_stay_float32_under_autocast():
    model = build(distiller_cfg())  # fresh: another test sets the fixture's weights to 0.5
    model.train()
    data = model.data_preprocessor(det_batch(), True)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        losses = model(**data, mode='loss')
    assert losses['distill.loss_fpn0'].dtype == torch.float32
    assert torch.isfinite(losses['distill.loss_fpn0']) and losses['distill.loss_fpn0'] > 0


def gkd_cfg(double_backward=False, bmfi=False):
    spec = dict(recorder='fpn', data_idx=0)
    mapping = dict(
        preds_S=dict(spec, from_student=True), preds_T=dict(spec, from_student=False),
        grads_S=dict(spec, from_student=True, gradient=True),
        grads_T=dict(spec, from_student=False, gradient=True))
    loss = dict(type='GKDLoss', double_backward=double_backward)
    if bmfi:
        loss['bmfi'] = dict(student_channels=256, teacher_channels=256)
        mapping['data_samples'] = dict(from_data='data_samples')
    return distiller_cfg(distill_losses=dict(loss_gkd=loss),
                         loss_forward_mappings=dict(loss_gkd=mapping))


def test_gkd_gets_each_models_task_loss_gradient_on_the_ground_truth():
    model = build(gkd_cfg(bmfi=True))
    assert model.teacher_forward_mode == 'loss'
    seen = {}
    loss_module = model.distill_losses['loss_gkd']
    original = loss_module.forward

    def spy(**kwargs):
        seen.update(kwargs)
        return original(**kwargs)

    loss_module.forward = spy
    model.train()
    data = model.data_preprocessor(det_batch(), True)
    losses = model(**data, mode='loss')

    # Reference: the teacher's own head loss on the same batch, differentiated w.r.t. P3.
    feats = [f.detach().requires_grad_(True) for f in model.teacher.extract_feat(data['inputs'])]
    teacher_losses = model.teacher.bbox_head.loss(feats, data['data_samples'])
    total = sum(v.mean() for k, vs in teacher_losses.items() if 'loss' in k
                for v in (vs if isinstance(vs, list) else [vs]))
    expected = torch.autograd.grad(total, feats[0])[0]
    assert torch.allclose(seen['grads_T'], expected, atol=1e-6)
    assert seen['grads_S'].abs().sum() > 0 and seen['grads_S'].shape == seen['preds_S'].shape

    losses['distill.loss_gkd'].backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    assert model.student.neck.fpn_convs[0].conv.weight.grad is not None


def test_gkd_double_backward_trains_through_the_students_gradient():
    model = build(gkd_cfg(double_backward=True))
    assert model.task_gradients.create_graph
    losses = train_step_losses(model, det_batch())
    total = sum(v.mean() for k, vs in losses.items() if 'loss' in k
                for v in (vs if isinstance(vs, list) else [vs]))
    total.backward()
    head_conv = model.student.bbox_head.retina_cls.weight
    assert head_conv.grad is not None and torch.isfinite(head_conv.grad).all()


def test_gradient_spec_needs_module_outputs_and_the_loss_mode():
    cfg = gkd_cfg()
    cfg['teacher_forward_mode'] = 'extract_feat'
    with pytest.raises(ValueError, match="needs teacher_forward_mode='loss'"):
        build(cfg)
    cfg = gkd_cfg()
    cfg['teacher_recorders'] = dict(fpn=dict(type='ModuleInputsRecorder', source='neck'))
    with pytest.raises(TypeError, match='gradient=True needs a ModuleOutputsRecorder'):
        build(cfg)


def test_weighting_combines_paths_and_logs_each_weight():
    from mmengine.logging import MessageHub
    cfg = distiller_cfg(
        distill_losses=dict(loss_fpn0=dict(type='MSEFeatureLoss'),
                            loss_fpn1=dict(type='MSEFeatureLoss')),
        loss_forward_mappings=dict(loss_fpn0=feature_mapping(data_idx=0),
                                   loss_fpn1=feature_mapping(data_idx=1)),
        weighting=dict(type='UncertaintyWeighting'))
    model = build(cfg)
    with torch.no_grad():
        model.weighting.log_vars['loss_fpn1'].fill_(1.0)
    hub = MessageHub.get_instance('test_weighting')
    losses = train_step_losses(model, det_batch())
    raw = model.distill_losses['loss_fpn1']  # weighted = exp(-1) * raw + 1
    assert losses['distill.loss_fpn1'] > 1.0
    logged = hub.get_scalar('train/distill_weight.loss_fpn1').current()
    assert logged == pytest.approx(torch.exp(torch.tensor(-1.0)).item())
    assert hub.get_scalar('train/distill_weight.loss_fpn0').current() == pytest.approx(1.0)
    assert raw is not None


def test_optimizer_holds_no_teacher_and_does_not_decay_path_weights():
    from mmkd.engine import DistillOptimWrapperConstructor
    model = build(distiller_cfg(weighting=dict(type='UncertaintyWeighting')))
    wrapper = DistillOptimWrapperConstructor(
        dict(optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05)))(model)
    groups = wrapper.optimizer.param_groups
    in_optimizer = {id(p) for g in groups for p in g['params']}
    assert not any(id(p) in in_optimizer for p in model.teacher.parameters())
    assert all(id(p) in in_optimizer for p in model.student.parameters() if p.requires_grad)
    log_var = model.weighting.log_vars['loss_fpn0']
    assert [g['weight_decay'] for g in groups
            if any(p is log_var for p in g['params'])] == [0.0]


def test_segmentation_logit_kd_gets_the_pixel_labels():
    cfg = distiller_cfg(PSP_S, PSP_T, source='decode_head.conv_seg',
                        distill_losses=dict(loss_dkd=dict(type='DKDLoss')),
                        loss_forward_mappings=dict(loss_dkd=dict(
                            feature_mapping(data_idx=None),
                            labels=dict(from_data='gt_sem_seg'))))
    model = build(cfg, 'mmseg')
    losses = train_step_losses(model, seg_batch())
    assert torch.isfinite(losses['distill.loss_dkd']) and losses['distill.loss_dkd'] > 0


def test_teacher_roi_head_replayed_on_the_students_sampled_rois():
    """Two-stage logit KD: both RoI heads classify the RoIs the student sampled."""
    rois = dict(from_student=True, recorder='roi_in', data_idx=1)
    cfg = distiller_cfg(
        FASTER_S, FASTER_T,
        student_recorders=dict(
            roi_in=dict(type='MethodInputsRecorder', source='roi_head._bbox_forward'),
            roi_out=dict(type='MethodOutputsRecorder', source='roi_head._bbox_forward'),
            targets=dict(type='MethodOutputsRecorder', source='roi_head.bbox_head.loss_and_target')),
        teacher_recorders=dict(fpn=dict(type='ModuleOutputsRecorder', source='neck')),
        teacher_replays=dict(roi=dict(method='roi_head._bbox_forward',
                                      args=[dict(from_student=False, recorder='fpn'), rois])),
        distill_losses=dict(loss_kd=dict(type='KDLoss', tau=2.0),
                            loss_dkd=dict(type='DKDLoss')),
        loss_forward_mappings=dict(
            loss_kd=dict(preds_S=dict(from_student=True, recorder='roi_out', data_idx='cls_score'),
                         preds_T=dict(from_student=False, recorder='roi', data_idx='cls_score')),
            loss_dkd=dict(preds_S=dict(from_student=True, recorder='roi_out', data_idx='cls_score'),
                          preds_T=dict(from_student=False, recorder='roi', data_idx='cls_score'),
                          labels=dict(from_student=True, recorder='targets',
                                      data_idx=['bbox_targets', 0]))))
    model = build(cfg)
    assert model.teacher_forward_mode == 'extract_feat'
    seen = {}
    original = model.distill_losses['loss_kd'].forward
    model.distill_losses['loss_kd'].forward = lambda preds_S, preds_T: (
        seen.update(S=preds_S, T=preds_T,
                    rois=model.student_recorders.get_record_data('roi_in', data_idx=1))
        or original(preds_S, preds_T))
    model.train()
    data = model.data_preprocessor(det_batch(), True)
    losses = model(**data, mode='loss')
    student_rois = seen['rois']
    assert seen['S'].shape == seen['T'].shape == (student_rois.shape[0], 81)
    with torch.no_grad():
        expected = model.teacher.roi_head._bbox_forward(
            model.teacher.extract_feat(data['inputs']), student_rois)['cls_score']
    assert torch.allclose(seen['T'], expected, atol=1e-5)
    assert torch.isfinite(losses['distill.loss_kd']) and torch.isfinite(losses['distill.loss_dkd'])


def test_teacher_replay_errors_name_the_problem():
    cfg = distiller_cfg(teacher_replays=dict(fpn=dict(method='neck.forward', args=[])))
    with pytest.raises(KeyError, match='has the name of a teacher recorder'):
        build(cfg)
    cfg = distiller_cfg(teacher_replays=dict(r=dict(method='bbox_head.forwrd', args=[])))
    with pytest.raises(KeyError, match="no method 'forwrd'"):
        build(cfg)


def test_student_is_initialised_as_when_it_trains_alone():
    """Building the teacher, connectors and losses draws on a copy of the random state, so
    a seed gives the distilled student the plain student's initial weights."""
    from mmkd.models.distillers.model_config import resolve_model_cfg
    torch.manual_seed(3)
    plain = build(resolve_model_cfg(RETINA_S, 'student')[0])
    plain.init_weights()
    torch.manual_seed(3)
    model = build(distiller_cfg(connectors=dict(c=dict(type='ConvConnector', in_channels=256,
                                                       out_channels=256))))
    model.init_weights()
    own = model.student.state_dict()
    assert all(torch.equal(v, own[k]) for k, v in plain.state_dict().items())
