"""Adaptive discriminator augmentation (ADA; Karras et al. 2020, "Training Generative Adversarial Networks
with Limited Data").

Every image the discriminator sees, real or generated, goes through :class:`AdaptiveAugment`: a chain of
random transforms, each applied to each image independently with probability ``p``. Because the
augmentation is differentiable and applied to both sides, D learns the augmented distribution and G still
learns the clean one, as long as ``p`` stays below the point where the transforms start to "leak" into
the generated images (the paper sees that only for p approaching 1, around 0.8 and above).
:class:`AdaController` tunes ``p`` during training from how confidently D calls the real images real.

Transforms, by pipe letter (names as in the paper; the probability of each is ``p * strength[name]``):

* ``b`` blit: ``xflip`` (mirror with chance 1/2), ``rotate90`` (0, 90, 180 or 270 degrees), ``xint``
  (whole-pixel shift of up to 1/8 of the image).
* ``g`` general geometric: ``scale`` (isotropic, lognormal(0, (0.2 ln 2)^2)), ``rotate`` (uniform angle;
  drawn twice, before and after ``aniso``, each with probability ``1 - sqrt(1 - p)`` so that at least one
  of the two happens with probability ``p``), ``aniso`` (x scaled by s and y by 1/s, s lognormal(0,
  (0.2 ln 2)^2)), ``xfrac`` (shift by normal(0, 0.125^2) of the image size).
* ``c`` colour: ``brightness`` (add normal(0, 0.2^2)), ``contrast`` (multiply by lognormal(0, (0.5 ln 2)^2)),
  ``lumaflip`` (invert the luma component, chance 1/2), ``hue`` (rotate by a uniform angle around the grey
  axis), ``saturation`` (scale the chroma by lognormal(0, (ln 2)^2)). One-channel images get only
  brightness and contrast.

All geometric transforms of an image are composed into one 3x3 homogeneous matrix and the image is resampled
once, with mirror ("reflect") padding outside the frame and bilinear interpolation. The resampler gathers the
four neighbours by index arithmetic, so it is twice differentiable with respect to the image: an R1 penalty
may be taken with respect to the un-augmented reals, through the augmentation (``torch.nn.functional.
grid_sample`` has no double backward). The colour transforms are composed into one 4x4 matrix acting on
(r, g, b, 1); images are taken to be in [-1, 1], so contrast, luma flip and saturation pivot on mid-grey.

Difference from the paper: to reduce aliasing the authors upsample 2x with a wavelet low-pass filter
before the geometric transform and filter and downsample after it. This module does not; it resamples the
image directly with plain bilinear interpolation, which is cheaper but blurs a little under
non-integer transforms and can alias under strong shrinking. Integer-only transforms (flip, quarter turns,
whole-pixel shifts) land exactly on pixel centres and are copied without any blur. The paper's image-space
filtering, additive noise and cutout pipes are not implemented.

Randomness: every draw comes from the CPU ``torch.Generator`` passed to the call, and the number of draws
depends only on the batch size, the channel count and the enabled transforms (never on ``p`` or the pixel
values), so a run resumed with the generator's state draws exactly what an uninterrupted one would.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch

from ganforge.errors import ConfigError

Tensor = torch.Tensor

PIPES: dict[str, tuple[str, ...]] = {
    "b": ("xflip", "rotate90", "xint"),
    "g": ("scale", "rotate", "aniso", "xfrac"),
    "c": ("brightness", "contrast", "lumaflip", "hue", "saturation"),
}
_PIPE_WORDS = {"b": "blit", "g": "geometric", "c": "colour"}
TRANSFORMS: tuple[str, ...] = tuple(name for names in PIPES.values() for name in names)

_SCALE_STD = 0.2 * math.log(2)
_ANISO_STD = 0.2 * math.log(2)
_XINT_MAX = 0.125
_XFRAC_STD = 0.125
_BRIGHTNESS_STD = 0.2
_CONTRAST_STD = 0.5 * math.log(2)
_SATURATION_STD = math.log(2)


def parse_pipe(pipe: str) -> tuple[str, ...]:
    """The transform names a pipe string such as ``"bgc"`` enables, in application order."""
    bad = [ch for ch in pipe if ch not in PIPES]
    if bad or not pipe:
        what = f"unknown ADA pipe letter '{bad[0]}' in '{pipe}'" if bad else "empty ADA pipe"
        valid = ", ".join(f"{k} ({v})" for k, v in _PIPE_WORDS.items())
        raise ConfigError(f"{what}; use a combination of {valid}, e.g. 'bgc'")
    letters = set(pipe)
    return tuple(name for letter, names in PIPES.items() if letter in letters for name in names)


# ------------------------------------------------------------------ matrices (CPU, float64)
def _eye(n: int, size: int) -> Tensor:
    return torch.eye(size, dtype=torch.float64).repeat(n, 1, 1)


def _scale2d(sx: Tensor, sy: Tensor) -> Tensor:
    m = _eye(sx.shape[0], 3)
    m[:, 0, 0], m[:, 1, 1] = sx, sy
    return m


def _rotate2d(cos: Tensor, sin: Tensor) -> Tensor:
    m = _eye(cos.shape[0], 3)
    m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = cos, -sin, sin, cos
    return m


def _translate2d(tx: Tensor, ty: Tensor) -> Tensor:
    m = _eye(tx.shape[0], 3)
    m[:, 0, 2], m[:, 1, 2] = tx, ty
    return m


def _translate3d(t: Tensor) -> Tensor:
    m = _eye(t.shape[0], 4)
    m[:, :3, 3] = t.view(-1, 1)
    return m


def _scale3d(s: Tensor) -> Tensor:
    m = _eye(s.shape[0], 4)
    m[:, 0, 0] = m[:, 1, 1] = m[:, 2, 2] = s
    return m


class AdaptiveAugment:
    """ADA's augmentation pipeline; call it on a batch ``[B, C, H, W]`` in [-1, 1] with a CPU generator.

    ``pipe``: letters from ``b`` (blit), ``g`` (general geometric), ``c`` (colour), e.g. ``"bgc"``.
    ``p``: the probability with which each transform is applied to each image; a plain float that an
    :class:`AdaController` (or the caller) may change between calls. ``transforms``: restrict the pipe to
    these transform names (see :data:`TRANSFORMS`), mainly for tests and ablations. ``strength`` maps each
    enabled transform to a multiplier of ``p`` (1 by default; 0 turns that transform off).
    """

    def __init__(self, pipe: str = "bgc", p: float = 0.0, *, transforms: Iterable[str] | None = None):
        enabled = parse_pipe(pipe)
        if transforms is not None:
            wanted = list(transforms)
            bad = [t for t in wanted if t not in enabled]
            if bad:
                raise ConfigError(f"ADA transform '{bad[0]}' is not in pipe '{pipe}'; choose from "
                                  f"{', '.join(enabled)}")
            enabled = tuple(t for t in enabled if t in wanted)
        self.pipe = pipe
        self.transforms: tuple[str, ...] = enabled
        self.strength: dict[str, float] = dict.fromkeys(enabled, 1.0)
        p = float(p)
        if not 0.0 <= p <= 1.0:
            raise ConfigError(f"ADA probability p must be in [0, 1], got {p}")
        self.p = p

    def __repr__(self) -> str:
        return f"AdaptiveAugment(pipe={self.pipe!r}, p={self.p:.4f})"

    @property
    def geometric(self) -> bool:
        return any(t in PIPES["b"] or t in PIPES["g"] for t in self.transforms)

    @property
    def colour(self) -> bool:
        return any(t in PIPES["c"] for t in self.transforms)

    # -------------------------------------------------------------- random parameters
    def _prob(self, name: str) -> float:
        return min(max(self.p * self.strength.get(name, 0.0), 0.0), 1.0)

    def _gate(self, name: str, n: int, g: torch.Generator, prob: float | None = None) -> Tensor:
        """Which of ``n`` images get transform ``name`` (a bool [n]); always one draw per image."""
        prob = self._prob(name) if prob is None else prob
        return torch.rand(n, generator=g, dtype=torch.float64) < prob

    def draw_matrices(self, shape: tuple[int, ...] | torch.Size, generator: torch.Generator
                      ) -> tuple[Tensor | None, Tensor | None]:
        """Draw the transforms for a batch of ``shape`` [B, C, H, W]: (geometric [B, 3, 3] or None, colour
        [B, 4, 4] or None), float64 on the CPU.

        The geometric matrix maps an output pixel's centred coordinates (x right, y down, in pixels, origin at
        the image centre) to the input position it samples: the inverse of the composed forward transform.
        The colour matrix acts on (r, g, b, 1) column vectors; for one channel only its first row's scale and
        offset are used (brightness and contrast only).
        """
        n, channels, h, w = (int(v) for v in shape)
        g, on = generator, set(self.transforms)
        f64 = torch.float64
        geom = col = None
        if self.geometric:
            inv = _eye(n, 3)
            ones = torch.ones(n, dtype=f64)
            # Each forward transform T_k follows the previous ones, so the sampling matrix grows as inv @ T_k^-1.
            if "xflip" in on:
                flip = torch.randint(0, 2, (n,), generator=g).to(f64) * self._gate("xflip", n, g)
                inv = inv @ _scale2d(1 - 2 * flip, ones)
            if "rotate90" in on:
                quarter = torch.randint(0, 4, (n,), generator=g) * self._gate("rotate90", n, g)
                cos = torch.tensor([1.0, 0.0, -1.0, 0.0], dtype=f64)[quarter]  # exact values, not cos(pi / 2)
                sin = torch.tensor([0.0, 1.0, 0.0, -1.0], dtype=f64)[quarter]
                inv = inv @ _rotate2d(cos, -sin)
            if "xint" in on:
                t = (torch.rand(n, 2, generator=g, dtype=f64) * 2 - 1) * _XINT_MAX
                t = t * self._gate("xint", n, g).view(n, 1)
                inv = inv @ _translate2d(-torch.round(t[:, 0] * w), -torch.round(t[:, 1] * h))
            if "scale" in on:
                s = torch.exp(torch.randn(n, generator=g, dtype=f64) * _SCALE_STD)
                s = torch.where(self._gate("scale", n, g), s, ones)
                inv = inv @ _scale2d(1 / s, 1 / s)
            p_rot = 1 - math.sqrt(1 - self._prob("rotate"))
            for stage in ("pre", "post"):
                if "rotate" in on:
                    theta = (torch.rand(n, generator=g, dtype=f64) * 2 - 1) * math.pi
                    theta = theta * self._gate("rotate", n, g, p_rot)
                    inv = inv @ _rotate2d(torch.cos(theta), -torch.sin(theta))
                if stage == "pre" and "aniso" in on:
                    s = torch.exp(torch.randn(n, generator=g, dtype=f64) * _ANISO_STD)
                    s = torch.where(self._gate("aniso", n, g), s, ones)
                    inv = inv @ _scale2d(1 / s, s)
            if "xfrac" in on:
                t = torch.randn(n, 2, generator=g, dtype=f64) * _XFRAC_STD
                t = t * self._gate("xfrac", n, g).view(n, 1)
                inv = inv @ _translate2d(-t[:, 0] * w, -t[:, 1] * h)
            geom = inv
        if self.colour:
            if channels not in (1, 3):
                raise ConfigError(f"ADA colour transforms need 1 or 3 channels, got {channels}")
            rgb = channels == 3
            mat = _eye(n, 4)
            eye4 = torch.eye(4, dtype=f64)
            v = torch.tensor([1.0, 1.0, 1.0, 0.0], dtype=f64) / math.sqrt(3)  # the grey (luma) axis
            vvt = torch.outer(v, v)
            # Each colour transform follows the previous ones: mat grows as T_k @ mat.
            if "brightness" in on:
                b = torch.randn(n, generator=g, dtype=f64) * _BRIGHTNESS_STD * self._gate("brightness", n, g)
                mat = _translate3d(b) @ mat
            if "contrast" in on:
                c = torch.exp(torch.randn(n, generator=g, dtype=f64) * _CONTRAST_STD)
                c = torch.where(self._gate("contrast", n, g), c, torch.ones_like(c))
                mat = _scale3d(c) @ mat
            if rgb and "lumaflip" in on:
                i = torch.randint(0, 2, (n,), generator=g).to(f64) * self._gate("lumaflip", n, g)
                mat = (eye4 - 2 * vvt * i.view(n, 1, 1)) @ mat
            if rgb and "hue" in on:
                theta = (torch.rand(n, generator=g, dtype=f64) * 2 - 1) * math.pi * self._gate("hue", n, g)
                mat = _rotate_about(v[:3], theta) @ mat
            if rgb and "saturation" in on:
                s = torch.exp(torch.randn(n, generator=g, dtype=f64) * _SATURATION_STD)
                s = torch.where(self._gate("saturation", n, g), s, torch.ones_like(s))
                sat = _eye(n, 4)
                sat[:, :3, :3] = vvt[:3, :3] + (eye4[:3, :3] - vvt[:3, :3]) * s.view(n, 1, 1)
                mat = sat @ mat
            col = mat
        return geom, col

    # -------------------------------------------------------------- applying them
    def apply(self, x: Tensor, geom: Tensor | None, col: Tensor | None) -> Tensor:
        """Apply matrices from :meth:`draw_matrices` to ``x`` (twice differentiable in ``x``)."""
        if geom is not None:
            x = resample(x, geom)
        if col is not None:
            x = apply_colour(x, col)
        return x

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """Augment a batch: each transform hits each image with probability ``p``; ``x`` itself when p is 0."""
        if self.p == 0:
            return x
        if x.dim() != 4:
            raise ValueError(f"AdaptiveAugment expects images [B, C, H, W], got shape {tuple(x.shape)}")
        channels_last = not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
        out = self.apply(x, *self.draw_matrices(x.shape, generator))
        return out.contiguous(memory_format=torch.channels_last) if channels_last else out


def _rotate_about(axis: Tensor, theta: Tensor) -> Tensor:
    """4x4 rotations by ``theta`` [n] about the unit 3-vector ``axis`` (Rodrigues' formula)."""
    n = theta.shape[0]
    ax, ay, az = axis.tolist()
    cross = torch.tensor([[0.0, -az, ay], [az, 0.0, -ax], [-ay, ax, 0.0]], dtype=torch.float64)
    outer = torch.outer(axis, axis)
    cos, sin = torch.cos(theta).view(n, 1, 1), torch.sin(theta).view(n, 1, 1)
    m = _eye(n, 4)
    m[:, :3, :3] = cos * torch.eye(3, dtype=torch.float64) + sin * cross + (1 - cos) * outer
    return m


def _reflect(s: Tensor, size: int) -> Tensor:
    """Mirror sample positions into [0, size - 1] about the edge pixel centres (the edge is not repeated).

    The bilinear interpolant of a mirrored image is itself mirrored, so interpolating the original image at
    the folded position equals interpolating the reflection-padded image, however far out the position is.
    """
    if size == 1:
        return torch.zeros_like(s)
    period = 2 * (size - 1)
    s = torch.remainder(s, period)
    return torch.where(s > size - 1, period - s, s)


def resample(x: Tensor, inv: Tensor) -> Tensor:
    """Bilinear resampling of ``x`` [B, C, H, W] at ``inv @ (u, v, 1)`` for each output pixel.

    ``inv`` [B, 3, 3] is affine and maps centred output pixel coordinates to centred input ones (pixel centres
    at integer or half-integer offsets from the image centre), so the identity copies the image exactly.
    Samples outside the frame read the mirrored image. Built from gathers and products, which autograd
    differentiates twice.
    """
    b, c, h, w = x.shape
    dev = x.device
    inv = inv.to(torch.float32).to(dev)  # dtype first: some devices have no float64
    cx, cy = (w - 1) / 2, (h - 1) / 2
    v, u = torch.meshgrid(torch.arange(h, device=dev, dtype=torch.float32) - cy,
                          torch.arange(w, device=dev, dtype=torch.float32) - cx, indexing="ij")
    grid = torch.stack([u.reshape(-1), v.reshape(-1), torch.ones(h * w, device=dev)])  # [3, HW]
    src = inv[:, :2] @ grid  # [B, 2, HW]
    sx, sy = _reflect(src[:, 0] + cx, w), _reflect(src[:, 1] + cy, h)
    x0, y0 = torch.floor(sx).clamp(max=max(w - 2, 0)), torch.floor(sy).clamp(max=max(h - 2, 0))
    fx, fy = sx - x0, sy - y0
    ix0, iy0 = x0.long(), y0.long() * w
    ix1, iy1 = ix0 + (1 if w > 1 else 0), iy0 + (w if h > 1 else 0)
    index = torch.stack([iy0 + ix0, iy0 + ix1, iy1 + ix0, iy1 + ix1], 1)  # [B, 4, HW]
    flat = x.reshape(b, c, h * w)
    vals = flat.gather(2, index.view(b, 1, 4 * h * w).expand(b, c, 4 * h * w)).view(b, c, 4, h * w)
    fx, fy = fx.unsqueeze(1).to(x.dtype), fy.unsqueeze(1).to(x.dtype)
    top = torch.lerp(vals[:, :, 0], vals[:, :, 1], fx)
    bottom = torch.lerp(vals[:, :, 2], vals[:, :, 3], fx)
    return torch.lerp(top, bottom, fy).view(b, c, h, w)


def apply_colour(x: Tensor, mat: Tensor) -> Tensor:
    """Apply 4x4 colour matrices [B, 4, 4] to RGB images, or their scale and offset to one-channel ones."""
    b, c, h, w = x.shape
    mat = mat.to(x.dtype).to(x.device)
    if c == 3:
        return torch.baddbmm(mat[:, :3, 3:], mat[:, :3, :3], x.reshape(b, 3, h * w)).view(b, c, h, w)
    if c == 1:  # only brightness and contrast reach a grey image: a scale and an offset per image
        return x * mat[:, 0, 0].view(b, 1, 1, 1) + mat[:, 0, 3].view(b, 1, 1, 1)
    raise ConfigError(f"ADA colour transforms need 1 or 3 channels, got {c}")


class AdaController:
    """The paper's feedback loop for ``p``: keep r_t = E[sign(D(real))] near ``target``.

    Feed it D's logits on the (augmented) real images of each discriminator step with :meth:`observe`, and
    call :meth:`update` once per training step. Every ``interval`` calls ``update`` moves ``aug.p`` by
    ``sign(r_t - target) * batch_size * interval / (speed_kimg * 1000)`` (so p can cross 0..1 in
    ``speed_kimg`` thousand images), clamps it to [0, 1], and starts a fresh average. ``p`` itself lives on
    the :class:`AdaptiveAugment` and must be checkpointed with it; :meth:`state_dict` holds the rest.

    The running sums stay on the logits' device until an update needs them, so observing does not
    synchronise with an accelerator.

    Several processes: each observes its own logits; before the adjusting ``update`` the sums must be added
    up over processes so every rank moves ``p`` the same way. Either pass ``reduce=`` to :meth:`update` (a
    function taking and returning the float32 tensor ``[sign_sum, count]``, e.g. one that runs
    ``torch.distributed.all_reduce`` on it and returns it), or, when :attr:`due` is true, do
    ``ctl.set_sums(all_reduced(ctl.sums()))`` yourself before calling ``update``. Pass the global batch size.
    """

    def __init__(self, target: float = 0.6, interval: int = 4, speed_kimg: float = 500):
        if not -1.0 <= target <= 1.0:
            raise ConfigError(f"ADA target must be in [-1, 1] (an average of signs), got {target}")
        if int(interval) != interval or interval < 1:
            raise ConfigError(f"ADA interval must be a whole number of steps >= 1, got {interval}")
        if not speed_kimg > 0:
            raise ConfigError(f"ADA speed must be positive (thousands of images), got {speed_kimg}")
        self.target, self.interval, self.speed_kimg = float(target), int(interval), float(speed_kimg)
        self._sign_sum: Tensor | None = None  # float32 scalar on the logits' device (no sync per step)
        self._count = 0.0  # logits observed; known on the host
        self._calls = 0  # update() calls since the last adjustment

    def observe(self, d_real_logits: Tensor) -> None:
        """Add D's raw logits on real images (any shape) to the running average of their signs."""
        logits = d_real_logits.detach()
        total = torch.sign(logits).float().sum()
        self._sign_sum = total if self._sign_sum is None else self._sign_sum.to(total.device) + total
        self._count += logits.numel()

    @property
    def due(self) -> bool:
        """Whether the next :meth:`update` call adjusts ``p`` (the moment to all-reduce :meth:`sums`)."""
        return self._calls + 1 >= self.interval

    def sums(self) -> Tensor:
        """The running ``[sign_sum, count]`` as a new float32 tensor on the device of the observed logits (the
        CPU when nothing was observed)."""
        if self._sign_sum is None:
            return torch.tensor([0.0, self._count])
        dev = self._sign_sum.device
        return torch.stack([self._sign_sum, torch.full((), self._count, device=dev, dtype=torch.float32)])

    def set_sums(self, sums: Tensor) -> None:
        """Replace the running sums, e.g. by their all-reduced totals over processes."""
        sums = torch.as_tensor(sums).detach().float().reshape(-1)
        if sums.numel() != 2:
            raise ValueError(f"ADA sums must be [sign_sum, count], got {sums.numel()} values")
        self._sign_sum, self._count = sums[0].clone(), float(sums[1])

    def update(self, aug: AdaptiveAugment, batch_size: int,
               reduce: Callable[[Tensor], Tensor] | None = None) -> float | None:
        """Count a training step; on every ``interval``-th call adjust ``aug.p`` and return r_t, else None.

        ``batch_size``: the real images D saw per call, over all processes (the global batch times the
        discriminator steps per call). Also None (and p unchanged) at an adjustment with nothing observed
        since the last one. ``reduce``: see the class notes on several processes.
        """
        self._calls += 1
        if self._calls < self.interval:
            return None
        self._calls = 0
        sums = self.sums()
        self._sign_sum, self._count = None, 0.0
        if reduce is not None:
            sums = reduce(sums)
        sign_sum, count = (float(v) for v in sums.tolist())
        if count <= 0:
            return None
        r_t = sign_sum / count
        step = math.copysign(1.0, r_t - self.target) if r_t != self.target else 0.0
        adjust = step * batch_size * self.interval / (self.speed_kimg * 1000)
        aug.p = float(min(max(aug.p + adjust, 0.0), 1.0))
        return r_t

    def state_dict(self) -> dict[str, float | int]:
        """JSON-friendly state: the running sums and the calls since the last adjustment (not p)."""
        sign_sum, count = (float(v) for v in self.sums().tolist())
        return {"sign_sum": sign_sum, "count": count, "calls": self._calls}

    def load_state_dict(self, state: dict[str, float | int]) -> None:
        try:
            sign_sum, count, calls = float(state["sign_sum"]), float(state["count"]), int(state["calls"])
        except KeyError as e:
            raise ValueError(f"ADA controller state lacks {e}") from e
        self._sign_sum = None if count == 0 and sign_sum == 0 else torch.tensor(sign_sum)
        self._count = count
        self._calls = calls
