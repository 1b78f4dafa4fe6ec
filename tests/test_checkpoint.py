import os
import pickle
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import save_file

from ganforge.errors import CheckpointError
from ganforge.storage.atomic import atomic_write_bytes
from ganforge.storage.checkpoint import load_checkpoint, load_module, save_checkpoint
from ganforge.train.run import Run
from ganforge.train.trainer import Trainer


def test_round_trip(tmp_path):
    tensors = {"G.w": torch.randn(3, 4), "rng.global": torch.get_rng_state()}
    save_checkpoint(tmp_path / "c.safetensors", tensors, {"step": 7, "nested": {"a": [1, 2]}})
    got, meta = load_checkpoint(tmp_path / "c.safetensors")
    assert torch.equal(got["G.w"], tensors["G.w"]) and torch.equal(got["rng.global"], tensors["rng.global"])
    assert meta == {"step": 7, "nested": {"a": [1, 2]}}


def test_failed_write_keeps_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, {"x": torch.zeros(2)}, {"step": 1})

    def crash(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"x": torch.ones(2)}, {"step": 2})
    monkeypatch.undo()
    tensors, meta = load_checkpoint(path)
    assert meta["step"] == 1 and torch.equal(tensors["x"], torch.zeros(2))
    assert [p.name for p in tmp_path.iterdir()] == ["c.safetensors"]  # no temp file left behind


def test_save_killed_midway_leaves_a_loadable_checkpoint(tmp_path):
    """A process killed (SIGKILL) while saving large checkpoints in a loop never spoils the file: what is left
    is one whole checkpoint, the last one completed or the one being written, never a mix."""
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, {"x": torch.zeros(1)}, {"step": 0})
    script = textwrap.dedent(f"""
        import torch
        from ganforge.storage.checkpoint import save_checkpoint
        for i in range(1, 10**6):
            save_checkpoint({str(path)!r}, {{"x": torch.full((4_000_000,), float(i))}}, {{"step": i}})
            print("saved", i, flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:  # a readiness signal, not a guessed sleep: kill during the third save
            if line.split() == ["saved", "2"]:
                break
        else:
            pytest.fail(f"the saving process ended early (exit {proc.wait()})")
        proc.kill()
    finally:
        proc.kill()
        proc.wait()
    tensors, meta = load_checkpoint(path)
    assert meta["step"] >= 2  # the child really saved before it was killed
    assert tensors["x"].numel() == 4_000_000 and torch.all(tensors["x"] == meta["step"])  # not torn


def test_foreign_and_truncated_files_are_clear_errors(tmp_path):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\0" + os.urandom(299))  # the leading zero: never a pickle's protocol mark
    with pytest.raises(CheckpointError, match="not a readable ganforge checkpoint"):
        load_checkpoint(junk)
    for name in ("network-snapshot.pkl", "net.bin"):  # an official network pickle passed as a run
        (tmp_path / name).write_bytes(pickle.dumps({"G_ema": None}, protocol=4))
        with pytest.raises(CheckpointError) as e:
            load_checkpoint(tmp_path / name)
        assert str(e.value) == (f"{tmp_path / name} is a pickle, not a ganforge checkpoint: import an official "
                                f"StyleGAN2 network with `ganforge import-stylegan {tmp_path / name} --out RUN`, "
                                "then pass RUN")
    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(other))
    with pytest.raises(CheckpointError, match="not a ganforge checkpoint"):
        load_checkpoint(other)
    good = tmp_path / "good.safetensors"
    save_checkpoint(good, {"w": torch.randn(1000)}, {"step": 1})
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(good.read_bytes()[:2000])
    with pytest.raises(CheckpointError, match="truncated or foreign"):
        load_checkpoint(cut)
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "missing")


def test_mismatched_model_names_the_tensor():
    small, big = torch.nn.Linear(2, 3), torch.nn.Linear(2, 4)
    tensors = {f"G.{k}": v for k, v in small.state_dict().items()}
    with pytest.raises(CheckpointError, match=r"G.weight has shape \[3, 2\], the model expects \[4, 2\]"):
        load_module(big, tensors, "G")
    with pytest.raises(CheckpointError, match=r"missing G\.bias"):
        load_module(big, {}, "G")


def test_atomic_write_replaces_whole_file(tmp_path):
    p = tmp_path / "a.json"
    atomic_write_bytes(p, b"one")
    atomic_write_bytes(p, b"two")
    assert p.read_bytes() == b"two"


def test_run_directory_holds_config_weights_and_state(tmp_path, tiny_cfg, digits):
    run = Run(Trainer(tiny_cfg, digits), tmp_path / "run", progress=False)
    assert run.train() == "done"
    tensors, meta = load_checkpoint(tmp_path / "run")
    prefixes = {k.split(".")[0] for k in tensors}
    assert {"G", "G_ema", "D", "opt_G", "opt_D", "rng", "data"} <= prefixes
    assert meta["step"] == 4 and meta["config"]["model"]["resolution"] == 8
    assert (tmp_path / "run" / "config.json").exists()


def test_resuming_keeps_the_optimizer_s_own_kernel_choice():
    """A checkpoint written before the trainer chose multi-tensor updates says foreach None; loading it must
    not switch the optimizer built now back to the per-parameter loop (it is how to compute, not state)."""
    from ganforge.storage.checkpoint import load_optimizer, optimizer_tensors

    w = torch.nn.Parameter(torch.ones(3))
    old = torch.optim.Adam([w], lr=0.1, foreach=None)
    w.grad = torch.ones(3)
    old.step()
    tensors, meta = optimizer_tensors(old, "opt")
    new = torch.optim.Adam([torch.nn.Parameter(torch.ones(3))], lr=0.1, foreach=True)
    load_optimizer(new, tensors, meta, "opt")
    assert new.param_groups[0]["foreach"] is True
    assert new.param_groups[0]["lr"] == 0.1 and int(new.state_dict()["state"][0]["step"]) == 1
