import json
import math

import pytest
import torch
import torch.nn.functional as F

from ganforge.train.augment.ada import TRANSFORMS, AdaController, AdaptiveAugment, resample


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(b=8, c=3, h=16, w=16, seed=0):
    return torch.rand(b, c, h, w, generator=gen(seed)) * 2 - 1


# ------------------------------------------------------------------ the pipeline
def test_p_zero_returns_input_itself():
    x = images()
    assert AdaptiveAugment("bgc", 0.0)(x, gen()) is x


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_shape_dtype_device_kept(channels, dtype):
    x = images(c=channels).to(dtype)
    out = AdaptiveAugment("bgc", 0.5)(x, gen())
    assert out.shape == x.shape and out.dtype == dtype and out.device == x.device
    assert torch.isfinite(out.float()).all() and not torch.equal(out, x)


def test_channels_last_kept():
    x = images().contiguous(memory_format=torch.channels_last)
    out = AdaptiveAugment("bgc", 0.5)(x, gen())
    assert out.is_contiguous(memory_format=torch.channels_last)


def test_xflip_at_p1_flips_exactly_the_drawn_half():
    x = images(b=32)
    aug = AdaptiveAugment("bgc", 1.0, transforms=["xflip"])
    out = aug(x, gen(3))
    geom, colour = aug.draw_matrices(x.shape, gen(3))  # the same draws
    assert colour is None
    flipped = geom[:, 0, 0] == -1
    assert 0 < flipped.sum() < len(x)  # the paper's xflip mirrors with chance 1/2 even at p = 1
    assert torch.equal(out[flipped], x[flipped].flip(3))
    assert torch.equal(out[~flipped], x[~flipped])


def test_rotate90_is_exact_quarter_turns():
    x = images(b=32)
    out = AdaptiveAugment("b", 1.0, transforms=["rotate90"])(x, gen(1))
    seen = set()
    for a, b in zip(x, out):
        k = [k for k in range(4) if torch.equal(b, torch.rot90(a, k, (1, 2)))]
        assert len(k) == 1
        seen.add(k[0])
    assert seen == {0, 1, 2, 3}


def test_integer_translation_is_a_reflect_padded_shift():
    h, w = 16, 24
    x = torch.randperm(2 * h * w, generator=gen()).float().view(2, 1, h, w).repeat(8, 3, 1, 1)  # distinct values
    aug = AdaptiveAugment("b", 1.0, transforms=["xint"])
    out = aug(x, gen(2))
    geom, _ = aug.draw_matrices(x.shape, gen(2))
    assert set(out.unique().tolist()) <= set(x.unique().tolist())
    dx, dy = (-geom[:, 0, 2]).long(), (-geom[:, 1, 2]).long()
    assert dx.abs().max() <= w // 8 and dy.abs().max() <= h // 8 and (dx != 0).any() and (dy != 0).any()
    pad = 3
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    for i in range(len(x)):
        top, left = pad - int(dy[i]), pad - int(dx[i])
        assert torch.equal(out[i], padded[i, :, top: top + h, left: left + w])


def test_resampler_matches_grid_sample_with_reflection():
    h, w = 16, 12
    x = images(b=8, h=h, w=w)
    geom, _ = AdaptiveAugment("bg", 1.0).draw_matrices(x.shape, gen(4))
    cx, cy = (w - 1) / 2, (h - 1) / 2
    v, u = torch.meshgrid(torch.arange(h) - cy, torch.arange(w) - cx, indexing="ij")
    pts = torch.stack([u, v, torch.ones_like(u)], -1).reshape(-1, 3).double()
    src = (geom @ pts.T).float()
    grid = torch.stack([(src[:, 0] + cx) / (w - 1) * 2 - 1, (src[:, 1] + cy) / (h - 1) * 2 - 1], -1)
    ref = F.grid_sample(x, grid.view(-1, h, w, 2), mode="bilinear", padding_mode="reflection", align_corners=True)
    assert torch.allclose(resample(x, geom), ref, atol=1e-5)


@pytest.mark.parametrize("pipe", ["bg", "bgc"])
def test_zero_strengths_give_identity(pipe):
    x = images(h=15, w=20)  # odd and even sizes: a half-pixel misalignment would show
    aug = AdaptiveAugment(pipe, 1.0)
    aug.strength = dict.fromkeys(aug.strength, 0.0)
    out = aug(x, gen())
    assert out is not x and torch.allclose(out, x, atol=1e-5)


def test_strong_geometry_stays_in_range_and_changes_images():
    x = images(b=16)
    out = AdaptiveAugment("bg", 1.0)(x, gen(5))
    # bilinear resampling of a mirrored image: convex combinations of input pixels
    assert out.min() >= x.min() - 1e-6 and out.max() <= x.max() + 1e-6
    assert (out - x).flatten(1).abs().amax(1).min() > 0


def test_hue_and_saturation_turn_about_the_grey_axis():
    aug = AdaptiveAugment("c", 1.0, transforms=["hue", "saturation"])
    grey = images(c=1).repeat(1, 3, 1, 1)
    assert torch.allclose(aug(grey, gen()), grey, atol=1e-5)  # grey pixels lie on the axis
    x = images()
    hue = AdaptiveAugment("c", 1.0, transforms=["hue"])(x, gen())
    assert not torch.allclose(hue, x, atol=1e-3)
    assert torch.allclose(hue.mean(1), x.mean(1), atol=1e-5)  # luma kept
    assert torch.allclose(hue.norm(dim=1), x.norm(dim=1), atol=1e-4)  # a rotation


def test_lumaflip_negates_grey_images():
    aug = AdaptiveAugment("c", 1.0, transforms=["lumaflip"])
    grey = images(b=32, c=1).repeat(1, 3, 1, 1)
    out = aug(grey, gen())
    flipped = torch.isclose(out, -grey, atol=1e-5).flatten(1).all(1)
    kept = torch.isclose(out, grey, atol=1e-5).flatten(1).all(1)
    assert (flipped | kept).all() and flipped.any() and kept.any()


def test_grey_images_get_brightness_and_contrast_only():
    x = torch.full((64, 1, 8, 8), 0.25)
    aug = AdaptiveAugment("c", 1.0)
    out = aug(x, gen())
    # each image stays flat (no spatial change) but shifts in level
    assert torch.allclose(out, out[:, :, :1, :1].expand_as(out))
    assert out.flatten(1)[:, 0].std() > 0.1
    y = images(c=1)
    assert torch.allclose(AdaptiveAugment("c", 1.0, transforms=["hue", "lumaflip", "saturation"])(y, gen()), y)


def test_application_rates_follow_p():
    n, p = 4000, 0.3
    geom, colour = AdaptiveAugment("bgc", p, transforms=["scale", "rotate", "brightness"]).draw_matrices(
        (n, 3, 8, 8), gen())
    applied = (geom[:, :2, :2].norm(dim=2) - 1).abs().amax(1) > 1e-9  # rotations keep row norms at 1
    rotated = geom[:, 0, 1].abs() > 1e-9
    assert abs(applied.float().mean() - p) < 0.04
    assert abs(rotated.float().mean() - p) < 0.04  # two rotations with 1 - sqrt(1 - p) each: p for either
    assert abs((colour[:, 0, 3] != 0).float().mean() - p) < 0.04


def test_matrices_stay_homogeneous():
    geom, colour = AdaptiveAugment("bgc", 1.0).draw_matrices((256, 3, 8, 8), gen())
    assert torch.equal(geom[:, 2], torch.tensor([0.0, 0, 1]).double().expand(256, 3))
    assert torch.equal(colour[:, 3], torch.tensor([0.0, 0, 0, 1]).double().expand(256, 4))


def test_double_backward_through_augmentation():
    torch.manual_seed(0)
    D = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Softplus(),
                            torch.nn.Conv2d(4, 1, 3, padding=1, bias=False))  # a last bias cannot touch R1
    x = images(b=4).requires_grad_(True)
    out = AdaptiveAugment("bgc", 1.0)(x, gen())
    (r1,) = torch.autograd.grad(D(out).sum(), x, create_graph=True)
    r1.square().sum().backward()
    for param in D.parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all() and param.grad.abs().sum() > 0


def test_gradgradcheck_of_the_augmentation():
    x = images(b=2, h=5, w=6).double().requires_grad_(True)
    aug = AdaptiveAugment("bgc", 1.0)
    geom, colour = aug.draw_matrices(x.shape, gen(9))
    assert torch.autograd.gradcheck(lambda t: aug.apply(t, geom, colour), (x,))
    assert torch.autograd.gradgradcheck(lambda t: aug.apply(t, geom, colour), (x,))


def test_reproducible_from_the_generator():
    x = images()
    aug = AdaptiveAugment("bgc", 0.5)
    a, b, c = aug(x, gen(7)), aug(x, gen(7)), aug(x, gen(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"unknown ADA pipe letter 'f' in 'bgcf'.*b \(blit\).*c \(colour\)"):
        AdaptiveAugment("bgcf")
    with pytest.raises(ValueError, match="empty ADA pipe"):
        AdaptiveAugment("")
    with pytest.raises(ValueError, match="'hue' is not in pipe 'bg'"):
        AdaptiveAugment("bg", transforms=["hue"])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        AdaptiveAugment("bgc", p=1.5)
    with pytest.raises(ValueError, match="1 or 3 channels"):
        AdaptiveAugment("c", 0.5)(torch.zeros(2, 4, 8, 8), gen())
    assert AdaptiveAugment("bgc").transforms == TRANSFORMS
    assert AdaptiveAugment("bg", 0.5)(torch.zeros(2, 4, 8, 8), gen()).shape == (2, 4, 8, 8)


# ------------------------------------------------------------------ the controller
def test_controller_raises_p_while_d_overfits():
    ctl, aug = AdaController(target=0.6, interval=4, speed_kimg=500), AdaptiveAugment("bgc", 0.0)
    step = 32 * 4 / (500 * 1000)
    for k in range(1, 4):
        for i in range(4):
            ctl.observe(torch.full((32, 1), 3.0))
            r = ctl.update(aug, 32)
            assert (r is None) == (i < 3)
        assert r == 1.0
        assert aug.p == pytest.approx(k * step, abs=1e-15)


def test_controller_lowers_p_but_not_below_zero():
    ctl, aug = AdaController(interval=2, speed_kimg=1), AdaptiveAugment("bgc", 0.1)
    for _ in range(6):
        ctl.observe(-torch.rand(16) - 0.1)
        ctl.update(aug, 16)
    assert aug.p == pytest.approx(0.1 - 3 * 16 * 2 / 1000)
    for _ in range(40):
        ctl.observe(-torch.ones(16))
        ctl.update(aug, 16)
    assert aug.p == 0.0


def test_controller_caps_p_at_one():
    ctl, aug = AdaController(interval=1, speed_kimg=0.01), AdaptiveAugment("bgc", 0.9)
    for _ in range(3):
        ctl.observe(torch.ones(64))
        assert ctl.update(aug, 64) == 1.0
        assert aug.p == 1.0
    assert isinstance(aug.p, float)


def test_controller_at_target_and_without_observations():
    ctl, aug = AdaController(target=0.5, interval=1), AdaptiveAugment("bgc", 0.2)
    assert ctl.update(aug, 8) is None and aug.p == 0.2  # nothing observed
    ctl.observe(torch.tensor([1.0, 1.0, 1.0, -1.0]))  # r_t = 0.5 exactly
    assert ctl.update(aug, 8) == 0.5 and aug.p == 0.2


def test_controller_state_round_trip_continues_identically():
    def run(ctl, aug, logits):
        out = []
        for v in logits:
            ctl.observe(v)
            out.append((ctl.update(aug, 8), aug.p))
        return out

    logits = [torch.randn(8, generator=gen(i)) + 0.3 for i in range(13)]
    ref_ctl, ref_aug = AdaController(interval=4), AdaptiveAugment("bgc", 0.3)
    ref = run(ref_ctl, ref_aug, logits)

    ctl, aug = AdaController(interval=4), AdaptiveAugment("bgc", 0.3)
    first = run(ctl, aug, logits[:6])  # stop mid-interval, with sums pending
    state = json.loads(json.dumps(ctl.state_dict()))
    assert state["calls"] == 2 and state["count"] == 16
    resumed, aug2 = AdaController(interval=4), AdaptiveAugment("bgc", aug.p)
    resumed.load_state_dict(state)
    assert first + run(resumed, aug2, logits[6:]) == ref


def test_controller_sums_for_multi_process_reduction():
    ctl, aug = AdaController(interval=2, speed_kimg=1), AdaptiveAugment("bgc", 0.5)
    ctl.observe(torch.tensor([1.0, -1.0, 2.0]))
    assert ctl.sums().tolist() == [1.0, 3.0]
    assert not ctl.due
    assert ctl.update(aug, 4) is None
    assert ctl.due
    ctl.set_sums(ctl.sums() * 0 + torch.tensor([-6.0, 6.0]))  # as if other ranks were all negative
    assert ctl.update(aug, 4) == -1.0 and aug.p == pytest.approx(0.5 - 8 / 1000)
    ctl.observe(torch.ones(2))
    ctl.update(aug, 4)
    seen = []
    r = ctl.update(aug, 4, reduce=lambda t: seen.append(t.clone()) or t * torch.tensor([-1.0, 2.0]))
    assert seen[0].tolist() == [2.0, 2.0] and r == -0.5 and math.isclose(aug.p, 0.5 - 16 / 1000)
