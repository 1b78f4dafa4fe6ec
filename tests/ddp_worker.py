"""Run by tests/test_distributed.py under torchrun: a few steps, then each rank saves what it holds."""
import sys

from safetensors.torch import save_file

from ganforge.config import DataConfig, RunConfig
from ganforge.data import load_dataset
from ganforge.devices import set_cpu_threads
from ganforge.train import distributed
from ganforge.train.trainer import Trainer

out = sys.argv[1]
info = distributed.init_from_env("cpu")
set_cpu_threads(info)
cfg = RunConfig(data=DataConfig(source="digits", cache=False))
cfg.model.family, cfg.model.z_dim, cfg.model.g_width, cfg.model.d_width = "cdcgan", 8, 8, 8
cfg.train.batch_size, cfg.train.device = 16, "cpu"
tr = Trainer(cfg, load_dataset(cfg.data), dist=info)
for _ in range(4):
    tr.step()
tensors, _ = tr.state()
keep = {k: v for k, v in tensors.items() if k.split(".")[0] in ("G", "G_ema", "D")}
keep["next_indices"] = tr._next_indices()
save_file({k: v.contiguous() for k, v in keep.items()}, f"{out}/rank{info.rank}.safetensors")
distributed.shutdown(info)
distributed.exit_worker(0)
