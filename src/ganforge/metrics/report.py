"""The ``ganforge eval`` table."""
from __future__ import annotations

ROWS = (  # key, label, what it means
    ("fid", "FID", "lower is better"),
    ("kid", "KID x10^3", "lower is better; mean ± std over subsets"),
    ("precision", "precision", "share of fakes on the real manifold (k=3)"),
    ("recall", "recall", "share of reals on the fake manifold (k=3)"),
    ("density", "density", "about 1 when fakes sit like reals (k=5)"),
    ("coverage", "coverage", "share of real neighbourhoods holding a fake (k=5)"),
    ("is", "digit IS", "exp E KL(p(y|x) || p(y)) with the digit network; 10 at best"),
    ("confident_rate", "confident", "share the digit network labels with p > 0.9"),
    ("min_class_share", "class shares", "min..max share of the 10 predicted classes"),
    ("d_real", "D(x)", "mean sigmoid of the run's D on real images"),
    ("d_fake", "D(G(z))", "mean sigmoid of the run's D on generated images"),
    ("ppl", "PPL", "perceptual path length; lower is smoother"),
    ("ls", "LS", "linear separability of the digit classes; 1 at best"),
    ("swd", "SWD x10^3", "sliced Wasserstein distance of Laplacian-pyramid 7x7 neighbourhoods; lower is better"),
)
KID_SCALE = 1000
SKIPPED_LABELS = {"ppl": "PPL", "ls": "LS"}


def _note(key: str, note: str, m: dict) -> str:
    if key == "ppl":
        digit = " (not LPIPS: not comparable with published PPL)" if m["ppl_distance"] == "digit-features" else ""
        return (f"path length in {m['ppl_space']}, {m['ppl_sampling']} sampling, {m['ppl_distance']} "
                f"distance{digit}; {m['ppl_kept']}/{m['ppl_n']} pairs kept; lower is smoother")
    if key == "ls":
        skipped = f", {m['ls_skipped']} with too few samples skipped" if m["ls_skipped"] else ""
        return (f"linear separability in {m['ls_space']}: {m['ls_attributes']} digit classes{skipped}; "
                f"{m['ls_used']}/{m['ls_n']} samples kept; 1 at best")
    if key == "swd":
        levels = ", ".join(f"{r} px {v:.1f}" for r, v in zip(m["swd_resolutions"], m["swd_levels"]))
        return f"mean over pyramid levels ({levels}); {m['swd_n']} images of each set; lower is better"
    return note


def _value(key: str, m: dict) -> str:
    v = m[key]
    if key == "fid":
        return f"{v:.3f}"
    if key == "kid":  # scaled as the literature prints it (the label says so); --json keeps the raw values
        return f"{v * KID_SCALE:.3f} ± {m['kid_std'] * KID_SCALE:.3f}"
    if key == "min_class_share":
        return f"{v:.3f}..{m['max_class_share']:.3f}"
    if key == "ppl":
        return f"{v:.4g}"
    if key == "ls":
        return f"{v:.3f}" + (f" (z: {m['ls_z']:.3f})" if "ls_z" in m else "")
    if key == "swd":
        return f"{v:.2f}"
    return f"{v:.4f}"


def format_table(result: dict) -> str:
    m = result["metrics"]
    feats = f"features: {result['features']}" if result.get("features") else "no features needed"
    n = f" ({result['n']} images)" if result.get("n") is not None else ""
    lines = [f"fake: {result['fake']}{n}   real: {result['real']}"
             + (f" ({result['n_real']} images)" if result.get("n_real") else "") + f"   {feats}", ""]
    for key, label, note in ROWS:
        if key in m:
            lines.append(f"{label:13s} {_value(key, m):>20s}   {_note(key, note, m)}")
            if key == "fid":
                lines.append(f"{'  floor':13s} {m['fid_floor']:>20.3f}   real vs real: two disjoint halves of "
                             f"{m['fid_floor_n']} real images")
            if key == "min_class_share" and "class_shares" in m:
                lines.append(f"{'':13s} {'':>20s}   per class: " + " ".join(f"{s:.2f}" for s in m["class_shares"]))
    for key, why in result.get("skipped", {}).items():
        lines.append(f"{SKIPPED_LABELS.get(key, key):13s} {'skipped':>20s}   {why}")
    lines += ["", f"{result['seconds']:.1f} s" + (" (real features from cache)" if result.get("real_stats_cached")
                                                   else "")]
    return "\n".join(lines)
