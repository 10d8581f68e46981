"""Weighting of distillation paths: behaviour on a real (tiny) training problem."""
import pytest
import torch
from torch import nn

from mmkd.models.weighting import (FixedWeighting, GradientSimilarityWeighting,
                                   UncertaintyWeighting)


class TinyStudent(nn.Module):
    def __init__(self):
        super().__init__()
        self.neck = nn.Linear(8, 16)
        self.head = nn.Linear(16, 1)

    def forward(self, x):
        return self.head(torch.relu(self.neck(x)))


def train_with(weighting, steps=300, seed=0):
    """Task: regress y = f(x). Path 'signal' distils a teacher that knows f; path 'noise'
    distils pure noise. Returns the final effective weights."""
    torch.manual_seed(seed)
    student, teacher_w = TinyStudent(), torch.randn(8, 1)
    weighting.bind(['signal', 'noise'], student)
    params = list(student.parameters()) + list(weighting.parameters())
    optimizer = torch.optim.Adam(params, lr=1e-2)
    for _ in range(steps):
        x = torch.randn(64, 8)
        y = torch.tanh(x @ teacher_w)
        pred = student(x)
        task = ((pred - y)**2).mean()
        losses = dict(signal=((pred - y.detach())**2).mean(),
                      noise=((pred - 3 * torch.randn_like(pred))**2).mean())
        weighted, weights = weighting(losses, task)
        optimizer.zero_grad()
        (task + sum(weighted.values())).backward()
        optimizer.step()
    return weights


@pytest.mark.parametrize('weighting', [UncertaintyWeighting, GradientSimilarityWeighting])
def test_adaptive_schemes_down_weight_the_noise_path(weighting):
    weights = train_with(weighting())
    assert weights['noise'] < 0.5 * weights['signal'], weights


def test_fixed_weighting_keeps_its_weights():
    weights = train_with(FixedWeighting(weights=dict(noise=0.3)), steps=5)
    assert weights == dict(signal=1.0, noise=0.3)


def test_uncertainty_weights_stay_finite_when_a_path_loss_vanishes():
    weighting = UncertaintyWeighting(min_log_var=-4.0)
    weighting.bind(['zero'], None)
    optimizer = torch.optim.SGD(weighting.parameters(), lr=1.0)
    for _ in range(100):
        weighted, weights = weighting(dict(zero=torch.tensor(0.0)))
        optimizer.zero_grad()
        sum(weighted.values()).backward()
        optimizer.step()
    assert weights['zero'] == pytest.approx(torch.exp(torch.tensor(4.0)).item(), rel=1e-5)


def test_gradient_similarity_survives_a_path_without_gradient():
    weighting = GradientSimilarityWeighting(momentum=0.0)
    student = TinyStudent()
    weighting.bind(['dead'], student)
    pred = student(torch.randn(4, 8))
    _, weights = weighting(dict(dead=torch.tensor(0.0)), (pred**2).mean())
    assert weights == dict(dead=0.0)


def test_bad_weighting_arguments():
    with pytest.raises(KeyError, match=r"unknown paths \['b'\]"):
        FixedWeighting(weights=dict(b=1.0)).bind(['a'], None)
    with pytest.raises(ValueError, match='min_log_var'):
        UncertaintyWeighting(min_log_var=1.0, max_log_var=0.0)
    with pytest.raises(KeyError, match="no module named 'nek'"):
        GradientSimilarityWeighting(shared_module='nek').bind(['a'], TinyStudent())
