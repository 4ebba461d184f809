"""A differentiable print → photo → ingest channel T(x; θ) at model size, for EOT.

Convention: x is float N×3×H×W, RGB, on the [0, 255] scale: a PNG as `physical craft` saves it,
at the model's input size. T(x; θ) is what ingest's crop of a phone photo of its print would be:
the same shape and scale. Crop pixel (i, j) has its centre at (i + 0.5, j + 0.5), x right, y
down; photo pixels as in simulate (displayed photo, pixel corners at integers).

θ is drawn per sample by simulate's own `draw_printer` / `draw_camera` from ONE ranges table
(`physical.presets.PRESETS`, or a table of the same keys a calibration profile supplies), and
mapped to the crop's scale through the camera simulate would have used: the page (A4 by
default) is placed with `simulate.camera_homography`, an image of `image_mm` sits somewhere on
it, and the local affine map A (crop px → photo px) of that homography at the image turns every
length drawn in photo pixels (blur, motion) into crop pixels. So "defocus 1.2 px of a 4000-px
photo" becomes ~0.8 crop px when the photo sees the 38 mm print at 1.5 photo px per crop pixel.

Stages, in order (each can be switched off; all differentiable in x):

    printer   saturation towards grey (BT.601 luma, as cv2), then per channel the tone curve
              black + (white_c − black)·P_k(v^γ): paper white with its tint, ink black, dot gain γ,
              and P_k the shadows plugging on plain paper (optional key `shadow_plug`, the knee k:
              dots that spread into each other print tones below k nearer solid ink):
              P_k(u) = (u²/2k if u < k, else u − k/2) / (1 − k/2), slope 0 at black, C¹ at k;
              P_0 = identity (simulate's presets have no such key, and draw as before)
    geometry  what ingest's marker homography leaves: sub-pixel shift, small rotation and scale
              about the crop centre (kornia `warp_affine`'s maths, bilinear, border replicated)
    blur      one point-spread function per sample (kornia `filter2d`'s maths): ink spread, the two
              bilinear resamplings (simulate's page → photo remap, ingest's photo → crop warp,
              JPEG's loss of fine detail: 1 photo px², measured), defocus (Gaussian) and motion (a
              line) in photo pixels,
              all mapped through A⁻¹, plus the box of one crop pixel of ingest's final area
              interpolation (variance 1/12)
    light     exposure × white balance × simulate's light gradient and vignetting, evaluated
              where the image sits in the photo (its four corners, bilinear in between)
    noise     shot + read noise per photo pixel (variance shot·v + read²), divided by the photo
              pixels one crop pixel averages (√|det A| when above 1); reparameterised, so the
              gradient flows through its signal dependence
    jpeg      differentiable JPEG at the phone's quality: `channel_ops.jpeg` (the maths of kornia's
              `jpeg_codec_differentiable` — IJG tables scaled by quality, 8×8 DCT, the cubic
              rounding of Shin & Song — with libjpeg's 2×2 box chroma subsampling, at under a fifth of
              its cost (kornia's took 60 % of the model's forward + backward in benchmarks/eot_speed.py);
              `Channel(jpeg="kornia")` uses kornia's own (tests hold the two together)

The operations themselves live in `physical/channel_ops.py`: the same maths as the kornia and torch
calls the stages were first written with, cheaper on CPU (tests/test_channel_ops.py holds them
together; docs/robust.md, "Cost").

A table with the optional "phone look" keys adds a phone's image processing (physical/channel_look.py):
unsharp-mask sharpening folded into the blur's PSF, and before JPEG a colour matrix, a tone curve and
chroma denoising. Tables without them (simulate's presets) draw and compute exactly as before.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from physical import channel_look, geometry
from physical.channel_ops import (_RGB_TO_YCC, _YCC_TO_RGB, LUMA, MAX_KERNEL, _dct2, blur, clamp,  # noqa: F401
                                  inside, jpeg, light_gain, quadratic_form, quant_tables, warp)
from physical.errors import PhysicalError
from physical.presets import CHANNEL_TABLES, PRESETS

STAGES = ("printer", "geometry", "blur", "light", "noise", "jpeg")
# Photo-pixel blur besides defocus and motion, px². The two bilinear resamplings (simulate's page → photo
# remap, ingest's photo → crop warp) give ~1/3; the rest is fine detail lost to the photo's JPEG and to
# point sampling. Measured (benchmarks/channel_agreement.py, 40 images, 36 typical photos): at 1.0 the
# channel's samples are as sharp as the crops (Laplacian variance 161 vs 165) and as hard for the model
# (63.8 vs 63.3 % top-1 kept); 1/3 left them too sharp (222) and too easy (+5 points).
RESAMPLE_VAR_PHOTO = 1.0
AREA_VAR_CROP = 1 / 12               # ingest's area interpolation: a box of one crop pixel


@dataclass(frozen=True)
class Geometry:
    """Where the printed image sits: paper, printed image side, page margin, photo resolution.
    Defaults: `physical layout`'s (A4, 40 mm asked → 37.93 mm = 224 px × 4 dots at 600 dpi) and
    simulate's 12 MP photos."""

    paper_mm: tuple[float, float] = (210.0, 297.0)
    image_mm: float = 224 * 4 * 25.4 / 600
    margin_mm: float = 12.0
    resolution: tuple[int, int] = (4000, 3000)


@dataclass
class Theta:
    """Per-sample channel parameters for B samples (tensors with B first), at the crop's scale."""

    saturation: torch.Tensor      # B
    gamma: torch.Tensor           # B
    plug: torch.Tensor            # B: shadow plug knee k (0: none)
    black: torch.Tensor           # B
    white: torch.Tensor           # B×3 (RGB)
    affine: torch.Tensor          # B×2×3, crop px → crop px (kornia warp_affine's M)
    kernel: torch.Tensor          # B×k×k point-spread function, sums to 1
    gain: torch.Tensor            # B×3×2×2 light gain at the crop's corners (RGB)
    shot: torch.Tensor            # B
    read: torch.Tensor            # B
    noise_scale: torch.Tensor     # B: 1 / photo pixels averaged per crop pixel (per axis)
    z: torch.Tensor               # B×3×H×W standard normal
    quality: torch.Tensor         # B
    look: torch.Tensor            # B×channel_look.PARAMS: colour matrix, tone, chroma σ (identity without look keys)
    info: dict = field(default_factory=dict)   # drawn values in physical units (numpy), for checks

    def to(self, device) -> "Theta":
        return Theta(**{f.name: (getattr(self, f.name).to(device) if torch.is_tensor(getattr(self, f.name))
                                 else getattr(self, f.name)) for f in fields(self)})


def resolve_table(spec: str | dict) -> dict:
    """A ranges table: a preset name of `physical.presets.PRESETS`, or a dict of the same keys."""
    if isinstance(spec, dict):
        missing = sorted(set(PRESETS["typical"]) - set(spec))
        if missing:
            raise PhysicalError(f"channel table lacks {', '.join(missing)}")
        return spec
    if spec not in PRESETS:
        raise PhysicalError(f"unknown --channel {spec!r}: name a preset ({', '.join([*PRESETS, *CHANNEL_TABLES])})")
    return PRESETS[spec]


def resolve_tables(spec: str | dict) -> list[dict]:
    """The tables a channel draws from: resolve_table's one, or the members of a mixture named in
    `physical.presets.CHANNEL_TABLES` (each sample picks one member uniformly)."""
    if isinstance(spec, str) and spec in CHANNEL_TABLES:
        return [resolve_table(t) for t in CHANNEL_TABLES[spec]]
    return [resolve_table(spec)]


class Channel(nn.Module):
    """T(x; θ): see the module docstring. `sample(n, rng)` draws θ; `forward(x, θ)` applies it."""

    def __init__(self, table: str | dict = "typical", geometry: Geometry = Geometry(),
                 stages=STAGES, size: int = 224, jpeg: str = "fast"):
        super().__init__()
        if jpeg not in ("fast", "kornia"):
            raise ValueError(f"jpeg must be 'fast' or 'kornia', got {jpeg!r}")
        self.jpeg = jpeg
        unknown = set(stages) - set(STAGES) - {"look"}
        if unknown:
            raise ValueError(f"unknown channel stages {sorted(unknown)}: choose from {', '.join(STAGES)}, look")
        self.name = table if isinstance(table, str) else "table"
        self.tables = resolve_tables(table)
        # the phone look (physical/channel_look.py): on where a table has its keys, unless stages leave it out
        self.look = channel_look.active(self.tables) and (set(STAGES) <= set(stages) or "look" in stages)
        # the shadow plug: decided once from the tables, as the look is (no per-call test of θ's values)
        self.plug = any("shadow_plug" in t for t in self.tables)
        self.table = self.tables[0]   # the table (a mixture's first member)
        self.geometry, self.stages, self.size = geometry, tuple(s for s in STAGES if s in stages), int(size)

    def describe(self) -> dict:
        """What the manifest records about the channel."""
        g = self.geometry
        return {"table": self.name, "stages": [*self.stages, *(["look"] if self.look else [])], "paper_mm": list(g.paper_mm),
                "image_mm": round(g.image_mm, 4), "resolution": list(g.resolution),
                "ranges": {k: list(v) for k, v in self.table.items()} if len(self.tables) == 1 else
                [{k: list(v) for k, v in t.items()} for t in self.tables]}

    # ------------------------------------------------------------------ θ
    def sample(self, n: int, rng: np.random.Generator, device="cpu") -> Theta:
        """θ for n samples, drawn with `rng` (numpy) — the same draws simulate makes per photo."""
        from physical import simulate

        g, S = self.geometry, self.size
        long_side, short_side = g.resolution
        unit = long_side / simulate.REFERENCE_LONG_SIDE
        pw, ph = g.paper_mm
        half = g.image_mm / 2
        rows = {k: [] for k in ("sat", "gamma", "black", "white", "A", "Ainv", "corners", "defocus", "motion",
                                "gain", "shot", "read", "quality", "reg", "look", "sharpen", "plug")}
        for _ in range(n):
            # a mixture: this sample's member (one table: no draw, so its stream is as before)
            p = self.tables[int(rng.integers(len(self.tables)))] if len(self.tables) > 1 else self.table
            pr = simulate.draw_printer(rng, p)
            cam = simulate.draw_camera(rng, p)
            frame = (short_side, long_side) if cam["portrait"] else (long_side, short_side)
            H = simulate.camera_homography(g.paper_mm, frame, cam)
            c = np.array([rng.uniform(g.margin_mm + half, pw - g.margin_mm - half),
                          rng.uniform(g.margin_mm + half, ph - g.margin_mm - half)])
            # local affine map crop px → photo px at the image centre (numerical Jacobian of H)
            d = 0.5
            # one call for the Jacobian's three points and the image's four corners (points map independently)
            mapped = geometry.map_points(H, c + np.array([[0, 0], [d, 0], [0, d], [-half, -half], [half, -half],
                                                           [half, half], [-half, half]]))
            p0, px, py, corners = mapped[0], mapped[1], mapped[2], mapped[3:]
            A = np.column_stack([(px - p0) / d, (py - p0) / d]) * (g.image_mm / S)
            rows["sat"].append(pr["saturation"])
            rows["gamma"].append(pr["gamma"])
            rows["black"].append(pr["black"])
            rows["white"].append(pr["paper_white_bgr"][::-1])
            rows["A"].append(A)
            rows["corners"].append(corners)
            rows["defocus"].append((cam["defocus_px"] * unit, pr["ink_blur_mm"] * S / g.image_mm))
            a = math.radians(cam["motion_angle_deg"])
            rows["motion"].append(cam["motion_px"] * unit * np.array([math.cos(a), math.sin(a)]))
            rows["gain"].append(_light_gain(corners, frame, cam))
            rows["shot"].append(cam["shot_noise"])
            rows["read"].append(cam["read_noise"])
            rows["quality"].append(cam["jpeg_quality"])
            # misregistration: magnitudes from the table, random signs and direction
            shift = _uniform(rng, p["register_px"])
            ang = rng.uniform(0, 2 * math.pi)
            rows["reg"].append((shift * math.cos(ang), shift * math.sin(ang),
                                _uniform(rng, p["register_deg"]) * rng.choice([-1, 1]),
                                _uniform(rng, p["register_scale"]) * rng.choice([-1, 1])))
            if self.look:   # after every other draw: a table without look keys draws as before
                look, sharpen = channel_look.draw(rng, p, math.sqrt(abs(np.linalg.det(A))))
                rows["look"].append(look)
                rows["sharpen"].append(sharpen)
            # last of all, and only where the table has the key: tables without it draw as before
            rows["plug"].append(_uniform(rng, p["shadow_plug"]) if "shadow_plug" in p else 0.0)
        A = np.stack(rows["A"])
        r = np.sqrt(np.abs(np.linalg.det(A)))
        kernel = _psf(A, np.array([d for d, _ in rows["defocus"]]), np.array([i for _, i in rows["defocus"]]),
                      np.stack(rows["motion"]))
        if self.look:
            kernel = channel_look.sharpen_kernels(kernel, A, np.array(rows["sharpen"]))
        look = np.array(rows["look"]) if self.look else np.tile(channel_look.IDENTITY, (n, 1))
        z = torch.randn((n, 3, S, S), generator=torch.Generator().manual_seed(int(rng.integers(2 ** 63))))
        f32 = dict(dtype=torch.float32, device=device)
        theta = Theta(
            saturation=torch.tensor(rows["sat"], **f32), gamma=torch.tensor(rows["gamma"], **f32),
            plug=torch.tensor(rows["plug"], **f32),
            black=torch.tensor(rows["black"], **f32), white=torch.tensor(np.array(rows["white"]), **f32),
            affine=torch.tensor(_affine(np.array(rows["reg"]), S), **f32),
            kernel=torch.tensor(kernel, **f32), gain=torch.tensor(np.stack(rows["gain"]), **f32),
            shot=torch.tensor(rows["shot"], **f32), read=torch.tensor(rows["read"], **f32),
            noise_scale=torch.tensor(1 / np.maximum(r, 1.0), **f32), z=z.to(device),
            quality=torch.tensor(rows["quality"], **f32), look=torch.tensor(look, **f32),
            info={"photo_px_per_crop_px": r, "A": A, "registration": np.array(rows["reg"])})
        return theta

    # ------------------------------------------------------------------ T(x; θ)
    def forward(self, x: torch.Tensor, theta: Theta) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected B×3×H×W images, got shape {tuple(x.shape)}")
        if x.shape[0] != theta.saturation.shape[0]:
            raise ValueError(f"{x.shape[0]} images for {theta.saturation.shape[0]} channel samples")
        st = self.stages
        y = x
        if "printer" in st:
            y = _Printer.apply(y, theta.saturation, theta.gamma, theta.black, theta.white, theta.plug if self.plug else None)
        if "geometry" in st:
            y = warp(y, theta.affine)
        if "blur" in st:
            y = blur(y, theta.kernel)
        light, noise = "light" in st, "noise" in st
        if light or noise:
            with torch.no_grad():   # what depends on θ only
                gain = light_gain(theta.gain, *y.shape[-2:]) if light else None
                cz = (theta.noise_scale.view(-1, 1, 1, 1) * theta.z[:, :, :y.shape[-2], :y.shape[-1]]
                      if noise else None)
            if noise:
                y = _LightNoise.apply(y, gain, theta.shot.view(-1, 1, 1, 1), theta.read.view(-1, 1, 1, 1) ** 2, cz)
            else:
                y = y * gain
        fast_jpeg = "jpeg" in st and self.jpeg == "fast"
        if self.look:   # the fast JPEG denoises chroma where it subsamples it
            y = channel_look.apply(y, theta.look, chroma=not fast_jpeg)
        if "jpeg" in st:
            y = clamp(y, 0.0, 255.0)
            if self.jpeg == "kornia":
                from kornia.enhance import jpeg_codec_differentiable

                y = jpeg_codec_differentiable(y / 255.0, theta.quality) * 255.0
            else:
                y = jpeg(y, theta.quality, channel_look.chroma_filter(theta.look) if self.look else None)
        return clamp(y, 0.0, 255.0)


def _uniform(rng: np.random.Generator, lohi) -> float:
    lo, hi = lohi
    return float(lo + (hi - lo) * rng.random())


class _Printer(torch.autograd.Function):
    """Saturation towards grey, then black + (white_c − black)·P_k(clamp(v, 1e-4, 1)^γ), ×255: the
    maths of autograd's version (clamp passes gradient at its bounds, as torch's), fused so that
    forward + backward make ~15 passes over the image instead of ~30 (v^γ as exp(γ log v), its
    derivative kept from the forward). P_k, the shadow plug (module docstring), runs when `plug` (B
    knees) is given: for channels whose tables have the key."""

    @staticmethod
    def forward(ctx, x, saturation, gamma, black, white, plug):
        s = saturation.view(-1, 1, 1, 1) / 255.0
        grey = x[:, 0:1] * LUMA[0]
        grey.add_(x[:, 1:2], alpha=LUMA[1]).add_(x[:, 2:3], alpha=LUMA[2])
        u = torch.addcmul(grey.mul_(1 / 255.0 - s), x, s)          # (s·x + (1 − s)·grey) / 255
        v = u.clamp(1e-4, 1.0)
        p = pg = v.log().mul_(gamma.view(-1, 1, 1, 1)).exp_()      # v^γ (pg: kept for the derivative)
        b = black.view(-1, 1, 1, 1) * 255.0
        r = white.view(-1, 3, 1, 1) * 255.0 - b
        slope = None
        if plug is not None:
            # P_k(p) = c·(p − m + m·(m/k)/2) and P_k′(p) = c·m/k with m = min(p, k), c = 1/(1 − k/2): one
            # expression for both sides of the knee; c is folded into r (k = 0 samples: 1e-6, within 1e-4 of a level)
            k = plug.view(-1, 1, 1, 1).clamp_min(1e-6)
            r = r / (1.0 - k / 2)
            m = torch.minimum(p, k)
            slope = m / k
            p = (p - m).addcmul_(m, slope, value=0.5)
        if ctx.needs_input_grad[0]:
            # ∂out/∂u = r·γ·v^(γ−1)·P_k′ where u was not clamped; /255 of the mix folded in here
            d = (pg / v) if slope is None else (pg / v).mul_(slope)
            d = d.mul_(r * (gamma.view(-1, 1, 1, 1) / 255.0)).mul_(inside(u, 1e-4, 1.0))
            ctx.save_for_backward(d, saturation)
        return p.mul_(r).add_(b)

    @staticmethod
    def backward(ctx, g):
        d, saturation = ctx.saved_tensors
        gv = g * d
        s = saturation.view(-1, 1)
        luma = torch.tensor(LUMA, dtype=g.dtype, device=g.device)
        # ∂v_c/∂x_j = s·δ_cj + (1 − s)·luma_j
        gx = torch.addcmul(gv * s.view(-1, 1, 1, 1), gv.sum(1, keepdim=True), ((1 - s) * luma).view(-1, 3, 1, 1))
        return gx, None, None, None, None, None


class _LightNoise(torch.autograd.Function):
    """y·gain + sqrt(shot·clamp(y·gain, 0, 255) + read²)·cz (gain None: no light; cz = the scaled
    standard normal): light and noise fused, the derivative (one tensor) kept from the forward."""

    @staticmethod
    def forward(ctx, y, gain, shot, read2, cz):
        yl = y * gain if gain is not None else y
        v = yl.clamp(0.0, 255.0)
        std = torch.addcmul(read2, v, shot).sqrt_()
        out = torch.addcmul(yl, std, cz)
        if ctx.needs_input_grad[0]:
            d = (cz / std).mul_(shot * 0.5).mul_(inside(yl, 0.0, 255.0)).add_(1.0)   # 1 + ∂noise/∂yl
            ctx.save_for_backward(d.mul_(gain) if gain is not None else d)
        return out

    @staticmethod
    def backward(ctx, g):
        (d,) = ctx.saved_tensors
        return g * d, None, None, None, None


def _light_gain(corners: np.ndarray, frame, cam: dict) -> np.ndarray:
    """simulate's light (exposure × white balance × gradient × vignetting) at the image's four
    photo corners → 3×2×2 (RGB; [[TL, TR], [BL, BR]])."""
    w, h = frame
    cx, cy, R = w / 2, h / 2, math.hypot(w, h) / 2
    ga = math.radians(cam["gradient_angle_deg"])
    gx, gy = math.cos(ga) * cam["gradient"] / R, math.sin(ga) * cam["gradient"] / R
    xs, ys = corners[:, 0] - cx, corners[:, 1] - cy
    gain = np.maximum((1 + gx * xs + gy * ys) * (1 - cam["vignetting"] / R ** 2 * (xs ** 2 + ys ** 2)), 0.05)
    wb = np.asarray(cam["white_balance_bgr"][::-1]) * cam["exposure"]
    tl, tr, br, bl = gain
    return wb[:, None, None] * np.array([[tl, tr], [bl, br]])[None]


def _affine(reg: np.ndarray, size: int) -> np.ndarray:
    """B×2×3 maps (kornia: source → destination pixel coordinates, pixel centres at integers):
    rotate and scale about the crop centre, then shift."""
    dx, dy, deg, scale = reg.T
    a = np.radians(deg)
    s = 1 + scale
    c = (size - 1) / 2
    cos, sin = s * np.cos(a), s * np.sin(a)
    M = np.zeros((len(reg), 2, 3))
    M[:, 0, 0], M[:, 0, 1], M[:, 1, 0], M[:, 1, 1] = cos, -sin, sin, cos
    M[:, 0, 2] = c - cos * c + sin * c + dx
    M[:, 1, 2] = c - sin * c - cos * c + dy
    return M


def _psf(A: np.ndarray, defocus_px: np.ndarray, ink_px: np.ndarray, motion_px: np.ndarray) -> np.ndarray:
    """Point-spread functions in crop pixels, B×k×k (odd k, one size for the batch), each summing to 1.

    Photo-pixel covariance (defocus² + resampling)·I and the motion line m (photo px) are mapped
    with A⁻¹ (photo px → crop px); the ink spread and the area box are added in crop pixels; the
    Gaussian is smeared along the line (4 points per pixel of its length)."""
    Ainv = np.linalg.inv(A)
    var_p = defocus_px ** 2 + RESAMPLE_VAR_PHOTO
    cov = var_p[:, None, None] * Ainv @ np.swapaxes(Ainv, 1, 2)
    cov = cov + (ink_px ** 2 + AREA_VAR_CROP)[:, None, None] * np.eye(2)
    m = np.einsum("bij,bj->bi", Ainv, motion_px)
    sig = np.sqrt(np.linalg.eigvalsh(cov).max(axis=1))
    reach = 3 * sig + np.linalg.norm(m, axis=1) / 2
    half = int(min(MAX_KERNEL // 2, max(1, math.ceil(reach.max()))))
    u = np.arange(-half, half + 1, dtype=np.float64)
    grid = np.stack(np.meshgrid(u, u, indexing="xy"), -1)            # k×k×2, (x, y)
    steps = max(3, int(math.ceil(4 * np.linalg.norm(m, axis=1).max())))
    t = (np.arange(steps) + 0.5) / steps - 0.5   # midpoints: the line's variance |m|²/12 (1 − 1/steps²)
    prec = np.linalg.inv(cov)                                          # B×2×2
    d = grid[None, None] - t[None, :, None, None, None] * m[:, None, None, None, :]   # B×T×k×k×2
    q = quadratic_form(d, prec[:, None, None, None])
    k = np.exp(-0.5 * q).sum(axis=1)
    return k / k.sum(axis=(1, 2), keepdims=True)


def repeat(x: torch.Tensor, k: int) -> torch.Tensor:
    """Each image k times in a row (image 0's samples first): the layout θ of n·k samples has."""
    return x.repeat_interleave(k, dim=0)


def cat_theta(thetas: list[Theta]) -> Theta:
    """θ of several draws as one batch (point-spread functions zero-padded to one size)."""
    if len(thetas) == 1:
        return thetas[0]
    k = max(t.kernel.shape[-1] for t in thetas)
    out = {}
    for f in fields(Theta):
        if f.name == "info":
            out["info"] = {key: np.concatenate([t.info[key] for t in thetas]) for key in thetas[0].info}
        elif f.name == "kernel":
            out["kernel"] = torch.cat([F.pad(t.kernel, [(k - t.kernel.shape[-1]) // 2] * 4) for t in thetas])
        else:
            out[f.name] = torch.cat([getattr(t, f.name) for t in thetas])
    return Theta(**out)


def theta_rows(theta: Theta, start: int, stop: int) -> Theta:
    """Samples start..stop of θ, the point-spread functions cut to the smallest odd size that keeps
    every non-zero value (cat_theta pads them with zeros to the largest of the batch): the same
    blur, in fewer multiply-adds."""
    out = {}
    for f in fields(Theta):
        v = getattr(theta, f.name)
        out[f.name] = ({k: a[start:stop] for k, a in v.items()} if f.name == "info" else v[start:stop])
    k = out["kernel"]
    ring = k.shape[-1] // 2
    nz = (k != 0).any(0)
    while ring > 0 and not (nz[0].any() or nz[-1].any() or nz[:, 0].any() or nz[:, -1].any()):
        nz, ring = nz[1:-1, 1:-1], ring - 1
    cut = (k.shape[-1] // 2) - ring
    if cut:
        out["kernel"] = k[:, cut:-cut, cut:-cut].contiguous()
    return Theta(**out)
