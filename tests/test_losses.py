import math

import pytest
import torch

from ganforge.errors import ConfigError
from ganforge.train.losses import get_loss, gradient_penalty, r1_penalty

R = torch.tensor([2.0, -1.0])
F_ = torch.tensor([0.5, -3.0])


def sp(x):
    return math.log1p(math.exp(x))


def test_non_saturating():
    loss = get_loss("ns")
    assert loss.d_loss(R, F_).item() == pytest.approx((sp(-2) + sp(1)) / 2 + (sp(0.5) + sp(-3)) / 2, rel=1e-6)
    assert loss.g_loss(F_).item() == pytest.approx((sp(-0.5) + sp(3)) / 2, rel=1e-6)


def test_hinge():
    loss = get_loss("hinge")
    # relu(1-2)=0, relu(1+1)=2 -> 1 ; relu(1.5)=1.5, relu(-2)=0 -> 0.75
    assert loss.d_loss(R, F_).item() == pytest.approx(1.75)
    assert loss.g_loss(F_).item() == pytest.approx(1.25)


def test_least_squares():
    loss = get_loss("lsgan")
    assert loss.d_loss(R, F_).item() == pytest.approx(0.5 * (1 + 4) / 2 + 0.5 * (0.25 + 9) / 2)
    assert loss.g_loss(F_).item() == pytest.approx(0.5 * (0.25 + 16) / 2)


def test_wgan_critic_and_flags():
    loss = get_loss("wgan-gp")
    assert loss.d_loss(R, F_).item() == pytest.approx(-1.25 - 0.5)
    assert loss.g_loss(F_).item() == pytest.approx(1.25)
    assert loss.gradient_penalty and not loss.probabilities


def test_unknown_loss():
    with pytest.raises(ConfigError, match="unknown loss 'bce'"):
        get_loss("bce")


class Linear(torch.nn.Module):
    """D(x) = <w, x>: its input gradient is w everywhere."""

    def __init__(self, w):
        super().__init__()
        self.w = torch.nn.Parameter(w)

    def forward(self, x, c=None):
        return (x.flatten(1) * self.w).sum(1)


def test_gradient_penalty_of_linear_critic():
    w = torch.tensor([3.0, 4.0, 0.0, 0.0])  # ||w|| = 5 -> (5 - 1)^2 = 16
    D = Linear(w)
    real, fake = torch.randn(6, 1, 2, 2), torch.randn(6, 1, 2, 2)
    gp = gradient_penalty(D, real, fake, None, torch.Generator().manual_seed(0))
    assert gp.item() == pytest.approx(16.0)
    gp.backward()  # differentiable w.r.t. D's weights (double backward)
    assert D.w.grad is not None and D.w.grad.abs().sum() > 0


def test_r1_of_linear_critic_is_squared_weight_norm():
    D = Linear(torch.tensor([1.0, 2.0, 2.0, 0.0]))
    assert r1_penalty(D, torch.randn(5, 1, 2, 2), None).item() == pytest.approx(9.0)
