"""Tests for ganforge.data: built-ins, folders, zips, fit modes, skipped files, errors, cache."""
from __future__ import annotations

import os
import re
import warnings
import zipfile
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from PIL import Image

from ganforge.config import DataConfig
from ganforge.data import ImageDataset, builtin_datasets, default_cache_dir, load_dataset
from ganforge.errors import ConfigError, DataError, GanforgeWarning


def save_img(path: Path, size=(10, 10), color=(200, 30, 30), mode="RGB", fmt=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path, format=fmt)
    return path


def cfg(source, **kw) -> DataConfig:
    kw.setdefault("resolution", 8)
    kw.setdefault("cache", False)
    return DataConfig(source=str(source), **kw)


def make_classes(root: Path) -> Path:
    save_img(root / "cat" / "a.png", color=(255, 0, 0))
    save_img(root / "cat" / "b.jpg", color=(250, 0, 0))
    save_img(root / "dog" / "sub" / "c.PNG", color=(0, 0, 255))
    save_img(root / ".hidden" / "x.png")  # ignored: hidden folder
    save_img(root / "dog" / ".y.png")  # ignored: hidden file
    (root / "dog" / "notes.txt").write_text("not an image")
    return root


# ---- built-ins ---------------------------------------------------------------------------------

def test_mnist():
    ds = load_dataset(DataConfig("mnist"))
    assert isinstance(ds, ImageDataset)
    assert ds.images.shape == (5000, 1, 28, 28) and ds.images.dtype == torch.uint8
    assert ds.images.is_contiguous() and int(ds.images.max()) == 255
    assert ds.labels.dtype == torch.int64 and ds.labels.bincount().tolist() == [500] * 10
    assert ds.class_names == [str(i) for i in range(10)] and ds.num_classes == 10
    assert (ds.resolution, ds.channels, len(ds), ds.name) == (28, 1, 5000, "mnist")


def test_digits_upscaled_rgb_and_unlabelled():
    ds = load_dataset(DataConfig("digits", resolution=32))
    assert ds.images.shape == (1797, 1, 32, 32) and ds.images.dtype == torch.uint8
    assert int(ds.images.min()) == 0 and int(ds.images.max()) == 255
    native = load_dataset(DataConfig("digits"))
    assert native.resolution == 8 and int(native.images.max()) == 255
    rgb = load_dataset(DataConfig("digits", channels=3, labels=False))
    assert rgb.images.shape == (1797, 3, 8, 8) and rgb.labels is None and rgb.class_names == []
    assert torch.equal(rgb.images[:, 0], rgb.images[:, 2])
    assert set(builtin_datasets()) == {"mnist", "digits", "photos", "photos-test"}


def test_photos_are_colour_crops_split_by_source_photograph():
    train = load_dataset(DataConfig("photos", resolution=16))
    test = load_dataset(DataConfig("photos-test", resolution=16))
    assert train.images.shape == (2048, 3, 16, 16) and test.images.shape == (256, 3, 16, 16)
    assert set(train.class_names).isdisjoint(test.class_names)  # no photograph on both sides
    assert len(train.class_names) == 8 and train.labels.bincount().tolist() == [256] * 8
    # colour, not gray copied into three channels
    assert (train.images[:, 0].float() - train.images[:, 2].float()).abs().mean() > 10
    again = load_dataset(DataConfig("photos", resolution=16))
    assert torch.equal(train.images, again.images)  # the same crops every time
    # no test crop equals a training crop (exact duplicates would mean a leak)
    flat = {bytes(x.flatten().tolist()) for x in train.images}
    assert not any(bytes(x.flatten().tolist()) in flat for x in test.images)
    gray = load_dataset(DataConfig("photos-test", resolution=16, channels=1, labels=False))
    assert gray.images.shape == (256, 1, 16, 16) and gray.labels is None
    # luma: a weighted mean of the colour channels, rounded
    luma = (torch.tensor([299.0, 587.0, 114.0]).view(1, 3, 1, 1) * test.images).sum(1) / 1000
    assert (gray.images[:, 0].float() - luma.float()).abs().max() <= 1


# ---- folders and zips --------------------------------------------------------------------------

def test_folder_with_class_subfolders(tmp_path):
    ds = load_dataset(cfg(make_classes(tmp_path / "d")))
    assert ds.class_names == ["cat", "dog"] and ds.labels.tolist() == [0, 0, 1]
    assert ds.images.shape == (3, 3, 8, 8) and ds.skipped == 0
    assert ds.images[2, 2].float().mean() > 200  # the blue dog
    assert load_dataset(cfg(tmp_path / "d", labels=False)).labels is None


def test_flat_folder_and_single_subfolder_are_unlabelled(tmp_path):
    save_img(tmp_path / "flat" / "a.png")
    save_img(tmp_path / "flat" / "b.bmp")
    ds = load_dataset(cfg(tmp_path / "flat"))
    assert ds.labels is None and ds.class_names == [] and len(ds) == 2
    save_img(tmp_path / "mixed" / "top.png")  # one file outside the sub-folders: no labels
    save_img(tmp_path / "mixed" / "a" / "x.png")
    save_img(tmp_path / "mixed" / "b" / "y.png")
    assert load_dataset(cfg(tmp_path / "mixed")).labels is None


@pytest.mark.parametrize("wrapper", ["", "dataset/"])
def test_zip_matches_folder(tmp_path, wrapper):
    root = make_classes(tmp_path / "d")
    zpath = tmp_path / "d.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for f in sorted(root.rglob("*")):
            if f.is_file():
                zf.write(f, wrapper + f.relative_to(root).as_posix())
        zf.writestr("__MACOSX/cat/._a.png", b"junk")
    a, b = load_dataset(cfg(root)), load_dataset(cfg(zpath))
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert a.class_names == b.class_names and b.skipped == 0


def test_zip_members_with_unsafe_paths_are_skipped_with_one_counted_warning(tmp_path):
    good = save_img(tmp_path / "g.png").read_bytes()
    zpath = tmp_path / "data.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for name in ("cat/a.png", "cat/b.png", "dog/c.png", "../x.png", "/abs/x.png", "C:/y.png", "..\\z.png",
                     "dog/../../w.png", "../notes.txt"):
            zf.writestr(name, good)
    with pytest.warns(GanforgeWarning) as rec:
        ds = load_dataset(cfg(zpath))
    assert [str(w.message) for w in rec] == ["skipped 5 zip members with unsafe paths in data.zip (../x.png, "
                                             "/abs/x.png, C:/y.png, ...): only paths inside the archive are read"]
    assert len(ds) == 3 and ds.class_names == ["cat", "dog"]  # no class named '..', 'abs' or 'C:'


def test_an_unconditional_family_says_once_that_it_ignores_the_classes(tmp_path):
    root = make_classes(tmp_path / "d")
    save_img(root / "owl" / "o.png")
    note = ("data has 3 classes (sub-folders) but family dcgan is unconditional: labels ignored; use cdcgan to "
            "use them, or --no-labels to silence this")
    cache = tmp_path / "cache"
    for _ in range(2):  # the second load is a cache hit: still exactly one note per load asked for it
        with pytest.warns(GanforgeWarning) as rec:
            ds = load_dataset(cfg(root, cache=True), cache_dir=cache, family="dcgan")
        assert [str(w.message) for w in rec] == [note] and ds.num_classes == 3
    assert "use cstylegan2" in _warnings(lambda: load_dataset(cfg(root), family="stylegan2"))[0]
    message = _warnings(lambda: load_dataset(cfg(root), family="mlp"))[0]
    assert re.search(r"use cdcgan or (\w+ or )*cstylegan2 to use them", message)
    # nothing to say: a conditional family, no family (not training), labels off, or a folder without classes
    assert _warnings(lambda: load_dataset(cfg(root), family="cdcgan")) == []
    assert _warnings(lambda: load_dataset(cfg(root))) == []
    assert _warnings(lambda: load_dataset(cfg(root, labels=False), family="dcgan")) == []
    assert _warnings(lambda: load_dataset(cfg(root / "cat"), family="dcgan")) == []


def _warnings(load) -> list[str]:
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        load()
    return [str(w.message) for w in rec]


def test_corrupt_files_are_skipped_with_one_warning(tmp_path):
    root = tmp_path / "d"
    save_img(root / "good.png")
    (root / "bad.png").write_bytes(os.urandom(300))
    buf = save_img(tmp_path / "full.png", size=(64, 64)).read_bytes()
    (root / "trunc.png").write_bytes(buf[: len(buf) // 2])
    msg = r"skipped 2 of 3 files that could not be read as images \(first: "
    with pytest.warns(UserWarning, match=msg) as rec:
        ds = load_dataset(cfg(root))
    assert len(rec) == 1 and "bad.png: cannot identify image file" in str(rec[0].message)
    assert ds.skipped == 2 and len(ds) == 1


@pytest.mark.parametrize("fit", ["center-crop", "pad", "stretch"])
def test_fit_modes(tmp_path, fit):
    img = Image.new("L", (40, 20), 255)  # white, twice as wide as high
    img.paste(0, (0, 0, 10, 20))  # black left quarter
    img.save(tmp_path / "wide.png")
    ds = load_dataset(cfg(tmp_path, resolution=16, fit=fit))
    x = ds.images[0, 0].float()
    assert ds.images.shape == (1, 1, 16, 16)
    if fit == "pad":  # black bands above and below, white middle
        assert x[:3].max() <= 5 and x[-3:].max() <= 5 and x[8, 10] >= 250
        assert ds.images[0, 0, 0, 0] == 0
    elif fit == "center-crop":  # the centre 20x20 is all white
        assert x.min() >= 250
    else:  # stretched: left quarter stays black over the full height
        assert x[:, :3].max() <= 5 and x[:, 6:].min() >= 250


def test_channel_auto_detection(tmp_path):
    save_img(tmp_path / "g" / "a.png", mode="L", color=100)
    save_img(tmp_path / "g" / "b.png", mode="1", color=1)
    assert load_dataset(cfg(tmp_path / "g")).channels == 1
    save_img(tmp_path / "g" / "c.jpg", color=(10, 200, 10))
    ds = load_dataset(cfg(tmp_path / "g"))
    assert ds.channels == 3 and ds.images[0, :, 4, 4].tolist() == [100, 100, 100]
    assert load_dataset(cfg(tmp_path / "g", channels=1)).channels == 1


def test_gif_first_frame_and_rgba(tmp_path):
    frames = [Image.new("RGB", (12, 12), c) for c in [(255, 0, 0), (0, 0, 255)]]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=50)
    ds = load_dataset(cfg(tmp_path))
    assert ds.images.shape == (1, 3, 8, 8)
    r, g, b = ds.images[0, :, 4, 4].tolist()
    assert r > 200 and b < 50
    save_img(tmp_path / "t" / "clear.png", mode="RGBA", color=(255, 255, 255, 0))
    assert load_dataset(cfg(tmp_path / "t")).images.max() == 0  # transparent -> black


# ---- errors ------------------------------------------------------------------------------------

def test_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(DataError, match=r"no images found in '.*empty' \(looked for .png, .jpg"):
        load_dataset(cfg(tmp_path / "empty"))
    with pytest.raises(DataError, match=r"data folder '.*nope' not found: .*built-in name "
                                        r"\(mnist, digits, photos, photos-test\)"):
        load_dataset(cfg(tmp_path / "nope"))
    with pytest.raises(DataError, match="not found.*mnist, digits"):
        load_dataset(cfg("cifar10"))
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DataError, match=r"is a file, not a folder or \.zip"):
        load_dataset(cfg(tmp_path / "x.txt"))
    (tmp_path / "bad.zip").write_bytes(b"not a zip at all")
    with pytest.raises(DataError, match="not a readable .zip"):
        load_dataset(cfg(tmp_path / "bad.zip"))
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.png").write_bytes(b"garbage")
    with pytest.raises(DataError, match="no readable images found"):
        load_dataset(cfg(tmp_path / "junk"))
    with pytest.raises(DataError, match="fit must be one of"):
        load_dataset(cfg(tmp_path, fit="zoom"))
    with pytest.raises(DataError, match="resolution must be"):
        load_dataset(cfg("mnist", resolution=2))
    with pytest.raises(DataError, match="channels must be"):
        load_dataset(cfg("mnist", channels=2))


# ---- cache -------------------------------------------------------------------------------------

def test_cache_hit_skips_decoding_and_invalidates(tmp_path, monkeypatch):
    root = make_classes(tmp_path / "d")
    (root / "cat" / "bad.png").write_bytes(b"garbage")
    cdir = tmp_path / "cache"
    with pytest.warns(UserWarning, match="skipped 1 of 4"):
        first = load_dataset(cfg(root, cache=True), cache_dir=cdir)
    files = list((cdir / "datasets").glob("*.npz"))
    assert len(files) == 1 and not list((cdir / "datasets").glob("*.tmp"))

    real_open = PIL.Image.open

    def no_decoding(*a, **k):
        raise AssertionError("decoded despite a cache hit")

    monkeypatch.setattr(PIL.Image, "open", no_decoding)
    with pytest.warns(UserWarning, match="skipped 1 of 4"):
        again = load_dataset(cfg(root, cache=True), cache_dir=cdir)
    assert torch.equal(first.images, again.images) and torch.equal(first.labels, again.labels)
    assert again.class_names == first.class_names and again.skipped == 1

    # another option -> another key -> decodes (every file now fails to open)
    with pytest.raises(DataError, match="decoded despite a cache hit"):
        load_dataset(cfg(root, cache=True, fit="pad"), cache_dir=cdir)
    monkeypatch.setattr(PIL.Image, "open", real_open)

    save_img(root / "dog" / "new.png")  # a new file -> a new key
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        grown = load_dataset(cfg(root, cache=True), cache_dir=cdir)
    assert len(grown) == len(first) + 1
    assert len(list((cdir / "datasets").glob("*.npz"))) == 2


def test_corrupt_cache_is_rebuilt(tmp_path):
    save_img(tmp_path / "d" / "a.png")
    cdir = tmp_path / "cache"
    ds = load_dataset(cfg(tmp_path / "d", cache=True), cache_dir=cdir)
    (npz,) = (cdir / "datasets").glob("*.npz")
    npz.write_bytes(b"PK\x03\x04 broken")
    again = load_dataset(cfg(tmp_path / "d", cache=True), cache_dir=cdir)
    assert torch.equal(ds.images, again.images)
    with np.load(npz, allow_pickle=False) as z:
        assert z["images"].shape == (1, 3, 8, 8)


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("GANFORGE_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "ganforge"


def test_float_and_wide_integer_gray_images_keep_their_range(tmp_path):
    from ganforge.data.images import decode

    ramp = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    PIL.Image.fromarray(ramp, "F").save(tmp_path / "unit.tif")  # a float image in [0, 1], as science tools save
    PIL.Image.fromarray((ramp * 1000).astype(np.int32), "I").save(tmp_path / "wide.tif")
    PIL.Image.fromarray(ramp * 2 - 1, "F").save(tmp_path / "signed.tif")  # [-1, 1]
    with_inf = ramp.copy()
    with_inf[0, 1] = np.inf
    PIL.Image.fromarray(with_inf, "F").save(tmp_path / "inf.tif")
    for name in ("unit.tif", "wide.tif", "signed.tif", "inf.tif"):
        img, gray = decode(str(tmp_path / name), None)
        arr = np.asarray(img)
        assert gray and img.mode == "L" and arr.min() == 0 and arr.max() == 255, name


def test_a_cache_that_cannot_be_written_warns_and_training_data_still_loads(tmp_path):
    from ganforge.errors import GanforgeWarning

    save_img(tmp_path / "d" / "a.png")
    (tmp_path / "cache").write_text("a file, not a folder")
    with pytest.warns(GanforgeWarning, match="could not write the dataset cache .*; continuing without it"):
        ds = load_dataset(cfg(tmp_path / "d", cache=True), cache_dir=tmp_path / "cache")
    assert ds.images.shape == (1, 3, 8, 8)


def _pngs(folder: Path, n: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(np.full((8, 8), 40 * i, dtype=np.uint8)).save(folder / f"{i}.png")


def test_linked_class_folders_are_followed_once_and_a_loop_ends(tmp_path):
    root, store = tmp_path / "pets", tmp_path / "store"
    _pngs(root / "bird", 2)
    _pngs(store / "dog", 3)
    os.symlink(store / "dog", root / "dog")
    os.symlink(root, root / "bird" / "loop")  # a link back up: must not recurse
    data = load_dataset(DataConfig(source=str(root), resolution=8, cache=False))
    assert data.class_names == ["bird", "dog"] and len(data) == 5
    assert sorted(data.labels.tolist()) == [0, 0, 1, 1, 1]


def test_a_conditional_family_says_why_a_folder_gave_no_labels(tmp_path):
    from ganforge.config import RunConfig
    from ganforge.train.trainer import complete_config

    cfg = RunConfig()
    cfg.model.family = "cdcgan"
    _pngs(tmp_path / "a" / "cat", 2)
    _pngs(tmp_path / "a" / "dog", 2)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "a" / "stray.png")
    _pngs(tmp_path / "b" / "only", 2)
    for folder, reason in (("a", "1 image(s) lie beside the class sub-folders, not in one (first: stray.png): "
                                 "move them into a class folder or out of the data folder"),
                           ("b", "it has one class sub-folder (only); a conditional model needs two or more")):
        data = load_dataset(DataConfig(source=str(tmp_path / folder), resolution=8, cache=False))
        with pytest.raises(ConfigError) as e:
            complete_config(cfg, data)
        assert str(e.value) == (f"model family 'cdcgan' needs class labels, but '{tmp_path / folder}' gives none: "
                                f"{reason}")


def test_an_image_over_pil_s_pixel_limit_is_skipped_with_a_reason_not_a_raw_warning(tmp_path, monkeypatch):
    _pngs(tmp_path / "imgs", 2)
    Image.fromarray(np.zeros((12, 12), np.uint8)).save(tmp_path / "imgs" / "big.png")
    monkeypatch.setattr(PIL.Image, "MAX_IMAGE_PIXELS", 100)  # 144 px: where PIL only warns (up to twice the limit)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = load_dataset(DataConfig(source=str(tmp_path / "imgs"), resolution=8, cache=False))
    assert len(data) == 2 and data.skipped == 1
    assert not [w for w in caught if issubclass(w.category, PIL.Image.DecompressionBombWarning)]
    [note] = [str(w.message) for w in caught if issubclass(w.category, GanforgeWarning)]
    assert "big.png: too many pixels (over PIL's limit of 100): a possible decompression bomb" in note
