"""Two CPU processes with gloo under torchrun: both ranks must hold identical networks."""
import json
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

HERE = Path(__file__).parent


def torchrun(*args, timeout=240):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_two_gloo_ranks_hold_identical_weights(tmp_path):
    torchrun(str(HERE / "ddp_worker.py"), str(tmp_path))
    r0, r1 = (load_file(str(tmp_path / f"rank{r}.safetensors")) for r in (0, 1))
    nets = [k for k in r0 if k != "next_indices"]
    assert any(k.startswith("D.") for k in nets) and any(".running_mean" in k for k in nets)
    for k in nets:
        assert torch.equal(r0[k], r1[k]), f"{k} differs between ranks"
    # Sharded sampling: the ranks take disjoint halves of each global batch.
    a, b = r0["next_indices"], r1["next_indices"]
    assert len(a) == len(b) == 8 and not set(a.tolist()) & set(b.tolist())


def test_cli_under_torchrun_only_rank0_writes(tmp_path):
    out = tmp_path / "run"
    proc = torchrun("-m", "ganforge", "train", "digits", "--steps", "3", "--out", str(out), "--batch-size", "16",
                    "--z-dim", "8", "--g-width", "8", "--d-width", "8", "--quiet", "--device", "cpu")
    assert proc.stdout.count("trained 3 steps") == 1
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no second run directory from rank 1
    ckpt = json.loads((out / "config.json").read_text())
    assert ckpt["train"]["batch_size"] == 16
    import ganforge

    assert ganforge.load(out).step == 3


def test_exit_worker_flushes_output_and_keeps_the_status():
    code = ("import sys; from ganforge.train.distributed import exit_worker; "
            "print('written', end=''); sys.stderr.write('note'); exit_worker(3); print('never')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert (proc.returncode, proc.stdout, proc.stderr) == (3, "written", "note")
