"""Inference precision of StyleGAN2's reduced-precision blocks (num_fp16_res): 'auto' follows the same rule
as training's --precision auto, so CPUs without fast bfloat16 sample in float32."""
import pytest
import torch

import ganforge
import ganforge.devices
from ganforge import models
from ganforge.cli.app import main
from ganforge.config import ModelConfig, RunConfig
from ganforge.errors import ConfigError
from ganforge.generate.sampling import sample
from ganforge.models.stylegan2 import set_precision
from ganforge.storage.checkpoint import module_tensors, save_checkpoint

BASE = dict(family="stylegan2", z_dim=8, g_width=16, d_width=16, resolution=16, channels=3)
MIXED = {"num_fp16_res": 2, "conv_clamp": 256}  # blocks 16 and 8 in reduced precision


def nets():
    """A network with reduced-precision blocks and its all-float32 twin with the same weights."""
    torch.manual_seed(0)
    G16, D16 = models.build(ModelConfig(**BASE, options=MIXED))
    G32, D32 = models.build(ModelConfig(**BASE, options={"num_fp16_res": 0, "conv_clamp": 256}))
    G32.load_state_dict(G16.state_dict())
    D32.load_state_dict(D16.state_dict())
    return [n.eval().requires_grad_(False) for n in (G16, D16, G32, D32)]


def block_dtypes(G) -> dict[int, torch.dtype]:
    """The dtype each synthesis block's conv1 computed in during the last call."""
    seen = {}
    for res in G.synthesis.block_resolutions:
        block = getattr(G.synthesis, f"b{res}")
        block.conv1.register_forward_hook(lambda m, args, out, res=res: seen.__setitem__(res, out.dtype))
    return seen


def fast_bf16(monkeypatch, value: bool):
    monkeypatch.setattr(ganforge.devices, "cpu_has_fast_bf16", lambda: value)


def test_auto_samples_in_float32_exactly_on_a_cpu_without_fast_bf16(monkeypatch):
    fast_bf16(monkeypatch, False)
    G16, D16, G32, D32 = nets()
    assert G16.synthesis.b16.use_fp16 and G16.synthesis.b8.use_fp16 and not G16.synthesis.b4.use_fp16
    assert G16.synthesis.b16.precision == "auto"  # the default, also for networks built for training
    seen = block_dtypes(G16)
    a, b = sample(G16, 4, seed=1), sample(G32, 4, seed=1)
    assert set(seen.values()) == {torch.float32}
    assert torch.equal(a, b)
    assert torch.equal(D16(b), D32(b))


@pytest.mark.parametrize("fast,precision", [(True, "auto"), (False, "bf16")])
def test_reduced_precision_blocks_run_in_bfloat16_where_fast_or_asked(monkeypatch, fast, precision):
    fast_bf16(monkeypatch, fast)
    G16, D16, G32, D32 = nets()
    set_precision(G16, precision)
    set_precision(D16, precision)
    seen = block_dtypes(G16)
    a, b = sample(G16, 4, seed=1), sample(G32, 4, seed=1)
    assert seen == {4: torch.float32, 8: torch.bfloat16, 16: torch.bfloat16}
    assert a.dtype == torch.float32 and not torch.equal(a, b)
    assert (a - b).abs().max() < 0.05 * b.abs().max()  # bfloat16: about 3 significant digits
    assert not torch.equal(D16(b), D32(b))
    assert (D16(b) - D32(b)).abs().max() < 0.05 * D32(b).abs().max() + 1e-3


def test_fp32_wins_even_where_bf16_is_fast(monkeypatch):
    fast_bf16(monkeypatch, True)
    G16, _, G32, _ = nets()
    assert set_precision(G16, "fp32") is G16 and G16.precision == "fp32"
    assert torch.equal(sample(G16, 3, seed=2), sample(G32, 3, seed=2))
    with pytest.raises(ConfigError, match="precision must be auto, fp32 or bf16, got 'fp16'"):
        set_precision(G16, "fp16")


@pytest.fixture
def mixed_run(tmp_path):
    cfg = RunConfig()
    cfg.data.source = "digits"
    for k, v in (BASE | {"options": MIXED}).items():
        setattr(cfg.model, k, v)
    torch.manual_seed(0)
    G, D = models.build(cfg.model)
    save_checkpoint(tmp_path / "run" / "checkpoint.safetensors", module_tensors(G, "G_ema") | module_tensors(D, "D"),
                    {"step": 0, "config": cfg.to_dict()})
    cfg.save(tmp_path / "run" / "config.json")
    return tmp_path / "run"


def test_load_sets_the_precision_that_sample_then_uses(monkeypatch, mixed_run):
    fast_bf16(monkeypatch, True)  # where auto would choose bf16
    G = ganforge.load(mixed_run)
    assert G.precision == G.synthesis.b16.precision == "auto"
    G32 = ganforge.load(mixed_run, precision="fp32")
    _, _, D = ganforge.load_run(mixed_run, precision="fp32")
    assert G32.synthesis.b16.precision == D.b16.precision == "fp32"
    fp32, auto = sample(G32, 2, seed=0), sample(G, 2, seed=0)
    assert not torch.equal(fp32, auto)
    fast_bf16(monkeypatch, False)
    assert torch.equal(sample(G, 2, seed=0), fp32)


class Loaded(Exception):
    pass


@pytest.mark.parametrize("argv", [
    ["generate", "RUN", "--n", "2"],
    ["interpolate", "RUN"],
    ["style-mix", "RUN"],
    ["noise", "RUN"],
    ["project", "photo.png", "--run", "RUN"],
    ["eval", "RUN", "--metrics", "fid"],
])
def test_every_sampling_command_passes_precision_to_the_loader(monkeypatch, mixed_run, argv):
    import ganforge.generate.runs

    def load_run(path, device="cpu", precision="auto"):
        raise Loaded(precision)

    monkeypatch.setattr(ganforge.generate.runs, "load_run", load_run)
    argv = [str(mixed_run) if a == "RUN" else a for a in argv]
    for flag, want in (([], "auto"), (["--precision", "bf16"], "bf16"), (["--precision", "fp32"], "fp32")):
        with pytest.raises(Loaded) as got:
            main(argv + flag)
        assert got.value.args == (want,)
