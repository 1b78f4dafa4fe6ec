"""Exploring trained runs: GET /api/runs, POST /api/explore and its render endpoint, and the plain functions under
them (PCA directions, render)."""
import base64
import io

import pytest
import torch
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from ganforge import models
from ganforge.config import ModelConfig, RunConfig
from ganforge.data import load_dataset
from ganforge.errors import GenerateError
from ganforge.generate.stylegan import import_stylegan
from ganforge.playground import explore
from ganforge.playground.explore import Explorer, Interp, Mix, pca_directions, render
from ganforge.playground.security import Limits
from ganforge.storage.checkpoint import module_tensors, save_checkpoint
from ganforge.train.run import Run
from ganforge.train.trainer import Trainer

TOKEN = "test-token"


def train_tiny(path, family):
    cfg = RunConfig()
    cfg.data.source, cfg.data.cache = "digits", False
    cfg.model.family, cfg.model.z_dim, cfg.model.g_width, cfg.model.d_width = family, 8, 8, 8
    t = cfg.train
    t.batch_size, t.steps, t.sample_every, t.ckpt_every, t.log_every, t.grid_size, t.device = 8, 2, 2, 100, 1, 4, "cpu"
    Run(Trainer(cfg, load_dataset(cfg.data)), path, progress=False).train()
    return path


def tiny_stylegan(path):
    cfg = RunConfig()
    cfg.model = ModelConfig(family="stylegan2", z_dim=8, g_width=8, d_width=8, resolution=8, channels=1)
    torch.manual_seed(0)
    G, D = models.build(cfg.model)
    save_checkpoint(path / "checkpoint.safetensors", module_tensors(G, "G_ema") | module_tensors(D, "D"),
                    {"step": 0, "config": cfg.to_dict()})
    cfg.save(path / "config.json")
    return path


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    train_tiny(root / "dc", "dcgan")
    train_tiny(root / "cdc", "cdcgan")
    train_tiny(root / "lay", "layers")  # the family the playground exports
    (root / "sg").mkdir()
    tiny_stylegan(root / "sg")
    (root / "not-a-run").mkdir()
    (root / "broken").mkdir()
    (root / "broken" / "config.json").write_text("{not json")
    (root / "broken" / "checkpoint.safetensors").write_bytes(b"x")
    (root / "wrong-shape").mkdir()
    (root / "wrong-shape" / "config.json").write_text((root / "dc" / "config.json").read_text())
    other = (root / "cdc" / "checkpoint.safetensors").read_bytes()  # a cdcgan's weights for a dcgan config
    (root / "wrong-shape" / "checkpoint.safetensors").write_bytes(other)
    return root


def make_client(runs_dir):
    app = FastAPI()
    app.state.token, app.state.limits, app.state.runs_dir, app.state.uploads = TOKEN, Limits(), runs_dir, {}
    app.include_router(explore.make_router())
    return TestClient(app, headers={"X-Ganforge-Token": TOKEN}, raise_server_exceptions=False)


@pytest.fixture
def client(runs_dir):
    return make_client(runs_dir)


def open_run(client, name):
    r = client.post("/api/explore", json={"run": name})
    assert r.status_code == 200, r.text
    return r.json()


def draw(client, eid, **body):
    r = client.post(f"/api/explore/{eid}/render", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def pixels(url: str) -> bytes:
    assert url.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).tobytes()


def error(r, status=400):
    assert r.status_code == status, r.text
    assert set(r.json()) == {"error"} and "\n" not in r.json()["error"]
    return r.json()["error"]


# ----------------------------------------------------------------- runs
def test_runs_lists_the_run_folders(client, runs_dir):
    runs = client.get("/api/runs").json()["runs"]
    assert [r["name"] for r in runs] == ["cdc", "dc", "lay", "sg", "wrong-shape"]  # not-a-run and broken are left out
    cdc = runs[0]
    assert cdc == {"name": "cdc", "path": str(runs_dir / "cdc"), "family": "cdcgan", "resolution": 8, "channels": 1,
                   "conditional": True, "classes": [str(i) for i in range(10)]}
    assert runs[1]["conditional"] is False and runs[1]["classes"] == []


@pytest.mark.parametrize("name", ["../dc", "dc/..", "a/b", "..", "", "x\\y", 5, None])
def test_run_names_are_folder_names_only(client, name):
    assert "is not a folder name in the runs folder" in error(client.post("/api/explore", json={"run": name}))


def test_unknown_runs_and_sessions_are_404(client):
    assert error(client.post("/api/explore", json={"run": "nope"}), 404) == (
        "no run 'nope' in the runs folder: pick one that GET /api/runs lists")
    assert error(client.post("/api/explore/e99/render", json={}), 404).startswith("no explore session 'e99'")
    assert "is not a readable ganforge checkpoint" in error(client.post("/api/explore", json={"run": "broken"}))
    assert "does not match the model in config.json" in error(client.post("/api/explore", json={"run": "wrong-shape"}))
    assert error(client.post("/api/explore", json=["dc"])) == "the body must be a JSON object"


def test_a_run_that_fails_to_load_in_another_way_is_a_400(client, monkeypatch):
    def broken(*args):
        raise RuntimeError("size mismatch\n  in layer 3")

    monkeypatch.setattr(explore, "load_run", broken)
    assert error(client.post("/api/explore", json={"run": "dc"})) == (
        "run 'dc' cannot be loaded (size mismatch in layer 3): train or export it again")


def test_every_call_needs_the_token(runs_dir):
    app = make_client(runs_dir).app
    assert TestClient(app).get("/api/runs").status_code == 403
    assert TestClient(app).get("/api/runs?token=wrong").status_code == 403
    assert TestClient(app).get(f"/api/runs?token={TOKEN}").status_code == 200


# ----------------------------------------------------------------- rendering
def test_explore_info_and_render_is_deterministic_per_seed(client):
    opened = open_run(client, "dc")
    assert opened["info"] == {"family": "dcgan", "z_dim": 8, "num_classes": 0, "classes": [], "stylegan": False,
                              "num_ws": 0, "directions": 8, "named": [], "named_skipped": [],
                              "resolution": 8, "channels": 1}
    eid = opened["id"]
    a, again, other = draw(client, eid, seed=3), draw(client, eid, seed=3), draw(client, eid, seed=4)
    assert a["size"] == [8, 8]
    assert a["image"] == again["image"] and pixels(a["image"]) != pixels(other["image"])
    assert draw(client, eid, seed=3, n=4)["size"] == [2 + 2 * 10, 2 + 2 * 10]  # 2x2 grid with 2 px borders


def test_a_layers_run_from_the_playground_explores_too(client):
    opened = open_run(client, "lay")
    assert opened["info"]["family"] == "layers" and opened["info"]["directions"] == 8
    eid = opened["id"]
    a = draw(client, eid, seed=2, psi=0.7)["image"]
    assert draw(client, eid, seed=2, psi=0.7)["image"] == a
    assert pixels(draw(client, eid, seed=2, psi=0.7, directions=[0.0, 2.0])["image"]) != pixels(a)


def test_image_i_of_n_is_seed_plus_i():
    cfg = ModelConfig(family="dcgan", z_dim=8, g_width=8, d_width=8, resolution=8, channels=1, d_norm="batch")
    torch.manual_seed(0)
    G, _ = models.build(cfg)
    G.eval()
    four = render(G, seed=10, n=4)
    assert torch.allclose(four[2], render(G, seed=12)[0], atol=1e-6)


def test_directions_change_the_image_and_are_computed_once(client, monkeypatch):
    calls = []
    real = explore.pca_directions
    monkeypatch.setattr(explore, "pca_directions", lambda G: calls.append(1) or real(G))
    eid = open_run(client, "dc")["id"]
    base = draw(client, eid, seed=1)["image"]
    assert calls == []  # nothing computed until a slider is used
    assert draw(client, eid, seed=1, directions=[0.0, 0.0])["image"] == base
    moved = draw(client, eid, seed=1, directions=[3.0])["image"]
    back = draw(client, eid, seed=1, directions=[0.0, -3.0])["image"]
    assert pixels(moved) != pixels(base) and pixels(back) != pixels(base) and pixels(moved) != pixels(back)
    assert calls == [1]


def test_pca_directions_are_orthonormal_and_ordered(runs_dir):
    for name, space, dim in (("dc", "z", 8), ("sg", "w", 8)):
        G = Explorer(runs_dir / name).G
        d = pca_directions(G, n_samples=500)
        assert d.space == space and d.components.shape == (8, dim)
        assert torch.allclose(d.components @ d.components.T, torch.eye(8), atol=1e-4)
        assert (d.stds[:-1] >= d.stds[1:]).all() and (d.stds > 0).all()
        assert torch.equal(pca_directions(G, n_samples=500).components, d.components)


def test_truncation(runs_dir):
    G = Explorer(runs_dir / "dc").G
    # z-space runs scale z: psi 0 is the one image at z = 0, whatever the seed
    assert torch.equal(render(G, seed=1, psi=0.0), render(G, seed=2, psi=0.0))
    assert not torch.equal(render(G, seed=1, psi=0.5), render(G, seed=2, psi=0.5))
    assert torch.allclose(render(G, seed=1, psi=-1.0), G(-render_z(G, 1)), atol=1e-6)
    sg = Explorer(runs_dir / "sg").G
    sg.mapping.w_avg.normal_(generator=torch.Generator().manual_seed(1))
    avg = sg.synthesis(sg.mapping.w_avg.expand(1, sg.num_ws, -1).clone(), noise_mode="const")
    assert torch.allclose(render(sg, seed=5, psi=0.0), avg, atol=1e-5)  # StyleGAN: psi 0 is w_avg's image


def render_z(G, seed):
    return explore.seed_latents(G, [seed])


def test_classes_by_name_or_number(client):
    eid = open_run(client, "cdc")["id"]
    assert draw(client, eid, seed=0, **{"class": "3"})["image"] == draw(client, eid, seed=0, **{"class": 3})["image"]
    assert pixels(draw(client, eid, seed=0, **{"class": 3})["image"]) != \
        pixels(draw(client, eid, seed=0, **{"class": 4})["image"])
    msg = error(client.post(f"/api/explore/{eid}/render", json={"class": "cat"}))
    assert msg == "unknown class 'cat': this run's classes are 0, 1, 2, 3, 4, 5, 6, 7, 8, 9"
    assert error(client.post(f"/api/explore/{eid}/render", json={"class": 10})).startswith("unknown class '10'")
    dc = open_run(client, "dc")["id"]
    assert error(client.post(f"/api/explore/{dc}/render", json={"class": 1})) == (
        "this run is unconditional: it has no class '1'; leave class empty")


def test_interpolation_runs_from_seed_a_to_seed_b(runs_dir):
    for name in ("dc", "sg"):
        G = Explorer(runs_dir / name).G
        a, b = render(G, seed=1), render(G, seed=7)
        spaces = ("z", "w") if name == "sg" else ("z",)
        for space in spaces:
            start = render(G, seed=1, interp=Interp(7, 0.0), space=space)
            end = render(G, seed=1, interp=Interp(7, 1.0), space=space)
            mid = render(G, seed=1, interp=Interp(7, 0.5), space=space)
            assert torch.allclose(start, a, atol=1e-5) and torch.allclose(end, b, atol=1e-4), (name, space)
            assert not torch.allclose(mid, a, atol=1e-3) and not torch.allclose(mid, b, atol=1e-3)


def test_style_mixing_on_an_imported_stylegan2_run(tmp_path, monkeypatch):
    from test_stylegan_tools import write_pickle

    write_pickle(tmp_path / "net.pkl", monkeypatch)
    runs = tmp_path / "runs"
    import_stylegan(tmp_path / "net.pkl", runs / "imported")
    client = make_client(runs)
    opened = open_run(client, "imported")
    info = opened["info"]
    assert info["stylegan"] is True and info["family"] == "stylegan2" and info["num_ws"] == 6
    eid = opened["id"]
    a, b = draw(client, eid, seed=1)["image"], draw(client, eid, seed=5)["image"]
    all_b = draw(client, eid, seed=1, mix={"seed": 5, "from_layer": 0})["image"]
    fine_b = draw(client, eid, seed=1, mix={"seed": 5, "from_layer": 4})["image"]
    assert pixels(all_b) == pixels(b)  # every layer from B: B's image
    assert pixels(fine_b) not in (pixels(a), pixels(b))
    assert draw(client, eid, seed=1, mix={"seed": 5, "from_layer": 4})["image"] == fine_b
    assert pixels(draw(client, eid, seed=1, directions=[2.0])["image"]) != pixels(a)
    msg = error(client.post(f"/api/explore/{eid}/render", json={"mix": {"seed": 5, "from_layer": 6}}))
    assert msg == "mix from_layer must be from 0 to 5 (this run's style layers), got 6"


def test_stylegan_only_controls_on_other_runs(client):
    eid = open_run(client, "dc")["id"]
    assert error(client.post(f"/api/explore/{eid}/render", json={"mix": {"seed": 1, "from_layer": 0}})) == (
        "style mixing needs a StyleGAN2 run; this run (dcgan) has no per-layer styles")
    assert error(client.post(f"/api/explore/{eid}/render", json={"space": "w"})) == (
        "space 'w' needs a StyleGAN2 run; this run (dcgan) has only z: use space 'z'")


@pytest.mark.parametrize("body, message", [
    ({"n": 65}, "n must be a whole number from 1 to 64, got 65"),
    ({"n": 0}, "n must be a whole number from 1 to 64, got 0"),
    ({"psi": 2.5}, "psi must be from -2 to 2 (1 = no truncation), got 2.5"),
    ({"psi": "1"}, "psi must be a number, got 1"),
    ({"seed": -1}, "seed must be a whole number from 0 to 4294967295, got -1"),
    ({"seed": 2 ** 32}, "seed must be a whole number from 0 to 4294967295, got 4294967296"),
    ({"seed": 1.5}, "seed must be a whole number from 0 to 4294967295, got 1.5"),
    ({"seed": True}, "seed must be a whole number from 0 to 4294967295, got True"),
    ({"directions": [1.0] * 9}, "9 direction strengths given, this run has 8 directions"),
    ({"directions": [11.0]}, "direction strengths must be from -10 to 10 standard deviations"),
    ({"directions": "up"}, "directions must be a list of numbers, one strength per principal direction"),
    ({"interp": {"seed_b": 1, "t": 1.5}}, "interp t must be from 0 to 1, got 1.5"),
    ({"interp": {"seed_b": 1}}, "interp must be an object with seed_b, t (or null)"),
    ({"space": "x"}, "space must be w or z, got 'x'"),
    ({"colour": 1}, "unknown render field 'colour': use seed, n, psi, class, directions, named, mix, interp, space"),
])
def test_bad_render_requests_are_400(client, body, message):
    eid = open_run(client, "dc")["id"]
    assert error(client.post(f"/api/explore/{eid}/render", json=body)) == message


def test_bodies_are_small_and_messages_one_line(client):
    eid = open_run(client, "cdc")["id"]
    r = client.post(f"/api/explore/{eid}/render", content=b'{"seed": 1, "pad": "' + b"x" * 70_000 + b'"}')
    assert error(r, 413) == "the request body is over 65536 bytes: send only the render controls"
    assert error(client.post(f"/api/explore/{eid}/render", json={"class": "a\nb"})).startswith(
        "unknown class 'a\\nb'")
    assert error(client.post("/api/explore", json={"run": "x\ny"}), 404) == (
        "no run 'x\\ny' in the runs folder: pick one that GET /api/runs lists")
    assert error(client.post("/api/explore", content=b"{nope")) == (
        "the request body is not JSON (Expecting property name enclosed in double quotes): send a JSON object")
    deep = b"[" * 30_000 + b"]" * 30_000
    assert error(client.post("/api/explore", content=deep)) == (
        "the request body nests too deeply (more than 32 levels): send a JSON object")
    assert error(client.post("/api/explore", content=b'{"run": ' + b"[" * 40 + b"]" * 40 + b"}")).startswith(
        "the request body nests too deeply")


def test_render_rejects_bad_values_in_plain_python(runs_dir):
    G = Explorer(runs_dir / "sg").G
    with pytest.raises(GenerateError, match="mix from_layer must be from 0 to"):
        render(G, mix=Mix(1, 99))
    with pytest.raises(GenerateError, match="1 direction strengths given, this run has 0 directions"):
        render(G, strengths=[1.0])


def test_explore_sessions_are_capped_and_closed(client):
    ids = [open_run(client, "dc")["id"] for _ in range(explore.MAX_EXPLORERS + 1)]
    assert error(client.post(f"/api/explore/{ids[0]}/render", json={}), 404).startswith("no explore session")
    assert client.delete(f"/api/explore/{ids[-1]}").status_code == 204
    assert client.post(f"/api/explore/{ids[-1]}/render", json={}).status_code == 404
    assert open_run(client, "dc")["id"] not in ids  # a closed id is not handed out again
    assert client.post(f"/api/explore/{ids[1]}/render", json={}).status_code == 200


# ----------------------------------------------------------------- named directions (ganforge directions)
@pytest.fixture(scope="module")
def named_runs(tmp_path_factory):
    from ganforge.edit.directions import find_directions
    from ganforge.generate.runs import load_run

    root = tmp_path_factory.mktemp("named")
    train_tiny(root / "dc", "dcgan")
    (root / "sg").mkdir()
    tiny_stylegan(root / "sg")
    _, G, _ = load_run(root / "sg")
    find_directions(G, "sefa", layers="0-1", k=2).save(root / "sg" / "directions" / "sefa.npz")
    _, Gd, _ = load_run(root / "dc")
    find_directions(Gd, "pca", k=3, n=200).save(root / "dc" / "directions" / "pca.npz")
    # the stylegan's directions copied into the dcgan run: made for another network, listed as left out
    (root / "dc" / "directions" / "from-sg.npz").write_bytes((root / "sg" / "directions" / "sefa.npz").read_bytes())
    import numpy as np

    np.savez(root / "dc" / "projected_w.npz", w=np.zeros((1, 8), np.float32))  # another kind of .npz: not news
    return root


def test_named_directions_are_listed_with_what_was_left_out(named_runs):
    info = make_client(named_runs).post("/api/explore", json={"run": "dc"}).json()["info"]
    assert [d["key"] for d in info["named"]] == ["directions/pca.npz:pca0", "directions/pca.npz:pca1",
                                                 "directions/pca.npz:pca2"]
    assert info["named"][0] == {"key": "directions/pca.npz:pca0", "name": "pca0", "file": "pca.npz",
                                "method": "pca", "space": "z", "layers": None}
    assert len(info["named_skipped"]) == 1
    assert info["named_skipped"][0].startswith("directions/from-sg.npz: ") and \
        "was made for another network" in info["named_skipped"][0]
    sg = make_client(named_runs).post("/api/explore", json={"run": "sg"}).json()["info"]
    assert [(d["name"], d["space"], d["layers"]) for d in sg["named"]] == [("sefa0", "w", [0, 1]),
                                                                          ("sefa1", "w", [0, 1])]


@pytest.mark.parametrize("run,key,name", [("dc", "directions/pca.npz:pca1", "pca1"),
                                          ("sg", "directions/sefa.npz:sefa0", "sefa0")])
def test_a_named_slider_draws_what_ganforge_edit_draws(named_runs, run, key, name):
    from ganforge.edit.directions import load_directions
    from ganforge.edit.editing import edit_images

    ex = Explorer(named_runs / run)
    dirs = load_directions(named_runs / run / key.split(":")[0], ex.G)
    for strength in (-2.0, 1.5):
        got = ex.render(seed=5, named={key: strength})
        want = edit_images(ex.G, dirs, name, seed=5, strengths=[strength])
        assert torch.allclose(got, want, atol=1e-5)
    base = ex.render(seed=5)
    assert torch.equal(ex.render(seed=5, named={key: 0.0}), base)
    assert (ex.render(seed=5, named={key: 3.0}) - base).abs().max() > 1e-3


def test_named_direction_errors_are_one_line(named_runs):
    client = make_client(named_runs)
    eid = open_run(client, "dc")["id"]
    msg = error(client.post(f"/api/explore/{eid}/render", json={"named": {"directions/x.npz:up": 1.0}}))
    assert msg.startswith("no named direction 'directions/x.npz:up' in this run; it has directions/pca.npz:pca0")
    assert "strengths must be from -10 to 10" in error(client.post(
        f"/api/explore/{eid}/render", json={"named": {"directions/pca.npz:pca0": 20}}))
    assert error(client.post(f"/api/explore/{eid}/render", json={"named": [1, 2]})).startswith(
        "named must be an object of at most 32")
    assert "must be a number" in error(client.post(
        f"/api/explore/{eid}/render", json={"named": {"directions/pca.npz:pca0": "up"}}))


def _damaged_copies(src, folder):
    """Directions files damaged in the ways a hand edit or a broken copy leaves them."""
    import json

    import numpy as np

    with np.load(src, allow_pickle=False) as f:
        good = {k: f[k] for k in f.files}
    meta = json.loads(str(good["meta"]))
    variants = {
        "meta-list": {"meta": np.array(json.dumps([1, 2]))},
        "flat-vectors": {"vectors": good["vectors"][0]},
        "version-text": {"meta": np.array(json.dumps(meta | {"format_version": "x"}))},
        "no-names": {"meta": np.array(json.dumps({k: v for k, v in meta.items() if k != "names"}))},
        "extra-names": {"meta": np.array(json.dumps(meta | {"names": meta["names"] + ["ghost"]}))},
        "layers-out-of-range": {"meta": np.array(json.dumps(meta | {"layers": [0, 99]}))},
    }
    folder.mkdir(exist_ok=True)
    for name, change in variants.items():
        np.savez(folder / f"{name}.npz", **(good | change))
    (folder / "truncated.npz").write_bytes(src.read_bytes()[:200])
    return sorted(variants) + ["truncated"]


def test_damaged_directions_files_are_left_out_with_a_reason(named_runs, tmp_path):
    import shutil

    from ganforge.edit.directions import load_directions

    run = tmp_path / "sg"
    shutil.copytree(named_runs / "sg", run)
    names = _damaged_copies(run / "directions" / "sefa.npz", run / "directions")
    for name in names:
        with pytest.raises(GenerateError, match="directions file"):
            load_directions(run / "directions" / f"{name}.npz")
    client = make_client(tmp_path)
    opened = open_run(client, "sg")  # the run itself still loads
    info = opened["info"]
    assert [d["key"] for d in info["named"]] == ["directions/sefa.npz:sefa0", "directions/sefa.npz:sefa1"]
    assert sorted(line.split(":")[0] for line in info["named_skipped"]) == \
        sorted(f"directions/{n}.npz" for n in names)
    assert draw(client, opened["id"], named={"directions/sefa.npz:sefa1": 2.0})["size"] == [8, 8]


def test_a_named_z_move_on_stylegan_reaches_the_other_seeds_too(named_runs, tmp_path):
    """Interpolating or mixing toward another seed keeps the edit: it moves every latent of the picture."""
    import shutil

    from ganforge.edit.directions import find_directions

    run = tmp_path / "sg"
    shutil.copytree(named_runs / "sg", run)
    ex0 = Explorer(run)
    find_directions(ex0.G, "pca", space="z", k=1, n=200).save(run / "directions" / "z.npz")
    ex = Explorer(run)
    key = "directions/z.npz:pca0"
    assert ex.info()["named"][-1]["space"] == "z"
    # at t = 1 the picture is seed B's: with the edit, seed B's edited picture
    assert torch.allclose(ex.render(seed=1, interp=Interp(seed_b=4, t=1.0), named={key: 2.0}),
                          ex.render(seed=4, named={key: 2.0}), atol=1e-5)
    assert torch.allclose(ex.render(seed=1, mix=Mix(seed=4, from_layer=0), named={key: 2.0}),
                          ex.render(seed=4, named={key: 2.0}), atol=1e-5)
    assert not torch.allclose(ex.render(seed=4, named={key: 2.0}), ex.render(seed=4), atol=1e-3)
