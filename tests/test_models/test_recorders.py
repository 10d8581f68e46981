import pytest
import torch
from torch import nn

from mmkd.models.recorders import (DecodeHeadLogitsRecorder, MethodArgumentsRecorder,
                                   MethodOutputsRecorder, ModuleOutputsRecorder, RecorderManager)


class Toy(nn.Module):

    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU())
        self.head = nn.Conv2d(4, 2, 1)

    def forward(self, x):
        return self.head(self.backbone(x))

    def predict_twice(self, x):
        return self(x), self(x)

    def stage(self, x, scale=1.0, *rest, **extra):
        return x * scale


def test_module_outputs_and_inputs_recorded_only_while_recording():
    model = Toy()
    manager = RecorderManager(dict(
        feat=dict(type='ModuleOutputsRecorder', source='backbone'),
        head_in=dict(type='ModuleInputsRecorder', source='head')))
    manager.attach(model, 'student')
    x = torch.rand(2, 3, 5, 5)
    model(x)
    assert manager['feat'].data_buffer == []  # not recording outside the context
    with manager.recording():
        out = model(x)
        model(x)
    feat = manager.get_record_data('feat')
    assert torch.equal(feat, model.backbone(x))
    assert len(manager['feat'].data_buffer) == 2
    head_in = manager.get_record_data('head_in', record_idx=1, data_idx=0)
    assert torch.equal(model.head(head_in), out)
    manager.detach()
    with manager.recording():
        model(x)
    assert manager['feat'].data_buffer == []


def test_method_recorder_patches_one_instance_and_restores_it():
    student, teacher = Toy(), Toy()
    recorder = MethodOutputsRecorder('predict_twice')
    recorder.attach(student, 'student')
    recorder.recording = True
    teacher.predict_twice(torch.rand(1, 3, 2, 2))
    assert recorder.data_buffer == []  # the teacher (same class) is not recorded
    outs = student.predict_twice(torch.rand(1, 3, 2, 2))
    assert recorder.get_record_data(data_idx=1) is outs[1]
    recorder.detach()
    assert 'predict_twice' not in vars(student)


def test_arguments_recorder_names_positional_and_keyword_arguments_alike():
    model = Toy()
    recorder = MethodArgumentsRecorder('stage')
    recorder.attach(model, 'student')
    recorder.recording = True
    x = torch.rand(2)
    model.stage(x, 2.0, mask=None)  # positional scale, an extra keyword
    model.stage(x=x, scale=3.0)  # all keywords, as mmdet's DETRs call their stages
    first, second = recorder.data_buffer
    assert first['x'] is x and first['scale'] == 2.0 and first['mask'] is None
    assert set(second) == {'x', 'scale'} and second['x'] is x
    assert recorder.get_record_data(record_idx=1, data_idx='scale') == 3.0
    recorder.detach()
    assert 'stage' not in vars(model)


def test_wrong_module_name_lists_closest_names():
    with pytest.raises(KeyError, match=r"no module named 'backbon'.*Closest valid names: \['backbone'"):
        ModuleOutputsRecorder('backbon').attach(Toy(), 'student')
    with pytest.raises(KeyError, match=r"no method 'predict_twise'.*predict_twice"):
        MethodOutputsRecorder('predict_twise').attach(Toy(), 'teacher')


def test_reading_an_empty_or_short_buffer_explains_why():
    recorder = ModuleOutputsRecorder('head')
    recorder.attach(Toy(), 'teacher')
    with pytest.raises(RuntimeError, match='recorded nothing'):
        recorder.get_record_data()
    recorder.recording = True
    Toy()(torch.rand(1, 3, 2, 2))  # another instance of the class: not recorded
    with pytest.raises(RuntimeError):
        recorder.get_record_data()
    recorder.detach()


def test_recorder_type_is_checked():
    with pytest.raises(TypeError, match='not a recorder'):
        RecorderManager(dict(x=dict(type='MSEFeatureLoss')))


# ---------------------------------------------------------------------- DecodeHeadLogitsRecorder
class QueryHead(nn.Module):
    """A mask-classification head: per layer, class scores (N, Q, C + 1) and mask logits
    (N, Q, h, w); a list over layers (Mask2Former) or one tensor (MaskFormer)."""

    def __init__(self, stacked=False):
        super().__init__()
        self.stacked = stacked
        self.classes = nn.Parameter(torch.randn(2, 1, 3, 5))  # 2 layers, 3 queries, 4 classes
        self.masks = nn.Parameter(torch.randn(2, 1, 3, 6, 6) * 4)

    def forward(self, x, batch_data_samples):
        if self.stacked:
            return self.classes * x, self.masks * x
        return list(self.classes * x), list(self.masks * x)


def record_head(head, form, *args, **kwargs):
    model = nn.Module()
    model.decode_head = head
    recorder = DecodeHeadLogitsRecorder('decode_head.forward', form=form, **kwargs)
    recorder.attach(model, 'student')
    recorder.recording = True
    return recorder, head(*args)


@pytest.mark.parametrize('stacked', [False, True])
def test_query_masks_are_class_scores_as_the_head_predicts_them(stacked):
    head = QueryHead(stacked)
    recorder, _ = record_head(head, 'query_masks', torch.ones(()), None)
    logits = recorder.get_record_data()
    classes, masks = head.classes[-1], head.masks[-1]  # the last layer, as predict reads it
    expected = torch.einsum('bqc,bqhw->bchw', classes.softmax(-1)[..., :-1], masks.sigmoid())
    assert logits.shape == (1, 4, 6, 6) and logits.dtype == torch.float32
    assert torch.allclose(logits, expected.clamp(min=1e-6).log())
    logits.sum().backward()  # differentiable: the student's head trains through it
    assert head.classes.grad[-1].abs().sum() > 0 and head.classes.grad[0].abs().sum() == 0


def test_query_masks_of_empty_scores_stay_finite():
    head = QueryHead()
    with torch.no_grad():
        head.masks.fill_(-1e4)  # every mask off: every score 0
    recorder, _ = record_head(head, 'query_masks', torch.ones(()), None, eps=1e-4)
    logits = recorder.get_record_data()
    assert torch.isfinite(logits).all()
    assert torch.allclose(logits, torch.full_like(logits, float(torch.tensor(1e-4).log())))


def test_query_masks_match_mmseg_mask2former_predict():
    """mmseg's own Mask2FormerHead.predict, at an image as large as its masks (so that its
    upsampling is the identity), gives the exponent of what is recorded."""
    from mmengine.registry import init_default_scope

    from mmkd.models.distillers.model_config import resolve_model_cfg
    from mmkd.registry import MODELS
    init_default_scope('mmseg')
    torch.manual_seed(0)
    cfg, _ = resolve_model_cfg(dict(
        cfg_path='mmseg::mask2former/mask2former_r50_8xb2-90k_cityscapes-512x1024.py',
        pretrained=False, cfg_options={
            'model.backbone.depth': 18, 'model.decode_head.in_channels': [64, 128, 256, 512],
            'model.decode_head.num_queries': 10,
            'model.decode_head.transformer_decoder.num_layers': 2,
            'model.decode_head.pixel_decoder.encoder.num_layers': 1}), 'student')
    segmentor = MODELS.build(cfg).eval()
    recorder = DecodeHeadLogitsRecorder('decode_head.forward', form='query_masks', eps=1e-30)
    recorder.attach(segmentor, 'teacher')
    recorder.recording = True
    with torch.no_grad():
        feats = segmentor.extract_feat(torch.rand(1, 3, 64, 64))
        scores = segmentor.decode_head.predict(feats, [dict(img_shape=(16, 16),
                                                            pad_shape=(16, 16))], {})
    logits = recorder.get_record_data()
    assert scores.shape == logits.shape == (1, 19, 16, 16)
    assert torch.allclose(logits.exp(), scores, rtol=1e-4, atol=1e-6)


def test_last_stage_and_map_forms_read_the_map_the_head_predicts_with():
    stages = [torch.rand(1, 4, 6, 6) for _ in range(3)]
    head = nn.Module()
    head.forward = lambda training: stages if training else stages[-1]  # K-Net's stages
    recorder, _ = record_head(head, 'last_stage', True)
    head(False)
    assert recorder.get_record_data() is stages[-1]
    assert recorder.get_record_data(record_idx=1) is stages[-1]
    head.forward = lambda: stages[0]  # Segmenter: the per-class masks are the map
    recorder, _ = record_head(head, 'map')
    assert recorder.get_record_data() is stages[0]


def test_decode_head_logits_recorder_checks_its_form_and_what_the_head_returns():
    with pytest.raises(ValueError, match=r"form must be one of \['map', 'last_stage', "
                       r"'query_masks'\], got 'masks'"):
        DecodeHeadLogitsRecorder('decode_head.forward', form='masks')
    with pytest.raises(ValueError, match='eps must be a positive number'):
        DecodeHeadLogitsRecorder('decode_head.forward', form='query_masks', eps=0)
    def head():
        module = nn.Module()
        module.forward = lambda: (torch.zeros(1, 3, 5), torch.zeros(1, 3, 4, 4))
        return module

    with pytest.raises(TypeError, match=r"student decode_head.forward returned a tuple, not the "
                       r"\(N, C, H, W\) class map form='map' reads"):
        record_head(head(), 'map')
    with pytest.raises(TypeError, match=r"form='query_masks' needs the last layer's class scores "
                       r"\(N, Q, C \+ 1\) and mask logits \(N, Q, h, w\), got a tensor of shape "
                       r"\(3, 5\)"):
        record_head(head(), 'query_masks')  # one layer given without the layer dimension
