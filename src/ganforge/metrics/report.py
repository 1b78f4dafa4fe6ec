"""The ``ganforge eval`` table."""
from __future__ import annotations

ROWS = (  # key, label, what it means
    ("fid", "FID", "lower is better"),
    ("kid", "KID", "lower is better; mean ± std over subsets"),
    ("precision", "precision", "share of fakes on the real manifold (k=3)"),
    ("recall", "recall", "share of reals on the fake manifold (k=3)"),
    ("density", "density", "about 1 when fakes sit like reals (k=5)"),
    ("coverage", "coverage", "share of real neighbourhoods holding a fake (k=5)"),
    ("is", "digit IS", "exp E KL(p(y|x) || p(y)) with the digit network; 10 at best"),
    ("confident_rate", "confident", "share the digit network labels with p > 0.9"),
    ("min_class_share", "class shares", "min..max share of the 10 predicted classes"),
    ("d_real", "D(x)", "mean sigmoid of the run's D on real images"),
    ("d_fake", "D(G(z))", "mean sigmoid of the run's D on generated images"),
)


def _value(key: str, m: dict) -> str:
    v = m[key]
    if key == "fid":
        return f"{v:.3f}"
    if key == "kid":
        return f"{v:.5f} ± {m['kid_std']:.5f}"
    if key == "min_class_share":
        return f"{v:.3f}..{m['max_class_share']:.3f}"
    return f"{v:.4f}"


def format_table(result: dict) -> str:
    m = result["metrics"]
    feats = f"features: {result['features']}" if result.get("features") else "no features needed"
    lines = [f"fake: {result['fake']} ({result['n']} images)   real: {result['real']}"
             + (f" ({result['n_real']} images)" if result.get("n_real") else "") + f"   {feats}", ""]
    for key, label, note in ROWS:
        if key in m:
            lines.append(f"{label:13s} {_value(key, m):>20s}   {note}")
            if key == "fid":
                lines.append(f"{'  floor':13s} {m['fid_floor']:>20.3f}   real vs real: two disjoint halves of "
                             f"{m['fid_floor_n']} real images")
    if "class_shares" in m:
        lines.append(f"{'':13s} {'':>20s}   per class: " + " ".join(f"{s:.2f}" for s in m["class_shares"]))
    lines += ["", f"{result['seconds']:.1f} s" + (" (real features from cache)" if result.get("real_stats_cached")
                                                   else "")]
    return "\n".join(lines)
