"""Playground sessions: one model being trained, on a worker thread of its own.

An images session drives a :class:`~ganforge.train.trainer.Trainer`, the class `ganforge train` uses, so a
step here is the same work as a step there. The worker takes control actions from a flag and a queue, so a
request never waits for a step (STOP answers at once; the worker sees it between steps). After a step it
publishes an update (the JSON the page draws) at most every ``UPDATE_INTERVAL`` seconds, and at once after a
control action; readers take the latest update without blocking the worker. Rendering images costs model
time, so the image grids (and D's verdicts on them) are refreshed at most every ``IMAGES_INTERVAL`` seconds
and take no more than about ``RENDER_SHARE`` of the time; when a render is slow (over ``SPLIT_S``) the step's
numbers are published before it and the images in an update of their own right after.
"""
from __future__ import annotations

import base64
import io
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import torch

from ganforge.data import ImageDataset
from ganforge.errors import ConfigError, GanforgeError
from ganforge.playground.setup import Setup, images_for, run_config
from ganforge.storage.images import auto_upscale, grid
from ganforge.train.trainer import Trainer

UPDATE_INTERVAL = 0.1  # seconds between published updates while training (at most ~10 per second)
IMAGES_INTERVAL = 0.25  # least seconds between image refreshes
RENDER_SHARE = 0.03  # rendering may take about this share of the time
SPLIT_S = 0.02  # a render slower than this goes out after an update with the step's numbers alone
HISTORY = 500  # points kept for the charts
MAX_FRAMES = 200  # timeline snapshots kept (thinned evenly when full)
GIF_FRAMES = 60
SHOW = 16  # real and fake images shown with D's verdict
ACTIONS = ("train", "stop", "step", "step_g", "step_d", "reset")
# Building seeds torch's global generator for the initial weights: one build at a time, so a session's
# initial weights depend on its seed only, not on another session being built at the same moment.
BUILD_LOCK = threading.Lock()


class SessionError(ConfigError):
    """A request that does not fit the session (2-D export, an unknown action, ...): a 400 answer."""


def png_data_url(image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _timed(fn: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


class ImagesEngine:
    """Images mode: a Trainer plus the fixed latents and real images the page watches."""

    mode = "images"

    def __init__(self, setup: Setup, data: ImageDataset):
        self.setup, self.data = setup, data
        self.cfg = run_config(setup)
        self.build()

    def build(self) -> None:
        self.trainer = tr = Trainer(self.cfg, self.data)
        m = tr.cfg.model
        n = 64
        g = torch.Generator().manual_seed(tr.cfg.train.seed + 12345)
        self.cols = min(m.num_classes, 10) if m.num_classes else 8
        self.fixed_z = torch.randn(n, m.z_dim, generator=g)
        self.fixed_c = torch.arange(n) % self.cols if m.num_classes else None
        idx = torch.randperm(len(self.data), generator=g)[:SHOW]
        self.real_u8 = self.data.images[idx]
        self.real_c = None if tr.labels is None else tr.labels[idx].cpu()
        self.sample_gen = torch.Generator().manual_seed(tr.cfg.train.seed + 54321)

    @property
    def step_count(self) -> int:
        return self.trainer.step_count

    @property
    def examples_per_step(self) -> int:
        t = self.trainer.cfg.train
        return t.batch_size * t.d_steps

    def step(self, action: str) -> dict[str, float]:
        tr = self.trainer
        stats = tr.step_g() if action == "step_g" else tr.step_d() if action == "step_d" else tr.step()
        if action in ("train", "step"):
            for _ in range(self.setup.g_steps - 1):
                stats = {**stats, **tr.step_g()}
        return {k: float(stats[k]) for k in ("loss_g", "loss_d", "d_real", "d_fake") if k in stats}

    def _to_display(self, x: torch.Tensor) -> torch.Tensor:
        """Images in the data's scale -> [-1, 1], as the grid writer reads them."""
        norm = self.cfg.data.normalize
        return x * 2 - 1 if norm == "[0,1]" else x / 127.5 - 1 if norm == "none" else x

    def _from_u8(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        norm = self.cfg.data.normalize
        return x / 127.5 - 1 if norm == "[-1,1]" else x / 255 if norm == "[0,1]" else x

    @torch.no_grad()
    def render(self) -> tuple[dict[str, Any], dict[str, float], Any]:
        """(the update's "images" block, D and G timings, the fixed-latent grid as a PIL image)."""
        tr = self.trainer
        D, dev = tr.D, tr.device
        m = tr.cfg.model
        z = torch.randn(SHOW, m.z_dim, generator=self.sample_gen)
        c = torch.arange(SHOW) % m.num_classes if m.num_classes else None
        fake, g_s = _timed(lambda: tr.sample(z, c, ema=False))
        fixed = torch.cat([tr.sample(self.fixed_z[i:i + 32], None if self.fixed_c is None else self.fixed_c[i:i + 32],
                                     ema=False) for i in range(0, len(self.fixed_z), 32)])
        was = D.training
        D.eval()
        try:
            real = self._from_u8(self.real_u8).to(dev)
            rc = None if self.real_c is None else self.real_c.to(dev)
            p_real, d_s = _timed(lambda: torch.sigmoid(D(real, rc).float()).cpu())
            p_fake = torch.sigmoid(D(fake.to(dev), None if c is None else c.to(dev)).float()).cpu()
        finally:
            D.train(was)
        up = auto_upscale(m.resolution)
        fixed_img = grid(self._to_display(fixed), nrow=self.cols, upscale=up)
        block = {"fake": png_data_url(grid(self._to_display(fake), nrow=8, upscale=up)),
                 "real": png_data_url(grid(self.real_u8.float() / 127.5 - 1, nrow=8, upscale=up)),
                 "p_fake": [round(float(p), 4) for p in p_fake], "p_real": [round(float(p), 4) for p in p_real],
                 "cols": 8, "fixed": png_data_url(fixed_img)}
        timing = {"infer_ms": d_s * 1000, "gen_ms": g_s * 1000, "inferences_per_s": SHOW / max(d_s, 1e-9),
                  "generations_per_s": SHOW / max(g_s, 1e-9)}
        acc = (float((p_real > 0.5).float().sum()) + float((p_fake < 0.5).float().sum())) / (2 * SHOW)
        timing["d_acc"] = acc
        return {"images": block}, timing, fixed_img


def make_engine(setup: Setup, uploads: dict | None):
    if setup.mode == "2d":
        from ganforge.playground.toy2d import Toy2D

        with BUILD_LOCK:
            return Toy2D(setup, uploads)
    data = images_for(setup, uploads)
    with BUILD_LOCK:
        return ImagesEngine(setup, data)


class Session:
    """One model, trained on its own thread; control it with :meth:`control`, read :meth:`latest`."""

    def __init__(self, sid: str, setup: Setup, uploads: dict | None = None, clock: Callable[[], float] = time.monotonic,
                 check: dict | None = None):
        self.id, self.setup, self.clock, self.check = sid, setup, clock, check
        self.engine = make_engine(setup, uploads)
        self.lock = threading.RLock()  # held by the worker for a step or a render, by export and reset
        self.cond = threading.Condition()
        self.running = False
        self.delay_ms = 0
        self.pending: deque[str] = deque()
        self.force = True  # publish one update at once
        self.closed = False
        self.streams = 0
        self.last_seen = clock()
        self.version = 0
        self.update: dict[str, Any] = {}
        self.published_at = 0.0  # perf_counter time of the latest update
        self.step_end = 0.0  # perf_counter time the latest step ended
        self.error: str | None = None
        self._reset_stats()
        self.thread = threading.Thread(target=self._work, name=f"playground-{sid}", daemon=True)
        self.thread.start()

    def _reset_stats(self) -> None:
        self.examples = 0
        self.last: dict[str, float] = {}
        self.history: dict[str, deque] = {k: deque(maxlen=HISTORY)
                                          for k in ("step", "loss_g", "loss_d", "d_real", "d_fake", "d_acc")}
        self.recent: deque[tuple[float, int, int]] = deque(maxlen=50)  # (time, step, examples) while training
        self.frames: list = []
        self.frame_steps: list[int] = []
        self.rendered: dict[str, Any] = {}
        self.timing: dict[str, float] = {}
        self.next_render = 0.0
        self.render_cost = 0.0

    # ------------------------------------------------------------------ control
    def touch(self) -> None:
        self.last_seen = self.clock()

    def control(self, action: str, delay_ms: int | None = None) -> dict[str, Any]:
        if action not in ACTIONS:
            raise SessionError(f"unknown action {action!r}; choose one of {', '.join(ACTIONS)}")
        with self.cond:
            if delay_ms is not None:
                self.delay_ms = delay_ms
            if action == "train":
                if not self.running:
                    self.recent.clear()  # speeds are of this run of training, not of earlier ones
                self.running = True
            elif action == "stop":
                self.running = False
                self.pending.clear()
            else:
                self.running = False  # a single step (or a reset) pauses training first
                self.pending.append(action)
            self.force = True
            self.cond.notify_all()
        self.touch()
        return {"state": "running" if self.running else "stopped", "step": self.engine.step_count}

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.running = False
            self.cond.notify_all()

    def join(self, timeout: float | None = None) -> None:
        self.thread.join(timeout)

    # ------------------------------------------------------------------ the worker
    def _work(self) -> None:
        # The process's thread count (the command sets it as `ganforge train` does), applied in this thread too:
        # OpenMP keeps a count per thread, and a new thread would otherwise start from the library default.
        torch.set_num_threads(torch.get_num_threads())
        while True:
            with self.cond:
                while not (self.closed or self.running or self.pending or self.force):
                    self.cond.wait()
                if self.closed:
                    return
                action = self.pending.popleft() if self.pending else "train" if self.running else None
                force, self.force = self.force, False
                delay = self.delay_ms
            try:
                if action is not None:
                    self._do(action)
                now = time.perf_counter()
                if force or action not in (None, "train") or now - self.published_at >= UPDATE_INTERVAL:
                    self._publish(full=force or action != "train")
            except GanforgeError as e:
                self._fail(str(e))
            except Exception as e:  # out of memory, weights gone to NaN, a bug: the session stops, the server stays
                self._fail(f"training stopped: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
            if action == "train" and delay > 0:
                with self.cond:
                    self.cond.wait_for(lambda: self.closed or not self.running or bool(self.pending), delay / 1000)

    def _fail(self, message: str) -> None:
        with self.cond:
            self.running = False
            self.pending.clear()
        self.error = message
        try:
            self._publish(full=False)
        except Exception:  # the update itself failed: keep the message, publish the bare state
            self.version += 1

    def _do(self, action: str) -> None:
        with self.lock:
            if action == "reset":
                with BUILD_LOCK:
                    self.engine.build()
                self._reset_stats()
                self.error = None
                return
            stats = self.engine.step(action)
        self.step_end = time.perf_counter()
        self.last.update(stats)
        if action != "step_d":
            self.examples += self.engine.examples_per_step
        else:
            self.examples += self.engine.setup.batch_size
        self.recent.append((self.step_end, self.engine.step_count, self.examples))

    def _speed(self) -> tuple[float, float]:
        if len(self.recent) < 2 or not self.running:
            return 0.0, 0.0
        (t0, s0, e0), (t1, s1, e1) = self.recent[0], self.recent[-1]
        dt = max(t1 - t0, 1e-9)
        return (s1 - s0) / dt, (e1 - e0) / dt

    def _publish(self, full: bool) -> None:
        """Publish an update, rendering the images when they are due (see the module notes)."""
        now = time.perf_counter()
        render = full or now >= self.next_render
        if render and self.rendered and self.render_cost > SPLIT_S:
            self._emit()
        if render:
            with self.lock:
                step = self.engine.step_count
                start = time.perf_counter()
                block, timing, frame = self.engine.render()
                self.render_cost = cost = time.perf_counter() - start
                self.next_render = start + max(IMAGES_INTERVAL, cost / RENDER_SHARE)
                self.rendered, self.timing = block, timing
                if frame is not None and (not self.frame_steps or self.frame_steps[-1] != step):
                    self._snapshot(frame, step)
        self._emit()

    def _emit(self) -> None:
        step = self.engine.step_count
        steps_per_s, examples_per_s = self._speed()
        last = self.last
        update = {"step": step, "examples": self.examples, "state": "running" if self.running else "stopped",
                  "steps_per_s": round(steps_per_s, 3), "examples_per_s": round(examples_per_s, 2),
                  **{k: last.get(k) for k in ("loss_g", "loss_d", "d_real", "d_fake")},
                  **{k: self.timing.get(k) for k in ("d_acc", "infer_ms", "gen_ms", "inferences_per_s",
                                                     "generations_per_s")}}
        if last and (not self.history["step"] or self.history["step"][-1] != step):
            for k in self.history:
                self.history[k].append(update[k])
        update["history"] = {k: list(v) for k, v in self.history.items()}
        update.update(self.rendered)
        if self.error:
            update["error"] = self.error
        update["mode"] = self.engine.mode
        update["id"] = self.id
        update["step_end"] = self.step_end  # perf_counter seconds: lets a same-process benchmark time delivery
        self.update = update
        self.published_at = time.perf_counter()
        self.version += 1

    def _snapshot(self, frame, step: int) -> None:
        self.frames.append(frame)
        self.frame_steps.append(step)
        if len(self.frames) > MAX_FRAMES:  # keep every other one: still evenly spread over the run
            self.frames, self.frame_steps = self.frames[::2], self.frame_steps[::2]

    def export(self, runs_dir, name: str):
        """Write the model as a ganforge run (config.json, checkpoint, samples.png, progress.gif) under
        ``runs_dir/name`` (``name-2``... if taken), with the writers `ganforge train` uses."""
        if self.engine.mode != "images":
            raise SessionError("export writes an images-mode model as a ganforge run; 2-D models have no run "
                               "format: switch to images mode to export")
        from pathlib import Path

        from ganforge.train.run import Run, new_run_dir

        with self.lock:
            run_dir = new_run_dir(Path(runs_dir) / name)
            trainer = self.engine.trainer
            if str(trainer.cfg.data.source).startswith("upload:"):
                # An upload lives only in this server: keep its images with the run, so that
                # `ganforge train --resume` and `eval` find the same data later.
                folder = _write_images(trainer.data, run_dir / "data")
                trainer.cfg.data.source = str(folder.resolve())
                trainer.cfg.data.resolution = trainer.data.images.shape[-1]
                trainer.cfg.data.channels = trainer.data.images.shape[1]
            run = Run(trainer, run_dir, progress=False)
            run.write_grid()
            run.save()
            run.finish()
        return run.dir

    # ------------------------------------------------------------------ reading
    def latest(self) -> dict[str, Any]:
        return self.update

    def timeline_gif(self) -> bytes:
        """The fixed-latent grids over time as an animated GIF (at most ``GIF_FRAMES`` evenly spaced frames)."""
        with self.lock:
            frames = list(self.frames)
        if not frames:
            raise SessionError("no snapshots yet: train a few steps first")
        keep = sorted({round(i * (len(frames) - 1) / max(1, GIF_FRAMES - 1))
                       for i in range(min(len(frames), GIF_FRAMES))})
        frames = [frames[i].convert("RGB") if frames[i].mode not in ("L", "RGB", "P") else frames[i] for i in keep]
        buf = io.BytesIO()
        durations = [200] * len(frames)
        durations[-1] = 2000
        frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=durations, loop=0,
                       optimize=False)
        return buf.getvalue()


def _write_images(data, folder):
    """Each image of ``data`` as a PNG under ``folder`` (in one sub-folder per class when labelled)."""
    from pathlib import Path

    from ganforge.storage.images import save_image, to_pil

    folder = Path(folder)
    for i, image in enumerate(data.images.permute(0, 2, 3, 1).numpy()):
        sub = folder / data.class_names[int(data.labels[i])] if data.labels is not None else folder
        sub.mkdir(parents=True, exist_ok=True)
        save_image(to_pil(image), sub / f"{i:06d}.png")
    return folder


class LimitError(ConfigError):
    """A server limit reached; ``status`` is the HTTP answer (429 sessions, 413 parameters)."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


class Sessions:
    """The server's sessions, with the idle reaper."""

    def __init__(self, limits, clock: Callable[[], float] = time.monotonic):
        self.limits, self.clock = limits, clock
        self.items: dict[str, Session] = {}
        self.lock = threading.Lock()
        self.counter = 0

    def create(self, setup: Setup, uploads: dict | None, check: dict) -> Session:
        params = sum(v or 0 for v in check["params"].values())
        if params > self.limits.max_params:
            raise LimitError(f"the networks have {params:,} parameters, over this server's limit of "
                             f"{self.limits.max_params:,}: use fewer or narrower layers", 413)
        with self.lock:
            if len(self.items) >= self.limits.max_sessions:
                raise LimitError(f"{len(self.items)} sessions are open, the most this server allows: close one "
                                 "(or its tab) and try again", 429)
            self.counter += 1
            sid = f"s{self.counter}"
            self.items[sid] = None  # reserve the slot while the models are built outside the lock
        try:
            session = Session(sid, setup, uploads, clock=self.clock, check=check)
        except BaseException:
            with self.lock:
                self.items.pop(sid, None)
            raise
        with self.lock:
            self.items[sid] = session
        return session

    def get(self, sid: str) -> Session | None:
        with self.lock:
            s = self.items.get(sid)
        if s is not None:
            s.touch()
        return s

    def remove(self, sid: str) -> bool:
        with self.lock:
            s = self.items.pop(sid, None)
        if s is None:
            return False
        s.close()
        return True

    def reap(self) -> list[str]:
        """Remove the sessions with no events stream that nobody has asked about for idle_timeout_s."""
        now, gone = self.clock(), []
        with self.lock:
            for sid, s in list(self.items.items()):
                if s is not None and s.streams == 0 and now - s.last_seen > self.limits.idle_timeout_s:
                    del self.items[sid]
                    gone.append(s)
        for s in gone:
            s.close()
        return [s.id for s in gone]

    def close_all(self) -> None:
        with self.lock:
            items, self.items = [s for s in self.items.values() if s is not None], {}
        for s in items:
            s.close()
        for s in items:
            s.join(5)
