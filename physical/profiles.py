"""Using a calibration profile (profile.json, fitted by `physical.calibrate`): the record, the
colour model, simulate's printer/camera overrides, a differentiable colour transform for the EOT
channel, and the printable-gamut check.

How a simulator or channel applies a profile (see `Profile` for the fields): colour with
`ColourModel.from_dict(profile["colour"])` (numpy) or `torch_colour(profile)` (torch, differentiable);
blur as a Gaussian of σ = ``blur.sigma_mm`` × pixels per page mm (crop pixels: × crop size /
printed image mm); noise per photo pixel σ(v) = sqrt(shot·v + read²) before JPEG; JPEG at
``jpeg.quality``. Geometry and light are not in a profile: they stay drawn from a preset, and
drawn once: the colour transform is the chart photos' light at the frame centre (where a lens's
and simulate's fall-off is 1), fall-off divided out, so simulate and the channel draw the
exposure relative to the preset's mean (`relative_exposure`) and the fall-off and white balance
as they are: on average they reproduce the chart photos' light, not that light times another.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from pydantic import Field, ValidationError

from physical import chart as chartmod
from physical.errors import PhysicalError
from physical.records import ChartPhoto, Record
from physical.workspace import read_json

PROFILE_KIND = "physical-calibration-profile"
PROFILE_SCHEMA = 2
# Schema 1 (before the light was recorded at the frame centre) is read as is: its colour is the
# photos' median paper white instead, at most a few per cent darker (the page's own fall-off).
PROFILE_SCHEMAS_READ = (1, 2)
LUT_SIZE = 17
TONE_KNOTS = 33


class Profile(Record):
    """profile.json. Colour values are 0..255 RGB. Fields a simulator or channel applies:

    * ``colour``: ``model`` "root-polynomial" (``degree``, ``matrix`` 3×k from colour-science's
      `matrix_colour_correction_Finlayson2015`, applied to the root-polynomial expansion of
      rgb/255, then ``tone``) or "lut" (``lut``: 17×17×17×3 captured values on the grid
      linspace(0, 255, 17)³ indexed [r][g][b], trilinear; ``tone`` unused); ``tone``:
      ``levels`` (33 digital levels) and ``rgb`` (3 × 33 captured values), linear between knots.
    * ``blur.sigma_mm``: Gaussian σ in page mm (apply as σ_mm · pixels per page mm).
    * ``noise``: per photo pixel, before JPEG: σ(v) = sqrt(shot · v + read²), v in 0..255.
    * ``jpeg.quality``: IJG quality.
    * ``white_rgb``: paper white as captured (the colour transform's value at 255, 255, 255).
    * ``light``: the light the chart photos saw: ``centre_rgb`` (paper white at the frame centre,
      the level the colour transform is at: apply the preset's light relative to it, see
      `relative_exposure`), the fall-off range over the page, per photo in ``photos[].light``.
    """

    schema_version: int = Field(alias="schema")
    kind: Literal["physical-calibration-profile"]
    chart: dict[str, Any]
    colour: dict[str, Any]
    white_rgb: list[float]
    blur: dict[str, Any]
    noise: dict[str, Any]
    jpeg: dict[str, Any]
    light: dict[str, Any]
    heldout: dict[str, Any]
    patches: dict[str, Any]
    photos: list[dict[str, Any]]
    gamut_lab: list[list[float]]
    chart_photo: ChartPhoto | None = None      # a thumbnail of the first photo used (fits before it: none)


def load_profile(path) -> Profile:
    """A profile.json, validated; one line (PhysicalError) for anything else."""
    path = Path(path)
    try:
        data = read_json(path)
    except PhysicalError:
        raise
    except (OSError, ValueError) as exc:
        raise PhysicalError(f"cannot read profile {path}: {exc}") from None
    return parse_profile(data, path)


def parse_profile(data, source="profile") -> Profile:
    if not isinstance(data, dict) or data.get("kind") != PROFILE_KIND:
        raise PhysicalError(f"{source} is not a calibration profile (make one with `physical calibrate fit`)")
    if data.get("schema") not in PROFILE_SCHEMAS_READ:
        raise PhysicalError(f"{source} has profile schema {data.get('schema')!r}; this physical reads "
                            f"{' and '.join(map(str, PROFILE_SCHEMAS_READ))}: fit it again with "
                            "`physical calibrate fit`")
    chart = data.get("chart") or {}
    if chart.get("version") != chartmod.CHART_VERSION:
        raise PhysicalError(f"{source} was fitted on calibration chart version {chart.get('version')!r}; this "
                            f"physical uses chart v{chartmod.CHART_VERSION}: print `physical calibrate chart` "
                            "and fit again")
    try:
        return Profile.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise PhysicalError(f"{source} is not a valid calibration profile "
                            f"({'.'.join(map(str, err['loc']))}: {err['msg']})") from None



# ----------------------------------------------------------------------------- colour
def _rp_expand(rgb: np.ndarray, degree: int) -> np.ndarray:
    from colour.characterisation import polynomial_expansion_Finlayson2015

    return polynomial_expansion_Finlayson2015(np.clip(rgb, 0, None), degree, root_polynomial_expansion=True)


class Tone:
    """Per-channel monotone tone curves digital level → captured value."""

    def __init__(self, levels: np.ndarray, rgb: np.ndarray):
        self.levels = np.asarray(levels, np.float64)
        self.rgb = np.asarray(rgb, np.float64)       # 3 × n

    @classmethod
    def fit(cls, digital: np.ndarray, captured: np.ndarray) -> "Tone":
        """From neutral patches: digital (n,) levels, captured (n, 3)."""
        from scipy.interpolate import PchipInterpolator

        lv = np.unique(digital)
        means = np.array([captured[digital == v].mean(0) for v in lv])
        knots = np.linspace(0, 255, TONE_KNOTS)
        rgb = []
        for c in range(3):
            y = np.maximum.accumulate(means[:, c])
            f = PchipInterpolator(lv, y, extrapolate=True)
            rgb.append(np.maximum.accumulate(f(knots)))
        return cls(knots, np.array(rgb))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """x (..., 3) digital 0..255 → captured."""
        return np.stack([np.interp(x[..., c], self.levels, self.rgb[c]) for c in range(3)], -1)

    def inverse(self, y: np.ndarray) -> np.ndarray:
        out = []
        for c in range(3):
            curve = self.rgb[c] + np.arange(len(self.levels)) * 1e-9   # strictly increasing
            out.append(np.interp(y[..., c], curve, self.levels))
        return np.stack(out, -1)


class ColourModel:
    """digital RGB (..., 3, 0..255) → captured RGB (0..255); see `Profile.colour`."""

    def __init__(self, model: str, tone: Tone, degree: int | None = None, matrix=None, lut=None):
        self.model, self.tone, self.degree = model, tone, degree
        self.matrix = None if matrix is None else np.asarray(matrix, np.float64)
        self.lut = None if lut is None else np.asarray(lut, np.float64)
        self._interp = None

    @classmethod
    def fit(cls, model: str, digital: np.ndarray, captured: np.ndarray, tone: Tone, degree: int = 2):
        from colour.characterisation import matrix_colour_correction_Finlayson2015

        if model == "root-polynomial":
            target = tone.inverse(captured) / 255.0
            M = matrix_colour_correction_Finlayson2015(digital / 255.0, target, degree=degree,
                                                       root_polynomial_expansion=True)
            return cls(model, tone, degree=degree, matrix=M)
        from scipy.interpolate import RBFInterpolator

        rbf = RBFInterpolator(digital / 255.0, captured, kernel="thin_plate_spline", smoothing=1e-3)
        g = np.linspace(0, 1, LUT_SIZE)
        grid = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
        return cls("lut", tone, lut=rbf(grid).reshape(LUT_SIZE, LUT_SIZE, LUT_SIZE, 3))

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        rgb = np.asarray(rgb, np.float64)
        shape = rgb.shape
        x = rgb.reshape(-1, 3)
        if self.model == "root-polynomial":
            f = _rp_expand(x / 255.0, self.degree) @ self.matrix.T
            y = self.tone(np.clip(f, 0, 1) * 255.0)
        else:
            if self._interp is None:
                from scipy.interpolate import RegularGridInterpolator

                g = np.linspace(0, 255, LUT_SIZE)
                self._interp = RegularGridInterpolator((g, g, g), self.lut)
            y = self._interp(np.clip(x, 0, 255))
        return np.clip(y, 0, 255).reshape(shape)

    def as_dict(self) -> dict:
        d = {"model": self.model, "tone": {"levels": self.tone.levels.round(4).tolist(),
                                           "rgb": self.tone.rgb.round(4).tolist()}}
        if self.model == "root-polynomial":
            d.update(degree=self.degree, matrix=self.matrix.round(8).tolist(),
                     expansion="colour.characterisation.polynomial_expansion_Finlayson2015(rgb / 255, degree, "
                               "root_polynomial_expansion=True)")
        else:
            d.update(lut=self.lut.round(3).tolist(), grid="linspace(0, 255, 17) per axis, [r][g][b]")
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ColourModel":
        tone = Tone(d["tone"]["levels"], d["tone"]["rgb"])
        return cls(d["model"], tone, degree=d.get("degree"), matrix=d.get("matrix"), lut=d.get("lut"))


def to_lab(rgb255: np.ndarray) -> np.ndarray:
    """sRGB 0..255 → CIE Lab (D65)."""
    import colour

    with np.errstate(all="ignore"):
        return colour.XYZ_to_Lab(colour.sRGB_to_XYZ(np.clip(rgb255, 0, 255) / 255.0))


def delta_e(a_rgb: np.ndarray, b_rgb: np.ndarray) -> np.ndarray:
    import colour

    return colour.delta_E(to_lab(a_rgb), to_lab(b_rgb), method="CIE 2000")


# ----------------------------------------------------------------------------- simulate's hooks
def printer_overrides(profile: Profile | dict) -> dict:
    """simulate's printer dict for a profile: `simulate.print_page` hands it to `print_profiled`."""
    p = profile.dump() if isinstance(profile, Profile) else profile
    return {"model": "profile", "chart_id": p["chart"]["id"], "colour": p["colour"],
            "blur_mm": p["blur"]["sigma_mm"] or 0.0}


def camera_overrides(profile: Profile | dict) -> dict:
    """Camera values a profile fixes (geometry and light stay drawn from the preset): no blur of
    the camera's own (the profile's σ covers print and camera), its noise and JPEG quality."""
    p = profile.dump() if isinstance(profile, Profile) else profile
    out = {"defocus_px": 0.0, "motion_px": 0.0}
    if p["noise"].get("shot") is not None:
        out.update(shot_noise=float(p["noise"]["shot"]), read_noise=float(p["noise"]["read"]))
    if p["jpeg"].get("quality"):
        out["jpeg_quality"] = int(p["jpeg"]["quality"])
    return out


def profiled_camera(cam: dict, profile, table: dict) -> dict:
    """simulate --profile's camera for one photo: `cam` drawn from the preset's ranges `table`,
    with the profile's values (`camera_overrides`) and the exposure relative (`relative_exposure`),
    as the profile channel draws it (same draw, same value)."""
    return {**cam, **camera_overrides(profile), "exposure": cam["exposure"] / _mean_exposure(table)}


def relative_exposure(table: dict) -> tuple[float, float]:
    """A preset's exposure range as drawn through a profile: divided by its mean. The profile's
    colour already holds the chart photos' exposure; drawing the preset's own on top would count
    the light twice (the photos' ≈ 0.975 of typical, then typical's again). Relative draws keep
    the spread from photo to photo and centre it on the light the chart was photographed in."""
    lo, hi = (float(v) for v in table["exposure"])
    return lo / _mean_exposure(table), hi / _mean_exposure(table)


def _mean_exposure(table: dict) -> float:
    lo, hi = (float(v) for v in table["exposure"])
    return (lo + hi) / 2


def print_profiled(page_bgr: np.ndarray, px_per_mm: float, printer: dict) -> np.ndarray:
    """The printed sheet as the calibrated phone sees it under the reference light (BGR uint8):
    the profile's colour transform on every distinct colour of the page, then its blur."""
    cm = ColourModel.from_dict(printer["colour"])
    rgb = page_bgr[..., ::-1].reshape(-1, 3)
    packed = (rgb[:, 0].astype(np.uint32) << 16) | (rgb[:, 1].astype(np.uint32) << 8) | rgb[:, 2]
    uniq, inv = np.unique(packed, return_inverse=True)
    colours = np.stack([(uniq >> 16) & 255, (uniq >> 8) & 255, uniq & 255], 1).astype(np.float64)
    mapped = np.clip(np.rint(cm(colours)), 0, 255).astype(np.uint8)[:, ::-1]
    out = mapped[inv.ravel()].reshape(page_bgr.shape)
    sigma = float(printer.get("blur_mm") or 0.0) * px_per_mm
    if sigma >= 0.2:
        out = cv2.GaussianBlur(out, (0, 0), sigma)
    return out


# ----------------------------------------------------------------------------- printability
def outside_gamut(png, profile) -> float:
    """Fraction of a PNG's pixels outside the printable gamut: the convex hull, in CIE Lab
    relative to paper white, of the colours the chart's patches reached (sRGB assumed for the
    PNG). `png`: a path or an H×W×3 RGB uint8 array; `profile`: a path, dict or `Profile`."""
    if isinstance(profile, (str, Path)):
        profile = load_profile(profile)
    if isinstance(png, (str, Path)):
        from PIL import Image

        try:
            with Image.open(png) as im:
                img = np.asarray(im.convert("RGB"))
        except OSError as exc:
            raise PhysicalError(f"cannot read {png}: {exc}") from None
    else:
        img = np.asarray(png)
    rgb = img[..., :3].reshape(-1, 3)
    uniq, counts = np.unique(rgb, axis=0, return_counts=True)
    inside = inside_gamut(uniq, profile)
    return float(counts[~inside].sum() / counts.sum())


def inside_gamut(colours: np.ndarray, profile) -> np.ndarray:
    """Per colour of an N×3 sRGB array (0..255): inside the printable gamut (see `outside_gamut`).
    For many images at once, call it on their distinct colours (the report does)."""
    from scipy.spatial import ConvexHull

    p = profile.dump() if isinstance(profile, Profile) else profile
    pts = np.asarray(p["gamut_lab"], np.float64)
    centre = pts.mean(0)
    hull = ConvexHull(centre + (pts - centre) * 1.01)    # 1 % slack: patch colours themselves are inside
    lab = to_lab(np.asarray(colours, np.float64).reshape(-1, 3))
    return np.all(lab @ hull.equations[:, :3].T + hull.equations[:, 3] <= 1e-9, axis=1)   # facets' half-spaces


# ----------------------------------------------------------------------------- EOT channel
def torch_colour(profile):
    """The profile's colour transform as a differentiable torch function: x (B×3×H×W RGB, 0..255)
    → captured RGB (0..255), equal to `ColourModel` (tested)."""
    import torch
    import torch.nn.functional as F

    p = profile.dump() if isinstance(profile, Profile) else profile
    c = p["colour"]
    levels = torch.tensor(c["tone"]["levels"], dtype=torch.float32)
    tone = torch.tensor(c["tone"]["rgb"], dtype=torch.float32)            # 3 × K

    def tone_fn(x):                                                          # B×3×H×W, 0..255
        step = float(levels[1] - levels[0])
        t = (x.clamp(0, 255) / step).clamp(0, len(levels) - 1 - 1e-4)
        i = t.floor().long()
        f = t - i
        out = []
        for ch in range(3):
            lo, hi = tone[ch].to(x.device)[i[:, ch]], tone[ch].to(x.device)[i[:, ch] + 1]
            out.append(lo + (hi - lo) * f[:, ch])
        return torch.stack(out, 1)

    if c["model"] == "root-polynomial":
        M = torch.tensor(c["matrix"], dtype=torch.float32)
        degree = int(c["degree"])

        def fn(x):
            v = (x / 255.0).clamp_min(1e-6)
            r, g, b = v[:, 0], v[:, 1], v[:, 2]
            terms = [r, g, b]
            if degree >= 2:
                terms += [(r * g).sqrt(), (g * b).sqrt(), (r * b).sqrt()]
            if degree >= 3:
                cb = lambda t: t.pow(1 / 3)  # noqa: E731
                terms += [cb(r * g * g), cb(g * b * b), cb(r * b * b), cb(g * r * r), cb(b * g * g), cb(b * r * r),
                          cb(r * g * b)]
            f = torch.einsum("kt,tbhw->bkhw", M.to(x.device), torch.stack(terms, 0))
            return tone_fn(f.clamp(0, 1) * 255.0).clamp(0, 255)
        return fn
    lut = torch.tensor(c["lut"], dtype=torch.float32)                    # r×g×b×3
    vol = lut.permute(3, 0, 1, 2).unsqueeze(0)                           # 1×3×D(r)×H(g)×W(b)

    def fn_lut(x):
        g = (x.clamp(0, 255) / 127.5 - 1).permute(0, 2, 3, 1)            # B×H×W×3 (r, g, b)
        grid = g[..., [2, 1, 0]].unsqueeze(1)                            # x↔W(b), y↔H(g), z↔D(r)
        out = F.grid_sample(vol.to(x.device).expand(x.shape[0], -1, -1, -1, -1), grid, mode="bilinear",
                            align_corners=True)
        return out[:, :, 0].clamp(0, 255)
    return fn_lut
