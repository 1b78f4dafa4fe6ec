"""Editing directions (SeFa, PCA, InterFaceGAN SVM), the digit attributes they are fitted to, and edit strips."""
import numpy as np
import pytest
import torch
from PIL import Image
from skimage.morphology import dilation, disk
from skimage.transform import AffineTransform, warp

from ganforge import models
from ganforge.config import ModelConfig
from ganforge.edit import attributes, edit_latent, find_directions, load_directions, render_strip
from ganforge.edit.directions import (
    class_centred,
    fingerprint,
    project_out,
    read_labels,
    seed_z,
    sefa_matrix,
    style_affines,
    weights_hash,
)
from ganforge.edit.editing import load_projected_w, parse_strengths
from ganforge.errors import ConfigError, GanforgeError, GenerateError, StyleGANError
from ganforge.generate.stylegan import map_to_w, synthesize

Z = 16


def tiny_G(family="stylegan2", num_classes=0, seed=0, z_dim=Z, resolution=16):
    torch.manual_seed(seed)
    G, _ = models.build(ModelConfig(family=family, z_dim=z_dim, resolution=resolution, channels=1, g_width=16,
                                    d_width=16, num_classes=num_classes, d_norm="batch"))
    return G.eval().requires_grad_(False)


@pytest.fixture(scope="module")
def sg():
    return tiny_G()


@pytest.fixture(scope="module")
def cdc():
    return tiny_G("cdcgan", num_classes=10, resolution=28)


# ----------------------------------------------------------------- SeFa
@pytest.mark.parametrize("layers", [[0, 1, 2], [5]])
def test_sefa_vectors_are_unit_eigenvectors_of_the_style_weights(sg, layers):
    dirs = find_directions(sg, "sefa", layers=layers, k=5, n=200)
    A = sefa_matrix(sg, "w", layers).double()
    M = A.t() @ A
    V = torch.from_numpy(dirs.vectors).double()
    lam = torch.from_numpy(dirs.values).double()
    assert V.shape == (5, Z) and dirs.names == [f"sefa{i}" for i in range(5)] and dirs.layers == layers
    assert torch.allclose(V.norm(dim=1), torch.ones(5, dtype=torch.double), atol=1e-5)
    assert torch.allclose(M @ V.t(), V.t() * lam, atol=1e-4 * lam.max().item())
    assert (lam[:-1] >= lam[1:]).all() and lam[0] == pytest.approx(torch.linalg.eigvalsh(M).max().item(), rel=1e-4)
    # the chosen layers' convolution affines (the last w is read by the final toRGB only)
    want = [m for i in layers for m in style_affines(sg)[i]]
    if layers == [0, 1, 2]:
        want = [m for m in want if m is not sg.synthesis.b4.torgb.affine and m is not sg.synthesis.b8.torgb.affine]
    assert A.shape[0] == sum(m.weight.shape[0] for m in want)


def test_sefa_in_z_uses_the_first_linear_layer(cdc):
    dirs = find_directions(cdc, "sefa", k=3, n=100)
    assert dirs.space == "z" and dirs.layers is None
    W = cdc.fc.weight[:, :Z].double()  # the class embedding's columns are not part of z
    W = W / W.norm(dim=1, keepdim=True)
    for v, lam in zip(torch.from_numpy(dirs.vectors).double(), dirs.values):
        assert torch.allclose(W.t() @ (W @ v), lam * v, atol=1e-3 * lam)


# ----------------------------------------------------------------- PCA
def test_pca_components_are_orthonormal_and_ordered_by_variance(sg):
    dirs = find_directions(sg, "pca", k=6, n=600)
    V = torch.from_numpy(dirs.vectors).double()
    assert torch.allclose(V @ V.t(), torch.eye(6, dtype=torch.double), atol=1e-5)
    assert np.all(np.diff(dirs.values) <= 0) and np.all(np.diff(dirs.std) <= 0)
    w = map_to_w(sg, seed_z(sg, range(600)), None)[:, 0].double()
    proj = (w - w.mean(0)) @ V.t()
    assert np.allclose(proj.std(0).numpy(), dirs.std, rtol=1e-3)


# ----------------------------------------------------------------- SVM
def planted(G, n, u):
    seeds = list(range(n))
    return seeds, (seed_z(G, seeds).double() @ u.double()).numpy()


def test_svm_recovers_a_planted_linear_attribute_in_z(cdc):
    u = torch.nn.functional.normalize(torch.randn(Z, generator=torch.Generator().manual_seed(3)), dim=0)
    seeds, scores = planted(cdc, 2000, u)
    dirs = find_directions(cdc, "svm", labels=(seeds, {"planted": scores}))
    assert dirs.names == ["planted"] and dirs.space == "z"
    assert torch.dot(dirs.vector("planted"), u).item() > 0.9  # points toward higher scores
    assert dirs.std_of("planted") == pytest.approx(1.0, abs=0.1)  # z is N(0, I)


def test_conditional_direction_is_orthogonal_to_the_conditions(cdc):
    g = torch.Generator().manual_seed(4)
    u, v = torch.nn.functional.normalize(torch.randn(2, Z, generator=g), dim=1)
    seeds, a = planted(cdc, 1500, u)
    _, b = planted(cdc, 1500, (u + v) / 2)  # b correlates with a
    dirs = find_directions(cdc, "svm", labels=(seeds, {"a": a, "b": b}), conditions=["b"])
    assert dirs.names == ["a", "a-plain", "b"]
    cond, plain, other = (dirs.vector(n) for n in dirs.names)
    assert abs(torch.dot(cond, other).item()) < 1e-5 and cond.norm().item() == pytest.approx(1, abs=1e-5)
    assert torch.dot(plain, other).item() > 0.3  # the plain direction did move b


def test_project_out_removes_the_span_of_several_conditions():
    g = torch.Generator().manual_seed(0)
    d, a, b = torch.randn(3, 10, generator=g)
    out = project_out(d, [a, b])
    assert abs(torch.dot(out, a).item()) < 1e-5 and abs(torch.dot(out, b).item()) < 1e-5
    assert out.norm().item() == pytest.approx(1, abs=1e-6) and torch.dot(out, d).item() > 0
    with pytest.raises(ConfigError, match="span of the conditions"):
        project_out(a + b, [a, b])


def test_w_latents_of_a_conditional_network_are_centred_per_class():
    x = torch.tensor([[1.0, 0], [3, 0], [10, 2], [12, 4]])
    c = torch.tensor([0, 0, 1, 1])
    assert torch.equal(class_centred(x, c), torch.tensor([[-1.0, 0], [1, 0], [-1, -1], [1, 1]]))


# ----------------------------------------------------------------- labels
def test_labels_csv_with_and_without_header(tmp_path):
    (tmp_path / "a.csv").write_text("3,0.5\n1,-1\n7,2\n9,0\n")
    seeds, cols = read_labels(tmp_path / "a.csv")
    assert seeds == [3, 1, 7, 9] and list(cols) == ["score"] and cols["score"].tolist() == [0.5, -1, 2, 0]
    (tmp_path / "b.csv").write_text("seed,age,glasses\n0,30,1\n1,60,0\n2,20,0\n3,45,1\n")
    seeds, cols = read_labels(tmp_path / "b.csv")
    assert list(cols) == ["age", "glasses"] and cols["age"].tolist() == [30, 60, 20, 45]


@pytest.mark.parametrize("text,message", [
    ("0,1\n1,2\n2\n3,4\n", "row 3: expected 2 fields (seed,score), got 1"),
    ("0,1\n-5,2\n2,3\n3,4\n", "row 2: seed -5 does not exist: seeds are whole numbers from 0 to 4294967295"),
    ("0,1\n1,2\n2,3\n4294967296,4\n", "row 4: seed 4294967296 does not exist"),
    ("0,1\n1,x\n2,3\n3,4\n", "row 2: scores must be numbers, got 'x'"),
    ("0,1\n1,2\n1,3\n3,4\n", "row 3: seed 1 is labelled twice (first in row 2)"),
    ("seed,score\n0,1\nseven,2\n", "row 3: seed 'seven' is not a whole number"),
    ("0,1\n1,2\n", "labels 2 seeds; an SVM needs at least 4"),
    ("seed,age,age\n0,1,2\n1,2,3\n", "row 1: column age appears more than once"),
    ("\n\nseed,age,\n0,1,2\n1,2,3\n", "row 3: score column 3 has no name"),
])
def test_bad_labels_name_the_row(tmp_path, text, message):
    (tmp_path / "l.csv").write_text(text)
    with pytest.raises(ConfigError) as e:
        read_labels(tmp_path / "l.csv")
    assert message in str(e.value) and "\n" not in str(e.value)


# ----------------------------------------------------------------- attributes
@pytest.fixture(scope="module")
def digit_images():
    from ganforge.config import DataConfig
    from ganforge.data import load_dataset

    data = load_dataset(DataConfig(source="digits", resolution=28, cache=False))  # faster to load than mnist
    idx = torch.cat([(data.labels == k).nonzero()[:10, 0] for k in range(10)])
    return data.images[idx].float() / 127.5 - 1, data.labels[idx]


def from_gray(gray):
    return torch.from_numpy(np.stack(gray) * 2 - 1).float()[:, None]


def test_thickness_grows_when_the_strokes_are_dilated(digit_images):
    x, _ = digit_images
    gray = attributes.ink(x)
    thick = attributes.thickness(x)
    dilated = attributes.thickness(from_gray([dilation(g, disk(1)) for g in gray]))
    assert (dilated > thick).all()
    bars = []
    for w in (2, 4, 6):
        bar = np.zeros((28, 28))
        bar[4:24, 14 - w // 2:14 + w // 2] = 1
        bars.append(bar)
    assert np.allclose(attributes.thickness(from_gray(bars)), [2, 4, 6], rtol=0.25)  # in pixels


def sheared(gray, s):
    c = np.array([13.5, 13.5])
    T = AffineTransform(translation=-c) + AffineTransform(shear=s) + AffineTransform(translation=c)
    return warp(gray, T.inverse, order=1)


def test_slant_sign_flips_under_a_horizontal_shear():
    bar = np.zeros((28, 28))
    bar[4:24, 12:16] = 1  # an upright stroke
    upright = attributes.slant(from_gray([bar]))[0]
    right, left = attributes.slant(from_gray([sheared(bar, 0.4), sheared(bar, -0.4)]))
    assert abs(upright) < 1e-9 and right > 0.2 and left < -0.2 and right == pytest.approx(-left, rel=1e-3)


def test_width_and_class_attributes(digit_images):
    x, y = digit_images
    bar = np.zeros((28, 28))
    bar[4:24, 12:16] = 1
    wide = bar.copy()
    wide[4:24, 8:20] = 1
    narrow_w, wide_w = attributes.width(from_gray([bar, wide]))
    assert narrow_w == pytest.approx(np.sqrt((4 ** 2 - 1) / 12)) and wide_w == pytest.approx(np.sqrt(143 / 12))
    probs = attributes.measure("class:7", x)
    assert probs[y == 7].mean() > 0.8 and probs[y != 7].mean() < 0.05
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), value=-1)
    assert np.allclose(attributes.thickness(padded, crop=2), attributes.thickness(x))


@pytest.mark.parametrize("name,message", [("bold", "unknown attribute 'bold'; choose thickness, slant, width or "
                                                   "class:K"),
                                          ("class:12", "the digit network knows digits 0..9")])
def test_unknown_attributes(name, message):
    with pytest.raises(ConfigError, match=message):
        attributes.check_attribute(name)


def test_svm_on_a_built_in_attribute_and_a_callable(cdc):
    dirs = find_directions(cdc, "svm", attribute="width", n=200)
    assert dirs.names == ["width"] and dirs.info["scores"] == "width"
    calls = []

    def brightness(images):
        calls.append(images.shape)
        return images.mean(dim=(1, 2, 3))

    dirs = find_directions(cdc, "svm", classifier=brightness, classifier_name="brightness", n=120, name="bright")
    assert dirs.names == ["bright"] and calls == [(120, 1, 28, 28)]
    with pytest.raises(ConfigError, match=r"returned scores of shape \[3, 2\] for 3 images"):
        attributes.call_scores(lambda im: np.zeros((3, 2)), torch.zeros(3, 1, 8, 8), "f")
    with pytest.raises(ConfigError, match=r"^--classifier m:f raised ZeroDivisionError: division by zero \(run it"):
        attributes.call_scores(lambda im: 1 / 0, torch.zeros(3, 1, 8, 8), "--classifier m:f")
    inner = lambda im: attributes.call_scores(lambda x: np.zeros((3, 2)), im, "--classifier m:g")
    with pytest.raises(ConfigError, match=r"^--classifier m:g returned scores of shape"):  # wrapped once only
        attributes.call_scores(inner, torch.zeros(3, 1, 8, 8), "g")


def test_folder_classifier_scores_its_positive_label(tmp_path):
    rng = np.random.default_rng(0)
    for label, level in (("dark", 40), ("light", 200)):
        (tmp_path / "faces" / label).mkdir(parents=True)
        for i in range(6):
            arr = np.clip(rng.normal(level, 20, (16, 16, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(arr).save(tmp_path / "faces" / label / f"{i}.png")
    clf, name = attributes.scorer(str(tmp_path / "faces"), 3, 16)
    assert name == "light" and clf.labels == ["dark", "light"] and clf.train_accuracy == 1.0
    scores = clf(torch.stack([torch.full((3, 16, 16), -0.7), torch.full((3, 16, 16), 0.6)]))
    assert scores[1] > 0 > scores[0]
    with pytest.raises(ConfigError, match="has no label 'old'; its labels are dark, light"):
        attributes.scorer(str(tmp_path / "faces"), 3, 16, positive="old")


# ----------------------------------------------------------------- the file
def test_directions_file_round_trip_and_identity_check(sg, tmp_path):
    dirs = find_directions(sg, "sefa", layers=[0, 1], k=4, n=100, family="stylegan2")
    path = dirs.save(tmp_path / "d.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.npz"]  # no temporary file left behind
    back = load_directions(path, sg)
    assert back.names == dirs.names and back.layers == [0, 1] and back.space == "w" and back.method == "sefa"
    assert np.array_equal(back.vectors, dirs.vectors) and np.array_equal(back.std, dirs.std)
    assert back.network == {"family": "stylegan2", "z_dim": Z, "num_classes": 0, "w_dim": 16, "num_ws": 6,
                            "fingerprint": fingerprint(sg), "weights": weights_hash(sg)}
    other = tiny_G(z_dim=8, resolution=32)  # another architecture: w is the same size, the layers are not
    with pytest.raises(GenerateError) as e:
        load_directions(path, other)
    msg = str(e.value)
    assert msg.startswith(f"{path} was made for a generator of another architecture: directions of shape [4, 16] "
                          "in w (stylegan2: z 16, "
                          "w 16 x 6 layers") and "this run has w of shape [8, 16]" in msg and "\n" not in msg
    with pytest.raises(GenerateError, match=r"no direction 'age' in .*d.npz; it holds: sefa0, sefa1, sefa2, sefa3"):
        back.vector("age")


def test_directions_from_other_weights_of_the_architecture_warn(sg, tmp_path):
    import copy

    from ganforge.errors import GanforgeWarning

    path = find_directions(sg, "sefa", layers=[0, 1], k=2, n=50, family="stylegan2").save(tmp_path / "d.npz")
    trained_on = copy.deepcopy(sg)
    with torch.no_grad():
        next(trained_on.parameters()).add_(0.01)  # the same architecture, other weights
    assert weights_hash(trained_on) != weights_hash(sg) and fingerprint(trained_on) == fingerprint(sg)
    with pytest.warns(GanforgeWarning, match=r"d.npz was found on other weights of this architecture"):
        assert load_directions(path, trained_on).names == ["sefa0", "sefa1"]
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_directions(path, sg)  # its own network: no warning


# ----------------------------------------------------------------- editing
def test_edit_latent_moves_only_the_chosen_layers():
    z = torch.randn(8)
    d = torch.nn.functional.normalize(torch.randn(8), dim=0)
    out = edit_latent(z, d, [-1, 0, 2], std=0.5)
    assert out.shape == (3, 8) and torch.equal(out[1], z) and torch.allclose(out[2] - z, d)
    ws = torch.randn(6, 8)
    out = edit_latent(ws, d, [0, 3], layers=[1, 2])
    assert torch.equal(out[:, [0, 3, 4, 5]], ws[None, [0, 3, 4, 5]].expand(2, -1, -1))
    assert torch.allclose(out[1, 1:3] - ws[1:3], 3 * d.expand(2, -1))


@pytest.mark.parametrize("data,message", [
    ("seed,\xe2ge\n0,1\n".encode("latin-1"), "is not UTF-8 text (byte 5): save it as a UTF-8 CSV"),
    (b"0,1\x00\x01\n", "is not a text file (it holds NUL bytes)"),
    ("seed,score\n0,1\n".encode("utf-16"), "is UTF-16 text: save it as a UTF-8 CSV"),
    (b"\xef\xbb\xbfseed,\xe2ge\n0,1\n", "is not UTF-8 text (byte 8)"),
])
def test_labels_that_are_not_utf8_text_are_one_line(tmp_path, data, message):
    (tmp_path / "l.csv").write_bytes(data)
    with pytest.raises(ConfigError) as e:
        read_labels(tmp_path / "l.csv")
    assert message in str(e.value) and "\n" not in str(e.value)


def test_strength_syntax():
    assert parse_strengths("-3:3:7") == [-3, -2, -1, 0, 1, 2, 3]
    assert parse_strengths("-2,0,2.5") == [-2, 0, 2.5] and parse_strengths("1.5") == [1.5]
    for bad in ("1:2", "a:b:3", "-1:1:0", "x", "1,,2", "nan"):
        with pytest.raises(GenerateError, match="strength must be START:STOP:COUNT"):
            parse_strengths(bad)
    assert len(parse_strengths("-3:3:256")) == 256
    for count in (1000000, 10 ** 13):  # refused before any array of that length is made
        with pytest.raises(GenerateError, match=f"asks for {count} frames: at most 256 per strip"):
            parse_strengths(f"1:2:{count}")
    with pytest.raises(GenerateError, match="strength lists 300 values: at most 256 frames per strip"):
        parse_strengths(",".join(["1"] * 300))


def test_render_strip_png_and_gif(sg, cdc, tmp_path):
    dirs = find_directions(sg, "sefa", k=2, n=50)
    imgs = render_strip(sg, dirs, "sefa0", seed=2, strengths=[-2, 0, 2], out=tmp_path / "s.png")
    assert imgs.shape == (3, 1, 16, 16)
    plain = synthesize(sg, map_to_w(sg, seed_z(sg, [2]), None))
    assert torch.allclose(imgs[1], plain[0], atol=1e-5)  # strength 0 is the seed's own image
    up = 4  # 16 px images are shown 4x larger
    assert Image.open(tmp_path / "s.png").size == (3 * (16 * up + 2 * up) + 2 * up, 16 * up + 4 * up)
    render_strip(sg, dirs, "sefa0", seed=2, strengths=[-3, -1, 1, 3], out=tmp_path / "s.gif")
    gif = Image.open(tmp_path / "s.gif")
    assert gif.n_frames == 4 and gif.size == (64, 64)
    zdirs = find_directions(cdc, "sefa", k=1, n=50)
    imgs = render_strip(cdc, zdirs, "sefa0", seed=5, strengths=[0, 1])
    assert imgs.shape == (2, 1, 28, 28) and not torch.equal(imgs[0], imgs[1])
    with pytest.raises(StyleGANError, match="this run is CondDCGenerator: drop --layers"):
        render_strip(cdc, zdirs, "sefa0", layers="0-1")


def test_edit_a_projected_w(sg, tmp_path):
    dirs = find_directions(sg, "pca", k=2, n=100, layers=[0, 1, 2])
    w = torch.randn(1, 6, 16)
    np.savez(tmp_path / "projected_w.npz", w=w.numpy())
    loaded = load_projected_w(tmp_path / "projected_w.npz", sg)
    imgs = render_strip(sg, dirs, "pca0", strengths=[0, 2], w=loaded)
    assert torch.allclose(imgs[0], synthesize(sg, w)[0], atol=1e-5)
    moved = w.clone()
    moved[0, :3] += 2 * dirs.std_of("pca0") * dirs.vector("pca0")
    assert torch.allclose(imgs[1], synthesize(sg, moved)[0], atol=1e-4)  # only the directions' layers move
    np.savez(tmp_path / "bad.npz", w=np.zeros((1, 4, 16), np.float32))
    with pytest.raises(StyleGANError, match=r"holds a w of shape \[1, 4, 16\] but this network needs \[1, 6, 16\]"):
        load_projected_w(tmp_path / "bad.npz", sg)
    np.savez(tmp_path / "nokey.npz", x=np.zeros(3))
    with pytest.raises(StyleGANError, match="holds no 'w' array"):
        load_projected_w(tmp_path / "nokey.npz", sg)
    np.save(tmp_path / "w.npy", w.numpy())
    with pytest.raises(StyleGANError, match="w.npy is a single array, not the projected_w.npz"):
        load_projected_w(tmp_path / "w.npy", sg)
    Image.new("L", (8, 8)).save(tmp_path / "photo.png")
    for junk in ("photo.png", "nokey.txt"):
        if junk.endswith(".txt"):
            (tmp_path / junk).write_text("not numbers")
        with pytest.raises(StyleGANError) as e:
            load_projected_w(tmp_path / junk, sg)
        assert str(e.value) == f"{tmp_path / junk} is not an .npz archive: pass the projected_w.npz that " \
                               "`ganforge project` wrote"  # and no hint at unpickling it
    np.savez(tmp_path / "nan.npz", w=np.full((1, 6, 16), np.nan, np.float32))
    with pytest.raises(StyleGANError, match="holds NaN or infinite values"):
        load_projected_w(tmp_path / "nan.npz", sg)


def test_a_file_that_is_not_an_npz_is_one_clear_line(sg, tmp_path):
    path = tmp_path / "notes.npz"
    path.write_text("not an archive")
    with pytest.raises(GanforgeError) as e:
        load_directions(path, sg)
    assert str(e.value) == (f"{path} is not a ganforge directions file (not an .npz archive): make one with "
                            "`ganforge directions RUN --out FILE.npz`")


def test_pca_finds_no_more_directions_than_its_samples_span(sg):
    from ganforge.errors import GanforgeWarning

    with pytest.warns(GanforgeWarning, match=r"PCA found 3 direction\(s\), not 10: 4 samples span only 3 "):
        dirs = find_directions(sg, "pca", k=10, n=4)
    assert dirs.names == ["pca0", "pca1", "pca2"] and (dirs.std > 1e-3).all()
