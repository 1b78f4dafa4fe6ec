"""ganforge.translate: the pix2pix / srresnet families, paired data and tasks, the paired training loop,
tiled inference and the task metrics."""
from __future__ import annotations

import pytest
import torch

from ganforge import models
from ganforge.config import ModelConfig
from ganforge.models.pix2pix import PatchDiscriminator, UNetGenerator, receptive_field


def _cfg(family="pix2pix", **options):
    return ModelConfig(family=family, channels=3, resolution=32, g_width=4, d_width=4, options=options)


@pytest.mark.parametrize("patch", [1, 16, 70, 286])
def test_patchgan_receptive_field_is_the_stated_one(patch):
    """The formula's answer, and the measured one: the input pixels that change one output logit."""
    torch.manual_seed(0)
    D = PatchDiscriminator(2, width=2, receptive=patch, norm="none").double()
    assert receptive_field(D) == patch
    size = patch + 40
    x = torch.randn(1, 2, size, size, dtype=torch.double, requires_grad=True)
    out = D(x)
    i, j = out.shape[-2] // 2, out.shape[-1] // 2
    out[0, 0, i, j].backward()
    seen = (x.grad.abs().sum((0, 1)) > 0).nonzero()
    rows = seen[:, 0].max() - seen[:, 0].min() + 1
    cols = seen[:, 1].max() - seen[:, 1].min() + 1
    assert (rows.item(), cols.item()) == (patch, patch)


def test_patchgan_bad_receptive_field_is_one_clear_line():
    from ganforge.errors import ConfigError

    with pytest.raises(ConfigError, match="receptive field must be one of 1, 16, 70, 286"):
        models.build(_cfg(patch=64))


def test_unet_any_size_and_instance_norm_same_in_train_and_eval():
    torch.manual_seed(0)
    G, D = models.build(_cfg(depth=4, in_channels=1, out_channels=3, patch=16))
    x = torch.rand(2, 1, 37, 21) * 2 - 1  # not a multiple of 2**depth: padded and cropped back
    G.train()
    y_train = G(x)
    G.eval()
    y_eval = G(x)
    assert y_train.shape == (2, 3, 37, 21)
    torch.testing.assert_close(y_train, y_eval)
    assert D(torch.cat([x, y_eval], 1)).shape[:2] == (2, 1)


def test_batch_norm_uses_running_statistics_at_test_time():
    """In eval mode an image's output does not depend on the rest of its batch (the batch-1 trap)."""
    torch.manual_seed(0)
    G = UNetGenerator(3, 3, width=4, depth=3, norm="batch")
    G.train()
    for _ in range(3):  # fill the running statistics
        G(torch.rand(4, 3, 16, 16) * 2 - 1)
    G.eval()
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    alone = G(x[:1])
    together = G(x)[:1]
    torch.testing.assert_close(alone, together)


def test_dropout_only_when_training_or_stochastic():
    torch.manual_seed(0)
    G = UNetGenerator(1, 1, width=4, depth=4, dropout=0.5)
    x = torch.rand(1, 1, 16, 16)
    G.eval()
    torch.testing.assert_close(G(x), G(x))
    G.stochastic = True
    assert not torch.equal(G(x), G(x))
    G.stochastic = False
    torch.testing.assert_close(G(x), G(x))


def test_srresnet_scales_and_starts_as_bicubic():
    import torch.nn.functional as F

    for scale in (2, 4):
        G, D = models.build(_cfg("srresnet", scale=scale, blocks=1))
        x = torch.rand(1, 3, 8, 8) * 2 - 1
        y = G(x)
        assert y.shape == (1, 3, 8 * scale, 8 * scale)
        bicubic = F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False).clamp(-1, 1)
        torch.testing.assert_close(y, bicubic)
    from ganforge.errors import ConfigError

    with pytest.raises(ConfigError, match="scale must be 2 or 4"):
        models.build(_cfg("srresnet", scale=3))
