import pytest
import torch
import torch.nn.functional as F

from mmkd.models.losses import GKDLoss, gradient_guided_map, gradient_weighted_imitation


def test_map_is_relu_of_gradient_weighted_channels_scaled_per_image():
    feat = torch.randn(3, 5, 6, 7)
    grad = torch.randn(3, 5, 6, 7)
    weights = grad.mean(dim=(2, 3))
    cam = torch.relu(torch.einsum('nc,nchw->nhw', weights, feat))
    expected = (cam - cam.amin((1, 2), keepdim=True)) / (
        cam.amax((1, 2), keepdim=True) - cam.amin((1, 2), keepdim=True) + 1e-6)
    assert torch.allclose(gradient_guided_map(feat, grad)[:, 0], expected, atol=1e-6)
    # positive rescaling of the gradient (e.g. a loss weight) leaves the map unchanged
    assert torch.allclose(gradient_guided_map(feat, 7 * grad), gradient_guided_map(feat, grad),
                          atol=1e-5)


def test_imitation_with_a_uniform_map_is_mse_and_ignores_cold_cells():
    s, t = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    ones = torch.ones(2, 1, 4, 4)
    assert torch.allclose(gradient_weighted_imitation(s, t, ones), F.mse_loss(s, t), atol=1e-6)
    hot = torch.zeros(2, 1, 4, 4)
    hot[..., :2, :] = 1
    t2 = t.clone()
    t2[..., 2:, :] += 100  # only where the map is 0
    assert torch.allclose(gradient_weighted_imitation(s, t2, hot),
                          gradient_weighted_imitation(s, t, hot))


@pytest.mark.parametrize('double_backward', [False, True])
def test_gradients_reach_the_student_and_its_weights_only_with_double_backward(double_backward):
    s = torch.randn(2, 4, 8, 8, requires_grad=True)
    t = torch.randn(2, 4, 8, 8, requires_grad=True)
    grad_S = torch.randn(2, 4, 8, 8, requires_grad=True)
    grad_T = torch.randn(2, 4, 8, 8, requires_grad=True)
    loss = GKDLoss(double_backward=double_backward)
    assert loss.create_graph is double_backward
    loss(s, t, grad_S, grad_T).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None and grad_T.grad is None
    assert (grad_S.grad is not None) is double_backward


def test_identical_inputs_give_zero_and_weights_scale():
    s, g = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    assert GKDLoss()(s, s.clone(), g, g.clone()).abs() < 1e-6
    t, gt = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    assert torch.allclose(GKDLoss(loss_weight=3.0)(s, t, g, gt), 3 * GKDLoss()(s, t, g, gt))


def test_bmfi_needs_boxes_and_half_inputs_compute_in_float32():
    s, g = torch.randn(2, 4, 8, 8).half(), torch.randn(2, 4, 8, 8)
    assert GKDLoss()(s, s.float(), g, g).dtype == torch.float32
    loss = GKDLoss(bmfi=dict(student_channels=4, teacher_channels=4))
    with pytest.raises(ValueError, match='needs the GT boxes'):
        loss(s.float(), s.float(), g, g)


def test_mismatched_gradient_names_the_fix():
    with pytest.raises(ValueError, match='same recorder and data_idx'):
        GKDLoss()(torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8), torch.randn(1, 4, 4, 4),
                  torch.randn(1, 4, 8, 8))
