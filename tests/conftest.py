import os
from pathlib import Path

import pytest
import torch

# Tiny models: threads cost more than they give. GANFORGE_TEST_THREADS=2 runs the suite with two threads, to
# check that no test depends on the kernels one thread count picks (see the Makefile's test-threads target).
torch.set_num_threads(int(os.environ.get("GANFORGE_TEST_THREADS", "1")))

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared"


@pytest.fixture
def tiny_cfg():
    """A run config for tests: small nets, tiny batches, digits data at 8x8."""
    from ganforge.config import RunConfig

    cfg = RunConfig()
    cfg.data.source = "digits"
    cfg.model.family = "dcgan"
    cfg.model.g_width = cfg.model.d_width = 8
    cfg.model.z_dim = 8
    cfg.train.batch_size = 8
    cfg.train.steps = 4
    cfg.train.sample_every = 2
    cfg.train.ckpt_every = 100
    cfg.train.log_every = 1
    cfg.train.grid_size = 4
    cfg.train.device = "cpu"
    return cfg


@pytest.fixture
def digits():
    from ganforge.config import DataConfig
    from ganforge.data import load_dataset

    return load_dataset(DataConfig(source="digits", cache=False))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path / "cache"))
    os.environ.pop("WORLD_SIZE", None)


def straight_and_resumed(cfg, data, tmp_path, stop_at: int):
    """Train ``cfg`` once straight through, and once stopped (as by SIGTERM) at ``stop_at`` then resumed
    from its checkpoint with the global RNG disturbed; returns both finished runs."""
    from ganforge.train.run import Run
    from ganforge.train.trainer import Trainer

    straight = Run(Trainer(cfg, data), tmp_path / "straight", progress=False)
    straight.train()
    first = Run(Trainer(cfg, data), tmp_path / "interrupted", progress=False)

    def stop(trainer, metrics):
        if trainer.step_count == stop_at:
            first.request_stop("SIGTERM")

    assert first.train(callback=stop) == "SIGTERM"
    assert first.trainer.step_count == stop_at
    torch.manual_seed(12345)  # resume must restore every random stream itself
    resumed = Run.resume(tmp_path / "interrupted", data, progress=False)
    assert resumed.trainer.step_count == stop_at
    assert resumed.train() == "done"
    return straight, resumed
