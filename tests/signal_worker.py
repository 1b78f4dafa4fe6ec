"""Run by tests/test_run_loop.py: `ganforge train ARGS...` with one stage made to wait (as on large data or a
large model) after printing a readiness line, so that the test can send a signal at that point.

    python signal_worker.py MODE AT ARGS...

MODE: decode (the data set loads), build (the networks are built), grid (a sample grid renders after step
AT), eval (an --eval-every FID is computed), step (step AT + 1 runs: it prints "stop seen" once the run has a
stop request and then never ends) or step-ends (the same step, which ends once the stop request is seen).
"""
import sys
import time

import torch

import ganforge.data
import ganforge.models
from ganforge.cli import main
from ganforge.train import run as run_module
from ganforge.train.trainer import Trainer

mode, at, args = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
runs = []


def ready(what: str) -> None:
    print(what, flush=True)


def wait_forever():
    while True:
        time.sleep(0.01)


def slow_load(cfg, *a, **k):
    ready("decoding")
    wait_forever()


real_build = ganforge.models.build


def slow_build(cfg):
    if torch.empty(0).device.type != "meta":  # the configuration check's dry build is left alone
        ready("building")
        wait_forever()
    return real_build(cfg)


real_sample = Trainer.sample


def slow_sample(self, z, c=None, ema=True):
    if self.step_count >= at:
        ready("rendering")
        wait_forever()
    return real_sample(self, z, c, ema)


def slow_fid(self, G):
    ready("evaluating")
    wait_forever()


real_step = Trainer.step


def slow_step(self):
    if self.step_count == at:
        ready("stepping")
        while runs[0].stop_reason is None:
            time.sleep(0.01)
        ready("stop seen")
        if mode == "step":
            wait_forever()
    return real_step(self)


real_init = run_module.Run.__init__


def keep_run(self, *a, **k):
    real_init(self, *a, **k)
    runs.append(self)


run_module.Run.__init__ = keep_run
if mode == "decode":
    ganforge.data.load_dataset = slow_load
elif mode == "build":
    ganforge.models.build = slow_build
elif mode == "grid":
    Trainer.sample = slow_sample
elif mode == "eval":
    from ganforge.metrics.tracker import FidTracker

    FidTracker.__call__ = slow_fid
elif mode in ("step", "step-ends"):
    Trainer.step = slow_step
else:
    raise SystemExit(f"unknown mode {mode}")
sys.exit(main(["train", *args]))
