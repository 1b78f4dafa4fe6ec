import pytest
import torch

from ganforge.errors import ConfigError
from ganforge.train.augment.diffaug import cutout, diff_augment, parse_policy, translation


def test_translation_moves_content_and_fills_with_zero():
    x = torch.zeros(64, 1, 8, 8)
    x[:, :, 3:5, 3:5] = 1.0
    out = translation(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    # shifts of up to 1 px (0.125 * 8): mass is preserved and some images moved
    assert torch.allclose(out.sum((1, 2, 3)), x.sum((1, 2, 3)))
    assert (out != x).flatten(1).any(1).float().mean() > 0.5


def test_translation_fills_edges_with_zeros():
    x = torch.ones(200, 1, 8, 8)
    out = translation(x, torch.Generator().manual_seed(1))
    assert out.min() == 0.0 and set(out.unique().tolist()) == {0.0, 1.0}


def test_cutout_zeroes_a_quarter():
    x = torch.ones(32, 3, 16, 16)
    out = cutout(x, torch.Generator().manual_seed(0))
    zeroed = (out == 0).float().mean((1, 2, 3))
    assert zeroed.max() <= 0.25 + 1e-6 and zeroed.mean() > 0.1  # 8x8 of 16x16, clipped at borders


def test_augmentation_is_reproducible_and_differentiable():
    x = torch.randn(4, 3, 16, 16, requires_grad=True)
    names = parse_policy("color,translation,cutout")
    a = diff_augment(x, names, torch.Generator().manual_seed(5))
    b = diff_augment(x, names, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    a.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_bad_policy():
    with pytest.raises(ConfigError, match="unknown DiffAugment policy 'flip'"):
        parse_policy("translation,flip")
