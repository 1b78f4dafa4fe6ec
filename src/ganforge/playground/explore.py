"""Explore a trained run in the playground: random samples by seed, truncation, class choice, sliders along the
principal directions of the latent space, interpolation between two seeds and style mixing.

The work is done by plain functions (:func:`pca_directions`, :func:`render`, :class:`Explorer`) that need no
web server; :func:`make_router` is a thin FastAPI layer over them (``GET /api/runs``, ``POST /api/explore``,
``POST /api/explore/{id}/render``, ``DELETE /api/explore/{id}``).

How each control acts, by kind of generator:

* StyleGAN2 runs (trained here or imported with ``ganforge import-stylegan``) work in w space. Truncation psi
  pulls w toward the network's average w: ``w_avg + psi * (w - w_avg)``. Directions are the principal
  components of sampled w (as GANSpace), added to every layer's w after truncation. Interpolation lerps
  between the two seeds' w (``space="w"``, the default) or slerps their z (``space="z"``). Style mixing takes
  seed B's w from layer ``from_layer`` on.
* Other families have only z. Truncation scales z toward the prior's mean, ``z * psi`` (as ``ganforge
  generate`` does); directions are the principal components of sampled z (z is an isotropic Gaussian, so
  they are close to an arbitrary orthonormal basis, ordered by the sample's variance); interpolation slerps z.

Named directions: every directions file of the run (``RUN/directions/*.npz``, where ``ganforge directions``
writes by default, and ``RUN/*.npz``) that was found on this network gets one slider per direction, named
as in the file (``thickness``, ``sefa0``), moving z, or w on the file's layers, as ``ganforge edit`` does
(at psi 1 a slider draws exactly its strip). A z move is added before StyleGAN2's truncation, which acts in
w, and after the z scaling of the other families. A file made for another network, or unreadable, is
listed with the reason and left out.

A slider's value is in standard deviations of its component over the sample. Image ``i`` of ``n`` is seed
``seed + i`` (so it is the image that ``n=1`` draws for that seed); interpolation and mixing use the one
other seed for all of them. Noise is the network's stored noise: a request always draws the same picture.
"""
from __future__ import annotations

import base64
import io
import math
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import torch
from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from ganforge.config import RunConfig
from ganforge.edit.directions import Directions as FoundDirections
from ganforge.edit.directions import check_network, load_directions
from ganforge.errors import GanforgeError, GenerateError
from ganforge.generate.runs import load_run
from ganforge.generate.sampling import MAX_SEED, classes, generate, slerp, truncates_in_w
from ganforge.generate.stylegan import seed_latents, synthesize
from ganforge.playground.security import BadJSON, parse_json, require_token
from ganforge.storage.checkpoint import CHECKPOINT_NAME
from ganforge.storage.images import grid

MAX_N = 64  # images per render
PSI_RANGE = (-2.0, 2.0)
MAX_STRENGTH = 10.0  # a slider's reach, in standard deviations
NUM_DIRECTIONS = 8  # principal directions offered (fewer when the latent is smaller)
PCA_SAMPLES = 2000  # latents sampled for the PCA
PCA_SEED = 0
MAX_NAMED = 32  # named directions offered from a run's directions files (the first, by file and order)
MAX_EXPLORERS = 4  # explore sessions held at once (each holds a generator); the oldest is dropped first
SPACES = ("w", "z")

MAX_BODY_BYTES = 64 * 1024  # a render or explore request is a few hundred bytes
_STATE_LOCK = threading.Lock()


def clip(value, width: int = 40) -> str:
    """A value from a request as a message shows it: one line (control characters escaped), at most ``width``."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(value))
    return text if len(text) <= width else text[:width - 3] + "..."


class UnknownRun(GenerateError):
    """A run name or explore session that does not exist (answered with 404)."""


# ----------------------------------------------------------------- runs
def check_run_name(name) -> str:
    """A run is named by its folder in runs_dir; a path (``/``, ``..``) is refused."""
    if not isinstance(name, str) or not name or name in (".", "..") or re.search(r"[/\\\x00]", name) \
            or ".." in name or len(name) > 255:
        shown = name if isinstance(name, str) else type(name).__name__
        raise GenerateError(f"run name '{clip(shown, 64)}' is not a folder name in the runs folder: pick one "
                            "that GET /api/runs lists")
    return name


def is_run(path: Path) -> bool:
    return (path / "config.json").is_file() and (path / CHECKPOINT_NAME).is_file()


def run_info(path: Path) -> dict:
    """What the run picker shows, read from the run's config.json alone (no weights are loaded)."""
    cfg = RunConfig.load(path / "config.json")
    m = cfg.model
    return {"name": path.name, "path": str(path), "family": m.family, "resolution": m.resolution,
            "channels": m.channels, "conditional": m.num_classes > 0, "classes": list(cfg.class_names)}


def list_runs(runs_dir: str | Path) -> list[dict]:
    """Every run folder directly under ``runs_dir`` (sorted by name); unreadable configs are left out."""
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    out = []
    for path in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if is_run(path):
            try:
                out.append(run_info(path))
            except (GanforgeError, OSError, ValueError, TypeError, KeyError):
                continue  # a damaged or foreign config: not offered rather than breaking the list
    return out


def find_run(runs_dir: str | Path, name) -> Path:
    path = Path(runs_dir) / check_run_name(name)
    if not is_run(path):
        raise UnknownRun(f"no run '{clip(name, 64)}' in the runs folder: pick one that GET /api/runs lists")
    return path


# ----------------------------------------------------------------- directions
@dataclass
class Directions:
    """Principal directions of the latent space: unit rows ``components [k, dim]``, the sample's standard
    deviation along each (``stds [k]``, descending) and its ``mean``; ``space`` is 'w' or 'z'."""

    mean: torch.Tensor
    components: torch.Tensor
    stds: torch.Tensor
    space: str


def is_stylegan(G) -> bool:
    return truncates_in_w(G) and hasattr(G, "mapping")


def num_directions(G) -> int:
    dim = G.w_dim if is_stylegan(G) else G.z_dim
    return min(NUM_DIRECTIONS, dim)


@torch.inference_mode()
def map_w(G, z: torch.Tensor, c: torch.Tensor | None, psi: float = 1.0) -> torch.Tensor:
    """Per-layer ws ``[B, num_ws, w_dim]``, truncated toward w_avg with any psi (negative ones included)."""
    device = next(G.parameters()).device
    return G.mapping(z.to(device), None if c is None else c.to(device), truncation_psi=psi,
                     skip_w_avg_update=True)


@torch.inference_mode()
def pca_directions(G, n_samples: int = PCA_SAMPLES, k: int | None = None, seed: int = PCA_SEED) -> Directions:
    """PCA of sampled w (StyleGAN2: the mapping network's output, as GANSpace) or of sampled z (others).

    Conditional generators are sampled over all their classes in turn. Each component's sign is fixed (its
    largest entry positive) so that a slider means the same on every machine.
    """
    k = num_directions(G) if k is None else k
    z = torch.randn(n_samples, G.z_dim, generator=torch.Generator().manual_seed(seed))
    if is_stylegan(G):
        c = classes(G, n_samples, None)
        x, space = map_w(G, z, c)[:, 0].float().cpu(), "w"
    else:
        x, space = z, "z"
    mean = x.mean(0)
    _, s, vh = torch.linalg.svd(x - mean, full_matrices=False)
    k = min(k, vh.shape[0])
    comps = vh[:k].clone()
    flip = comps.gather(1, comps.abs().argmax(1, keepdim=True)).sign()
    comps *= torch.where(flip == 0, torch.ones_like(flip), flip)
    return Directions(mean, comps, s[:k] / math.sqrt(max(n_samples - 1, 1)), space)


def offset(directions: Directions, strengths) -> torch.Tensor:
    """The latent offset for slider values ``strengths`` (standard deviations), one per direction."""
    s = torch.zeros(directions.components.shape[0])
    s[:len(strengths)] = torch.tensor([float(v) for v in strengths])
    return (s * directions.stds) @ directions.components


@dataclass
class Named:
    """One direction of a directions file: slider ``key`` (``file:name``), its file's directions and name."""

    key: str
    dirs: FoundDirections
    name: str

    def describe(self) -> dict:
        d = self.dirs
        return {"key": self.key, "name": self.name, "file": Path(d.info.get("path", "")).name, "method": d.method,
                "space": d.space, "layers": d.layers}


def named_directions(run: Path, G, family: str | None = None) -> tuple[list[Named], list[str]]:
    """The directions found on this network in the run's directions files, and one line per file left out."""
    found: list[Named] = []
    skipped: list[str] = []
    files = sorted((run / "directions").glob("*.npz")) + sorted(run.glob("*.npz"))
    for path in files:
        rel = path.relative_to(run).as_posix()
        try:
            dirs = load_directions(path)
        except GanforgeError as e:
            if path.parent != run:  # a stray .npz beside the run (a projected w, say) is not news
                skipped.append(f"{rel}: {str(e).splitlines()[0]}")
            continue
        except Exception as e:  # a damaged side file must not stop the run from loading
            skipped.append(f"{rel}: unreadable ({type(e).__name__}: {clip(e, 120)})")
            continue
        try:
            check_network(dirs, G, family)
        except GanforgeError as e:  # a directions file of another network: listed wherever it lies
            skipped.append(f"{rel}: {str(e).splitlines()[0]}")
            continue
        for name in dirs.names:
            if len(found) == MAX_NAMED:
                skipped.append(f"{rel}: '{name}' and later directions left out (at most {MAX_NAMED} are shown)")
                break
            found.append(Named(f"{rel}:{name}", dirs, name))
    return found, skipped


def apply_named(G, z: torch.Tensor, ws: torch.Tensor | None, moves: list[tuple[Named, float]], space: str):
    """Add the named moves of ``space`` ('z' or 'w') to z ``[n, z_dim]`` or to ws ``[n, num_ws, w_dim]``."""
    out = (z if space == "z" else ws).clone()
    for named, strength in moves:
        d = named.dirs
        if d.space != space or not strength:
            continue
        step = d.vector(named.name).to(out) * (float(strength) * d.std_of(named.name))
        if space == "z":
            out += step
        else:
            rows = list(range(G.num_ws)) if d.layers is None else d.layers
            out[:, rows] += step
    return out


# ----------------------------------------------------------------- rendering
@dataclass
class Mix:
    seed: int
    from_layer: int


@dataclass
class Interp:
    seed_b: int
    t: float


def class_index(G, value) -> int | None:
    """A class given by index or by name -> its index (None: every class in turn)."""
    if value is None:
        return None
    names = [str(n) for n in getattr(G, "class_names", [])]
    if not G.num_classes:
        raise GenerateError(f"this run is unconditional: it has no class '{clip(value)}'; leave class empty")
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise GenerateError(f"class must be a class name or number, got {type(value).__name__}")
    if isinstance(value, str) and value in names:
        return names.index(value)
    if isinstance(value, int) and 0 <= value < G.num_classes:
        return value
    shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "") if names else f"0..{G.num_classes - 1}"
    raise GenerateError(f"unknown class '{clip(value)}': this run's classes are {shown}")


@torch.inference_mode()
def render(G, seed: int = 0, n: int = 1, psi: float = 1.0, class_idx: int | None = None,
           strengths=(), directions: Directions | None = None, mix: Mix | None = None,
           interp: Interp | None = None, space: str | None = None,
           named: list[tuple[Named, float]] = ()) -> torch.Tensor:
    """Images ``[n, C, H, W]`` in [-1, 1] for the controls described in the module notes.

    ``strengths`` needs ``directions`` (from :func:`pca_directions` of the same G); ``named`` are (named
    direction, strength) pairs. Raises GenerateError, naming the control, for options that do not fit the run.
    """
    check_render(G, seed, n, psi, strengths, directions, mix, interp, space)
    named = [(d, float(v)) for d, v in named if v]
    stylegan = is_stylegan(G)
    space = space or ("w" if stylegan else "z")
    z = seed_latents(G, range(seed, seed + n))
    c = classes(G, n, class_idx)
    if interp is not None:
        zb = seed_latents(G, [interp.seed_b]).repeat(n, 1)
        if space == "z":
            z = slerp(z, zb, interp.t)
    move = offset(directions, strengths) if directions is not None and any(strengths) else None
    if not stylegan:
        z = z * psi
        if move is not None:
            z = z + move
        return generate(G, apply_named(G, z, None, named, "z"), c)
    # A named z move edits every latent of the picture (the interpolation's and the mixing's other seed too),
    # as a named w move, added last, reaches every layer.
    ws = map_w(G, apply_named(G, z, None, named, "z"), c, psi)
    if interp is not None and space == "w":
        ws = ws.lerp(map_w(G, apply_named(G, zb, None, named, "z"), c, psi), interp.t)
    if mix is not None:
        wm = map_w(G, apply_named(G, seed_latents(G, [mix.seed]).repeat(n, 1), None, named, "z"), c, psi)
        ws = ws.clone()
        ws[:, mix.from_layer:] = wm[:, mix.from_layer:]
    if move is not None:
        ws = ws + move.to(ws)
    return synthesize(G, apply_named(G, z, ws, named, "w"))


def check_render(G, seed, n, psi, strengths, directions, mix, interp, space) -> None:
    stylegan, family = is_stylegan(G), getattr(G, "family", None)
    run = f"this run ({family})" if family else "this run"
    if not 1 <= n <= MAX_N:
        raise GenerateError(f"n must be from 1 to {MAX_N} images, got {n}")
    if not PSI_RANGE[0] <= psi <= PSI_RANGE[1]:
        raise GenerateError(f"psi must be from {PSI_RANGE[0]:g} to {PSI_RANGE[1]:g} (1 = no truncation), got {psi}")
    if space is not None and space not in SPACES:
        raise GenerateError(f"space must be w or z, got '{clip(space, 20)}'")
    if space == "w" and not stylegan:
        raise GenerateError(f"space 'w' needs a StyleGAN2 run; {run} has only z: use space 'z'")
    if mix is not None:
        if not stylegan:
            raise GenerateError(f"style mixing needs a StyleGAN2 run; {run} has no per-layer styles")
        if not 0 <= mix.from_layer < G.num_ws:
            raise GenerateError(f"mix from_layer must be from 0 to {G.num_ws - 1} (this run's style layers), "
                                f"got {mix.from_layer}")
    if interp is not None and not 0.0 <= interp.t <= 1.0:
        raise GenerateError(f"interp t must be from 0 to 1, got {interp.t}")
    if strengths:
        k = directions.components.shape[0] if directions is not None else 0
        if len(strengths) > k:
            raise GenerateError(f"{len(strengths)} direction strengths given, this run has {k} directions")
        if any(not math.isfinite(v) or abs(v) > MAX_STRENGTH for v in strengths):
            raise GenerateError(f"direction strengths must be from -{MAX_STRENGTH:g} to {MAX_STRENGTH:g} "
                                "standard deviations")


def to_data_url(images: torch.Tensor) -> tuple[str, list[int]]:
    """A grid of ``images`` (one row per ceil(sqrt(n))) as a PNG data URL, and its [width, height]."""
    img = grid(images, pad=0 if images.shape[0] == 1 else 2)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii"), [img.width, img.height]


class Explorer:
    """One loaded run: its generator, and its principal directions computed on first use and then kept."""

    def __init__(self, path: str | Path, device: str = "cpu"):
        self.path = Path(path)
        self.cfg, G, _ = load_run(self.path, device)  # D is not needed here
        G.family = self.cfg.model.family
        self.G = G
        self.named, self.named_skipped = named_directions(self.path, G, self.cfg.model.family)
        self._directions: Directions | None = None
        self._lock = threading.Lock()

    @property
    def directions(self) -> Directions:
        with self._lock:
            if self._directions is None:
                self._directions = pca_directions(self.G)
            return self._directions

    def info(self) -> dict:
        G, stylegan = self.G, is_stylegan(self.G)
        return {"family": self.cfg.model.family, "z_dim": G.z_dim, "num_classes": G.num_classes,
                "classes": [str(c) for c in G.class_names], "stylegan": stylegan,
                "num_ws": int(G.num_ws) if stylegan else 0, "directions": num_directions(G),
                "named": [d.describe() for d in self.named], "named_skipped": self.named_skipped,
                "resolution": self.cfg.model.resolution, "channels": self.cfg.model.channels}

    def named_moves(self, strengths: dict[str, float]) -> list[tuple[Named, float]]:
        by_key = {d.key: d for d in self.named}
        for key in strengths:
            if key not in by_key:
                have = ", ".join(by_key) if by_key else "none: write some with `ganforge directions RUN`"
                raise GenerateError(f"no named direction '{clip(key, 60)}' in this run; it has {clip(have, 200)}")
        return [(by_key[k], v) for k, v in strengths.items()]

    def render(self, seed: int = 0, n: int = 1, psi: float = 1.0, cls=None, strengths=(), mix: Mix | None = None,
               interp: Interp | None = None, space: str | None = None, named: dict | None = None) -> torch.Tensor:
        directions = self.directions if strengths else None
        return render(self.G, seed, n, psi, class_index(self.G, cls), strengths, directions, mix, interp, space,
                      self.named_moves(named or {}))


# ----------------------------------------------------------------- request parsing
RENDER_FIELDS = ("seed", "n", "psi", "class", "directions", "named", "mix", "interp", "space")


def _int(value, what: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value < hi:
        raise GenerateError(f"{what} must be a whole number from {lo} to {hi - 1}, got {clip(value)}")
    return value


def _float(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise GenerateError(f"{what} must be a number, got {clip(value)}")
    return float(value)


def _object(value, what: str, keys: tuple[str, ...]) -> dict:
    if not isinstance(value, dict) or set(value) - set(keys) or set(keys) - set(value):
        raise GenerateError(f"{what} must be an object with {', '.join(keys)} (or null)")
    return value


def parse_render(body: dict) -> dict:
    """The JSON body of a render request -> keyword arguments of :meth:`Explorer.render`."""
    unknown = sorted(set(body) - set(RENDER_FIELDS))
    if unknown:
        raise GenerateError(f"unknown render field '{clip(unknown[0])}': use {', '.join(RENDER_FIELDS)}")
    kw = {"seed": _int(body.get("seed", 0), "seed", 0, MAX_SEED + 1), "n": _int(body.get("n", 1), "n", 1, MAX_N + 1),
          "psi": _float(body.get("psi", 1.0), "psi"), "cls": body.get("class"), "space": body.get("space")}
    strengths = body.get("directions") or []
    if not isinstance(strengths, list):
        raise GenerateError("directions must be a list of numbers, one strength per principal direction")
    kw["strengths"] = [_float(v, "a direction strength") for v in strengths]
    named = body.get("named") or {}
    if not isinstance(named, dict) or len(named) > MAX_NAMED:
        raise GenerateError(f"named must be an object of at most {MAX_NAMED} 'file:name': strength pairs, as "
                            "the run's info lists them")
    kw["named"] = {str(k): _float(v, f"named direction '{clip(k)}'") for k, v in named.items()}
    if any(abs(v) > MAX_STRENGTH for v in kw["named"].values()):
        raise GenerateError(f"named direction strengths must be from -{MAX_STRENGTH:g} to {MAX_STRENGTH:g} "
                            "standard deviations")
    if body.get("mix") is not None:
        m = _object(body["mix"], "mix", ("seed", "from_layer"))
        kw["mix"] = Mix(_int(m["seed"], "mix seed", 0, MAX_SEED + 1),
                        _int(m["from_layer"], "mix from_layer", 0, 1 << 16))
    if body.get("interp") is not None:
        i = _object(body["interp"], "interp", ("seed_b", "t"))
        kw["interp"] = Interp(_int(i["seed_b"], "interp seed_b", 0, MAX_SEED + 1), _float(i["t"], "interp t"))
    if kw["space"] is not None and not isinstance(kw["space"], str):
        raise GenerateError("space must be w or z")
    return kw


# ----------------------------------------------------------------- the router
def _error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class BodyTooLarge(GenerateError):
    """A request body over MAX_BODY_BYTES (answered with 413)."""


async def _json_object(request: Request) -> dict:
    raw = bytearray()
    async for chunk in request.stream():  # counted while it arrives: a huge body is never held
        raw += chunk
        if len(raw) > MAX_BODY_BYTES:
            raise BodyTooLarge(f"the request body is over {MAX_BODY_BYTES} bytes: send only the render controls")
    try:
        body = parse_json(bytes(raw))
    except BadJSON as e:
        raise GenerateError(f"{e}: send a JSON object") from None
    if not isinstance(body, dict):
        raise GenerateError("the body must be a JSON object")
    return body


def _explorers(app) -> dict:
    with _STATE_LOCK:
        found = getattr(app.state, "explorers", None)
        if found is None:
            found = app.state.explorers = {}
        return found


def make_router() -> APIRouter:
    router = APIRouter(dependencies=[Depends(require_token)])

    @router.get("/api/runs")
    async def runs(request: Request):
        return {"runs": await run_in_threadpool(list_runs, request.app.state.runs_dir)}

    @router.post("/api/explore")
    async def explore(request: Request):
        body: dict = {}
        try:
            body = await _json_object(request)
            if set(body) != {"run"}:
                raise GenerateError("the body must be {\"run\": NAME} with a name that GET /api/runs lists")
            path = find_run(request.app.state.runs_dir, body["run"])
            device = getattr(request.app.state, "device", "cpu")
            explorer = await run_in_threadpool(Explorer, path, device)
        except UnknownRun as e:
            return _error(str(e), 404)
        except BodyTooLarge as e:
            return _error(str(e), 413)
        except GanforgeError as e:
            return _error(str(e).splitlines()[0])
        except (OSError, ValueError, RuntimeError, KeyError, TypeError) as e:
            # a run folder edited by hand or written by another tool: say so instead of failing the server
            reason = " ".join(str(e).split())[:200] or type(e).__name__
            name = clip(body.get("run", ""), 64)
            return _error(f"run '{name}' cannot be loaded ({reason}): train or export it again")
        store = _explorers(request.app)
        with _STATE_LOCK:  # ids are never reused: a page holding a closed id gets a 404, not another run
            number = getattr(request.app.state, "explore_count", 0) + 1
            request.app.state.explore_count = number
            eid = f"e{number}"
            store[eid] = explorer
            while len(store) > MAX_EXPLORERS:
                store.pop(next(iter(store)))
        return {"id": eid, "info": explorer.info()}

    @router.post("/api/explore/{eid}/render")
    async def render_route(eid: str, request: Request):
        explorer = _explorers(request.app).get(eid)
        if explorer is None:
            return _error(f"no explore session '{clip(eid)}': load the run again (POST /api/explore)", 404)
        try:
            kw = parse_render(await _json_object(request))
            images = await run_in_threadpool(lambda: explorer.render(**kw))
        except BodyTooLarge as e:
            return _error(str(e), 413)
        except GanforgeError as e:
            return _error(str(e))
        url, size = to_data_url(images)
        return {"image": url, "size": size}

    @router.delete("/api/explore/{eid}", status_code=204)
    async def close(eid: str, request: Request):
        _explorers(request.app).pop(eid, None)
        return Response(status_code=204)

    return router
