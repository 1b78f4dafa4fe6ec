"""How fast `ganforge detect` scores a folder of 28x28 PNG files, as a user runs it (issue 16's speed goal).

    python benchmarks/detect_speed.py [--n 2000] [--threads 2]

Trains a spectral detector, a CNN and a CNN ensemble of ``--ensemble`` nets on MNIST against blurred, noisy
MNIST (the speed does not depend on what a detector learnt), writes ``--n`` MNIST digits as PNG files, then
times ``ganforge detect DIR --json`` in a fresh process for each detector, and for the shipped digit detector
(spectral + CNN, the default of `ganforge detect`): the whole command (start-up, imports, loading the
detector, decoding, features, evidence, output). Prints a Markdown table.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("--n", type=int, default=2000, help="PNG files scored")
p.add_argument("--threads", type=int, default=2)
p.add_argument("--ensemble", type=int, default=3, help="members of the CNN-ensemble row (detect-train --cnn-ensemble)")
a = p.parse_args()

from ganforge.detect import detector  # noqa: E402
from ganforge.detect.decode import decode_array  # noqa: E402
from ganforge.detect.sources import builtin_arrays  # noqa: E402

mnist = builtin_arrays("mnist")
rng = np.random.default_rng(0)
mnist = mnist[rng.permutation(len(mnist))]
train = np.stack([decode_array(x, 28, 1, 0) for x in mnist[:1000]])
noisy = np.clip(train.astype(np.float32) * 0.8 + rng.normal(0, 12, train.shape), 0, 255).astype(np.uint8)

rows = []
with tempfile.TemporaryDirectory() as tmp:
    folder = Path(tmp, "pngs")
    folder.mkdir()
    for i, x in enumerate(mnist[1000:1000 + a.n] if a.n <= 4000 else np.resize(mnist, (a.n, *mnist.shape[1:]))):
        Image.fromarray(np.asarray(x)[0]).save(folder / f"{i:05d}.png")
    for kind in ("spectral", "cnn", f"cnn x{a.ensemble}", "shipped"):
        env = {**os.environ, "OMP_NUM_THREADS": str(a.threads)}
        cmd = [sys.executable, "-m", "ganforge", "detect", str(folder), "--json"]
        if kind != "shipped":  # the shipped digit detector is the default; the others are trained here
            n_nets = a.ensemble if kind.startswith("cnn x") else 1
            opts = detector.TrainOptions(kind=kind.split()[0], cnn_steps=50, cnn_ensemble=n_nets)
            det = detector.train(train, noisy, 28, 1, opts=opts)
            path = Path(tmp, kind.replace(" ", "-"))
            det.save(path)
            cmd += ["--detector", str(path)]
        start = time.perf_counter()
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
        took = time.perf_counter() - start
        lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
        rows.append((kind, len(lines), took))

print("\n| detector | images | whole command, s | images/s (whole command) |\n|---|---|---|---|")
for kind, n, took in rows:
    print(f"| {kind} | {n} | {took:.1f} | {n / took:.0f} |")
