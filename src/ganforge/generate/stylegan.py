"""StyleGAN2 tools: import official network pickles as ganforge runs, style mixing, stochastic variation
and walks in w space.

All sampling here uses the w space of the mapping network: ``ws = G.mapping(z, c, truncation_psi)`` of
shape ``[B, num_ws, w_dim]`` (one w per synthesis layer), then ``G.synthesis(ws, noise_mode)``. Noise is
'const' (the noise stored in the network) unless a tool is about the noise, so seeds are reproducible.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import torch

from ganforge import models
from ganforge.config import DataConfig, ModelConfig, RunConfig
from ganforge.errors import ConfigError, StyleGANError
from ganforge.generate.sampling import check_truncation, check_walk, classes, latents, render_walk, truncates_in_w
from ganforge.models.stylegan2 import importer
from ganforge.storage.checkpoint import CHECKPOINT_NAME, load_module, module_tensors, save_checkpoint
from ganforge.storage.images import auto_upscale, check_image_path, check_output_dir, check_video_path, grid, save_image

# Named style ranges by the resolution their layers draw (as in the StyleGAN papers): (lowest, highest).
STYLE_RANGES = {"coarse": (4, 8), "middle": (16, 32), "fine": (64, None)}
BLANK = 32 / 127.5 - 1  # the grid's border colour in [-1, 1]: the empty top-left cell of a style-mix grid


class UnsafeNetworkPickle(StyleGANError, importer.UnsafePickleError):
    """The network pickle asks for code or classes outside the importer's allow-list."""


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


# ----------------------------------------------------------------- importing official pickles
def import_stylegan(pkl_path: str | Path, out_dir: str | Path) -> Path:
    """Turn an official stylegan2-ada-pytorch network pickle into a ganforge run directory.

    Reads G, G_ema and D (whichever are present; at least one generator) without running code from the
    pickle, writes ``config.json`` (family, sizes and the official constructor arguments as
    ``model.options``) and ``checkpoint.safetensors`` (tensors under ``G.``, ``G_ema.``, ``D.``).
    Nothing is written unless the whole import succeeds. Returns ``out_dir``.
    """
    pkl, out = Path(pkl_path), Path(out_dir)
    if pkl.is_dir():
        found = sorted(pkl.glob("*.pkl"))  # training snapshots sort by their image count: the last is the newest
        if found:
            raise StyleGANError(f"{pkl} is a folder: pass one network .pkl file in it, e.g. {found[-1]}")
        raise StyleGANError(f"{pkl} is a folder with no .pkl file in it: pass a network .pkl file, as "
                            "stylegan2-ada-pytorch writes")
    if not pkl.is_file():
        raise StyleGANError(f"{pkl} not found: pass an official StyleGAN2 network pickle (.pkl)")
    check_output_dir(out, "the run")  # a file, or a read-only place, said before the pickle is read
    if (out / "config.json").exists() or (out / CHECKPOINT_NAME).exists():
        raise StyleGANError(f"{out} already holds a run: choose another --out")
    try:
        data = importer.load_pickle(pkl)
    except importer.ForeignFileError as e:
        raise StyleGANError(f"{pkl.name}: {_one_line(e)}") from e
    except importer.UnsafePickleError as e:
        raise UnsafeNetworkPickle(f"{pkl.name}: {_one_line(e)}") from e
    except Exception as e:  # untrusted bytes: any parse failure means "not a network pickle"
        raise StyleGANError(f"{pkl.name} is not a readable network pickle ({_one_line(e)})") from e
    if not isinstance(data, dict) or all(data.get(k) is None for k in ("G", "G_ema")):
        raise StyleGANError(f"{pkl.name} holds no StyleGAN2 generator (expected a dict with 'G_ema' or 'G', "
                            "as stylegan2-ada-pytorch writes)")
    nets, kwargs = {}, {}
    for name in ("G", "G_ema", "D"):
        if data.get(name) is None:
            continue
        try:
            kwargs[name] = importer.network_kwargs(data[name])
            nets[name] = importer.build_network(data[name])
        except importer.ForeignFileError as e:
            raise StyleGANError(f"{pkl.name}: {_one_line(e)}") from e
        except (ValueError, TypeError) as e:
            raise StyleGANError(f"{pkl.name}: cannot rebuild its {name}: {_one_line(e)}") from e
    if "G" in kwargs and "G_ema" in kwargs and kwargs["G"] != kwargs["G_ema"]:
        raise StyleGANError(f"{pkl.name}: G and G_ema were built with different arguments")
    cfg = _imported_config(pkl.name, kwargs.get("G_ema") or kwargs["G"], kwargs.get("D"))
    tensors = {k: v for name, net in nets.items() for k, v in module_tensors(net, name).items()}
    _check_loads(cfg, tensors, pkl.name)
    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out / CHECKPOINT_NAME, tensors, {"step": 0, "imported_from": pkl.name,
                                                     "config": cfg.to_dict()})
    cfg.save(out / "config.json")
    return out


def _imported_config(name: str, g_kwargs: dict, d_kwargs: dict | None) -> RunConfig:
    c_dim, res, ch = (int(g_kwargs.get(k, 0)) for k in ("c_dim", "img_resolution", "img_channels"))
    synthesis = g_kwargs.get("synthesis_kwargs") or {}
    if d_kwargs is None:  # no D in the pickle: an official-sized one, for fine-tuning later
        d_kwargs = {"c_dim": c_dim, "img_resolution": res, "img_channels": ch,
                    **{k: synthesis[k] for k in ("channel_base", "channel_max") if k in synthesis}}
    options = {"G_kwargs": g_kwargs, "D_kwargs": d_kwargs}
    try:
        options = json.loads(json.dumps(options))  # what config.json will hold (tuples become lists)
    except (TypeError, ValueError) as e:
        raise StyleGANError(f"{name}: constructor arguments that cannot be stored as JSON ({_one_line(e)})") from e
    model = ModelConfig(family="cstylegan2" if c_dim else "stylegan2", z_dim=int(g_kwargs.get("z_dim", 0)),
                        resolution=res, channels=ch, num_classes=c_dim, options=options,
                        g_width=int(synthesis.get("channel_max", 512)), d_width=int(d_kwargs.get("channel_max", 512)))
    cfg = RunConfig(data=DataConfig(source=f"imported:{name}", resolution=res, channels=ch, labels=c_dim > 0),
                    model=model, class_names=[str(i) for i in range(c_dim)])
    cfg.train.loss = "ns"  # the official objective (non-saturating logistic), should the run be fine-tuned
    return cfg


def _check_loads(cfg: RunConfig, tensors: dict, name: str) -> None:
    """Build the run's networks the way ``ganforge.load`` will and load the tensors, before writing."""
    try:
        G, D = models.build(cfg.model)
        for prefix, net in (("G", G), ("G_ema", G), ("D", D)):
            if any(k.startswith(prefix + ".") for k in tensors):
                load_module(net, tensors, prefix, name)
    except (ConfigError, ValueError) as e:
        raise StyleGANError(f"{name}: the imported networks do not fit ganforge's stylegan2 family "
                            f"({_one_line(e)})") from e


# ----------------------------------------------------------------- w-space helpers
def require_stylegan(G, family: str | None, command: str) -> None:
    """One-line error unless ``G`` is a StyleGAN2 generator (it has a mapping network and w space)."""
    if not truncates_in_w(G) or not hasattr(G, "mapping"):
        what = f"this run is {family}" if family else "other families have no w space"
        raise StyleGANError(f"{command} needs a StyleGAN2 run (family stylegan2); {what}")


def _class_labels(G, n: int, class_index: int | None) -> torch.Tensor | None:
    """One class for all ``n`` samples: ``class_index``, or 0 for conditional models."""
    if class_index is None and G.num_classes:
        class_index = 0
    return classes(G, n, class_index)


def seed_latents(G, seeds: Sequence[int]) -> torch.Tensor:
    """One z per seed; seed s gives the same z as ``ganforge generate --seed s`` gives its first image."""
    return torch.cat([latents(G, 1, int(s)) for s in seeds])


@torch.inference_mode()
def map_to_w(G, z: torch.Tensor, c: torch.Tensor | None, truncation: float = 1.0) -> torch.Tensor:
    """z (and classes) -> per-layer ws ``[B, num_ws, w_dim]``, truncated toward the average w."""
    check_truncation(truncation)
    device = next(G.parameters()).device
    c = None if c is None else c.to(device)
    return G.mapping(z.to(device), c, truncation_psi=truncation, skip_w_avg_update=True)


@torch.inference_mode()
def synthesize(G, ws: torch.Tensor, noise_mode: str = "const", batch_size: int = 32) -> torch.Tensor:
    """Images in [-1, 1] (on the CPU) from per-layer ws."""
    out = [G.synthesis(ws[i:i + batch_size], noise_mode=noise_mode).float().cpu()
           for i in range(0, ws.shape[0], batch_size)]
    return torch.cat(out)


def style_layers(G, spec: str) -> list[int]:
    """w indices for ``coarse`` / ``middle`` / ``fine`` or numbers like ``0-3`` or ``0,2,4-5``."""
    num_ws, text = G.num_ws, str(spec).strip().lower()
    if text in STYLE_RANGES:
        lo, hi = STYLE_RANGES[text]
        layers = [i for i in range(num_ws) if lo <= _layer_resolution(i) and (hi is None or _layer_resolution(i) <= hi)]
        if not layers:
            def drawn(a, b):
                return any(a <= _layer_resolution(i) and (b is None or _layer_resolution(i) <= b)
                           for i in range(num_ws))

            have = [n for n, (a, b) in STYLE_RANGES.items() if drawn(a, b)]
            raise StyleGANError(f"a {G.img_resolution}x{G.img_resolution} model has no {text} styles "
                                f"({lo}x{lo} and up); use {', '.join(have)} or layer numbers 0-{num_ws - 1}")
        return layers
    try:
        layers = sorted({i for part in text.split(",") for i in _int_range(part)})
    except ValueError:
        raise StyleGANError(f"styles must be coarse, middle, fine or layer numbers like 0-3, got '{spec}'") from None
    bad = [i for i in layers if not 0 <= i < num_ws]
    if bad:
        raise StyleGANError(f"style layer {bad[0]} is out of range: this model has layers 0..{num_ws - 1}")
    if not layers:
        raise StyleGANError(f"styles '{spec}' select no layers; this model has layers 0..{num_ws - 1}")
    return layers


def _layer_resolution(i: int) -> int:
    """w number i drives resolution 4 * 2 ** (i // 2): two per resolution, the last one the final toRGB."""
    return 4 * 2 ** (i // 2)


def _int_range(part: str) -> range:
    lo, sep, hi = part.strip().partition("-")
    return range(int(lo), int(hi if sep else lo) + 1)


# ----------------------------------------------------------------- the tools
@torch.inference_mode()
def style_mix(G, rows: Sequence[int], cols: Sequence[int], styles: str = "coarse", truncation: float = 1.0,
              class_index: int | None = None, out: str | Path | None = None) -> torch.Tensor:
    """The style-mixing figure: cells ``[len(rows) + 1, len(cols) + 1, C, H, W]``.

    Row 0 holds the column seeds' images, column 0 the row seeds' (the corner is blank); cell (r, c) is
    row seed r's w with the layers in ``styles`` taken from column seed c. Writes a grid to ``out``.
    """
    if out is not None:
        check_image_path(out)
    if not rows or not cols:
        raise StyleGANError("style mixing needs at least one row seed and one column seed")
    layers = style_layers(G, styles)
    seeds = list(rows) + list(cols)
    ws = map_to_w(G, seed_latents(G, seeds), _class_labels(G, len(seeds), class_index), truncation)
    row_ws, col_ws = ws[:len(rows)], ws[len(rows):]
    mixed = row_ws[:, None].repeat(1, len(cols), 1, 1)  # [R, C, num_ws, w_dim]
    mixed[:, :, layers] = col_ws[None, :, layers]
    imgs = synthesize(G, torch.cat([ws, mixed.flatten(0, 1)]))
    cells = torch.full((len(rows) + 1, len(cols) + 1, *imgs.shape[1:]), BLANK)
    cells[1:, 0] = imgs[:len(rows)]
    cells[0, 1:] = imgs[len(rows):len(seeds)]
    cells[1:, 1:] = imgs[len(seeds):].view(len(rows), len(cols), *imgs.shape[1:])
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        save_image(grid(cells.flatten(0, 1), nrow=len(cols) + 1, upscale=auto_upscale(imgs.shape[-1])), out)
    return cells


class NoiseVariation(NamedTuple):
    images: torch.Tensor  # [n, C, H, W]: one w, n draws of the per-pixel noise
    std: torch.Tensor  # [H, W]: per-pixel standard deviation over the draws (mean over channels)
    grid_path: Path | None
    std_path: Path | None


@torch.inference_mode()
def noise_variation(G, seed: int, n: int = 8, out_dir: str | Path | None = None, truncation: float = 1.0,
                    class_index: int | None = None, noise_seed: int | None = None) -> NoiseVariation:
    """Stochastic variation: seed's w rendered with ``n`` random noise draws (seeded by ``noise_seed``,
    default ``seed``). Writes ``seedS-noise.png`` (the variations) and ``seedS-noise-std.png`` (the std map,
    scaled so its largest value is white) to ``out_dir``."""
    if out_dir is not None:
        check_output_dir(out_dir)
    if n < 2:
        raise StyleGANError(f"stochastic variation needs at least 2 noise draws, got {n}")
    w = map_to_w(G, seed_latents(G, [seed]), _class_labels(G, 1, class_index), truncation)
    device = w.device
    # A private RNG stream: the same seeds give the same draws, and the caller's RNG state is untouched.
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed if noise_seed is None else noise_seed)
        imgs = synthesize(G, w.repeat(n, 1, 1), noise_mode="random", batch_size=n)
    # Deviations from the first draw: exactly zero wherever the noise has no effect.
    std = (imgs - imgs[:1]).std(dim=0, unbiased=False).mean(dim=0)
    grid_path = std_path = None
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        up = auto_upscale(imgs.shape[-1])
        grid_path, std_path = out / f"seed{seed:04d}-noise.png", out / f"seed{seed:04d}-noise-std.png"
        save_image(grid(imgs, upscale=up), grid_path)
        scaled = std / std.max() if std.max() > 0 else std
        save_image(grid((scaled * 2 - 1)[None, None], pad=0, upscale=up), std_path)
    return NoiseVariation(imgs, std, grid_path, std_path)


@torch.inference_mode()
def interpolate_w(G, out: str | Path, keys: int = 4, steps: int = 24, seed: int = 0, class_index: int | None = None,
                  truncation: float = 1.0, n: int = 1, fps: int = 20) -> Path:
    """A looping walk, linear in w space, through ``keys`` seeded key points (the same key images as the
    z-space ``generate.interpolate``); ``n`` > 1 shows n walks (seeds seed, seed+1, ...) side by side."""
    check_video_path(out, fps)
    require_stylegan(G, None, "interpolation in w space")
    check_walk(keys, steps)
    walks = []
    for j in range(n):
        label = class_index if class_index is not None else (j % G.num_classes if G.num_classes else None)
        k = map_to_w(G, latents(G, keys, seed + j), classes(G, keys, label), truncation)
        t = torch.arange(steps, dtype=k.dtype, device=k.device).div(steps).view(-1, 1, 1)
        walks.append(torch.cat([k[i].lerp(k[(i + 1) % keys], t) for i in range(keys)]))
    ws = torch.stack(walks, dim=1).flatten(0, 1)  # frame-major: n images per frame
    return render_walk(synthesize(G, ws).view(-1, n, *G.img_shape), out, fps)
