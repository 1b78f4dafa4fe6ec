"""ProGAN's sliced Wasserstein distance: the pyramid, the distance's order on known sets, and `eval --metrics swd`."""
import json

import numpy as np
import pytest
import torch
from skimage import data as skdata

from ganforge.cli import main
from ganforge.metrics.swd import Descriptors, _up, level_sizes, pyramid, swd


def _crops(n: int, size: int, seed: int) -> torch.Tensor:
    """Random crops of the astronaut photograph, uint8 [n, 3, size, size]."""
    img = torch.from_numpy(skdata.astronaut()).permute(2, 0, 1)
    rng = np.random.default_rng(seed)
    ys, xs = rng.integers(0, img.shape[1] - size, n), rng.integers(0, img.shape[2] - size, n)
    return torch.stack([img[:, y:y + size, x:x + size] for y, x in zip(ys, xs)])


def _descriptors(x: torch.Tensor, seed: int) -> Descriptors:
    d = Descriptors(per_image=32, seed=seed)
    for i in range(0, len(x), 50):
        d.add(x[i:i + 50])
    return d


def test_the_laplacian_pyramid_adds_back_up_to_the_image():
    x = torch.rand(2, 3, 64, 96)
    levels = pyramid(x)
    assert [tuple(lv.shape[-2:]) for lv in levels] == [(64, 96), (32, 48), (16, 24)]
    up = levels[-1]
    for lv in reversed(levels[:-1]):
        up = lv + _up(up, lv.shape[-2:])
    assert torch.allclose(up, x, atol=1e-5)
    assert level_sizes(64) == [64, 32, 16] and level_sizes(28) == [28] and len(pyramid(torch.rand(1, 1, 28, 28))) == 1


def test_swd_ranks_a_second_sample_below_blurred_below_noise():
    real = _descriptors(_crops(150, 32, 0), 0)
    other = _crops(150, 32, 1)
    blurred = torch.nn.functional.interpolate(torch.nn.functional.avg_pool2d(other.float(), 4), scale_factor=4)
    noise = torch.randint(0, 256, other.shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    same, blur, rand = (swd(real, _descriptors(x, 1)) for x in (other, blurred, noise))
    assert same["swd_resolutions"] == [32, 16] and len(same["swd_levels"]) == 2
    assert 0 < same["swd"] < blur["swd"] < rand["swd"]
    # blur takes away the finest level's detail and leaves the coarse layout nearly as it was
    fine, coarse = (blur["swd_levels"][i] - same["swd_levels"][i] for i in (0, 1))
    assert fine > 3 * abs(coarse)
    with pytest.raises(ValueError, match="one size"):
        swd(real, _descriptors(_crops(10, 16, 2), 1))


def test_eval_swd_of_a_folder_and_a_run(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "digits", "--steps", "2", "--out", str(run), "--family", "dcgan", "--z-dim", "8",
                 "--g-width", "8", "--d-width", "8", "--batch-size", "8", "--quiet", "--device", "cpu"]) == 0
    pngs = tmp_path / "pngs"
    assert main(["generate", str(run), "--n", "40", "--out", str(pngs)]) == 0
    capsys.readouterr()
    assert main(["eval", "--fake", str(pngs), "--real", "digits", "--metrics", "swd", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["features"] is None and r["metrics"]["swd_n"] == 40 and r["metrics"]["swd_resolutions"] == [8]
    untrained = r["metrics"]["swd"]
    real_pngs = tmp_path / "real"
    real_pngs.mkdir()
    from PIL import Image
    from sklearn.datasets import load_digits
    for i, im in enumerate(load_digits().images[:40]):
        Image.fromarray((im * 255 / 16).astype(np.uint8)).save(real_pngs / f"{i}.png")
    assert main(["eval", "--fake", str(real_pngs), "--real", "digits", "--metrics", "swd", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["metrics"]["swd"] < untrained  # real digits beat 2 steps of G
    assert main(["eval", str(run), "--metrics", "swd", "--n", "40"]) == 0
    table = capsys.readouterr().out
    assert "SWD x10^3" in table and "8 px" in table and "40 images of each set" in table
