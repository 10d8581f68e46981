import pytest
import torch

from mmkd.models.connectors import ConvConnector, ResizeConnector


def test_conv_connector_maps_channels_and_learns():
    connector = ConvConnector(8, 16, norm_cfg=dict(type='BN'))
    x = torch.rand(2, 8, 5, 5)
    y = connector(x)
    assert y.shape == (2, 16, 5, 5)
    y.sum().backward()
    assert connector.conv.conv.weight.grad is not None


def test_conv_connector_names_wrong_channels():
    with pytest.raises(ValueError, match=r'expects 8 input channels.*\(2, 4, 5, 5\).*in_channels=4'):
        ConvConnector(8, 16)(torch.rand(2, 4, 5, 5))


def test_resize_connector_follows_target_or_fixed_size():
    x = torch.rand(1, 3, 4, 4)
    assert ResizeConnector()(x, torch.rand(1, 3, 8, 6)).shape == (1, 3, 8, 6)
    assert ResizeConnector(size=(2, 2), mode='nearest')(x).shape == (1, 3, 2, 2)
    assert ResizeConnector()(x, torch.rand(1, 9, 4, 4)) is x
    with pytest.raises(ValueError, match='needs a fixed `size`'):
        ResizeConnector()(x)
