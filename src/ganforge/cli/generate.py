"""`ganforge generate` and `ganforge interpolate`: seeded samples, grids, truncation sweeps and latent walks."""
from __future__ import annotations

from pathlib import Path

from ganforge.cli.common import FMT, add_device, add_precision, positive, psi_list, seed


def add_generate(sub):
    p = sub.add_parser("generate", formatter_class=FMT, help="write samples of a trained run as PNGs or a grid")
    p.add_argument("run", help="run directory (or its checkpoint.safetensors)")
    p.add_argument("--n", type=positive, default=16, help="number of images")
    p.add_argument("--out", help="folder for one PNG per image (default RUN/generated when --grid is not given)")
    p.add_argument("--grid", help="also/instead write one grid image to this file")
    p.add_argument("--seed", type=seed, default=0, help="latent seed: same seed, same images")
    p.add_argument("--class", dest="class_index", type=int, help="class index for conditional runs (default: "
                                                                  "cycle through all classes)")
    p.add_argument("--truncation", type=psi_list, default=[1.0],
                   help="psi: pull latents toward the mean (1 = off); a comma list (e.g. 1,0.7,0.5,0) makes a "
                        "sweep: the same seeds at every psi, one grid row per seed, PNGs named by psi")
    p.add_argument("--truncation-center", choices=["global", "class"], default="global",
                   help="what a conditional StyleGAN2 truncates toward: the one average w it tracks (as the "
                        "official networks) or the mean w of each sample's class (keeps the class at low psi)")
    p.add_argument("--batch-size", type=positive, default=256, help="images per forward pass")
    add_device(p)
    add_precision(p)
    p.set_defaults(func=cmd_generate)


def cmd_generate(a) -> int:
    from ganforge.devices import resolve_device
    from ganforge.generate.runs import load
    from ganforge.generate.sampling import check_truncation, sample, truncation_sweep, write_pngs
    from ganforge.storage.images import auto_upscale, check_image_path, check_output_dir, grid, save_image

    if a.grid:
        check_image_path(a.grid)
    if a.out:
        check_output_dir(a.out)
    for psi in a.truncation:
        check_truncation(psi)
    G = load(a.run, device=str(resolve_device(a.device)), precision=a.precision)
    run_dir = Path(a.run).parent if Path(a.run).is_file() else Path(a.run)  # RUN or RUN/checkpoint.safetensors
    out = a.out or (None if a.grid else str(run_dir / "generated"))
    sweep = len(a.truncation) > 1
    if sweep:  # [n, k] images: row = seed, column = psi
        table = truncation_sweep(G, a.n, a.truncation, seed=a.seed, class_index=a.class_index,
                                 batch_size=a.batch_size, center=a.truncation_center)
        images, nrow = table.flatten(0, 1), len(a.truncation)
    else:
        images = sample(G, a.n, seed=a.seed, class_index=a.class_index, truncation=a.truncation[0],
                        batch_size=a.batch_size, center=a.truncation_center)
        # one column per class (the classes cycle), but no empty columns when there are fewer images
        nrow = min(G.num_classes, a.n) if G.num_classes and a.class_index is None else None
    if out:
        if sweep:
            count = sum(len(write_pngs(table[:, j], out, prefix=f"psi{psi:g}"))
                        for j, psi in enumerate(a.truncation))
        else:
            count = len(write_pngs(images, out))
        print(f"wrote {count} PNGs to {out}")
    if a.grid:
        save_image(grid(images, nrow=nrow, upscale=auto_upscale(images.shape[-1])), a.grid)
        cols = f" (columns: psi {', '.join(f'{p:g}' for p in a.truncation)})" if sweep else ""
        print(f"wrote grid {a.grid}{cols}")
    return 0


def add_interpolate(sub):
    p = sub.add_parser("interpolate", formatter_class=FMT, help="render a looping walk through latent space")
    p.add_argument("run", help="run directory")
    p.add_argument("--out", default="loop.gif", help="output .gif (or .mp4 with imageio-ffmpeg)")
    p.add_argument("--keys", type=positive, default=4, help="seeded key points in the loop")
    p.add_argument("--steps", type=positive, default=24, help="frames between key points")
    p.add_argument("--n", type=positive, default=1, help="independent walks side by side")
    p.add_argument("--seed", type=seed, default=0, help="seed of the first walk's key points")
    p.add_argument("--class", dest="class_index", type=int, help="class for conditional runs")
    p.add_argument("--truncation", type=float, default=1.0, help="psi (1 = off)")
    p.add_argument("--fps", type=positive, default=20, help="frames per second")
    p.add_argument("--space", choices=["z", "w"], default="z", help="interpolate latents z (spherically) or, for "
                                                                     "StyleGAN2 runs, mapped styles w (linearly)")
    add_precision(p)
    p.set_defaults(func=cmd_interpolate)


def cmd_interpolate(a) -> int:
    from ganforge.generate.runs import load_run
    from ganforge.generate.sampling import interpolate
    from ganforge.storage.images import check_video_path

    check_video_path(a.out, a.fps)  # a missing writer is reported before the run loads, not after the frames render
    cfg, G, _ = load_run(a.run, precision=a.precision)
    walk = interpolate
    if a.space == "w":
        from ganforge.generate.stylegan import interpolate_w, require_stylegan

        require_stylegan(G, cfg.model.family, "interpolate --space w")
        walk = interpolate_w
    path = walk(G, a.out, keys=a.keys, steps=a.steps, seed=a.seed, class_index=a.class_index,
                truncation=a.truncation, n=a.n, fps=a.fps)
    print(f"wrote {path} ({a.keys * a.steps} frames, loops seamlessly)")
    return 0


