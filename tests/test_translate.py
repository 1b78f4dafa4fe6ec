"""ganforge.translate: the pix2pix / srresnet families, paired data and tasks, the paired training loop,
tiled inference and the task metrics."""
from __future__ import annotations

import numpy as np
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


# ---------------------------------------------------------------------- data and tasks
from ganforge.config import DataConfig  # noqa: E402
from ganforge.errors import DataError  # noqa: E402
from ganforge.translate import data as tdata  # noqa: E402


def test_same_crop_and_flip_for_a_and_b():
    g = torch.Generator().manual_seed(0)
    b = torch.arange(4 * 3 * 12 * 12, dtype=torch.float32).view(4, 3, 12, 12)
    a = b[:, :1] * 2 + 1  # a known function of b, pixel by pixel
    flips = 0
    for _ in range(5):
        ca, cb = tdata.crop_flip([a, b], 8, True, g)
        assert ca.shape == (4, 1, 8, 8) and cb.shape == (4, 3, 8, 8)
        torch.testing.assert_close(ca, cb[:, :1] * 2 + 1)
        flips += int((cb[:, 0, 0, 0] > cb[:, 0, 0, 1]).sum())  # a flipped row runs backwards
    assert flips > 0
    with pytest.raises(DataError, match="differ in size"):
        tdata.crop_flip([a[..., :10], b], 8, False, g)


def test_rotate_turns_a_and_b_alike_into_all_eight_orientations():
    g = torch.Generator().manual_seed(0)
    b = torch.arange(64 * 3 * 8 * 8, dtype=torch.float32).view(64, 3, 8, 8) % 64  # each image the same ramp
    a = b[:, :1] * 2 + 1
    ca, cb = tdata.crop_flip([a, b], 8, True, g, rotate=True)
    torch.testing.assert_close(ca, cb[:, :1] * 2 + 1)
    ramp = b[0, 0]
    orientations = {torch.rot90(f, k).flatten()[:2].tolist().__repr__()
                    for f in (ramp, ramp.flip(-1)) for k in range(4)}
    seen = {cb[i, 0].flatten()[:2].tolist().__repr__() for i in range(64)}
    assert len(orientations) == 8 and seen == orientations
    # off, it draws nothing extra: the crops and flips of earlier runs replay exactly
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    x = torch.rand(6, 1, 12, 12)
    torch.testing.assert_close(tdata.crop_flip([x], 8, True, g1)[0], tdata.crop_flip([x], 8, True, g2, False)[0])


def test_tasks_make_aligned_pairs():
    g = torch.Generator().manual_seed(0)
    b = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8)
    a, t = tdata.Task("superres", scale=4).make(b)
    assert a.shape == (2, 3, 4, 4) and t.shape == (2, 3, 16, 16)
    a, t = tdata.Task("superres", scale=2, downsample="area").make(b)
    torch.testing.assert_close(a, torch.nn.functional.avg_pool2d(tdata.to_float(b), 2))
    a, t = tdata.Task("edges").make(b)
    assert a.shape == (2, 1, 16, 16) and set(a.unique().tolist()) <= {-1.0, 1.0}
    task = tdata.Task("colorize")
    a, t = task.make(b)
    assert a.shape == (2, 1, 16, 16) and t.shape == (2, 2, 16, 16)
    rgb = task.to_image(a, t)  # L + the true ab reassemble the picture
    assert (rgb - tdata.to_float(b)).abs().max() < 0.02
    a, t = tdata.Task("inpaint").make(b, gen=g)
    hole = a[:, 3:] > 0
    assert a.shape == (2, 4, 16, 16) and hole.any() and (a[:, :3][hole.expand(-1, 3, -1, -1)] == 0).all()


def test_photos_split_by_source_photograph():
    train, test = tdata.load_pairs(DataConfig(source="photos", resolution=16), tdata.Task("superres", scale=2))
    assert len(train) and len(test)
    assert set(train.sources).isdisjoint(test.sources)
    assert set(test.sources) == {"chelsea", "china"}
    assert train.channels == 3


def test_mnist_test_split_is_the_digit_networks_held_out_set():
    from ganforge.metrics.digits import split_mnist

    train, test = tdata.load_pairs(DataConfig(source="mnist"), tdata.Task("superres", scale=4))
    (_, _), (xte, yte) = split_mnist()
    assert len(test) == len(yte) and len(train) + len(test) == 5000
    torch.testing.assert_close(tdata.to_float(test.b), xte)
    assert torch.equal(test.labels, yte)


def _png(path, array):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_paired_folders_side_by_side_and_two_folders(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(10):
        _png(tmp_path / "ab" / f"{i}.png", np.concatenate([np.full((8, 8, 3), i, np.uint8),
                                                            np.full((8, 8, 3), 100 + i, np.uint8)], 1))
        img = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
        _png(tmp_path / "two" / "A" / f"{i}.png", img)
        _png(tmp_path / "two" / "B" / f"{i}.jpg", 255 - img)
    (tmp_path / "ab" / "notes.png").write_text("not an image")
    cfg = DataConfig(source=str(tmp_path / "ab"), resolution=8, cache=False)
    with pytest.warns(UserWarning, match=r"skipped 1 file\(s\) that are not readable images: notes.png"):
        train, test = tdata.load_pairs(cfg, tdata.Task("paired"))
    assert len(train) == 9 and len(test) == 1
    assert test.a[0, 0, 0, 0] == 9 and test.b[0, 0, 0, 0] == 109
    cfg.source = str(tmp_path / "two")
    train, test = tdata.load_pairs(cfg, tdata.Task("paired"))
    assert len(train) == 9 and train.a.shape == train.b.shape == (9, 3, 8, 8)


def test_paired_folder_errors_name_the_files(tmp_path):
    img = np.zeros((8, 8, 3), np.uint8)
    for name in ("a", "b", "c"):
        _png(tmp_path / "p" / "A" / f"{name}.png", img)
    _png(tmp_path / "p" / "B" / "a.png", img)
    _png(tmp_path / "p" / "B" / "z.png", img)
    cfg = DataConfig(source=str(tmp_path / "p"), resolution=8, cache=False)
    with pytest.raises(DataError, match=r"3 file\(s\) without a partner .*: A/b.png, A/c.png, B/z.png; rename"):
        tdata.load_pairs(cfg, tdata.Task("paired"))
    (tmp_path / "p" / "A" / "b.png").unlink()
    (tmp_path / "p" / "A" / "c.png").unlink()
    (tmp_path / "p" / "B" / "z.png").unlink()
    _png(tmp_path / "p" / "B" / "a.png", np.zeros((4, 8, 3), np.uint8))
    with pytest.raises(DataError, match=r"A/a.png is 8x8 but B/a.png is 8x4: the two images of a pair must have"):
        tdata.load_pairs(cfg, tdata.Task("paired"))
    _png(tmp_path / "odd" / "x.png", np.zeros((8, 15, 3), np.uint8))
    cfg.source = str(tmp_path / "odd")
    with pytest.raises(DataError, match=r"x.png is 15x8: an A\|B image .* its width must be even"):
        tdata.load_pairs(cfg, tdata.Task("paired"))
    # two files of one name: pairs go by name, so neither may be dropped unseen
    _png(tmp_path / "p" / "A" / "a.jpg", img)
    cfg.source = str(tmp_path / "p")
    with pytest.raises(DataError, match=r"A: 1 name\(s\) used by more than one image: a.jpg and a.png; pairs are "
                                        r"matched by name, so rename or remove one of each$"):
        tdata.load_pairs(cfg, tdata.Task("paired"))


# ---------------------------------------------------------------------- tiled inference
def test_tiled_equals_untiled_and_sees_one_tile_at_a_time():
    from ganforge.translate.infer import tiled

    torch.manual_seed(0)
    G, _ = models.build(_cfg("srresnet", scale=2, blocks=1))
    G.eval()
    with torch.no_grad():  # train the output layer a little: the starting network is exactly bicubic
        G.tail[-1].weight.normal_(0, 0.05)
    seen = []
    G.register_forward_pre_hook(lambda m, args: seen.append(tuple(args[0].shape[-2:])))
    x = torch.rand(1, 3, 70, 90) * 2 - 1
    with torch.no_grad():
        whole = G(x)
        seen.clear()
        parts = tiled(G, x, 2, tile=32, overlap=24)
    assert parts.shape == whole.shape == (1, 3, 140, 180)
    assert len(seen) > 1 and max(max(s) for s in seen) <= 32  # tile by tile, never the whole image
    torch.testing.assert_close(parts, whole, atol=1e-3, rtol=0)
    with torch.no_grad():  # too little overlap for the network's reach: off only near the seams
        rough = tiled(G, x, 2, tile=32, overlap=2)
    diff = (rough - whole).abs().amax((0, 1))
    assert diff.max() > 1e-2
    assert diff[:20, :20].max() < 1e-3  # the first tile's interior is far from any seam


def test_tile_starts_cover_the_image():
    from ganforge.translate.infer import starts

    assert starts(10, 32, 24) == [0]
    assert starts(70, 32, 8) == [0, 8, 16, 24, 32, 38]


def test_inputs_of_each_task_are_read_as_the_model_needs(tmp_path):
    from PIL import Image

    from ganforge.config import RunConfig
    from ganforge.translate.infer import read_input

    cfg = RunConfig()
    cfg.model.channels = 3
    gen = torch.Generator().manual_seed(0)
    rgb = np.random.default_rng(0).integers(0, 255, (6, 6, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    rgba = np.concatenate([rgb, np.full((6, 6, 1), 255, np.uint8)], -1)
    rgba[1:3, 2:5, 3] = 0
    Image.fromarray(rgba).save(tmp_path / "holes.png")
    with pytest.raises(DataError, match="rgb.png: inpainting fills transparent pixels, and this image has none"):
        read_input(tmp_path / "rgb.png", tdata.Task("inpaint"), cfg, False, gen)
    a, target, notes = read_input(tmp_path / "holes.png", tdata.Task("inpaint"), cfg, False, gen)
    assert a.shape == (1, 4, 6, 6) and target is None and notes == []
    assert ((a[0, 3] > 0) == torch.from_numpy(rgba[..., 3] == 0)).all()
    a, _, notes = read_input(tmp_path / "rgb.png", tdata.Task("colorize"), cfg, False, gen)
    assert a.shape == (1, 1, 6, 6) and notes == ["rgb.png: colour input: only its lightness (CIE L) is used"]
    a, _, notes = read_input(tmp_path / "rgb.png", tdata.Task("edges"), cfg, False, gen)
    assert a.shape == (1, 1, 6, 6) and "colour input converted to gray" in notes[0]
    a, target, _ = read_input(tmp_path / "rgb.png", tdata.Task("superres", scale=4), cfg, True, gen)
    assert a.shape == (1, 3, 1, 1) and target.shape == (1, 3, 4, 4)  # cropped to a multiple of the scale


def test_inputs_are_read_upright_and_16_bit_gray_is_scaled_as_in_training(tmp_path):
    from PIL import Image

    from ganforge.config import RunConfig
    from ganforge.translate.infer import read_input

    cfg = RunConfig()
    cfg.model.channels = 3
    gen = torch.Generator().manual_seed(0)
    Image.fromarray(np.full((6, 6), 32768, np.uint16)).save(tmp_path / "mid16.png")  # mid-gray in 16 bits
    assert Image.open(tmp_path / "mid16.png").mode.startswith("I")
    a, _, notes = read_input(tmp_path / "mid16.png", tdata.Task("superres", scale=2), cfg, False, gen)
    assert a.shape == (1, 3, 6, 6) and a.abs().max() < 0.01  # 32768 / 257 = 127.5: the middle of [-1, 1]
    assert notes == ["mid16.png: gray input converted to RGB (three equal channels) for this RGB model"]
    stored = Image.new("RGB", (8, 4), (200, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: shown turned a quarter, so 4 wide and 8 high
    stored.save(tmp_path / "turned.jpg", exif=exif)
    a, _, _ = read_input(tmp_path / "turned.jpg", tdata.Task("superres", scale=2), cfg, False, gen)
    assert a.shape == (1, 3, 8, 4)


def test_sr_metrics_state_the_channel_border_and_data():
    from ganforge.translate.metrics import hf_ratio, task_metrics, y_channel

    task = tdata.Task("superres", scale=2)
    b = torch.randint(0, 256, (3, 3, 16, 16), dtype=torch.uint8)
    a, t = task.make(b)
    test = tdata.Pairs(b, name="toy")
    rows = {r["metric"]: r for r in task_metrics(task, a, t, t, test)}
    assert rows["psnr_y[model]"]["value"] == float("inf") or rows["psnr_y[model]"]["value"] > 90
    assert rows["ssim_y[model]"]["value"] == 1.0
    assert rows["psnr_y[model]"]["measured"] == ("PSNR (skimage) on BT.601 luma Y (16-235), 2-px border cropped, "
                                                 "toy test split, 3 images 16x16")
    y = y_channel(np.full((1, 2, 2, 3), 255, np.uint8))
    assert np.allclose(y, 235.0)
    smooth = np.tile(np.linspace(0, 1, 16), (1, 16, 1))
    noisy = smooth + np.random.default_rng(0).normal(0, 0.1, smooth.shape)
    assert hf_ratio(smooth, noisy) < 0.1 < hf_ratio(noisy, noisy) == 1.0


def test_output_names_differ_in_more_than_case(tmp_path):
    """On case-insensitive file systems X.png and x.png are one file: names must differ case-folded."""
    from ganforge.translate.infer import output_names

    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    files = [tmp_path / "one" / "X.PNG", tmp_path / "two" / "x.png"]
    for f in files:
        f.write_bytes(b"")
    dests, grid = output_names(files, tmp_path / "one")
    names = [p.name for p in dests.values()]
    assert grid == tmp_path / "one" / "comparison.png"
    assert names == ["X-png.png", "x-2.png"]  # one/X.png would be the input X.PNG there
    assert len({n.casefold() for n in names}) == 2
