import pytest
import torch

from ganforge import models
from ganforge.config import ModelConfig
from ganforge.errors import ConfigError
from ganforge.models.dcgan import plan


@pytest.mark.parametrize("res,expect", [(8, (4, 1)), (16, (4, 2)), (28, (7, 2)), (32, (4, 3)), (64, (4, 4)),
                                        (96, (6, 4)), (256, (4, 6))])
def test_dcgan_plan_sizes_from_resolution(res, expect):
    assert plan(res) == expect


@pytest.mark.parametrize("res", [4, 300, 44 * 2 + 1])
def test_dcgan_rejects_unsupported_resolution(res):
    with pytest.raises(ConfigError, match="resolution"):
        plan(res)


@pytest.mark.parametrize("family,shape,classes", [
    ("mlp", (1, 28, 28), 0), ("mlp", (3, 8, 8), 10), ("dcgan", (1, 28, 28), 0), ("dcgan", (3, 32, 32), 0),
    ("dcgan", (3, 64, 64), 0), ("cdcgan", (1, 28, 28), 10), ("cdcgan", (3, 16, 16), 3), ("layers", (1, 28, 28), 0)])
def test_families_produce_images_and_logits(family, shape, classes):
    cfg = ModelConfig(family=family, z_dim=16, channels=shape[0], resolution=shape[1], num_classes=classes,
                      g_width=8, d_width=8, d_norm="batch")
    G, D = models.build(cfg)
    c = torch.tensor([0, classes - 1]) if classes else None
    x = G(torch.randn(2, 16), c)
    assert x.shape == (2, *shape)
    assert x.min() >= -1 and x.max() <= 1
    assert D(x, c).shape == (2,)
    assert G.z_dim == 16 and G.num_classes == classes and G.img_shape == shape


def test_conditional_generator_depends_on_class():
    cfg = ModelConfig(family="cdcgan", z_dim=8, resolution=16, channels=1, num_classes=4, g_width=8, d_width=8,
                      d_norm="none")
    G, _ = models.build(cfg)
    G.eval()
    z = torch.randn(1, 8).repeat(2, 1)
    a, b = G(z, torch.tensor([0, 3]))
    assert not torch.allclose(a, b, rtol=1e-3, atol=0)  # fresh weights give small outputs: compare relatively


def test_cdcgan_without_labels_is_a_clear_error():
    with pytest.raises(ConfigError, match="needs class labels"):
        models.build(ModelConfig(family="cdcgan", num_classes=0))


def test_unknown_family_lists_choices():
    with pytest.raises(ConfigError, match="unknown model family 'gan9'.*dcgan"):
        models.build(ModelConfig(family="gan9"))


def test_spectral_norm_bounds_layer_norm():
    cfg = ModelConfig(family="dcgan", resolution=16, channels=1, d_width=8, g_width=8, spectral_norm=True,
                      d_norm="none")
    _, D = models.build(cfg)
    for _ in range(30):  # power iterations converge while training-mode forwards run
        D(torch.randn(4, 1, 16, 16))
    lin = D.fc
    sigma = torch.linalg.matrix_norm(lin.weight.detach(), ord=2)
    assert sigma == pytest.approx(1.0, abs=0.05)


def test_registry_lists_every_family():
    assert set(models.families()) >= {"mlp", "dcgan", "cdcgan", "layers"}
    assert models.is_conditional("cdcgan") and not models.is_conditional("dcgan")
