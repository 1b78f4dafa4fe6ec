"""The playground's server: setup checks, sessions on worker threads, SSE updates, limits, export, 2-D mode.

Models are tiny (digits at 8x8, a handful of units, batch 4) and every wait on a worker is a poll for an
outcome with a generous deadline, never a timed assertion.
"""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import pytest
import torch
from fastapi.testclient import TestClient

from ganforge.playground.app import create_app
from ganforge.playground.security import TOKEN_ERROR, Limits
from ganforge.playground.setup import PRESETS, check, parse_setup

TOKEN = "test-token"
Q = f"?token={TOKEN}"
TINY_G = [{"type": "fc", "out": 16}, {"type": "relu"}, {"type": "fc", "out": 64}, {"type": "tanh"},
          {"type": "reshape", "shape": [1, 8, 8]}]
TINY_D = [{"type": "flatten"}, {"type": "fc", "out": 8}, {"type": "leakyrelu"}, {"type": "fc", "out": 1}]
TINY = {"mode": "images", "data": {"source": "digits", "normalize": "[-1,1]"}, "g_layers": TINY_G,
        "d_layers": TINY_D, "z_dim": 4, "batch_size": 4, "loss": "ns",
        "g": {"opt": "adam", "lr": 0.001, "betas": [0.5, 0.999]}, "d": {"opt": "sgd", "lr": 0.01}}
TINY_2D = {"mode": "2d", "data2d": {"distribution": "ring"}, "z_dim": 2, "batch_size": 4,
           "g_layers": [{"type": "fc", "out": 4}, {"type": "relu"}, {"type": "fc", "out": 2}],
           "d_layers": [{"type": "fc", "out": 4}, {"type": "relu"}, {"type": "fc", "out": 1}]}


@pytest.fixture
def client(tmp_path):
    app = create_app(tmp_path / "runs", token=TOKEN)
    with TestClient(app) as c:
        yield c


def wait_for(get, ok, what: str, deadline_s: float = 60.0):
    """Poll ``get()`` until ``ok(value)``; the deadline only keeps a broken worker from hanging the suite."""
    end = time.monotonic() + deadline_s
    while True:
        value = get()
        if ok(value):
            return value
        assert time.monotonic() < end, f"gave up waiting for {what}; last value {value!r}"
        time.sleep(0.02)


def new_session(client, setup=TINY) -> str:
    r = client.post("/api/sessions" + Q, json={"setup": setup})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def state(client, sid: str) -> dict:
    return client.get(f"/api/sessions/{sid}/state{Q}").json()


def control(client, sid: str, action: str, **extra) -> dict:
    r = client.post(f"/api/sessions/{sid}/control{Q}", json={"action": action, **extra})
    assert r.status_code == 200, r.text
    return r.json()


# ---------------------------------------------------------------------- setup and check
def test_every_preset_checks_out_with_shapes_and_parameter_counts():
    for name, preset in PRESETS.items():
        result = check(parse_setup(preset))
        assert result["ok"], (name, result["errors"])
        last = result["g"][-1]["shape"]
        assert last == ([2] if preset["mode"] == "2d" else [1, 28, 28]), name
        assert result["d"][-1]["shape"] == [1] and result["params"]["g"] > 0 and result["params"]["d"] > 0
    gp = PRESETS["gan-playground"]
    assert gp["d"]["opt"] == "sgd" and gp["g"]["opt"] == "adam" and gp["g"]["betas"] == [0.9, 0.999]
    assert gp["batch_size"] == 15 and gp["g"]["lr"] == gp["d"]["lr"] == 0.08


def test_the_builtin_shape_table_matches_the_data(digits):
    from ganforge.playground.setup import BUILTIN_SHAPES, builtin_images

    assert BUILTIN_SHAPES["digits"] == ((digits.channels, digits.resolution, digits.resolution), digits.num_classes)
    assert builtin_images("digits").images.shape == digits.images.shape


def test_check_names_the_offending_layer(client):
    bad = {**TINY, "d_layers": [{"type": "conv", "out": 4}, {"type": "fc", "out": 1}]}
    r = client.post("/api/check" + Q, json={"setup": bad})
    assert r.status_code == 200
    body = r.json()
    assert not body["ok"] and body["d"][0]["shape"] == [4, 8, 8] and body["d"][1]["shape"] is None
    assert body["errors"] == [{"net": "d", "index": 1, "error": "discriminator layer 1 (fc) needs a 2-D input "
                               "[B, F], got [B, 4, 8, 8]; add a flatten layer before it"}]
    assert body["g"][-1]["shape"] == [1, 8, 8] and body["params"]["d"] is None

    wrong_size = {**TINY, "g_layers": TINY_G[:3] + [{"type": "reshape", "shape": [4, 4, 4]}]}
    err = client.post("/api/check" + Q, json={"setup": wrong_size}).json()["errors"][0]
    assert (err["net"], err["index"]) == ("g", 3) and "generator output is [B, 4, 4, 4] but images are [B, 1, 8, 8]" \
        in err["error"]
    # Creating a session with it is refused with the same error on the same layer.
    r = client.post("/api/sessions" + Q, json={"setup": bad})
    assert r.status_code == 400 and r.json()["index"] == 1 and r.json()["net"] == "d"


@pytest.mark.parametrize("change,message", [
    ({"mode": "video"}, "mode must be 'images' or '2d'"),
    ({"data": {"source": "cifar"}}, "data.source must be one of"),
    ({"data": {"normalize": "[-2,2]"}}, "data.normalize must be one of"),
    ({"g": {"opt": "lbfgs"}}, "g.opt 'lbfgs' is not an optimizer"),
    ({"d": {"lr": -1}}, "d.lr must be a number in (0, 10]"),
    ({"g": {"betas": [0.5, 1.5]}}, "g.betas must be a number in [0, 1)"),
    ({"batch_size": 100000}, "batch_size 100000 is over this server's limit of 512"),
    ({"batch_size": 0}, "batch_size must be a whole number from 1 to 512"),
    ({"z_dim": "64"}, "z_dim must be a whole number"),
    ({"loss": "bce"}, "loss 'bce' is not one of"),
    ({"g_layers": {"type": "fc"}}, "g_layers must be a list of layer objects"),
    ({"g_layers": [{"type": "relu"}] * 65}, "g_layers has 65 layers; at most 64"),
    ({"conditional": "yes"}, "conditional must be true or false"),
    ({"mode": "2d", "conditional": True}, "conditional applies to images mode only"),
    ({"mode": "2d", "data2d": {"distribution": "drawn", "points": [[0, 0]]}}, "data2d.points must be a list of 2"),
    ({"data": {"source": "upload:u9"}}, "data.source upload:u9 is not an uploaded image set"),
    ({"mode": "2d", "data2d": {"distribution": "upload:zzz"}},
     "data2d.distribution upload:zzz is not an uploaded set of points on this server"),
])
def test_bad_setups_are_400_with_one_line(client, change, message):
    r = client.post("/api/check" + Q, json={"setup": {**TINY, **change}})
    assert r.status_code == 400, r.text
    assert message in r.json()["error"] and "\n" not in r.json()["error"]


def test_a_huge_layer_is_refused_before_anything_is_built(client):
    huge = {**TINY, "g_layers": [{"type": "fc", "out": 10**9}, *TINY_G]}
    err = client.post("/api/check" + Q, json={"setup": huge}).json()["errors"][0]
    assert err["index"] == 0 and "'out' must be a positive integer up to 4,194,304, got 1000000000" in err["error"]
    wide = {**TINY, "g_layers": [{"type": "fc", "out": 4096}, {"type": "reshape", "shape": [1, 64, 64]},
                                 {"type": "upsample", "scale": 64}, {"type": "tanh"}]}
    err = client.post("/api/check" + Q, json={"setup": wide}).json()["errors"][0]
    assert err["index"] == 2 and "over 4194304 values per example" in err["error"]


# ---------------------------------------------------------------------- token
def test_every_api_call_needs_the_token(client):
    assert client.get("/api/meta").status_code == 403
    assert client.get("/api/meta").json() == {"error": TOKEN_ERROR}
    assert client.get("/api/meta?token=wrong").status_code == 403
    assert client.post("/api/sessions", json={"setup": TINY}).status_code == 403
    assert client.get("/api/meta", headers={"X-Ganforge-Token": TOKEN}).status_code == 200
    meta = client.get("/api/meta" + Q).json()
    assert set(meta["optimizers"]) == {"sgd", "momentum", "rmsprop", "adagrad", "adadelta", "adam"}
    assert meta["optimizers"]["momentum"] == ["lr", "momentum"] and meta["layer_types"]["fc"] == {"out": None}
    assert meta["limits"]["max_sessions"] == 8 and "toy-2d" in meta["presets"]
    page = client.get("/")  # the page itself needs no token: it reads it from its own URL
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")


def test_a_token_is_made_when_none_is_given(tmp_path):
    a, b = create_app(tmp_path), create_app(tmp_path)
    assert len(a.state.token) >= 16 and a.state.token != b.state.token


# ---------------------------------------------------------------------- sessions
def test_a_session_steps_trains_stops_and_reports(client):
    sid = new_session(client)
    assert control(client, sid, "step") == {"state": "stopped", "step": 0}  # the worker steps right after
    s = wait_for(lambda: state(client, sid), lambda u: u.get("step") == 1, "one step")
    assert s["state"] == "stopped" and s["examples"] == 4 and s["mode"] == "images"
    assert 0 < s["d_real"] < 1 and 0 < s["d_fake"] < 1 and 0 <= s["d_acc"] <= 1
    assert s["history"]["step"] == [1] and len(s["history"]["loss_g"]) == 1
    img = s["images"]
    assert len(img["p_real"]) == len(img["p_fake"]) == 16 and all(0 <= p <= 1 for p in img["p_real"])
    assert img["fixed"].startswith("data:image/png;base64,") and img["cols"] == 8
    assert s["infer_ms"] > 0 and s["generations_per_s"] > 0

    assert control(client, sid, "train", delay_ms=0)["state"] == "running"
    wait_for(lambda: state(client, sid), lambda u: u["step"] >= 3 and u["state"] == "running", "training")
    stopped = control(client, sid, "stop")
    assert stopped["state"] == "stopped"
    final = wait_for(lambda: state(client, sid), lambda u: u["state"] == "stopped", "the stop")
    time.sleep(0.2)  # a stopped worker does not step on
    assert state(client, sid)["step"] == final["step"]
    gif = client.get(f"/api/sessions/{sid}/timeline.gif{Q}")
    assert gif.status_code == 200 and gif.content[:6] == b"GIF89a"

    control(client, sid, "reset")
    wait_for(lambda: state(client, sid), lambda u: u["step"] == 0 and u["history"]["step"] == [], "the reset")
    assert client.delete(f"/api/sessions/{sid}{Q}").status_code == 204
    assert client.get(f"/api/sessions/{sid}/state{Q}").status_code == 404
    assert client.delete(f"/api/sessions/{sid}{Q}").status_code == 404


def test_g_only_and_d_only_steps_move_one_network(client):
    sid = new_session(client)
    session = client.app.state.sessions.get(sid)
    trainer = session.engine.trainer
    wait_for(lambda: state(client, sid), lambda u: "step" in u, "the first update")
    g0 = [p.detach().clone() for p in trainer.G.parameters()]
    d0 = [p.detach().clone() for p in trainer.D.parameters()]
    control(client, sid, "step_d")
    wait_for(lambda: state(client, sid), lambda u: u["examples"] == 4, "a D step")
    assert trainer.step_count == 0  # steps count G updates
    assert all(torch.equal(a, b) for a, b in zip(g0, trainer.G.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(d0, trainer.D.parameters()))
    d1 = [p.detach().clone() for p in trainer.D.parameters()]
    control(client, sid, "step_g")
    wait_for(lambda: state(client, sid), lambda u: u["step"] == 1, "a G step")
    assert all(torch.equal(a, b) for a, b in zip(d1, trainer.D.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(g0, trainer.G.parameters()))


def test_events_stream_sends_updates_as_sse(client):
    sid = new_session(client)
    control(client, sid, "step")
    wait_for(lambda: state(client, sid), lambda u: u.get("step") == 1, "one step")
    with client.stream("GET", f"/api/sessions/{sid}/events{Q}&limit=1") as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line]
    assert lines[0] == "event: update" and lines[1].startswith("data: ")
    update = json.loads(lines[1][len("data: "):])
    assert update["step"] == 1 and update["id"] == sid and "images" in update


def test_session_and_size_limits(tmp_path):
    app = create_app(tmp_path, token=TOKEN, limits=Limits(max_sessions=1, max_params=2000, max_batch=8))
    with TestClient(app) as c:
        r = c.post("/api/sessions" + Q, json={"setup": {**TINY, "batch_size": 9}})
        assert r.status_code == 400 and "over this server's limit of 8" in r.json()["error"]
        big = {**TINY, "g_layers": [{"type": "fc", "out": 64}, {"type": "tanh"}, {"type": "fc", "out": 64},
                                    {"type": "reshape", "shape": [1, 8, 8]}]}
        r = c.post("/api/sessions" + Q, json={"setup": big})
        assert r.status_code == 413 and "over this server's limit of 2,000" in r.json()["error"]
        new_session(c)
        r = c.post("/api/sessions" + Q, json={"setup": TINY})
        assert r.status_code == 429 and "1 sessions are open" in r.json()["error"]


def test_idle_sessions_are_removed_but_not_while_streamed(tmp_path):
    now = [0.0]
    app = create_app(tmp_path, token=TOKEN, limits=Limits(idle_timeout_s=60))
    app.state.sessions.clock = lambda: now[0]
    with TestClient(app) as c:
        a, b = new_session(c), new_session(c)
        sessions = app.state.sessions
        sessions.items[b].streams = 1  # a tab with its events stream open
        now[0] = 59.0
        assert sessions.reap() == []
        now[0] = 61.0
        assert sessions.reap() == [a]
        assert c.get(f"/api/sessions/{a}/state{Q}").status_code == 404
        assert a not in sessions.items and sessions.items[b].thread.is_alive()


# ---------------------------------------------------------------------- export
def test_export_writes_a_run_that_generate_and_resume_accept(client, tmp_path):
    from ganforge.cli.app import main
    from ganforge.storage.checkpoint import load_checkpoint

    sid = new_session(client)
    control(client, sid, "step")
    wait_for(lambda: state(client, sid), lambda u: u.get("step") == 1, "one step")
    r = client.post(f"/api/sessions/{sid}/export{Q}", json={"name": "mine"})
    assert r.status_code == 200, r.text
    run = r.json()["run"]
    assert r.json()["name"] == "mine" and run == str(tmp_path / "runs" / "mine")
    cfg = json.loads((tmp_path / "runs" / "mine" / "config.json").read_text())
    assert cfg["model"]["family"] == "layers" and cfg["model"]["g_layers"] == TINY_G
    assert cfg["train"]["d_opt"] == "sgd" and cfg["train"]["d_betas"][0] == 0  # plain sgd
    assert (tmp_path / "runs" / "mine" / "samples.png").is_file()
    assert main(["generate", run, "--n", "3", "--out", str(tmp_path / "gen")]) == 0
    assert len(list((tmp_path / "gen").glob("*.png"))) == 3
    assert main(["train", "--resume", run, "--steps", "3", "--quiet"]) == 0
    assert load_checkpoint(run)[1]["step"] == 3
    again = client.post(f"/api/sessions/{sid}/export{Q}", json={"name": "mine"}).json()
    assert again["name"] == "mine-2"  # an earlier run is never overwritten


def test_an_export_keeps_uploaded_images_and_the_data_scale(client, tmp_path):
    import io
    import zipfile

    from PIL import Image

    from ganforge import load
    from ganforge.cli.app import main

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i, label in enumerate(["a", "a", "b", "b", "b"]):
            png = io.BytesIO()
            Image.new("L", (8, 8), 40 * i).save(png, format="PNG")
            zf.writestr(f"pics/{label}/{i}.png", png.getvalue())
    r = client.post("/api/uploads" + Q, files={"file": ("pics.zip", buf.getvalue())},
                    data={"kind": "images", "resolution": "8", "channels": "1"})
    assert r.status_code == 201, r.text
    setup = {**TINY, "data": {"source": "upload:" + r.json()["id"], "normalize": "[0,1]"}}
    sid = new_session(client, setup)
    control(client, sid, "step")
    wait_for(lambda: state(client, sid), lambda u: u.get("step") == 1, "one step")
    run = client.post(f"/api/sessions/{sid}/export{Q}", json={"name": "up"}).json()["run"]
    cfg = json.loads((tmp_path / "runs" / "up" / "config.json").read_text())
    data_dir = tmp_path / "runs" / "up" / "data"
    assert cfg["data"]["source"] == str(data_dir.resolve())  # the upload, kept with the run
    assert sorted(p.name for p in data_dir.iterdir()) == ["a", "b"] and len(list(data_dir.rglob("*.png"))) == 5
    assert main(["train", "--resume", run, "--steps", "2", "--quiet"]) == 0  # the data is found again
    G = load(run)
    z = torch.randn(3, G.z_dim)
    raw = G._forward_hooks.clear() or G(z)  # without the hook: G's own [0, 1]-scale output
    assert torch.allclose(load(run)(z), raw * 2 - 1)  # what readers get: [-1, 1] as for every run


@pytest.mark.parametrize("name", ["../evil", "..", "a/b", "", "x" * 65, 7])
def test_export_names_are_checked(client, name):
    sid = new_session(client)
    r = client.post(f"/api/sessions/{sid}/export{Q}", json={"name": name})
    if name == "":  # empty means the default name
        assert r.status_code == 200 and r.json()["name"] == f"playground-{sid}"
    else:
        assert r.status_code == 400 and "must be 1 to 64 letters" in r.json()["error"]


# ---------------------------------------------------------------------- bad input everywhere
ENDPOINTS = [("get", "/api/meta"), ("post", "/api/check"), ("post", "/api/sessions"),
             ("post", "/api/sessions/{sid}/control"), ("get", "/api/sessions/{sid}/state"),
             ("get", "/api/sessions/{sid}/events"), ("get", "/api/sessions/{sid}/timeline.gif"),
             ("post", "/api/sessions/{sid}/export"), ("delete", "/api/sessions/{sid}")]
GARBAGE = [b"\xff\xfe{", b"[1, 2]", b"123", b'{"setup": 5}', b'{"setup": {"g_layers": [5]}}',
           b'{"action": 5}', b'{"action": "fly"}', b'{"action": "train", "delay_ms": -3}', b'{"name": ["x"]}',
           b'{"setup": {"d": {"lr": NaN}}}', b"x" * 5_000_000]


def test_garbage_to_every_endpoint_is_a_4xx_json_error(client):
    sid = new_session(client)
    for method, path in ENDPOINTS:
        for target in (sid, "nope", "../../etc"):
            url = path.format(sid=target) + Q + "&limit=1"
            for body in GARBAGE:
                r = client.request(method.upper(), url, content=body, headers={"content-type": "application/json"})
                if r.status_code < 400:
                    if method == "delete":
                        sid = new_session(client)  # deleted by a valid-looking call: continue with a new one
                    continue  # e.g. GET /api/meta ignores a body
                assert 400 <= r.status_code < 500, (method, url, body[:40], r.status_code, r.text[:200])
                assert isinstance(r.json()["error"], str) and r.json()["error"], (method, url, body[:40])
    assert client.get("/api/nothing" + Q).status_code == 404
    assert client.put("/api/meta" + Q).status_code == 405 and "error" in client.put("/api/meta" + Q).json()


# ---------------------------------------------------------------------- 2-D mode
def test_two_d_session_reports_the_plane(client):
    sid = new_session(client, TINY_2D)
    control(client, sid, "step")
    s = wait_for(lambda: state(client, sid), lambda u: u.get("step") == 1, "one 2-D step")
    p = s["plane"]
    assert p["res"] == 48 and len(p["d"]) == 48 and all(len(row) == 48 for row in p["d"])
    assert all(0 <= v <= 1 for row in p["d"] for v in row)
    assert len(p["manifold"]) == 11 and all(len(row) == 11 and len(row[0]) == 2 for row in p["manifold"])
    assert len(p["real"]) == len(p["fake"]) == len(p["grad"]) == 200 and len(p["grad"][0]) == 4
    assert p["kl"] >= 0 and 0 <= p["js"] <= 0.6932
    x0, x1, y0, y1 = p["bounds"]
    assert x0 < -0.6 < 0.6 < x1 and y0 < -0.6 < 0.6 < y1  # the ring of radius 0.6 fits
    r = client.post(f"/api/sessions/{sid}/export{Q}", json={})
    assert r.status_code == 400 and "2-D models have no run format" in r.json()["error"]


def test_two_d_steps_and_distributions():
    from ganforge.playground.toy2d import Toy2D, distribution, divergences

    for name in ("line", "gaussians", "ring", "disjoint"):
        pts = distribution(name, 300, seed=1)
        assert pts.shape == (300, 2) and pts.abs().max() < 1.2
    ring = distribution("ring", 500, seed=0)
    assert divergences(ring, ring, [-1, 1, -1, 1], 16) == (0.0, 0.0)
    far = ring + 5  # all in one border cell
    kl, js = divergences(ring, far, [-1, 1, -1, 1], 16)
    assert kl > 1 and 0.5 < js <= 0.6932

    drawn = parse_setup({**TINY_2D, "data2d": {"distribution": "drawn", "points": [[0, 0], [1, 1], [0, 1]]}})
    toy = Toy2D(drawn)
    assert toy.real.tolist() == [[0.0, 0.0], [1.0, 1.0], [0.0, 1.0]]
    g0 = [p.detach().clone() for p in toy.G.parameters()]
    toy.step("step_d")
    assert toy.step_count == 0 and all(torch.equal(a, b) for a, b in zip(g0, toy.G.parameters()))
    toy.step("step_g")
    assert toy.step_count == 1 and not all(torch.equal(a, b) for a, b in zip(g0, toy.G.parameters()))
    for loss in ("hinge", "lsgan", "wgan-gp"):
        t = Toy2D(parse_setup({**TINY_2D, "loss": loss, "g": {"opt": "momentum", "momentum": 0.9},
                               "d": {"opt": "adadelta", "lr": 1.0}}))
        stats = t.step("train")
        assert set(stats) == {"loss_d", "d_real", "d_fake", "loss_g"}
        assert all(torch.isfinite(torch.tensor(v)) for v in stats.values())


# ---------------------------------------------------------------------- the trainer's additions
@pytest.mark.parametrize("opt", ["momentum", "adagrad", "adadelta"])
def test_new_optimizers_train(tiny_cfg, digits, opt):
    from ganforge.train.trainer import Trainer

    tiny_cfg.train.g_opt = tiny_cfg.train.d_opt = opt
    tiny_cfg.train.g_momentum = tiny_cfg.train.d_momentum = 0.9
    tr = Trainer(tiny_cfg, digits)
    before = [p.detach().clone() for p in tr.G.parameters()]
    tr.step()
    assert not all(torch.equal(a, b) for a, b in zip(before, tr.G.parameters()))
    assert type(tr.opt_G).__name__.lower() == {"momentum": "sgd"}.get(opt, opt)
    if opt == "momentum":
        assert tr.opt_G.param_groups[0]["momentum"] == 0.9


def test_normalize_sets_the_real_images_scale(tiny_cfg, digits):
    from ganforge.errors import ConfigError
    from ganforge.train.trainer import Trainer

    default = Trainer(tiny_cfg, digits)._real_batch()[0]
    assert default.min() == -1 and default.max() == 1
    tiny_cfg.data.normalize = "[0,1]"
    assert Trainer(tiny_cfg, digits)._real_batch()[0].min() == 0
    tiny_cfg.data.normalize = "none"
    assert Trainer(tiny_cfg, digits)._real_batch()[0].max() == 255
    tiny_cfg.data.normalize = "[-2,2]"
    with pytest.raises(ConfigError, match="data.normalize must be one of"):
        Trainer(tiny_cfg, digits)


# ---------------------------------------------------------------------- the command
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_command_serves_and_guards_the_api(tmp_path):
    """A real `ganforge playground` process: it prints the URL with its token, and /api/meta answers only
    with that token."""
    import httpx

    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "ganforge", "playground", "--port", str(port), "--runs",
                             str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith(f"ganforge playground: http://127.0.0.1:{port}/?token="), line
        url = line.split()[-1]
        token = url.split("token=")[1]
        base = f"http://127.0.0.1:{port}"
        meta = wait_for(lambda: _get(httpx, f"{base}/api/meta?token={token}"), lambda r: r is not None, "the server")
        assert meta.status_code == 200 and "presets" in meta.json()
        denied = httpx.get(f"{base}/api/meta")
        assert denied.status_code == 403 and denied.json() == {"error": TOKEN_ERROR}
        # Real streaming (TestClient buffers a response): an endless events stream delivers its first update,
        # and the client hanging up leaves the server answering.
        sid = httpx.post(f"{base}/api/sessions?token={token}", json={"setup": TINY}, timeout=120).json()["id"]
        with httpx.stream("GET", f"{base}/api/sessions/{sid}/events?token={token}", timeout=60) as r:
            first = next(line for line in r.iter_lines() if line.startswith("data: "))
        assert json.loads(first[len("data: "):])["id"] == sid
        assert httpx.delete(f"{base}/api/sessions/{sid}?token={token}").status_code == 204
    finally:
        proc.terminate()
        proc.wait(30)


def _get(httpx, url):
    try:
        return httpx.get(url)
    except httpx.TransportError:
        return None


def test_a_non_loopback_host_is_warned_about(capsys, monkeypatch):
    from ganforge.cli import playground as cmd
    from ganforge.playground.security import is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    assert cmd.host_warning("0.0.0.0").startswith("ganforge playground: warning: 0.0.0.0 is not a loopback")
    assert cmd.host_warning("127.0.0.1") is None


def test_open_starts_the_browser_on_the_url_with_the_token(monkeypatch, capsys, tmp_path):
    import webbrowser

    import uvicorn

    from ganforge.cli.app import main

    opened = []
    monkeypatch.setattr(webbrowser, "open", opened.append)
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: None)
    monkeypatch.setattr("ganforge.devices.set_cpu_threads", lambda: 1)  # keep the suite's thread count
    assert main(["playground", "--port", "0", "--open", "--runs", str(tmp_path), "--host", "0.0.0.0"]) == 0
    out, err = capsys.readouterr()
    url = out.split()[-1]
    assert opened == [url] and url.startswith("http://0.0.0.0:") and "/?token=" in url
    assert err.count("\n") == 1 and "0.0.0.0 is not a loopback address" in err


def test_hostile_json_gets_a_400_naming_the_problem(client):
    def refusal(body: bytes, path="/api/check"):
        r = client.post(path + Q, content=body)
        assert r.status_code == 400, r.text
        return r.json()["error"]

    deep = b'{"setup": ' + b'{"a": ' * 100_000 + b"1" + b"}" * 100_001
    assert refusal(deep) == "the request body nests too deeply (more than 32 levels): send a JSON object"
    assert refusal(b'{"setup": {"g_layers": ' + b"[" * 50 + b"]" * 50 + b"}}").startswith(
        "the request body nests too deeply")
    big = b'{"setup": {"batch_size": ' + b"9" * 5000 + b"}}"
    for path in ("/api/check", "/api/sessions"):
        assert refusal(big, path).startswith("the request body holds a value Python cannot read (Exceeds the limit")
    long = client.post("/api/check" + Q, json={"setup": {**TINY, "batch_size": 10**4000}})
    assert long.status_code == 400 and len(long.json()["error"]) < 200
    for setup, start in (({"loss": ["ns"]}, "loss ['ns'] is not one of"),
                         ({"g": {"opt": ["adam"]}}, "g.opt ['adam'] is not an optimizer"),
                         ({"mode": {"a": 1}}, "mode must be 'images' or '2d', got {'a': 1}")):
        r = client.post("/api/check" + Q, json={"setup": {**TINY, **setup}})
        assert r.status_code == 400 and r.json()["error"].startswith(start), r.text
    for bad_type in (["fc"], {"a": 1}):
        r = client.post("/api/check" + Q, json={"setup": {**TINY, "g_layers": [{"type": bad_type}]}})
        assert r.status_code == 200 and r.json()["errors"][0]["error"].startswith(
            f"generator layer 0: unknown type {bad_type!r}; valid types: fc, conv"), r.text


def test_a_kernel_too_large_to_count_is_refused_in_the_layer(client):
    huge = [{"type": "conv", "out": 4, "kernel": 10**20, "padding": "same"}, {"type": "flatten"},
            {"type": "fc", "out": 1}]
    r = client.post("/api/check" + Q, json={"setup": {**TINY, "d_layers": huge}})
    assert r.status_code == 200
    assert r.json()["errors"][0]["error"] == ("discriminator layer 0 (conv): 'kernel' must be a positive integer up "
                                             "to 256, got 100000000000000000000")


def test_export_refuses_a_hidden_name(client):
    sid = client.post("/api/sessions" + Q, json={"setup": TINY}).json()["id"]
    r = client.post(f"/api/sessions/{sid}/export" + Q, json={"name": ".hidden"})
    assert r.status_code == 400 and "not starting with '.'" in r.json()["error"]


def test_a_bug_in_a_route_is_a_json_500_and_the_server_goes_on(tmp_path, monkeypatch):
    import ganforge.playground.app as app_module

    def broken(*args, **kwargs):
        raise KeyError("boom")

    monkeypatch.setattr(app_module, "meta_info", broken)
    with TestClient(create_app(tmp_path / "runs", token=TOKEN), raise_server_exceptions=False) as c:
        r = c.get("/api/meta" + Q)
        assert r.status_code == 500 and r.json() == {"error": "internal error (KeyError) on /api/meta: the server "
                                                              "goes on; please report it with the setup that caused it"}
        assert c.post("/api/check" + Q, json={"setup": TINY}).status_code == 200


def test_a_loopback_server_answers_only_its_own_host_names(tmp_path):
    from ganforge.playground.security import loopback_names

    app = create_app(tmp_path / "runs", token=TOKEN, hosts=loopback_names("127.0.0.1"))
    with TestClient(app, base_url="http://127.0.0.1:8000") as c:
        assert c.get("/api/meta" + Q).status_code == 200
        assert c.get("/api/meta" + Q, headers={"Host": "localhost:8123"}).status_code == 200
        assert c.get("/api/meta" + Q, headers={"Host": "[::1]:8000"}).status_code == 200
        r = c.get("/", headers={"Host": "evil.example:8000"})
        assert r.status_code == 400 and r.json()["error"].startswith(
            "this server answers only as 127.0.0.1, [127.0.0.1], [::1], localhost, not host evil.example")


def test_a_closing_tab_s_beacon_ends_its_session(client):
    sid = client.post("/api/sessions" + Q, json={"setup": TINY}).json()["id"]
    assert client.post(f"/api/sessions/{sid}/close{Q}").status_code == 204  # what navigator.sendBeacon sends
    assert client.get(f"/api/sessions/{sid}/state{Q}").status_code == 404
    assert client.post(f"/api/sessions/{sid}/close{Q}").status_code == 404
    assert client.post(f"/api/sessions/{sid}/close").status_code == 403  # the token is still needed
