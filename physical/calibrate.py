"""Calibration: fit a profile of the user's printer + phone from photos of the chart.

`fit(photos)` per photo: the chart's markers → a page-mm ↔ photo-px map (a homography plus a
quadratic residual correction for lens distortion) → every patch sampled robustly (a 20 %
trimmed mean of a 9×9 grid over its central half) → the paper-white patches give that photo's
light field (a quadratic in page mm per channel), which is divided out. Photos are pooled by
averaging each patch's light-corrected value. Fitted (profile.json, `Profile`):

colour   digital RGB → captured RGB (0..255, under the photos' mean light at the frame centre,
         uniform over the page): per-channel tone curves T_c (from the neutral patches; monotone) after a
         cross-channel map F in digital space: captured = T(F(rgb / 255)). F is colour-science's
         root-polynomial colour correction (Finlayson et al. 2015, degree 1–3), or a 3D LUT
         (17³, a thin-plate RBF of the patches, applied trilinearly) in place of T∘F: chosen by
         5-fold cross-validation on the training patches (never on the held-out ones).
blur     Gaussian σ in page millimetres from the slanted edges (an erf edge fitted to the
         photo's pixel centres against their distance to the edge in page mm): it holds at any
         print size; camera blur is included as seen at the calibration distance.
noise    σ per photo pixel as a function of level, variance = shot·v + read² (simulate's
         model), from the flat patches after removing a plane; the JPEG's smoothing of noise is
         undone by a small Monte Carlo at the photos' JPEG quality.
jpeg     the IJG quality whose tables match the photos' quantisation tables best.
light    the fall-off range seen (min / max of each photo's white field over the page), and the
         light the colour is under: the photos' mean paper white at the frame centre, where
         simulate's and a lens's fall-off is 1. Only exposure × paper white is seen (a darker
         sheet and a darker exposure make one photo), so the chart's exposure stays in the colour;
         what keeps it from being counted twice is that simulate --profile and the channel draw
         exposure relative to the preset's mean (profiles.relative_exposure) and the fall-off,
         divided out here, afresh.
heldout  20 % of the colour patches (seeded) are never fitted; CIEDE2000 on them.

The record (`Profile`), the colour model and everything that *uses* a profile (simulate's
`printer_overrides` / `camera_overrides` / `print_profiled`, `torch_colour` for the EOT channel,
`outside_gamut`) live in physical/profiles.py and are re-exported here.
"""
from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageOps

from physical import chart as chartmod
from physical import geometry, markers
from physical.errors import PhysicalError
from physical.profiles import (PROFILE_KIND, PROFILE_SCHEMA, ColourModel, Profile, Tone,  # noqa: F401
                               camera_overrides, delta_e, load_profile, outside_gamut, parse_profile,
                               print_profiled, profiled_camera, printer_overrides, to_lab, torch_colour)
from physical.workspace import atomic_write_json, sha256_bytes
from physical.chart import simulate_photos as simulate_chart_photos  # noqa: F401  (the brief's name)

HELDOUT_FRACTION = 0.2
SPLIT_SEED = 13
CLIP_HI, CLIP_LO = 253, 2        # a sample at or beyond these in any channel is clipped
CLIP_FRACTION = 0.2               # patches with more clipped samples than this are excluded
MIN_MARKERS = 3
PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff"}


# ----------------------------------------------------------------------------- photos
def read_photo(path) -> tuple[np.ndarray, dict | None]:
    """(RGB uint8 as displayed, quantisation tables or None)."""
    try:
        with Image.open(path) as im:
            q = getattr(im, "quantization", None)
            q = {int(k): list(v) for k, v in q.items()} if q else None
            im = ImageOps.exif_transpose(im)
            return np.asarray(im.convert("RGB")), q
    except (OSError, ValueError) as exc:
        raise PhysicalError(f"cannot read photo {path}: {exc}") from None


THUMB_EDGE = 640      # the chart photo kept in the profile: long side in pixels (~50 KB of JPEG)


def chart_thumbnail(img: np.ndarray, file: str, sha256: str) -> dict:
    """A small JPEG of a chart photo for the profile's `chart_photo` (records.ChartPhoto)."""
    import base64

    im = Image.fromarray(img)
    im.thumbnail((THUMB_EDGE, THUMB_EDGE), Image.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=82)
    return {"file": file, "sha256": sha256, "width": im.width, "height": im.height,
            "jpeg_base64": base64.b64encode(buf.getvalue()).decode("ascii")}


_QT = None


def _ijg_tables():
    global _QT
    if _QT is None:
        from physical.jpegtables import QT_CHROMA, QT_LUMA

        out = {}
        for q in range(1, 101):
            s = 5000 / q if q < 50 else 200 - 2 * q
            out[q] = [np.clip(np.floor((np.array(t) * s + 50) / 100), 1, 255) for t in (QT_LUMA, QT_CHROMA)]
        _QT = out
    return _QT


def jpeg_quality(tables: dict | None) -> tuple[int | None, float | None]:
    """(IJG quality whose tables are nearest, mean absolute table difference there)."""
    if not tables or 0 not in tables:
        return None, None
    from physical.jpegtables import ZIGZAG

    t0 = np.asarray(tables[0], np.float64)
    t1 = np.asarray(tables.get(1, tables[0]), np.float64)
    best = None
    for order in (np.arange(64), np.asarray(ZIGZAG)):   # natural or zigzag, whichever Pillow gives
        for q, (l, c) in _ijg_tables().items():
            err = (np.abs(t0 - l[order]).mean() + np.abs(t1 - c[order]).mean()) / 2
            if best is None or err < best[1]:
                best = (q, float(err))
    return best


_DETECTORS: dict[float, Any] = {}


def detect_chart(grey: np.ndarray) -> list:
    """Markers in a grey photo, as `markers.detect`, but first ignoring quads smaller than 5 % of
    the photo's long side in perimeter: the chart's ~300 patches are quads too, and decoding each
    as a candidate marker is what makes detection slow (6 s → 0.8 s on 12 MP). Falls back to
    the standard minimum (far-away shots) when that finds fewer than `MIN_MARKERS`."""
    found = []
    for rate in (0.05, None):
        if rate not in _DETECTORS:
            p = markers.detector_parameters()
            if rate is not None:
                p.minMarkerPerimeterRate = rate
            _DETECTORS[rate] = cv2.aruco.ArucoDetector(markers.dictionary(), p)
        corners, ids, _ = _DETECTORS[rate].detectMarkers(np.ascontiguousarray(grey))
        found = [] if ids is None else [
            markers.Detection(int(i), geometry.from_opencv(np.asarray(c, np.float64).reshape(4, 2)))
            for c, i in zip(corners, ids.ravel())]
        if sum(d.id in chartmod.chart_ids() for d in found) >= MIN_MARKERS:
            break
    return sorted(found, key=lambda d: d.id)


class PageMap:
    """page mm ↔ photo px: a homography and a quadratic residual correction each way."""

    def __init__(self, mm: np.ndarray, px: np.ndarray):
        H, _ = geometry.fit_homography(mm, px, ransac_tol=max(3.0, 0.02 * np.ptp(px[:, 0])))
        if H is None:
            raise ValueError("chart markers inconsistent (no homography)")
        self.H = H
        self.Hinv = np.linalg.inv(H)
        self.fwd = self._residual(mm, px, H)
        self.inv = self._residual(px, mm, self.Hinv)
        self.rms_px = float(np.sqrt(((self.to_px(mm) - px) ** 2).sum(1).mean()))

    @staticmethod
    def _terms(p, c, s):
        u, v = ((p - c) / s).T
        return np.stack([np.ones_like(u), u, v, u * u, u * v, v * v], 1)

    def _residual(self, src, dst, H):
        c, s = src.mean(0), src.std() + 1e-9
        base = geometry.map_points(H, src)
        if len(src) < 24:
            return (c, s, np.zeros((6, 2)))
        coef, *_ = np.linalg.lstsq(self._terms(src, c, s), dst - base, rcond=None)
        return (c, s, coef)

    def to_px(self, mm):
        c, s, coef = self.fwd
        return geometry.map_points(self.H, mm) + self._terms(mm, c, s) @ coef

    def to_mm(self, px):
        c, s, coef = self.inv
        return geometry.map_points(self.Hinv, px) + self._terms(px, c, s) @ coef


def _sample_grid(rect, n=9, frac=0.5):
    x0, y0, x1, y1 = rect
    cx, cy, hw, hh = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) * frac / 2, (y1 - y0) * frac / 2
    u = np.linspace(-1, 1, n)
    X, Y = np.meshgrid(cx + u * hw, cy + u * hh)
    return np.stack([X.ravel(), Y.ravel()], 1)


def _bilinear(img: np.ndarray, px: np.ndarray) -> np.ndarray:
    """Values (N, 3) float at corner-convention points (N, 2)."""
    p = geometry.to_opencv(px).astype(np.float32)
    out = cv2.remap(img, p[:, 0].reshape(1, -1), p[:, 1].reshape(1, -1), cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    return out.reshape(-1, img.shape[2]).astype(np.float64)


def _trimmed_mean(v: np.ndarray, cut=0.2) -> np.ndarray:
    """Mean of the middle (1 − 2·cut) of each column (scipy.stats.trim_mean, without its import cost)."""
    v = np.sort(v, axis=0)
    k = int(cut * len(v))
    return v[k:len(v) - k].mean(0)


def _pixels_in(img, pmap: PageMap, rect, frac):
    """Photo pixels whose centres fall inside the central `frac` of page rectangle `rect`:
    (values (N, 3), centres px (N, 2), centres mm (N, 2))."""
    x0, y0, x1, y1 = rect
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    hw, hh = (x1 - x0) * frac / 2, (y1 - y0) * frac / 2
    corners = pmap.to_px(geometry.rect_corners((cx - hw, cy - hh, cx + hw, cy + hh)))
    lo = np.floor(corners.min(0)).astype(int)
    hi = np.ceil(corners.max(0)).astype(int)
    h, w = img.shape[:2]
    lo, hi = np.maximum(lo, 0), np.minimum(hi, [w, h])
    if np.any(hi - lo < 2):
        return None
    X, Y = np.meshgrid(np.arange(lo[0], hi[0]) + 0.5, np.arange(lo[1], hi[1]) + 0.5)
    px = np.stack([X.ravel(), Y.ravel()], 1)
    mm = pmap.to_mm(px)
    keep = (np.abs(mm[:, 0] - cx) <= hw) & (np.abs(mm[:, 1] - cy) <= hh)
    px, mm = px[keep], mm[keep]
    vals = img[(px[:, 1] - 0.5).astype(int), (px[:, 0] - 0.5).astype(int)].astype(np.float64)
    return vals, px, mm


# ----------------------------------------------------------------------------- one photo
def measure_photo(img: np.ndarray, spec: dict, dets: list) -> dict:
    """Everything one photo shows of the chart (see the module docstring)."""
    by_id = {m["id"]: np.asarray(m["corners_mm"]) for m in spec["markers"]["list"]}
    found = [d for d in dets if d.id in by_id]
    mm = np.concatenate([by_id[d.id] for d in found])
    px = np.concatenate([d.corners_px for d in found])
    pmap = PageMap(mm, px)
    h, w = img.shape[:2]
    margin = 2.0
    out = {"markers": len(found), "map_rms_px": pmap.rms_px, "patches": {}, "clipped": [], "missing": []}
    for p in spec["patches"]:
        pts = pmap.to_px(_sample_grid(p["rect_mm"]))
        if not geometry.inside(pts, (w, h), margin):
            out["missing"].append(p["id"])
            continue
        v = _bilinear(img, pts)
        clipped = ((v >= CLIP_HI) | (v <= CLIP_LO)).any(1).mean() > CLIP_FRACTION
        if clipped:
            out["clipped"].append(p["id"])
            continue
        out["patches"][p["id"]] = _trimmed_mean(v)
    # light field from the paper-white patches: quadratic per channel in page mm
    whites = [p for p in spec["patches"] if p["kind"] == "white" and p["id"] in out["patches"]]
    if not whites:
        raise ValueError("no paper-white patch readable (over-exposed, or out of frame)")
    centres = np.array([[(p["rect_mm"][0] + p["rect_mm"][2]) / 2, (p["rect_mm"][1] + p["rect_mm"][3]) / 2]
                        for p in whites])
    vals = np.array([out["patches"][p["id"]] for p in whites])
    pw, ph = spec["paper"]["width_mm"], spec["paper"]["height_mm"]
    terms = 6 if len(whites) >= 12 else (3 if len(whites) >= 4 else 1)

    def basis(c):
        u, v = c[:, 0] / pw - 0.5, c[:, 1] / ph - 0.5
        return np.stack([np.ones_like(u), u, v, u * u, u * v, v * v], 1)[:, :terms]

    coef, *_ = np.linalg.lstsq(basis(centres), vals, rcond=None)
    out["white_field"] = (basis, coef)
    g = np.stack(np.meshgrid(np.linspace(pw * 0.15, pw * 0.85, 8), np.linspace(ph * 0.1, ph * 0.75, 8)), -1)
    field = basis(g.reshape(-1, 2)) @ coef
    # the light at the frame centre, where simulate's (and a lens's) fall-off is 1: the level the
    # profile's colour is put at, so that simulate's light draw counts it once (profiles.relative_exposure).
    # Off the whites' area the nearest point of it (a quadratic is not extrapolated).
    at = pmap.to_mm(np.array([[w / 2, h / 2]], np.float64))[0]
    near = np.clip(at, centres.min(0), centres.max(0))
    out["centre_white"] = (basis(near[None]) @ coef)[0]
    out["light"] = {"white_min": field.min(0).round(2).tolist(), "white_max": field.max(0).round(2).tolist(),
                    "falloff": float(1 - (field.mean(1).min() / field.mean(1).max())),
                    "centre_rgb": out["centre_white"].round(2).tolist(),
                    "centre_on_chart": bool(np.allclose(near, at))}
    out["edges"] = [s for e in spec["edges"] for s in _edge_sigmas(img, pmap, e)]   # noqa: E501
    out["flats"] = {}
    for p in spec["patches"]:
        if p["kind"] != "flat" or p["id"] not in out["patches"]:
            continue
        got = _pixels_in(img, pmap, p["rect_mm"], 0.6)
        if got is None or len(got[0]) < 30:
            continue
        v, pxs, _ = got
        A = np.column_stack([np.ones(len(pxs)), pxs - pxs.mean(0)])
        res = v - A @ np.linalg.lstsq(A, v, rcond=None)[0]
        # std after dropping residuals beyond 5 σ (dust, a speck): not a MAD, which reads ~0 on
        # JPEG's integer values when most residuals round to the same level
        sd = res.std(0)
        keep = (np.abs(res) <= 5 * sd + 0.5).all(1)
        out["flats"][p["id"]] = {"level": v.mean(0), "sigma": res[keep].std(0)}
    return out


def _edge_sigmas(img, pmap: PageMap, edge: dict) -> list[dict]:
    """σ (page mm) of each of the square's four edges, from the photo's own pixel centres."""
    from scipy.optimize import curve_fit
    from scipy.special import erf

    pts = np.asarray(edge["corners_mm"])
    centre = pts.mean(0)
    h, w = img.shape[:2]
    out = []
    for i in range(4):
        a, b = pts[i], pts[(i + 1) % 4]
        t = (b - a) / np.linalg.norm(b - a)
        n = np.array([-t[1], t[0]])
        if np.dot(centre - a, n) > 0:
            n = -n                                  # n points outwards (towards white)
        L = np.linalg.norm(b - a)
        reach = 1.6
        box = np.array([a + t * 0.2 * L - n * reach, a + t * 0.8 * L - n * reach,
                        a + t * 0.8 * L + n * reach, a + t * 0.2 * L + n * reach])
        cp = pmap.to_px(box)
        lo, hi = np.maximum(np.floor(cp.min(0)).astype(int), 0), np.minimum(np.ceil(cp.max(0)).astype(int), [w, h])
        if not geometry.inside(cp, (w, h), 2.0) or np.any(hi - lo < 3):
            continue
        X, Y = np.meshgrid(np.arange(lo[0], hi[0]) + 0.5, np.arange(lo[1], hi[1]) + 0.5)
        px = np.stack([X.ravel(), Y.ravel()], 1)
        mm = pmap.to_mm(px)
        rel = mm - a
        along, d = rel @ t, rel @ n
        keep = (along >= 0.2 * L) & (along <= 0.8 * L) & (np.abs(d) <= reach)
        if keep.sum() < 40:
            continue
        idx = np.flatnonzero(keep)
        if len(idx) > 3000:                         # 12 MP photos: plenty; keeps curve_fit quick
            idx = idx[np.linspace(0, len(idx) - 1, 3000).astype(int)]
        y = img[(px[idx, 1] - 0.5).astype(int), (px[idx, 0] - 0.5).astype(int)].astype(np.float64).mean(1)
        d = d[idx]
        lo_v, hi_v = np.percentile(y, 5), np.percentile(y, 95)
        if hi_v - lo_v < 20:
            continue

        def esf(x, base, amp, d0, s):
            return base + amp * 0.5 * (1 + erf((x - d0) / (math.sqrt(2) * s)))

        try:
            (base, amp, d0, s), _ = curve_fit(esf, d, y, p0=(lo_v, hi_v - lo_v, 0.0, 0.15),
                                              bounds=([-50, 0, -1, 0.005], [300, 400, 1, 1.5]), maxfev=400)
        except (RuntimeError, ValueError):
            continue
        scale = np.linalg.norm(pmap.to_px((a + n * 0.5)[None]) - pmap.to_px((a - n * 0.5)[None]))
        out.append({"sigma_mm": float(s), "axis": "x" if abs(n[0]) > abs(n[1]) else "y",
                    "px_per_mm": float(scale), "n": int(len(idx))})
    return out


# ----------------------------------------------------------------------------- models
CANDIDATES = (("root-polynomial", 1), ("root-polynomial", 2), ("root-polynomial", 3), ("lut", None))


def _choose(digital, captured, tone_fit, rng) -> tuple[tuple, dict]:
    """The candidate with the lowest 5-fold cross-validated mean ΔE00 on the training patches."""
    folds = rng.permutation(len(digital)) % 5
    scores = {}
    for model, degree in CANDIDATES:
        errs = []
        for k in range(5):
            tr, te = folds != k, folds == k
            tone = tone_fit(tr)
            m = ColourModel.fit(model, digital[tr], captured[tr], tone, degree or 2)
            errs.append(delta_e(m(digital[te]), captured[te]))
        scores[f"{model}{'' if degree is None else f'-{degree}'}"] = float(np.concatenate(errs).mean())
    best = min(zip(CANDIDATES, scores.values()), key=lambda t: t[1])[0]
    return best, scores


# ----------------------------------------------------------------------------- noise / JPEG
def _jpeg_noise_out(level_rgb, sigma_in: float, quality: int, seed: int) -> np.ndarray:
    """Per-channel σ left after JPEG at `quality` of a flat patch with noise σ_in (64×64)."""
    rng = np.random.default_rng(seed)
    patch = np.clip(np.rint(np.asarray(level_rgb) + rng.normal(0, sigma_in, (64, 64, 3))), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(patch).save(buf, format="JPEG", quality=int(quality), subsampling="4:2:0")
    back = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"), np.float64)[8:-8, 8:-8]
    return back.std((0, 1))


def _sigma_before_jpeg(level_rgb, sigma_out: np.ndarray, quality: int | None) -> np.ndarray:
    """Invert JPEG's smoothing of noise per channel by interpolating σ_out(σ_in) (Monte Carlo)."""
    """Also returns, per channel, whether the inversion is well posed: where JPEG erases the
    noise (dark flats at low quality) σ_out barely grows with σ_in, and σ_in is not measurable."""
    if quality is None:
        return sigma_out, np.ones(3, bool)
    grid = np.array([0.0, 0.5, 1, 1.5, 2, 3, 4, 5, 6, 8, 10, 13, 16])
    outs = np.array([_jpeg_noise_out(level_rgb, s, quality, 7 + i) for i, s in enumerate(grid)])   # n × 3
    res, ok = [], []
    for c in range(3):
        o = np.maximum.accumulate(outs[:, c]) + np.arange(len(grid)) * 1e-6
        s_in = float(np.interp(sigma_out[c], o, grid))
        slope = np.gradient(o, grid)
        res.append(s_in)
        ok.append(bool(np.interp(s_in, grid, slope) >= 0.3 and sigma_out[c] < o[-1]))
    return np.array(res), np.array(ok)


# ----------------------------------------------------------------------------- the fit
def list_photos(photos_dir) -> list[Path]:
    d = Path(photos_dir)
    if not d.is_dir():
        raise PhysicalError(f"--photos {d} is not a folder")
    files = sorted(p for p in d.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES and not p.name.startswith("."))
    if not files:
        raise PhysicalError(f"no photos (.jpg, .png, .tif) in {d}")
    return files


def fit(photos_dir, progress=None) -> tuple[dict, list[str]]:
    """Fit a profile from the chart photos in `photos_dir`; returns (profile dict, report lines)."""
    files = list_photos(photos_dir)
    chart_set = chartmod.chart_ids()
    measured, per_photo, notes, spec, thumb = [], [], [], None, None
    for f in files:
        img, tables = read_photo(f)
        dets = detect_chart(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY))
        ours = [d for d in dets if d.id in chart_set]
        info = {"file": f.name, "sha256": sha256_bytes(f.read_bytes()), "markers": len(ours)}
        q, qerr = jpeg_quality(tables)
        info["jpeg_quality"], info["jpeg_table_error"] = q, qerr
        if len(ours) < MIN_MARKERS:
            info["status"] = (f"skipped: {len(ours)} chart markers" +
                              (f" ({len(dets)} markers of a run's sheet)" if dets and not ours else ""))
            per_photo.append(info)
            notes.append(f"{f.name}: {info['status']}")
            continue
        s = chartmod.spec_for_ids([d.id for d in ours])
        if spec is None:
            spec = s
        elif s["chart_id"] != spec["chart_id"]:
            raise PhysicalError(f"{f.name} shows a {s['paper']['name']} chart, earlier photos a "
                                f"{spec['paper']['name']} one: fit one chart at a time")
        try:
            m = measure_photo(img, spec, ours)
        except ValueError as exc:
            info["status"] = f"skipped: {exc}"
            per_photo.append(info)
            notes.append(f"{f.name}: {info['status']}")
            continue
        m["quality"] = q
        measured.append(m)
        if thumb is None:   # the first photo used: what the report shows of the fit
            thumb = chart_thumbnail(img, f.name, info["sha256"])
        n_all = len(spec["patches"])
        info.update(status="used", patches_found=len(m["patches"]), patches_missing=len(m["missing"]),
                    patches_clipped=len(m["clipped"]), edges=len(m["edges"]), light=m["light"],
                    map_rms_px=round(m["map_rms_px"], 3))
        if m["missing"]:
            notes.append(f"{f.name}: chart partly out of frame: {n_all - len(m['missing'])} of {n_all} patches present")
        if m["clipped"]:
            notes.append(f"{f.name}: {len(m['clipped'])} clipped (over- or under-exposed) patches excluded")
        per_photo.append(info)
        if progress:
            progress(1)
    if not measured:
        seen = sum(p["markers"] for p in per_photo)
        skipped = [n for n in notes if "chart markers" not in n]
        if seen and skipped:
            raise PhysicalError(f"no usable chart photo in {photos_dir}: {skipped[0]}")
        raise PhysicalError(f"no photo in {photos_dir} shows the calibration chart ({len(files)} photo(s), "
                            f"{seen} chart markers found): photograph the printed chart.pdf with its markers in view")
    profile = _fit_pooled(spec, measured, per_photo)
    profile["chart_photo"] = thumb
    return profile, notes + report_lines(profile)


def _fit_pooled(spec: dict, measured: list[dict], per_photo: list[dict]) -> dict:
    patches = {p["id"]: p for p in spec["patches"]}
    # the reference light: the photos' mean paper white at the frame centre (each photo's fall-off
    # over the page divided out, its level kept: simulate draws the fall-off and, relative to it, the exposure)
    w_ref = np.mean([m["centre_white"] for m in measured], 0)
    pooled: dict[int, list] = {}
    for m in measured:
        basis, coef = m["white_field"]
        for pid, v in m["patches"].items():
            c = _centres([patches[pid]])
            pooled.setdefault(pid, []).append(v * w_ref / (basis(c) @ coef)[0])
    colour_ids = [pid for pid, p in patches.items() if p["kind"] in ("cube", "grey", "primary")]
    present = [pid for pid in colour_ids if pid in pooled]
    clipped_any = {pid for m in measured for pid in m["clipped"]}
    if len(present) < 40:
        raise PhysicalError(f"only {len(present)} of {len(colour_ids)} colour patches are readable in the photos: "
                            "photograph the whole chart, evenly lit, not over- or under-exposed")
    rng = np.random.default_rng(SPLIT_SEED)
    held = set(rng.choice(sorted(colour_ids), int(round(HELDOUT_FRACTION * len(colour_ids))), replace=False).tolist())
    train = [pid for pid in present if pid not in held]
    test = [pid for pid in present if pid in held]
    digital = np.array([patches[pid]["rgb"] for pid in train], np.float64)
    captured = np.array([np.mean(pooled[pid], 0) for pid in train])
    whites = [np.mean(pooled[pid], 0) for pid, p in patches.items() if p["kind"] == "white" and pid in pooled]
    # neutral patches of the training set + paper white give the tone curves
    neutral = (digital[:, 0] == digital[:, 1]) & (digital[:, 1] == digital[:, 2])
    nd = np.concatenate([digital[neutral, 0], np.full(len(whites), 255.0)])
    nc = np.concatenate([captured[neutral], np.array(whites).reshape(-1, 3)])

    def tone_fit(mask):
        sel = np.concatenate([mask[neutral], np.ones(len(whites), bool)])
        return Tone.fit(nd[sel], nc[sel])

    (model, degree), cv = _choose(digital, captured, tone_fit, rng)
    tone = tone_fit(np.ones(len(digital), bool))
    cm = ColourModel.fit(model, digital, captured, tone, degree or 2)
    test_d = np.array([patches[pid]["rgb"] for pid in test], np.float64)
    test_c = np.array([np.mean(pooled[pid], 0) for pid in test])
    de = delta_e(cm(test_d), test_c) if len(test) else np.array([np.nan])
    # blur: median over edges (pixel-centre ESF: no resampling of ours adds to it)
    edges = [e for m in measured for e in m["edges"]]
    sig = np.array([e["sigma_mm"] for e in edges]) if edges else np.array([np.nan])
    blur = {"model": "gaussian", "sigma_mm": _r(np.median(sig)), "n_edges": len(edges),
            "sigma_x_mm": _r(np.median([e["sigma_mm"] for e in edges if e["axis"] == "x"] or [np.nan])),
            "sigma_y_mm": _r(np.median([e["sigma_mm"] for e in edges if e["axis"] == "y"] or [np.nan])),
            "spread_mm": [_r(np.percentile(sig, 10)), _r(np.percentile(sig, 90))],
            "px_per_mm_seen": _r(np.median([e["px_per_mm"] for e in edges])) if edges else None,
            "note": "total print + camera blur in page mm, as seen at the calibration distance"}
    qs = [m["quality"] for m in measured if m["quality"] is not None]
    quality = int(np.median(qs)) if qs else None
    noise = _fit_noise(spec, measured, quality)
    white = cm(np.array([[255.0, 255.0, 255.0]]))[0]
    # gamut: every measured colour, relative to paper white (relative colorimetric), in Lab
    allc = np.array([np.mean(pooled[pid], 0) for pid in present])
    gamut = to_lab(np.clip(allc / np.maximum(white, 1) * 255.0, 0, 255))
    lights = [m["light"] for m in measured]
    return {
        "schema": PROFILE_SCHEMA, "kind": PROFILE_KIND,
        "chart": {"name": spec["chart"], "version": spec["version"], "id": spec["chart_id"],
                  "paper": spec["paper"]["name"]},
        "colour": {**cm.as_dict(), "chosen_by": "5-fold cross-validation on the training patches (mean ΔE00)",
                   "cv_mean_de00": {k: round(v, 3) for k, v in cv.items()},
                   "reference": "captured values divided by each photo's paper-white field, times the photos' mean "
                                "paper white at the frame centre (light.centre_rgb)"},
        "white_rgb": [round(float(v), 3) for v in white],
        "blur": blur, "noise": noise,
        "jpeg": {"quality": quality, "per_photo": qs, "source": "IJG tables nearest to the photos' quantisation tables"},
        "light": {"falloff_min": _r(min(li["falloff"] for li in lights)),
                  "falloff_max": _r(max(li["falloff"] for li in lights)),
                  "centre_rgb": [round(float(v), 2) for v in w_ref],
                  "centre_spread": _r(float(np.ptp([np.mean(li["centre_rgb"]) for li in lights]) / np.mean(w_ref))),
                  "note": "falloff: 1 − darkest / brightest paper white over the patch area, per photo; "
                          "centre_rgb: the photos' mean paper white at the frame centre, the light the colour "
                          "transform is under (simulate --profile and the channel draw exposure relative to it); "
                          "centre_spread: (brightest − darkest) / mean of that over the photos"},
        "heldout": {"n": len(test), "mean_de00": _r(np.mean(de)), "p95_de00": _r(np.percentile(de, 95)),
                    "max_de00": _r(np.max(de)), "fraction": HELDOUT_FRACTION, "seed": SPLIT_SEED},
        "patches": {"colour": len(colour_ids), "present": len(present), "train": len(train), "heldout": len(test),
                    "clipped_excluded": sum(len(m["clipped"]) for m in measured),
                    "clipped_patches": len(clipped_any),
                    "missing": sum(len(m["missing"]) for m in measured)},
        "photos": per_photo,
        "gamut_lab": gamut.round(3).tolist(),
    }


def _r(x, n=4):
    x = float(x)
    return None if not math.isfinite(x) else round(x, n)


def _centres(ps) -> np.ndarray:
    return np.array([[(p["rect_mm"][0] + p["rect_mm"][2]) / 2, (p["rect_mm"][1] + p["rect_mm"][3]) / 2] for p in ps])


def _fit_noise(spec, measured, quality) -> dict:
    from scipy.optimize import nnls

    rows = []
    for pid in sorted({pid for m in measured for pid in m["flats"]}):
        got = [m["flats"][pid] for m in measured if pid in m["flats"]]
        level = np.mean([g["level"] for g in got], 0)
        s_out = np.sqrt(np.mean([g["sigma"] ** 2 for g in got], 0))
        s_in, posed = _sigma_before_jpeg(level, s_out, quality)
        rows.append((level, s_out, s_in, posed))
    if not rows:
        return {"model": "variance = shot·v + read²", "shot": None, "read": None, "levels": []}
    v = np.concatenate([r[0] for r in rows])
    s = np.concatenate([r[2] for r in rows])
    posed = np.concatenate([r[3] for r in rows])
    ok = posed & (v > 3 * s + 2) & (v < 253 - 3 * s)   # noise clipped at 0 or 255 reads too low
    if ok.sum() < 2:
        ok = (v > 4) & (v < 250)
    A = np.column_stack([v[ok], np.ones(ok.sum())])
    (shot, read2), _ = nnls(A / np.maximum(s[ok, None], 0.5), s[ok] ** 2 / np.maximum(s[ok], 0.5))
    return {"model": "variance = shot·v + read² per photo pixel before JPEG, v in 0..255",
            "shot": _r(shot), "read": _r(math.sqrt(read2)),
            "levels": [{"level_rgb": [round(float(x), 2) for x in r[0]], "sigma_after_jpeg": [round(float(x), 3) for x in r[1]],
                        "sigma": [round(float(x), 3) for x in r[2]], "used": [bool(x) for x in
                                                                             ok[3 * i:3 * i + 3]]}
                       for i, r in enumerate(rows)]}


def report_lines(profile: dict) -> list[str]:
    h, b, n, p = profile["heldout"], profile["blur"], profile["noise"], profile["patches"]
    c = profile["colour"]
    name = c["model"] + (f" degree {c['degree']}" if c.get("degree") else "")
    used = sum(ph.get("status") == "used" for ph in profile["photos"])
    return [
        f"fitted on {used} photo(s): {p['present']} of {p['colour']} colour patches present, "
        f"{p['clipped_excluded']} clipped patch readings excluded",
        f"colour: {name} (cross-validated ΔE00 " +
        ", ".join(f"{k} {v:.2f}" for k, v in c["cv_mean_de00"].items()) + ")",
        f"held-out patches ({h['n']}): CIEDE2000 mean {h['mean_de00']:.2f}, 95th percentile {h['p95_de00']:.2f}",
        f"blur σ {b['sigma_mm']} mm ({b['n_edges']} edges); noise σ² = {n['shot']}·v + {n['read']}²; "
        f"JPEG quality {profile['jpeg']['quality']}; light fall-off {profile['light']['falloff_min']:.1%}–"
        f"{profile['light']['falloff_max']:.1%}",
    ] + ([f"light: paper white at the frame centre {', '.join(f'{v:.0f}' for v in li['centre_rgb'])} (RGB; "
          f"photos {li['centre_spread']:.1%} apart): simulate --profile draws exposure relative to it"]
         if (li := profile["light"]).get("centre_rgb") else [])


def write_profile(profile: dict, path) -> Path:
    Profile.model_validate(profile)
    try:
        atomic_write_json(path, profile)
    except OSError as exc:
        raise PhysicalError(f"cannot write the profile to {path}: {exc.strerror or exc}") from None
    return Path(path)


