import pytest
import torch
from torch import nn

from mmkd.models.recorders import (MethodArgumentsRecorder, MethodOutputsRecorder,
                                   ModuleOutputsRecorder, RecorderManager)


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
