"""A training run on disk: the loop the CLI uses around a :class:`Trainer`.

A run directory holds ``config.json``, ``checkpoint.safetensors`` (weights, optimizer and RNG state),
``log.jsonl`` (metrics), ``samples/step-NNNNNN.png`` (grids from fixed latents), ``progress.gif``
(those grids over time) and ``samples.png`` (the final grid).

Signals: the first Ctrl-C (SIGINT) or SIGTERM stops at the next safe point, saves and returns: after the
current step, or at once while a grid, an evaluation or the final outputs are written (those are dropped,
each file being written atomically). A second one raises :class:`Interrupted` at once, without saving: the
last checkpoint stays as it was. A run directory without a checkpoint never saved one and cannot be resumed.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ganforge import models
from ganforge.config import RunConfig
from ganforge.data import ImageDataset
from ganforge.data.builtin import BUILTINS, DIGIT_SETS, PHOTO_RESOLUTION
from ganforge.data.core import DEFAULT_FOLDER_RESOLUTION, to_signed_unit
from ganforge.devices import resolve_channels_last, resolve_precision
from ganforge.errors import CheckpointError, ConfigError, require, warn
from ganforge.generate.sampling import latents
from ganforge.storage.atomic import atomic_write_bytes
from ganforge.storage.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from ganforge.storage.images import auto_upscale, grid, save_gif, save_image
from ganforge.train.augment.ada import parse_pipe
from ganforge.train.augment.diffaug import parse_policy
from ganforge.train.losses import get_loss
from ganforge.train.regularizers import require_mapping
from ganforge.train.trainer import OPTIMIZERS, Trainer, complete_config, validate

MAX_GIF_FRAMES = 60
BEST_NAME = "best.safetensors"
LOG_NAME = "log.jsonl"
GRID_BATCH = 16  # images per forward pass of a sample grid: bounds the memory and the wait for a stop
Callback = Callable[[Trainer, dict], None]


class Interrupted(KeyboardInterrupt):
    """A second stop signal: the run ends at once without saving. ``str(e)`` is the one line to show,
    ``code`` the exit status (130 for SIGINT, 143 for SIGTERM)."""

    def __init__(self, message: str, code: int = 130):
        super().__init__(message)
        self.code = code


class _StopNow(BaseException):
    """The first stop signal while a grid, an evaluation or the final outputs are written: drop that work."""


def check_config(cfg: RunConfig, world_size: int = 1) -> None:
    """Reject a configuration that cannot train before any data is read: the family, the model settings
    (a dry build on the meta device, which allocates nothing), the training hyperparameters and the
    optional packages asked for. Errors that depend on the data itself still come when it is loaded."""
    t, m = cfg.train, cfg.model
    conditional = models.is_conditional(m.family)  # an unknown family
    validate(t, world_size)
    get_loss(t.loss)
    for name in ("g_opt", "d_opt"):
        if getattr(t, name) not in OPTIMIZERS:
            raise ConfigError(f"unknown {name} '{getattr(t, name)}'; choose {', '.join(OPTIMIZERS)}")
    parse_policy(t.diffaug)
    if t.ada_target > 0 or t.ada_p > 0:
        parse_pipe(t.ada_pipe)
    cpu = torch.device("cpu")  # both only check the value here; the device is resolved by the trainer
    resolve_precision(t.precision, cpu)
    resolve_channels_last(t.channels_last, m.family, cpu)
    if conditional and not cfg.data.labels:
        raise ConfigError(f"model family '{m.family}' needs class labels, but they are turned off (--no-labels): "
                          "drop it or use an unconditional family (dcgan)")
    if t.tensorboard:
        _require_tensorboard()
    _dry_build(cfg)


def _dry_build(cfg: RunConfig) -> None:
    """Build the networks for the shapes the data could give. Where those are all known (the size, and the
    class count of a conditional family) every possible shape failing is an error; where some are guessed, only
    the same message for every guess is, so that a guess never rejects a configuration that fits the data."""
    d = cfg.data
    builtin, digits = str(d.source) in BUILTINS, str(d.source) in DIGIT_SETS
    pad = d.pad if isinstance(d.pad, int) and not isinstance(d.pad, bool) else 0
    if d.resolution is not None:
        if isinstance(d.resolution, bool) or not isinstance(d.resolution, int) or d.resolution < 1:
            return  # load_dataset names the problem
        sizes = [d.resolution + 2 * pad]
    else:
        native = PHOTO_RESOLUTION if builtin else DEFAULT_FOLDER_RESOLUTION
        sizes = [16 + 2 * pad, 32 + 2 * pad] if digits else [native + 2 * pad]
    channels = [d.channels] if d.channels in (1, 3) else [1] if digits else [3] if builtin else [1, 3]
    conditional = models.is_conditional(cfg.model.family)
    classes = [2, 3] if conditional else [0]
    known = (d.resolution is not None or not digits) and not conditional
    errors = [_build_error(cfg, res, ch, k) for res in sizes for ch in channels for k in classes]
    if None not in errors and (known or len(set(errors)) == 1):
        raise ConfigError(errors[0])


def _build_error(cfg: RunConfig, res: int, ch: int, k: int) -> str | None:
    stand_in = ImageDataset(torch.empty(0, ch, res, res, dtype=torch.uint8), torch.empty(0, dtype=torch.long),
                            [str(i) for i in range(k)], str(cfg.data.source))
    try:
        full = complete_config(cfg, stand_in)
        with torch.device("meta"):
            G, D = models.build(full.model)
        check_fits_memory(G, D)
        t = full.train
        if t.style_mixing > 0:
            require_mapping(G, full.model.family, "style_mixing")
        if t.pl_weight > 0:
            require_mapping(G, full.model.family, "pl_weight (path-length regularisation)")
    except ConfigError as e:
        return str(e)
    except Exception:  # not a configuration problem (or not one that shows without data): the real build tells
        return None
    return None


def machine_memory() -> int | None:
    """This machine's physical memory in bytes (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_fits_memory(G: torch.nn.Module, D: torch.nn.Module) -> None:
    """Refuse networks whose weights, gradients and two Adam moments alone (16 bytes a parameter) pass the
    machine's memory: such a run would be killed, or fail allocating, once it starts."""
    total = machine_memory()
    params = sum(p.numel() for net in (G, D) for p in net.parameters())
    if total and params * 16 > total:
        raise ConfigError(f"G and D have {params / 1e6:,.0f} million parameters: training them needs over "
                          f"{params * 16 / 2**30:,.0f} GiB, more than this machine's {total / 2**30:,.0f} GiB; "
                          "lower --resolution or the network width")


def _require_tensorboard() -> None:
    require("tensorboard", "--tensorboard", "pip install tensorboard (ganforge's 'tensorboard' extra)")


def run_dir_of(path: str | Path) -> Path:
    """A run directory, also when given as one of its own files (its config.json or checkpoint)."""
    path = Path(path)
    if path.is_file() and path.name in ("config.json", CHECKPOINT_NAME, LOG_NAME):
        return path.parent
    return path


def check_resumable(run_dir: str | Path) -> Path:
    """The checkpoint of a run to resume; a one-line error for a run that never saved one."""
    run_dir = Path(run_dir)
    path = run_dir / CHECKPOINT_NAME
    if run_dir.is_file():
        raise CheckpointError(f"{run_dir} is a file: pass the run directory that holds its config.json and "
                              f"{CHECKPOINT_NAME}")
    if run_dir.is_dir() and (run_dir / "config.json").is_file() and not path.exists():
        raise CheckpointError(f"{run_dir} never saved a checkpoint (it was stopped before its first one), so it "
                              f"cannot be resumed: start it again, e.g. ganforge train --config {run_dir}/config.json")
    if not path.is_file():  # before any data is loaded
        raise CheckpointError(f"no checkpoint at {path}: pass a run directory made by `ganforge train`")
    return path


def check_same_classes(cfg: RunConfig, data: ImageDataset, run_dir: Path) -> None:
    """A conditional run resumes only on the classes it learnt, in the same order: label i must keep its
    meaning (a renamed class folder sorts elsewhere and would silently swap the labels)."""
    saved = list(cfg.class_names)
    if not saved or not models.is_conditional(cfg.model.family):
        return
    now = list(data.class_names)
    if now != saved:
        def show(names):
            return ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")

        raise ConfigError(f"{run_dir} was trained on {len(saved)} classes ({show(saved)}) but the data now has "
                          f"{len(now)} ({show(now)}): restore the class folders as they were, or start a new run")


def drop_after(run_dir: Path, step: int) -> None:
    """Forget the log records and sample grids of steps after ``step`` (the checkpoint a resume starts from):
    a run killed between checkpoints trained them, but they are lost and will be trained again."""
    log = run_dir / LOG_NAME
    kept, dropped = [], 0
    if log.is_file():
        for line in log.read_text(errors="replace").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                dropped += 1  # a line torn by the kill
                continue
            if isinstance(rec, dict) and isinstance(rec.get("step"), int) and rec["step"] > step:
                dropped += 1
            else:
                kept.append(line)
        if dropped:
            atomic_write_bytes(log, "".join(f"{line}\n" for line in kept).encode())
    grids = [p for p in (run_dir / "samples").glob("step-*.png") if p.stem[5:].isdigit() and int(p.stem[5:]) > step]
    for p in grids:
        p.unlink()
    if dropped or grids:
        warn(f"{run_dir} was stopped after its last checkpoint (step {step}): dropped {dropped} log record(s) and "
             f"{len(grids)} sample grid(s) of the steps after it, which are trained again now")


def read_log(path: str | Path) -> list[dict]:
    """The records of a run's log.jsonl (or of the log in a run directory). Lines are appended as training
    goes, so a process killed mid-write can leave a torn last line: lines that do not parse are skipped."""
    path = Path(path)
    if path.is_dir():
        path = path / LOG_NAME
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict):
            records.append(rec)
    return records


def new_run_dir(base: str | Path) -> Path:
    """``base`` if it is free, else ``base-2``, ``base-3``...: never overwrite an earlier run."""
    base = Path(base)
    path, i = base, 1
    while path.exists() and any(path.iterdir()):
        i += 1
        path = base.with_name(f"{base.name}-{i}")
    path.mkdir(parents=True, exist_ok=True)
    return path


class Run:
    """Owns a trainer and its directory: fixed sample latents, grids, checkpoints, logs."""

    def __init__(self, trainer: Trainer, run_dir: str | Path, progress: bool = True):
        self.trainer, self.dir, self.progress = trainer, Path(run_dir), progress
        self.main = trainer.dist.is_main
        t, m = trainer.cfg.train, trainer.cfg.model
        if t.tensorboard:
            _require_tensorboard()
        # Exactly grid_size images; a conditional grid has one column per class (cycling), so the last row
        # may be short.
        n = t.grid_size
        self.grid_cols = min(m.num_classes, n) if m.num_classes else None
        self.grid_z = latents(trainer.G, n, seed=t.seed)
        self.grid_c = torch.arange(n) % m.num_classes if m.num_classes else None
        self.stop_reason: str | None = None
        self._signals = 0  # stop signals received while handle_signals() is active
        self._handling = False
        self._in_section = False  # inside work that a first signal may drop (see _section)
        self._tb = None
        self._log_checked = False
        self._diverged = False
        self.last_grid = None
        self._fid = None  # FidTracker for --eval-every, built now so a missing extractor fails before training
        self.best_fid = _saved_fid(self.dir / BEST_NAME)
        if self.main and t.eval_every:
            self._fid_tracker()
        if self.main:
            self.dir.mkdir(parents=True, exist_ok=True)
            trainer.cfg.save(self.dir / "config.json")

    @classmethod
    def resume(cls, run_dir: str | Path, data: ImageDataset, device=None, dist=None, progress=True,
               steps: int | None = None, source: str | None = None) -> Run:
        """Continue a run from its checkpoint; ``steps`` moves its end (e.g. to train longer), ``source``
        records where its data now is (``data`` is loaded from there)."""
        run_dir = run_dir_of(run_dir)
        cfg = RunConfig.load(run_dir)
        if steps is not None:
            cfg.train.steps = steps
        if source is not None:
            cfg.data.source = source
        tensors, meta = load_checkpoint(check_resumable(run_dir))
        check_same_classes(cfg, data, run_dir)
        trainer = Trainer(cfg, data, device=device, dist=dist)
        trainer.load_state(tensors, meta, source=str(run_dir / CHECKPOINT_NAME))
        if steps is not None and steps < trainer.step_count:  # before the new end is written to config.json
            raise ConfigError(f"--steps {steps} is below the {trainer.step_count} steps {run_dir} has already "
                              f"trained: give --steps above {trainer.step_count} to train further")
        run = cls(trainer, run_dir, progress)
        if run.main:
            drop_after(run_dir, trainer.step_count)
        return run

    # -------------------------------------------------------------- outputs
    def write_grid(self) -> Path | None:
        if not self.main:
            return None
        # In small batches: a large model's grid then neither needs the memory of one huge batch nor holds
        # off a stop signal for long (between batches, and between the operations inside one, it is honoured).
        z, c = self.grid_z, self.grid_c
        imgs = torch.cat([self.trainer.sample(z[i:i + GRID_BATCH], None if c is None else c[i:i + GRID_BATCH])
                          for i in range(0, len(z), GRID_BATCH)])
        imgs = to_signed_unit(imgs, self.trainer.cfg.data.normalize)
        path = self.dir / "samples" / f"step-{self.trainer.step_count:06d}.png"
        path.parent.mkdir(exist_ok=True)
        self.last_grid = grid(imgs, nrow=self.grid_cols, upscale=auto_upscale(imgs.shape[-1]))
        save_image(self.last_grid, path)
        if self._tb is not None:
            self._tb.add_image("samples", np.asarray(self.last_grid.convert("RGB")), self.trainer.step_count,
                               dataformats="HWC")
        return path

    def save(self) -> Path | None:
        if not self.main:
            return None
        tensors, meta = self.trainer.state()
        path = self.dir / CHECKPOINT_NAME
        save_checkpoint(path, tensors, meta)
        return path

    def _fid_tracker(self):
        if self._fid is None:
            from ganforge.metrics.tracker import FidTracker

            t = self.trainer.cfg.train
            self._fid = FidTracker(self.trainer.data, n=t.eval_n, device=str(self.trainer.device))
        return self._fid

    def evaluate(self) -> float | None:
        """FID of G_ema now, logged as {"step", "fid", "fid_floor"}; a new best is saved as best.safetensors."""
        if not self.main:
            return None
        m = self._fid_tracker()(self.trainer.G_ema)
        step = self.trainer.step_count
        self._log({"step": step, "fid": m["fid"], "fid_floor": m["fid_floor"]})
        if self.best_fid is None or m["fid"] < self.best_fid:
            self.best_fid = m["fid"]
            tensors, meta = self.trainer.state()
            save_checkpoint(self.dir / BEST_NAME, tensors, {**meta, "fid": m["fid"]})
        return m["fid"]

    def finish(self) -> dict[str, Path]:
        """Final grid and the results-over-time GIF. A first stop signal meanwhile drops what is left of them
        (the checkpoint is saved by then) and sets ``stop_reason``."""
        out = {"checkpoint": self.dir / CHECKPOINT_NAME}
        if not self.main:
            return out
        with self.handle_signals():
            try:
                with self._section():
                    self._finish(out)
            except _StopNow:
                pass
        return out

    def _finish(self, out: dict[str, Path]) -> None:
        frames = sorted((self.dir / "samples").glob("step-*.png"))
        if not frames:
            return
        from PIL import Image

        atomic_write_bytes(self.dir / "samples.png", frames[-1].read_bytes())
        out["grid"] = self.dir / "samples.png"
        # At most MAX_GIF_FRAMES evenly spaced grids (the last always), each opened and closed in turn.
        count = min(len(frames), MAX_GIF_FRAMES)
        keep = sorted({round(i * (len(frames) - 1) / max(1, count - 1)) for i in range(count)})
        images = []
        for i in keep:
            with Image.open(frames[i]) as im:
                images.append(im.copy())
        out["gif"] = save_gif(images, self.dir / "progress.gif", ms_per_frame=200, hold_last_ms=2000)

    def _log(self, metrics: dict) -> None:
        if not self.main:
            return
        path = self.dir / LOG_NAME
        # Appends are the one exception to writing files atomically: a line torn by a killed process is
        # skipped by read_log, and ended here so that the next record starts on a line of its own.
        start = ""
        if not self._log_checked:
            self._log_checked = True
            if path.is_file() and path.stat().st_size:
                with open(path, "rb") as f:
                    f.seek(-1, os.SEEK_END)
                    start = "" if f.read(1) == b"\n" else "\n"
        bad = [k for k, v in metrics.items() if isinstance(v, float) and not math.isfinite(v)]
        if bad and not self._diverged:  # once: every later record would say it again
            self._diverged = True
            warn(f"step {metrics.get('step')}: {', '.join(bad)} not finite: training has diverged (logged as null); "
                 "stop it and lower the learning rates, or resume from an earlier copy of the run", stacklevel=2)
        record = {k: (round(v, 6) if math.isfinite(v) else None) if isinstance(v, float) else v
                  for k, v in metrics.items()}  # strict JSON: NaN and infinity are not numbers there
        with open(path, "a") as f:
            f.write(start + json.dumps(record, allow_nan=False) + "\n")
        if self.trainer.cfg.train.tensorboard:
            if self._tb is None:
                try:
                    from torch.utils.tensorboard import SummaryWriter
                except ImportError as e:
                    from ganforge.errors import DependencyError

                    raise DependencyError(f"--tensorboard cannot load torch.utils.tensorboard ({e}): "
                                          "pip install tensorboard") from e
                self._tb = SummaryWriter(str(self.dir / "tensorboard"))
            for k, v in metrics.items():
                if k != "step":
                    self._tb.add_scalar(f"train/{k}", v, metrics["step"])

    # -------------------------------------------------------------- loop
    def request_stop(self, reason: str = "stopped") -> None:
        self.stop_reason = reason

    def train(self, steps: int | None = None, callback: Callback | None = None) -> str:
        """Train until ``steps`` (default: the config's) or a stop request; returns 'done' or the reason."""
        tr, t = self.trainer, self.trainer.cfg.train
        total = steps or t.steps
        progress = _Progress(tr, total, self.progress and self.main)
        with self.handle_signals():
            try:
                try:
                    if tr.step_count == 0 or not (self.dir / "samples").exists():
                        with self._section():
                            self.write_grid()
                    while tr.step_count < total and self.stop_reason is None:
                        m = tr.step()
                        s = tr.step_count
                        log = s % t.log_every == 0 or s == total
                        progress.update(m, log=log)
                        if log:
                            self._log(m)
                        # Once a stop is asked for, only the checkpoint below is still written.
                        if self.stop_reason is None and (s % t.sample_every == 0 or s == total):
                            with self._section():
                                self.write_grid()
                        if self.stop_reason is None and s % t.ckpt_every == 0:
                            self.save()
                        if self.stop_reason is None and t.eval_every and (s % t.eval_every == 0 or s == total):
                            with self._section():
                                self.evaluate()
                        if callback is not None:
                            callback(tr, m)
                except _StopNow:
                    pass  # a grid or an evaluation dropped: the trainer's state is that of its last whole step
                self.save()
            finally:
                progress.close()
                if self._tb is not None:
                    self._tb.flush()  # its own timer flushes every 2 minutes; a torchrun worker exits without teardown
        return self.stop_reason or "done"

    @contextlib.contextmanager
    def _section(self):
        """Work that a first stop signal may abandon at once (it raises _StopNow there): it changes no
        training state and writes each of its files atomically."""
        try:
            self._in_section = True
            yield
        finally:
            self._in_section = False

    @contextlib.contextmanager
    def handle_signals(self):
        """While active, SIGINT / SIGTERM stop the run as the module notes say instead of killing it mid-write.
        Nests; a no-op outside the main thread (signals reach only that one)."""
        if self._handling or threading.current_thread() is not threading.main_thread():
            yield
            return
        old = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        self._handling = True
        try:
            yield
        finally:
            self._handling = False
            for sig, handler in old.items():
                signal.signal(sig, handler)

    def _on_signal(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        code = 128 + signum
        self._signals += 1
        if self._signals == 1:
            if self.stop_reason is None:
                self.request_stop(name)
            # os.write, not print: the interrupted code may be inside a write to the same stream.
            _say(f"\nganforge train: {name}: stopping at the next safe point to save a checkpoint; "
                 "a second signal (Ctrl-C) exits at once without saving\n")
            if self._in_section:
                raise _StopNow
            return
        again = "interrupted" if signum == signal.SIGINT else "terminated"
        ckpt = self.dir / CHECKPOINT_NAME
        if ckpt.exists():
            message = f"{again} again: exiting without saving; the last checkpoint at {ckpt} is intact"
        else:
            message = (f"{again} again: exiting without saving; {self.dir} has no checkpoint yet (it never saved "
                       "one), so it cannot be resumed")
        if self._signals == 2:
            raise Interrupted(message, code)
        _say(f"\nganforge train: {message}\n")  # a third while the second unwinds: no more waiting
        os._exit(code)


def _say(text: str) -> None:
    with contextlib.suppress(OSError, ValueError, AttributeError):  # no usable stderr: say nothing
        os.write(sys.stderr.fileno(), text.encode())


class _Progress:
    """A tqdm bar on a terminal; elsewhere (a log file, CI) one plain line per logged step, so that the
    output holds no carriage-return redraws."""

    def __init__(self, trainer: Trainer, total: int, enabled: bool):
        self.total, self.enabled = total, enabled
        self.start_step, self.start = trainer.step_count, time.perf_counter()
        self.images = self.seconds = 0.0
        t = trainer.cfg.train
        self.batch = t.batch_size * t.d_steps
        self.bar = None
        if enabled and (sys.stderr.isatty() or "ipykernel" in sys.modules):
            self.bar = tqdm(total=total, initial=trainer.step_count, unit="step", dynamic_ncols=True)

    def update(self, m: dict, log: bool) -> None:
        if not self.enabled:
            return
        self.images += self.batch
        self.seconds += m["seconds"]
        if self.bar is not None:
            self.bar.update(1)
            if log:
                self.bar.set_postfix(D=f"{m['loss_d']:.3f}", G=f"{m['loss_g']:.3f}", Dx=f"{m['d_real']:.2f}",
                                     DGz=f"{m['d_fake']:.2f}", ips=f"{m['img_per_s']:.0f}")
            return
        if not log:
            return
        s = m["step"]
        per_step = (time.perf_counter() - self.start) / max(1, s - self.start_step)  # grids and saves included
        ips = self.images / self.seconds if self.seconds > 0 else 0.0
        print(f"step {s}/{self.total}  loss D {m['loss_d']:.3f} G {m['loss_g']:.3f}  D(x) {m['d_real']:.2f} "
              f"D(G(z)) {m['d_fake']:.2f}  {ips:.0f} img/s  ETA {_clock(per_step * (self.total - s))}",
              file=sys.stderr, flush=True)
        self.images = self.seconds = 0.0

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _clock(seconds: float) -> str:
    s = max(0, round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def _saved_fid(path: Path) -> float | None:
    """The FID stored in an earlier best.safetensors, so a resumed run only replaces it with a better one."""
    if not path.is_file():
        return None
    try:
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            return float(json.loads(f.metadata()["meta"])["fid"])
    except Exception:  # unreadable or foreign: the next evaluation replaces it
        return None
