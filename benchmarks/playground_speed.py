"""The playground's speed goals, measured in one process.

(a) Training speed: the `cdcgan` preset (ganforge's default cDCGAN as a layer list) on MNIST at batch 64,
    steps/s of a playground session (its worker thread, publishing updates as for a page) against the loop of
    `ganforge train` (``Run.train``, with its sample grids) on the same config, in alternating paired rounds;
    each round's steps/s is taken over the steps after its first, from per-step end times.
(b) Update latency: a real server (uvicorn, in a thread) and a real SSE client (httpx); for every update
    the time from the end of the step it reports to its arrival at the client, p50 / p95 / max.
(c) Concurrency: --sessions sessions training at once, each with a client thread sending requests (state,
    control, check) in a loop for --seconds; every non-2xx answer or transport error counts as a failure.

    python benchmarks/playground_speed.py [--rounds 4] [--steps 30] [--seconds 10] [--sessions 8]
        [--batch 64] [--data mnist] [--threads 0] [--json]
"""
from __future__ import annotations

import argparse
import json
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
import torch
import uvicorn

from ganforge.data import load_dataset
from ganforge.devices import set_cpu_threads
from ganforge.playground.app import create_app
from ganforge.playground.security import Limits
from ganforge.playground.sessions import Session
from ganforge.playground.setup import PRESETS, parse_setup, run_config
from ganforge.train.run import Run
from ganforge.train.trainer import Trainer


def steps_per_s(times: list[float]) -> float:
    """Steps per second over the steps after the first (the first one's start is not recorded)."""
    return (len(times) - 1) / (times[-1] - times[0])


def train_loop_round(cfg, data, steps: int, out: Path) -> float:
    run = Run(Trainer(cfg, data), out, progress=False)
    times: list[float] = []
    run.train(steps=steps, callback=lambda tr, m: times.append(time.perf_counter()))
    return steps_per_s(times)


def session_round(setup, steps: int) -> float:
    s = Session("bench", setup)
    try:
        s.control("train")
        while s.engine.step_count < steps:
            time.sleep(0.005)
        s.control("stop")
        times = [t for t, _, _ in s.recent]
    finally:
        s.close()
        s.join(30)
    return steps_per_s(times)


def speed(a) -> dict:
    setup = parse_setup({**PRESETS["cdcgan"], "batch_size": a.batch, "data": {"source": a.data}})
    cfg = run_config(setup)
    data = load_dataset(cfg.data)
    loop, ours = [], []
    with tempfile.TemporaryDirectory() as tmp:
        train_loop_round(cfg, data, 3, Path(tmp) / "warmup")  # warm-up
        for r in range(a.rounds):
            first_ours = r % 2 == 1  # alternate which side goes first
            for side in (("ours", "loop") if first_ours else ("loop", "ours")):
                if side == "loop":
                    loop.append(train_loop_round(cfg, data, a.steps, Path(tmp) / f"r{r}"))
                else:
                    ours.append(session_round(setup, a.steps))
    ratios = [o / lp for o, lp in zip(ours, loop)]
    return {"loop_steps_per_s": [round(v, 2) for v in loop], "session_steps_per_s": [round(v, 2) for v in ours],
            "median_ratio": round(statistics.median(ratios), 3)}


class Server:
    """The app under uvicorn on a free loopback port, in a daemon thread."""

    def __init__(self, app):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def latency(a) -> dict:
    app = create_app(tempfile.mkdtemp(), token="t")
    srv = Server(app)
    base, q = f"http://127.0.0.1:{srv.port}/api", "?token=t"
    setup = {**PRESETS["cdcgan"], "batch_size": a.batch, "data": {"source": a.data, "normalize": "[-1,1]"}}
    sid = httpx.post(f"{base}/sessions{q}", json={"setup": setup}, timeout=120).json()["id"]
    delays: list[float] = []
    done = threading.Event()

    def listen():
        seen = None
        with httpx.stream("GET", f"{base}/sessions/{sid}/events{q}", timeout=None) as r:
            for line in r.iter_lines():
                if line.startswith("data: "):
                    arrived = time.perf_counter()
                    u = json.loads(line[6:])
                    if u["state"] == "running" and u["step_end"] != seen and u["step"] > 1:
                        seen = u["step_end"]
                        delays.append(arrived - u["step_end"])
                if done.is_set():
                    return

    t = threading.Thread(target=listen, daemon=True)
    t.start()
    httpx.post(f"{base}/sessions/{sid}/control{q}", json={"action": "train"})
    time.sleep(a.seconds)
    done.set()
    httpx.post(f"{base}/sessions/{sid}/control{q}", json={"action": "stop"})
    t.join(30)
    httpx.delete(f"{base}/sessions/{sid}{q}")
    srv.stop()
    delays.sort()
    p95 = delays[min(len(delays) - 1, round(0.95 * (len(delays) - 1)))] if delays else float("nan")
    return {"updates": len(delays), "p50_ms": round(statistics.median(delays) * 1000, 1) if delays else None,
            "p95_ms": round(p95 * 1000, 1), "max_ms": round(max(delays) * 1000, 1) if delays else None}


def concurrency(a) -> dict:
    app = create_app(tempfile.mkdtemp(), token="t", limits=Limits(max_sessions=a.sessions))
    srv = Server(app)
    base, q = f"http://127.0.0.1:{srv.port}/api", "?token=t"
    setup = {**PRESETS["gan-playground"], "data": {"source": a.data, "normalize": "[-1,1]"}}
    counts = {"requests": 0, "failures": 0}
    lock = threading.Lock()
    errors: list[str] = []

    def client(i: int):
        with httpx.Client(timeout=60) as c:
            def call(method, url, **kw):
                try:
                    r = c.request(method, url, **kw)
                    ok, why = r.status_code < 300, f"{r.status_code} {r.text[:80]}"
                except httpx.HTTPError as e:
                    ok, why = False, f"{type(e).__name__}: {e}"
                with lock:
                    counts["requests"] += 1
                    if not ok:
                        counts["failures"] += 1
                        errors.append(f"{method} {url.split('?')[0]}: {why}")
                return r if ok else None

            r = call("POST", f"{base}/sessions{q}", json={"setup": {**setup, "seed": i}})
            if r is None:
                return
            sid = r.json()["id"]
            call("POST", f"{base}/sessions/{sid}/control{q}", json={"action": "train"})
            end = time.monotonic() + a.seconds
            while time.monotonic() < end:
                call("GET", f"{base}/sessions/{sid}/state{q}")
                call("POST", f"{base}/check{q}", json={"setup": setup})
                call("POST", f"{base}/sessions/{sid}/control{q}", json={"action": "train", "delay_ms": 0})
            call("POST", f"{base}/sessions/{sid}/control{q}", json={"action": "stop"})
            call("DELETE", f"{base}/sessions/{sid}{q}")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(a.sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    srv.stop()
    return {"sessions": a.sessions, **counts, "first_errors": errors[:3]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--sessions", type=int, default=8)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--data", default="mnist")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: as `ganforge train` sets them)")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    if min(a.rounds, a.sessions, a.batch) < 1 or a.steps < 3 or a.seconds <= 0:
        p.error("--rounds, --sessions and --batch must be positive, --steps at least 3, --seconds positive")
    if a.threads > 0:
        torch.set_num_threads(a.threads)
        threads = a.threads
    else:
        threads = set_cpu_threads()  # as `ganforge train` and `ganforge playground` do
    result = {"threads": threads, "torch": torch.__version__, "speed": speed(a), "latency": latency(a),
              "concurrency": concurrency(a)}
    if a.json:
        print(json.dumps(result))
        return
    s, lat, con = result["speed"], result["latency"], result["concurrency"]
    rows = [("(a) `ganforge train` loop, steps/s", ", ".join(map(str, s["loop_steps_per_s"]))),
            ("(a) playground session, steps/s", ", ".join(map(str, s["session_steps_per_s"]))),
            ("(a) session / loop, median of paired rounds", str(s["median_ratio"])),
            ("(b) update latency p50 / p95 / max, ms", f"{lat['p50_ms']} / {lat['p95_ms']} / {lat['max_ms']} "
                                                     f"({lat['updates']} updates)"),
            ("(c) concurrent sessions: requests, failures", f"{con['sessions']} sessions: {con['requests']}, "
                                                          f"{con['failures']}")]
    width = max(len(r[0]) for r in rows)
    print(f"threads {threads}, batch {a.batch}, data {a.data}")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    for e in con["first_errors"]:
        print("  failure:", e)


if __name__ == "__main__":
    main()
