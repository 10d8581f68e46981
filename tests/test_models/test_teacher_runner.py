"""The teacher's execution settings (mmkd/models/distillers/teacher_runner.py) on the digits
RetinaNet pair: precision, channels_last, early stop."""
import pytest
import torch
from mmengine.config import Config

from mmkd.apis.method_configs import method_configs
from mmkd.testing import build_random_distiller, random_batch

FITNET = method_configs('digits_det', ['fitnet_fpn'])['fitnet_fpn']
NUM_CLASSES = 10


def build(path=FITNET, **model_options):
    cfg = Config.fromfile(path)
    for key, value in model_options.items():  # replaced, not merged into the method's own
        cfg.model[key] = value
    return build_random_distiller(cfg).train()


def batch(distiller, size=64):
    data = distiller.data_preprocessor(random_batch('det', NUM_CLASSES, 2, (size, size)), True)
    return data['inputs'], data['data_samples']


def spy_on_losses(distiller):
    """Replace each loss's compute by a wrapper that records the dtypes it receives."""
    seen = []
    for loss in distiller.distill_losses.values():
        compute = loss.compute

        def spy(preds_S, preds_T, _compute=compute, **kwargs):
            seen.append((preds_S.dtype, preds_T.dtype))
            return _compute(preds_S, preds_T, **kwargs)
        loss.compute = spy
    return seen


def count_calls(model, names):
    counts = dict.fromkeys(names, 0)
    for name in names:
        def hook(module, args, output, _name=name):
            counts[_name] += 1
        model.get_submodule(name).register_forward_hook(hook, prepend=True)
    return counts


@pytest.mark.parametrize('precision,teacher_dtype', [(None, torch.bfloat16),
                                                     ('fp32', torch.float32),
                                                     ('bf16', torch.bfloat16)])
def test_losses_receive_float32_whatever_the_teacher_precision(precision, teacher_dtype):
    # The step runs inside a bf16 autocast (the student's --amp): None follows it, 'fp32'
    # takes the teacher out of it, 'bf16' runs it in bf16 whatever the student does.
    distiller = build(teacher_precision=precision)
    seen = spy_on_losses(distiller)
    recorded = []
    distiller.teacher.neck.register_forward_hook(
        lambda m, args, out: recorded.append(out[0].dtype), prepend=True)
    inputs, samples = batch(distiller)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        losses = distiller.loss(inputs, samples)
    assert recorded == [teacher_dtype]
    assert seen and all(dtypes == (torch.float32, torch.float32) for dtypes in seen)
    assert all(v.dtype == torch.float32 for k, v in losses.items() if k.startswith('distill'))


def test_bf16_teacher_outside_autocast_still_records_bf16():
    distiller = build(teacher_precision='bf16')
    recorded = []
    distiller.teacher.neck.register_forward_hook(
        lambda m, args, out: recorded.append(out[0].dtype), prepend=True)
    distiller.loss(*batch(distiller))
    assert recorded == [torch.bfloat16]
    assert next(distiller.student.parameters()).dtype == torch.float32


@pytest.mark.skipif(torch.cuda.is_available(), reason='the error is for machines without CUDA')
def test_fp16_teacher_without_cuda_fails_at_build_naming_the_fix():
    cfg = Config.fromfile(FITNET)
    cfg.model.teacher_precision = 'fp16'
    with pytest.raises(ValueError, match=r"teacher_precision='fp16' runs on CUDA only.*'bf16'"):
        build_random_distiller(cfg)


def test_unknown_teacher_settings_are_named():
    with pytest.raises(ValueError, match="teacher_precision must be one of.*'bf16'"):
        build(teacher_precision='bfloat16')
    with pytest.raises(TypeError, match='teacher_channels_last must be True or False'):
        build(teacher_channels_last='yes')


def test_early_stop_skips_what_follows_the_last_record():
    # Only backbone stage 3 is read: layer4 and the neck must not run.
    mapping = dict(preds_S=dict(from_student=True, recorder='c4', connector='c4'),
                   preds_T=dict(from_student=False, recorder='c4'))
    options = dict(
        student_recorders=dict(c4=dict(type='ModuleOutputsRecorder', source='backbone.layer3')),
        teacher_recorders=dict(c4=dict(type='ModuleOutputsRecorder', source='backbone.layer3')),
        connectors=dict(c4=dict(type='ConvConnector', in_channels=128, out_channels=256)),
        distill_losses=dict(loss_c4=dict(type='MSEFeatureLoss')),
        loss_forward_mappings=dict(loss_c4=mapping))
    values = {}
    for early_stop in (True, False):
        distiller = build(teacher_early_stop=early_stop, **options)
        calls = count_calls(distiller.teacher, ['backbone.layer3', 'backbone.layer4', 'neck'])
        torch.manual_seed(0)
        values[early_stop] = distiller.loss(*batch(distiller))['distill.loss_c4']
        assert calls == {'backbone.layer3': 1, 'backbone.layer4': 0 if early_stop else 1,
                         'neck': 0 if early_stop else 1}
    assert torch.allclose(values[True], values[False])


@pytest.mark.parametrize('record_idx', [0, 2])
def test_early_stop_counts_calls_of_modules_called_once_per_level(record_idx):
    # The head's first cls conv runs once per FPN level (3 here); reading its call
    # record_idx stops the teacher right after that call, not after the first one.
    mapping = dict(preds_S=dict(from_student=True, recorder='conv', record_idx=record_idx,
                                connector='conv'),
                   preds_T=dict(from_student=False, recorder='conv', record_idx=record_idx))
    conv = 'bbox_head.cls_convs.0'
    options = dict(
        student_recorders=dict(conv=dict(type='ModuleOutputsRecorder', source=conv)),
        teacher_recorders=dict(conv=dict(type='ModuleOutputsRecorder', source=conv)),
        connectors=dict(conv=dict(type='ConvConnector', in_channels=128, out_channels=128)),
        distill_losses=dict(loss_conv=dict(type='MSEFeatureLoss')),
        loss_forward_mappings=dict(loss_conv=mapping))
    values = {}
    for early_stop in (True, False):
        distiller = build(teacher_early_stop=early_stop, **options)
        assert distiller.teacher_forward_mode == 'tensor'
        names = [conv, 'bbox_head.cls_convs.1', 'bbox_head.retina_reg']
        calls = count_calls(distiller.teacher, names)
        torch.manual_seed(0)
        values[early_stop] = distiller.loss(*batch(distiller))['distill.loss_conv']
        expected = ([record_idx + 1, record_idx, record_idx] if early_stop else [3, 3, 3])
        assert [calls[n] for n in names] == expected
    assert torch.allclose(values[True], values[False])


def test_negative_record_idx_runs_the_whole_forward():
    mapping = dict(preds_S=dict(from_student=True, recorder='fpn', data_idx=0),
                   preds_T=dict(from_student=False, recorder='fpn', record_idx=-1, data_idx=0))
    distiller = build(distill_losses=dict(loss_fpn=dict(type='MSEFeatureLoss')),
                      loss_forward_mappings=dict(loss_fpn=mapping))
    assert not distiller.teacher_runner.stops_early
    distiller.loss(*batch(distiller))


#: A representative loss set: per-channel normalisations (PKD, CWD), patches (PCKA), windows
#: (SSIM), spatial attention (AT), a generator (MGD), box masks (FGD), logits (KD).
CHANNELS_LAST_METHODS = ['pkd_fpn', 'cwd_fpn', 'pcka_fpn', 'ssim_fpn', 'at_fpn', 'mgd_fpn',
                         'fgd_fpn', 'kd_logits']


@pytest.mark.parametrize('method', [
    m if m in ('pkd_fpn', 'mgd_fpn', 'kd_logits') else pytest.param(m, marks=pytest.mark.slow)
    for m in CHANNELS_LAST_METHODS])
def test_channels_last_gives_the_default_loss_values(method):
    path = method_configs('digits_det', [method])[method]
    values = {}
    for channels_last in (False, True):
        distiller = build(path, teacher_channels_last=channels_last,
                          student_channels_last=channels_last)
        if channels_last:  # the setting did reach the models
            assert distiller.teacher.backbone.conv1.weight.is_contiguous(
                memory_format=torch.channels_last)
            assert distiller.student.backbone.conv1.weight.is_contiguous(
                memory_format=torch.channels_last)
        torch.manual_seed(0)
        losses = distiller.loss(*batch(distiller))
        losses = {k: v for k, v in losses.items() if k.startswith('distill')}
        sum(losses.values()).backward()  # the backward pass works on NHWC tensors too
        values[channels_last] = losses
    for key, value in values[False].items():
        assert torch.allclose(values[True][key], value, rtol=1e-4, atol=1e-6), key


def test_cast_weights_runs_a_bf16_teacher_and_float32_losses():
    distiller = build(teacher_precision='bf16', teacher_cast_weights=True,
                      teacher_channels_last=True)
    assert next(distiller.teacher.parameters()).dtype == torch.bfloat16
    assert next(distiller.student.parameters()).dtype == torch.float32
    seen = spy_on_losses(distiller)
    distiller.loss(*batch(distiller))
    assert seen and all(dtypes == (torch.float32, torch.float32) for dtypes in seen)
    # switching back restores a float32, contiguous teacher
    distiller.teacher_runner.configure(precision='fp32')
    weight = distiller.teacher.backbone.conv1.weight
    assert weight.dtype == torch.float32 and weight.is_contiguous()
    with pytest.raises(ValueError, match="teacher_cast_weights=True casts the teacher to "
                                         "teacher_precision, which is 'fp32'"):
        distiller.teacher_runner.configure(precision='fp32', cast_weights=True)


@pytest.mark.slow  # compiling the digits teacher takes about a minute on 2 CPU cores
def test_compiled_teacher_gives_the_eager_loss_values():
    values = {}
    for compile in (False, True):
        distiller = build(teacher_compile=compile)
        assert distiller.teacher_runner.stops_early is not compile
        torch.manual_seed(0)
        losses = distiller.loss(*batch(distiller))
        values[compile] = {k: v for k, v in losses.items() if k.startswith('distill')}
    for key, value in values[False].items():
        assert torch.allclose(values[True][key], value, rtol=1e-3), key


def test_checkpoints_round_trip_with_a_converted_teacher():
    distiller = build(teacher_precision='bf16', teacher_cast_weights=True,
                      teacher_channels_last=True, student_channels_last=True)
    state = distiller.state_dict()
    assert not any(key.startswith('teachers.') for key in state)
    distiller.load_state_dict(state)  # the teacher's keys are filled from itself
    weight = distiller.teacher.backbone.conv1.weight
    assert weight.dtype == torch.bfloat16
    assert weight.is_contiguous(memory_format=torch.channels_last)
    student = distiller.student.backbone.conv1.weight
    assert torch.equal(student, state['student.backbone.conv1.weight'])


# ---------------------------------------------------------------------- 'tensor' on any head
def zoo_segmentor(name, options):
    """An mmseg model-zoo segmentor, random init, 64x64 inputs, eval mode."""
    from mmengine.registry import init_default_scope

    from mmkd.models.distillers.model_config import resolve_model_cfg
    from mmkd.registry import MODELS
    init_default_scope('mmseg')
    torch.manual_seed(0)
    cfg, _ = resolve_model_cfg(dict(cfg_path=name, pretrained=False, cfg_options=dict(
        options, **{'model.data_preprocessor.size': (64, 64)})), 'teacher')
    return MODELS.build(cfg).eval()


def test_tensor_mode_gives_the_mask2former_head_its_data_samples():
    from mmseg.structures import SegDataSample

    from mmkd.models.distillers.teacher_runner import TeacherRunner, head_data_samples
    from mmkd.models.recorders import RecorderManager
    teacher = zoo_segmentor('mmseg::mask2former/mask2former_r50_8xb2-90k_cityscapes-512x1024.py',
                            {'model.backbone.depth': 18, 'model.decode_head.num_queries': 10,
                             'model.decode_head.in_channels': [64, 128, 256, 512],
                             'model.decode_head.transformer_decoder.num_layers': 2,
                             'model.decode_head.pixel_decoder.encoder.num_layers': 1})
    with pytest.raises(TypeError, match='batch_data_samples'):
        teacher(torch.rand(1, 3, 64, 64), mode='tensor')  # mmseg's own _forward cannot
    runner = TeacherRunner(teacher, RecorderManager())
    assert runner.head_forward is not None
    samples = [SegDataSample(metainfo=dict(img_shape=(64, 64), ori_shape=(64, 64)))]
    with torch.no_grad():
        classes, masks = runner.run('tensor', torch.rand(1, 3, 64, 64), samples)
    assert len(classes) == len(masks) == 3  # the first query layer and 2 decoder layers
    assert classes[-1].shape == (1, 10, 20) and masks[-1].shape == (1, 10, 16, 16)
    assert 'batch_input_shape' not in samples[0]  # the batch's samples are left as they were
    made = head_data_samples(torch.rand(2, 3, 32, 48), samples * 2)
    assert [s.batch_input_shape for s in made] == [(64, 64)] * 2  # = img_shape, as mmseg sets
    dummy = head_data_samples(torch.rand(2, 3, 32, 48))  # the probe's: the input's size
    assert len(dummy) == 2 and all(s.img_shape == s.pad_shape == s.ori_shape == (32, 48)
                                   for s in dummy)


def test_tensor_mode_of_pointrend_ends_at_its_last_per_pixel_head():
    from mmkd.models.distillers.teacher_runner import TeacherRunner
    from mmkd.models.recorders import RecorderManager
    teacher = zoo_segmentor('mmseg::point_rend/pointrend_r50_4xb2-80k_cityscapes-512x1024.py',
                            {'model.backbone.depth': 18,
                             'model.neck.in_channels': [64, 128, 256, 512]})
    image = torch.rand(1, 3, 64, 64)
    with pytest.raises(TypeError):  # mmseg's _forward calls PointHead with the wrong inputs
        teacher(image, mode='tensor')
    recorders = RecorderManager(dict(logits=dict(type='ModuleOutputsRecorder',
                                                 source='decode_head.0.conv_seg')))
    recorders.attach(teacher, 'teacher')
    runner = TeacherRunner(teacher, recorders, needed=dict(logits=1), early_stop=False)
    with torch.no_grad():
        out = runner.run('tensor', image)
        expected = teacher.decode_head[0].forward(teacher.extract_feat(image))
    assert out.shape == (1, 19, 16, 16) and torch.allclose(out, expected)
    assert recorders.get_record_data('logits') is out


def test_tensor_mode_of_detectors_and_plain_heads_is_the_models_own():
    from mmkd.models.distillers.teacher_runner import head_forward
    assert build().teacher_runner.head_forward is None  # a RetinaNet
    psp = zoo_segmentor('mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py', {})
    assert head_forward(psp) is None
