"""Print-and-photograph simulator: the run's real PDF → synthetic phone photos.

`physical simulate` stands in for a printer and a phone when none is at hand (and in every
test). It renders the run's PDF with pypdfium2 (never the PNGs directly), so the photos show
exactly what the user would print: the markers, the scale bar, the images at their printed size.

Pipeline per page, then per photo (parameters drawn from a preset's ranges with a seed):

printer (once per page: every photo of a page shows the same printed sheet)
    embedded PNGs drawn as printer-pixel blocks (no smoothing), reduced saturation and gamut,
    dot gain as a tone curve (midtones darker), paper white below 255 with a slight tint,
    black ink above 0, a slight ink blur (in millimetres).
phone camera
    a pinhole camera held by hand: tilt up to ~30° (typical) towards any direction, any in-plane
    rotation, the page spanning 50-90 % of the frame, focal length of a phone's main camera
    (about 70° field of view); mild radial lens distortion; uneven light (a gradient) and
    vignetting; a white-balance error; defocus (Gaussian) and motion blur (a line); signal
    dependent shot noise plus read noise; JPEG at phone quality; 4:3 frame (12 MP by default);
    held in portrait or landscape, sometimes stored with an EXIF orientation tag instead of
    rotated pixels.

The page is warped into the photo with one resampling: a remap whose map combines the lens
distortion and the camera homography (computed on a coarse grid and interpolated, which is
exact to ~0.02 px on the page because both are smooth). The page is rendered at just the resolution the
sharpest part of any photo of it needs, so nothing larger than the page render and the photo
is ever held.

Coordinates (docs/internals.md): page millimetres from the top-left corner, y down; photo pixels
with the top-left pixel's top-left corner at (0, 0), pixel centres at integer + 0.5. Ground truth
is stored in the photo as displayed (EXIF orientation applied), which is how ingest reads it.

Ground truth goes to captures/<run>/simulated.json; `page_to_photo` maps page millimetres to photo
pixels with it (the homography, then the lens distortion)::

    {"schema": 1, "run", "pdf_sha256", "layout_sha256", "preset", "seed", "photos_per_page",
     "resolution": [long, short], "presets": {name: ranges}, "coordinates": "…",
     "pages": [{"page", "size_mm", "render_dpi", "printer": {gamma, paper_white_bgr, black,
                saturation, ink_blur_mm}}],
     "photos": [{"file": "photos/sim-p01-1.jpg", "sha256", "page", "size": [w, h] as displayed,
                 "exif_orientation", "homography_mm_to_px": 3x3 (page mm → undistorted px),
                 "distortion": {"model", "k1", "k2", "centre", "radius"}, "camera": {all drawn values},
                 "slots": [{"slot", "image_id", "variant", "corners_px": 4x2 (TL, TR, BR, BL),
                            "image_in_frame", "markers_in_frame", "markers", "fully_visible"}]}]}
"""
from __future__ import annotations

import io
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
from PIL import Image

from physical import geometry, records
from physical.errors import PhysicalError
from physical.presets import PRESETS
from physical.workspace import (Workspace, atomic_write_bytes, remove_inside, run_locked,
                                sha256_bytes, sha256_file)

MM_PER_INCH = geometry.MM_PER_INCH
PT_PER_INCH = 72.0
REFERENCE_LONG_SIDE = 4000  # blur lengths in the presets are in pixels of a 4000-pixel-wide photo
DEFAULT_RESOLUTION = (4000, 3000)
MAX_RENDER_DPI = 1200

# The preset table (ranges drawn per photo / per page) is shared with the EOT channel.
PORTRAIT_PROBABILITY = 0.6   # how often the phone is held upright
EXIF_PROBABILITY = 0.3       # how often the camera stores sensor pixels plus an orientation tag
ALIGNED_PROBABILITY = 0.7    # how often the sheet is roughly squared up with the frame ...
ALIGNED_ROLL_DEG = 15        # ... within this many degrees of a multiple of 90°


def _uniform(rng: np.random.Generator, lohi: tuple[float, float]) -> float:
    lo, hi = lohi
    return float(lo + (hi - lo) * rng.random())


# --------------------------------------------------------------------------------------------
# Parameters


def draw_printer(rng: np.random.Generator, preset: str) -> dict:
    """Printer parameters for one printed page."""
    p = _preset(preset)
    white = _uniform(rng, p["paper_white"])
    tint = rng.uniform(-0.015, 0.015, size=3)  # paper is never neutral: slightly warm or blue
    return {
        "gamma": _uniform(rng, p["gamma"]),
        "paper_white_bgr": [float(np.clip(white + t, 0.5, 1.0)) for t in tint],
        "black": _uniform(rng, p["black"]),
        "saturation": _uniform(rng, p["saturation"]),
        "ink_blur_mm": _uniform(rng, p["ink_blur_mm"]),
    }


def draw_camera(rng: np.random.Generator, preset: str) -> dict:
    """Camera parameters for one photo (blur lengths still in 4000-pixel-photo units)."""
    p = _preset(preset)
    portrait = bool(rng.random() < PORTRAIT_PROBABILITY)
    if rng.random() < EXIF_PROBABILITY:
        exif = int(rng.choice([6, 8])) if portrait else int(rng.choice([1, 3], p=[0.3, 0.7]))
    else:
        exif = 1
    wb = [_uniform(rng, p["white_balance"]) for _ in range(3)]
    return {
        "portrait": portrait, "exif_orientation": exif,
        "focal": _uniform(rng, p["focal"]),  # focal length / long side of the frame
        "tilt_deg": _uniform(rng, p["tilt_deg"]), "tilt_azimuth_deg": _uniform(rng, (0, 360)),
        # any in-plane rotation, but people mostly square the phone up with the sheet
        "roll_deg": (float(90 * rng.integers(4) + rng.uniform(-ALIGNED_ROLL_DEG, ALIGNED_ROLL_DEG))
                     if rng.random() < ALIGNED_PROBABILITY else _uniform(rng, (0, 360))) % 360,
        "fill": _uniform(rng, p["fill"]),
        "position": [_uniform(rng, p["position"]), _uniform(rng, p["position"])],
        "k1": _uniform(rng, p["k1"]), "k2": 0.0,
        "defocus_px": _uniform(rng, p["defocus_px"]),
        "motion_px": _uniform(rng, p["motion_px"]), "motion_angle_deg": _uniform(rng, (0, 180)),
        "exposure": _uniform(rng, p["exposure"]),
        "gradient": _uniform(rng, p["gradient"]), "gradient_angle_deg": _uniform(rng, (0, 360)),
        "vignetting": _uniform(rng, p["vignetting"]),
        "white_balance_bgr": [1.0 + w for w in wb],
        "shot_noise": _uniform(rng, p["shot_noise"]), "read_noise": _uniform(rng, p["read_noise"]),
        "jpeg_quality": int(round(_uniform(rng, p["jpeg_quality"]))),
        "background_bgr": [int(v) for v in rng.integers(30, 140, size=3)],
    }


def _preset(name: str | dict) -> dict:
    if isinstance(name, dict):  # a ranges table of its own (e.g. a calibration profile's)
        return name
    if name not in PRESETS:
        raise PhysicalError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


# --------------------------------------------------------------------------------------------
# Geometry


def camera_homography(page_mm: tuple[float, float], frame: tuple[int, int], cam: dict) -> np.ndarray:
    """Homography page mm → photo px (undistorted, pixel-corner convention) for a pinhole camera.

    The camera looks at the page centre from a direction tilted by `tilt_deg` towards
    `tilt_azimuth_deg`, rolled by `roll_deg`; its distance is chosen so that the page's bounding
    box spans `fill` of the frame along the tighter axis, and the box is then placed at
    `position` (0..1 per axis) within the free space of the frame.
    """
    pw, ph = page_mm
    w, h = frame
    f = cam["focal"] * max(w, h)
    K = np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1.0]])
    az = math.radians(cam["tilt_azimuth_deg"])
    R_tilt, _ = cv2.Rodrigues(np.array([math.cos(az), math.sin(az), 0.0]) * math.radians(cam["tilt_deg"]))
    roll = math.radians(cam["roll_deg"])
    R_roll = np.array([[math.cos(roll), -math.sin(roll), 0], [math.sin(roll), math.cos(roll), 0], [0, 0, 1.0]])
    R = R_roll @ R_tilt
    centre = np.array([[1, 0, -pw / 2], [0, 1, -ph / 2], [0, 0, 1.0]])
    corners = np.array([[0, 0], [pw, 0], [pw, ph], [0, ph]], dtype=np.float64)

    def homography(d):
        return K @ np.column_stack([R[:, 0], R[:, 1], [0, 0, d]]) @ centre

    d = f * max(pw, ph) / (cam["fill"] * min(w, h))
    for _ in range(6):  # perspective makes the extent not exactly ∝ 1/d: a few fixed-point steps
        box = geometry.map_points(homography(d), corners)
        span = max((box[:, 0].max() - box[:, 0].min()) / w, (box[:, 1].max() - box[:, 1].min()) / h)
        d *= span / cam["fill"]
    H = homography(d)
    box = geometry.map_points(H, corners)
    lo, hi = box.min(axis=0), box.max(axis=0)
    free = np.array([w, h]) - (hi - lo)
    target_lo = np.asarray(cam["position"]) * free
    shift = target_lo - lo
    T = np.array([[1, 0, shift[0]], [0, 1, shift[1]], [0, 0, 1.0]])
    H = T @ H
    return H / H[2, 2]


_project = geometry.map_points   # the name tests and callers use


def distortion_of(frame: tuple[int, int], cam: dict) -> dict:
    w, h = frame
    return {"model": "radial, on distorted coordinates: p_u = c + (p_d - c) (1 + k1 r^2 + k2 r^4), "
                     "r = |p_d - c| / radius",
            "k1": cam["k1"], "k2": cam["k2"], "centre": [w / 2, h / 2], "radius": math.hypot(w, h) / 2}


def undistort(points_px: np.ndarray, dist: dict) -> np.ndarray:
    """Photo (distorted) px → ideal pinhole px. Exact in this direction (the model's own)."""
    p = np.asarray(points_px, dtype=np.float64)
    c = np.asarray(dist["centre"])
    d = (p - c) / dist["radius"]
    r2 = (d ** 2).sum(axis=-1, keepdims=True)
    return c + (p - c) * (1 + dist["k1"] * r2 + dist["k2"] * r2 ** 2)


def distort(points_px: np.ndarray, dist: dict) -> np.ndarray:
    """Ideal pinhole px → photo px: Newton on the radius (monotone for the presets' |k|)."""
    p = np.asarray(points_px, dtype=np.float64)
    c = np.asarray(dist["centre"])
    R, k1, k2 = dist["radius"], dist["k1"], dist["k2"]
    ru = np.linalg.norm(p - c, axis=-1) / R
    rd = ru.copy()
    for _ in range(20):
        g = rd * (1 + k1 * rd ** 2 + k2 * rd ** 4) - ru
        dg = 1 + 3 * k1 * rd ** 2 + 5 * k2 * rd ** 4
        rd = rd - g / dg
    scale = np.where(ru > 0, rd / np.maximum(ru, 1e-300), 1.0)
    return c + (p - c) * scale[..., None]


def page_to_photo(points_mm, truth: dict) -> np.ndarray:
    """Page millimetres → photo pixels (as displayed) with a photo's ground truth from simulated.json."""
    H = np.asarray(truth["homography_mm_to_px"], dtype=np.float64)
    return distort(geometry.map_points(H, points_mm), truth["distortion"])


def _warp_maps(H: np.ndarray, dist: dict, frame: tuple[int, int], px_per_mm: tuple[float, float],
               step: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """remap maps: photo pixel index → page-render pixel index. Computed exactly on a grid every
    `step` pixels (with one grid cell of margin) and interpolated bilinearly (cv2.resize's
    half-pixel alignment; the margin keeps every photo pixel between real grid samples)."""
    w, h = frame
    cw, ch = math.ceil(w / step) + 2, math.ceil(h / step) + 2
    xs = (np.arange(cw) - 1) * step + (step - 1) / 2
    ys = (np.arange(ch) - 1) * step + (step - 1) / 2
    X, Y = np.meshgrid(geometry.from_opencv(xs), geometry.from_opencv(ys))  # index → corner convention
    pu = undistort(np.stack([X, Y], axis=-1).reshape(-1, 2), dist)
    mm = geometry.map_points(np.linalg.inv(H), pu)
    mx = geometry.to_opencv(mm[:, 0] * px_per_mm[0]).reshape(ch, cw).astype(np.float32)
    my = geometry.to_opencv(mm[:, 1] * px_per_mm[1]).reshape(ch, cw).astype(np.float32)
    size = (cw * step, ch * step)
    mx = cv2.resize(mx, size, interpolation=cv2.INTER_LINEAR)[step:step + h, step:step + w]
    my = cv2.resize(my, size, interpolation=cv2.INTER_LINEAR)[step:step + h, step:step + w]
    return mx, my


def max_scale(H: np.ndarray, page_mm: tuple[float, float], n: int = 9) -> float:
    """Largest photo pixels per page millimetre of H over the page (checked on an n×n grid)."""
    pw, ph = page_mm
    g = np.stack(np.meshgrid(np.linspace(0, pw, n), np.linspace(0, ph, n)), -1).reshape(-1, 2)
    eps = 0.5
    a, bx, by = geometry.map_points(H, g), geometry.map_points(H, g + [eps, 0]), geometry.map_points(H, g + [0, eps])
    return float(max(np.linalg.norm(bx - a, axis=1).max(), np.linalg.norm(by - a, axis=1).max()) / eps)


# --------------------------------------------------------------------------------------------
# Printer and camera


def render_pdf_page(pdf, index: int, dpi: float) -> tuple[np.ndarray, tuple[float, float]]:
    """Render page `index` (0-based) as BGR uint8; returns it with its (x, y) pixels per mm.

    Embedded images are drawn without smoothing, as printer-pixel blocks, like a laser print."""
    page = pdf[index]
    w_pt, h_pt = page.get_size()
    bitmap = page.render(scale=dpi / PT_PER_INCH, no_smoothimage=True, fill_color=(255, 255, 255, 255))
    arr = np.array(bitmap.to_numpy()[..., :3], copy=True)  # BGR
    bitmap.close()
    page.close()
    px_per_mm = (arr.shape[1] / (w_pt / PT_PER_INCH * MM_PER_INCH), arr.shape[0] / (h_pt / PT_PER_INCH * MM_PER_INCH))
    return arr, px_per_mm


def print_page(page_bgr: np.ndarray, px_per_mm: float, printer: dict) -> np.ndarray:
    """What the printed sheet looks like under neutral white light (BGR uint8)."""
    if printer.get("model") == "profile":   # a calibration profile's printer (physical/calibrate.py)
        from physical.calibrate import print_profiled

        return print_profiled(page_bgr, px_per_mm, printer)
    sat = printer["saturation"]
    grey = cv2.cvtColor(page_bgr, cv2.COLOR_BGR2GRAY)
    out = cv2.addWeighted(page_bgr, sat, cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR), 1 - sat, 0)
    x = np.arange(256) / 255.0
    black = printer["black"]
    channels = []
    for c, white in enumerate(printer["paper_white_bgr"]):
        lut = (black + (white - black) * x ** printer["gamma"]) * 255.0
        channels.append(cv2.LUT(out[..., c], np.clip(np.rint(lut), 0, 255).astype(np.uint8)))
    out = cv2.merge(channels)
    sigma = printer["ink_blur_mm"] * px_per_mm
    if sigma >= 0.2:
        out = cv2.GaussianBlur(out, (0, 0), sigma)
    return out


def photograph(printed: np.ndarray, px_per_mm: tuple[float, float], H: np.ndarray, dist: dict,
               frame: tuple[int, int], cam: dict, rng: np.random.Generator) -> np.ndarray:
    """The photo as displayed (BGR uint8, frame = (w, h)) of a printed page."""
    w, h = frame
    mx, my = _warp_maps(H, dist, frame, px_per_mm)
    img = cv2.remap(printed, mx, my, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                    borderValue=tuple(int(v) for v in cam["background_bgr"]))
    del mx, my
    unit = max(w, h) / REFERENCE_LONG_SIDE
    sigma = cam["defocus_px"] * unit
    if sigma >= 0.15:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    length = cam["motion_px"] * unit
    if length >= 1.0:
        img = cv2.filter2D(img, -1, _line_kernel(length, cam["motion_angle_deg"]))
    _light_and_noise(img, cam, int(rng.integers(2 ** 31)))
    return img


def _line_kernel(length: float, angle_deg: float) -> np.ndarray:
    """A centred motion-blur line of `length` px (odd size): points spread evenly along the
    line and splatted bilinearly, so its centroid is exactly the centre and it shifts nothing."""
    m = 2 * int(math.ceil(length / 2)) + 1
    c = (m - 1) / 2
    t = np.linspace(-length / 2, length / 2, max(16, int(length * 16)) | 1)
    x = c + t * math.cos(math.radians(angle_deg))
    y = c + t * math.sin(math.radians(angle_deg))
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    k = np.zeros((m + 1, m + 1), np.float64)
    for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        np.add.at(k, (y0 + dy, x0 + dx), w)
    k = k[:m, :m]
    return (k / k.sum()).astype(np.float32)


def _light_and_noise(img: np.ndarray, cam: dict, seed: int, rows: int = 512) -> None:
    """In place: exposure × light gradient × vignetting × white balance, then shot + read noise
    (variance = shot_noise · value + read_noise²). Row strips keep the float copies small."""
    h, w = img.shape[:2]
    cx, cy, R = w / 2, h / 2, math.hypot(w, h) / 2
    ga = math.radians(cam["gradient_angle_deg"])
    gx, gy = math.cos(ga) * cam["gradient"] / R, math.sin(ga) * cam["gradient"] / R
    wb = np.asarray(cam["white_balance_bgr"], np.float64) * cam["exposure"]
    xs = (np.arange(w, dtype=np.float32) + np.float32(0.5 - cx))[None, :]
    x2 = xs * xs
    v = np.float32(cam["vignetting"] / R ** 2)
    cv2.setRNGSeed(int(seed) % (2 ** 31))
    noise = None
    for y0 in range(0, h, rows):
        y1 = min(h, y0 + rows)
        ys = (np.arange(y0, y1, dtype=np.float32) + np.float32(0.5 - cy))[:, None]
        gain = (1 + np.float32(gx) * xs + np.float32(gy) * ys) * (1 - v * (x2 + ys * ys))
        np.maximum(gain, np.float32(0.05), out=gain)
        gain3 = cv2.merge([gain * np.float32(g) for g in wb])
        blk = cv2.multiply(img[y0:y1], gain3, dtype=cv2.CV_32F)
        std = cv2.sqrt(blk * np.float32(cam["shot_noise"]) + np.float32(cam["read_noise"] ** 2))
        if noise is None or noise.shape != blk.shape:
            noise = np.empty_like(blk)
        cv2.randn(noise, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
        blk += std * noise
        img[y0:y1] = cv2.convertScaleAbs(np.maximum(blk, 0))  # rounds and saturates at 255


def encode_jpeg(displayed_bgr: np.ndarray, quality: int, exif_orientation: int = 1) -> bytes:
    """JPEG bytes (4:2:0, like a phone); with orientation ≠ 1 the pixels are stored rotated and the
    EXIF tag says how to turn them back."""
    stored = np.ascontiguousarray(geometry.to_stored(displayed_bgr, exif_orientation))
    im = Image.fromarray(cv2.cvtColor(stored, cv2.COLOR_BGR2RGB))
    exif = Image.Exif()
    exif[0x0112] = exif_orientation
    exif[0x010F] = "physical"          # Make
    exif[0x0110] = "simulated phone"   # Model
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=int(quality), subsampling="4:2:0", exif=exif.tobytes())
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# Layout geometry (layout.json, written by physical/layout.py)


@dataclass
class SlotGeometry:
    page: int
    slot: int
    image_id: str
    variant: str
    rect_mm: tuple[float, float, float, float]   # x0, y0, x1, y1
    markers_mm: list[np.ndarray]                  # each (4, 2)


def layout_slots(layout: dict) -> list[SlotGeometry]:
    out = []
    for page in layout["pages"]:
        for slot in page["slots"]:
            out.append(SlotGeometry(
                page=int(page["page"]), slot=int(slot["slot"]), image_id=slot["image_id"],
                variant=slot["variant"], rect_mm=tuple(float(v) for v in slot["rect_mm"]),
                markers_mm=[np.asarray(m["corners_mm"], np.float64) for m in slot.get("markers", [])]))
    return out


def slot_truth(slots: list[SlotGeometry], truth: dict) -> list[dict]:
    """Per slot of the photographed page: the image corners in the photo and what is in frame."""
    frame = tuple(truth["size"])
    out = []
    for s in slots:
        corners = page_to_photo(geometry.rect_corners(s.rect_mm), truth)
        image_in = geometry.inside(page_to_photo(geometry.rect_outline(s.rect_mm, 8), truth), frame)
        markers_in = sum(geometry.inside(page_to_photo(m, truth), frame, margin=1.0) for m in s.markers_mm)
        out.append({"slot": s.slot, "image_id": s.image_id, "variant": s.variant,
                    "corners_px": corners.round(3).tolist(), "image_in_frame": image_in,
                    "markers_in_frame": int(markers_in), "markers": len(s.markers_mm),
                    "fully_visible": bool(image_in and markers_in == len(s.markers_mm))})
    return out


# --------------------------------------------------------------------------------------------
# The stage


def parse_resolution(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().replace("×", "x").split("x"))
    except ValueError:
        raise PhysicalError(f"invalid resolution {text!r}: write WIDTHxHEIGHT, e.g. 4000x3000") from None
    if not (64 <= min(w, h) and max(w, h) <= 20000):
        raise PhysicalError(f"invalid resolution {text!r}: each side must be 64 … 20000 pixels")
    return max(w, h), min(w, h)


@run_locked("simulate")
def simulate_run(ws: Workspace, run: str, *, preset: str = "typical", photos_per_page: int = 1,
                 seed: int = 0, resolution: tuple[int, int] = DEFAULT_RESOLUTION, force: bool = False,
                 pages: list[int] | None = None,
                 progress: Callable[[int], object] | None = None, profile=None) -> dict:
    """Simulate printing the run's PDF and photographing every page `photos_per_page` times.

    Writes captures/<run>/photos/sim-p<page>-<n>.jpg and captures/<run>/simulated.json (returned).
    `resolution` is (long side, short side) of the sensor; `progress(n)` is called per photo.

    --force replaces an earlier simulation without ever leaving less than it found: every option
    and input (seed, layout.json, the PDF and its pages, the earlier simulated.json's file list)
    is checked first, the new photos are made in a staging folder beside the old ones, and only
    then are the old photos removed (those simulated.json lists, and only inside the run) and the
    new ones moved in. Ingest notices the changed photos itself (a stage deletes only its own outputs).

    `profile` (a path or `calibrate.Profile`): the calibrated printer, colour, blur, noise and JPEG
    replace the preset's; geometry and light are still drawn from the preset, the exposure
    relative to its mean (the profile's colour holds the chart's light: profiles.profiled_camera).
    """
    import pypdfium2

    _preset(preset)
    profile_arg, profile_bytes = profile, None
    if profile is not None:
        from physical import calibrate

        if not isinstance(profile, calibrate.Profile):
            profile = calibrate.load_profile(profile_arg)   # a bad file: one line, before anything else
            profile_bytes = Path(profile_arg).read_bytes()    # the copy is the file itself: its sha256 is the profile's
        if profile_bytes is None:
            import json

            profile_bytes = json.dumps(profile.dump(), indent=1).encode()
    if photos_per_page < 1:
        raise PhysicalError("--photos-per-page must be at least 1")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise PhysicalError(f"--seed must be an integer 0 or more, got {seed!r}")
    pdf_path, layout_path = ws.pdf_path(run), ws.layout_path(run)
    for path in (pdf_path, layout_path):
        if not path.exists():
            raise PhysicalError(f"{path} does not exist: run `physical layout --run {run}` first")
    from physical.layout_history import ensure_pdf, read_layout

    layout = read_layout(layout_path, run)

    ensure_pdf(ws, run, layout)   # the PDF layout.json describes (restored after an interrupted layout)
    slots = layout_slots(layout)
    captures = ws.captures(run)
    sim_json = ws.simulated_path(run)
    old_files: list[str] = []
    if sim_json.exists():
        if not force:
            raise PhysicalError(f"{sim_json} exists: photos were already simulated for run {run!r} "
                                "(use --force to replace them)")
        previous = records.read(records.SIMULATED, ws, run)
        old_files = _previous_files(ws, run, previous.dump())
        if previous.profile is not None and previous.profile.file and ws.inside(run, ws.captures(run) / previous.profile.file):
            old_files.append(previous.profile.file)   # the earlier profile copy: replaced or removed below
    long_side, short_side = resolution
    rng = np.random.default_rng(seed)
    result = {"schema": 1, "run": run, "pdf_sha256": sha256_file(pdf_path),
              "layout_sha256": sha256_file(layout_path), "preset": preset, "seed": seed,
              "photos_per_page": photos_per_page, "resolution": [long_side, short_side],
              "presets": {preset: {k: list(v) for k, v in PRESETS[preset].items()}},
              "coordinates": "page mm from the top-left, y down → photo px as displayed "
                             "(EXIF applied), pixel corners at integers",
              "pages": [], "photos": []}
    if profile is not None:   # a copy stays with the run, for the report (checked by its sha256)
        result["profile"] = {"chart": profile.chart, "heldout": profile.heldout, "file": PROFILE_COPY,
                             "sha256": sha256_bytes(profile_bytes),
                             "source": None if isinstance(profile_arg, calibrate.Profile) else str(profile_arg)}
    try:
        pdf = pypdfium2.PdfDocument(str(pdf_path))
    except pypdfium2.PdfiumError as exc:
        raise PhysicalError(f"{pdf_path} cannot be read as a PDF ({exc}): "
                            f"run `physical layout --run {run} --force`") from None
    staging, made = None, False
    try:
        n_pages = len(pdf)
        page_numbers = pages or list(range(1, n_pages + 1))
        for page_no in page_numbers:
            if not 1 <= page_no <= n_pages:
                raise PhysicalError(f"page {page_no} is not in {pdf_path} ({n_pages} pages)")
        _remove_stale_staging(captures)
        captures.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=captures))
        _simulate_pages(pdf, page_numbers, slots, result, staging, rng, preset, photos_per_page,
                        (long_side, short_side), progress, profile)
        made = True
    except pypdfium2.PdfiumError as exc:
        raise PhysicalError(f"{pdf_path} cannot be rendered ({exc}): "
                            f"run `physical layout --run {run} --force`") from None
    except OSError as exc:
        if exc.filename is None:
            raise
        raise PhysicalError(f"cannot write {exc.filename}: {exc.strerror or exc}") from None
    finally:
        pdf.close()
        if staging is not None and not made:  # failed or interrupted: the old photos stay as they were
            shutil.rmtree(staging, ignore_errors=True)
    # Everything is made: now, and only now, replace the earlier simulation.
    new_files = {p["file"] for p in result["photos"]} | ({PROFILE_COPY} if profile is not None else set())
    for name in old_files:
        if name not in new_files:
            remove_inside(ws, run, captures, name)
    for name in sorted(new_files):
        (captures / name).parent.mkdir(parents=True, exist_ok=True)
        if name != PROFILE_COPY:
            os.replace(staging / name, captures / name)
    if profile is not None:
        atomic_write_bytes(captures / PROFILE_COPY, profile_bytes)
    records.write(records.SIMULATED, ws, run, result)
    shutil.rmtree(staging, ignore_errors=True)
    return result


STAGING_PREFIX = ".simulate-tmp-"
PROFILE_COPY = "profile.json"    # captures/<run>/: the profile simulate --profile used


def _remove_stale_staging(captures: Path) -> None:
    """Staging folders of an earlier simulate that was killed (ours, inside the run)."""
    if captures.is_dir():
        for old in captures.glob(STAGING_PREFIX + "*"):
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old, ignore_errors=True)


def _previous_files(ws: Workspace, run: str, previous) -> list[str]:
    """The photo files an earlier simulated.json lists, each checked to lie inside the run
    before anything is made or removed (a tampered file must not make --force delete elsewhere)."""
    photos = previous.get("photos") if isinstance(previous, dict) else None
    if not isinstance(photos, list):
        raise PhysicalError(f"{ws.captures(run) / 'simulated.json'} is not a simulate record: "
                            "move it away to simulate again")
    names = []
    for p in photos:
        name = p.get("file") if isinstance(p, dict) else None
        if not isinstance(name, str) or not name:
            raise PhysicalError(f"{ws.captures(run) / 'simulated.json'} lists a photo without a file name")
        if not ws.inside(run, ws.captures(run) / name):
            raise PhysicalError(f"{ws.captures(run) / 'simulated.json'} lists {name!r}, which is not inside "
                                f"run {run!r}: refusing to delete it (was the file edited?)")
        names.append(name)
    return names


def _simulate_pages(pdf, page_numbers, slots, result, out: Path, rng, preset, photos_per_page,
                    resolution, progress, profile=None) -> None:
    """Render, print and photograph every page; photos go to `out`/photos/, records to `result`.
    `profile`: a calibration profile's printer and camera replace the preset's draws (not geometry
    and light)."""
    long_side, short_side = resolution
    for page_no in page_numbers:
        w_pt, h_pt = pdf[page_no - 1].get_size()
        page_mm = (w_pt / PT_PER_INCH * MM_PER_INCH, h_pt / PT_PER_INCH * MM_PER_INCH)
        printer = draw_printer(rng, preset)
        if profile is not None:
            from physical import calibrate

            printer = calibrate.printer_overrides(profile)
        shots = []
        for n in range(1, photos_per_page + 1):
            cam = draw_camera(rng, preset)
            if profile is not None:   # the profile's camera; light drawn once (profiles.relative_exposure)
                cam = calibrate.profiled_camera(cam, profile, _preset(preset))
            frame = (short_side, long_side) if cam["portrait"] else (long_side, short_side)
            H = camera_homography(page_mm, frame, cam)
            shots.append((n, cam, frame, H, int(rng.integers(2 ** 63))))
        # Just enough resolution for the sharpest part of any photo of this page.
        need = max(max_scale(H, page_mm) for _, _, _, H, _ in shots) * MM_PER_INCH
        dpi = float(min(MAX_RENDER_DPI, max(72.0, math.ceil(need))))
        rendered, px_per_mm = render_pdf_page(pdf, page_no - 1, dpi)
        printed = print_page(rendered, float(np.mean(px_per_mm)), printer)
        del rendered
        result["pages"].append({"page": page_no, "size_mm": list(page_mm), "render_dpi": dpi,
                                "printer": printer})
        page_slots = [s for s in slots if s.page == page_no]
        for n, cam, frame, H, photo_seed in shots:
            dist = distortion_of(frame, cam)
            img = photograph(printed, px_per_mm, H, dist, frame, cam, np.random.default_rng(photo_seed))
            data = encode_jpeg(img, cam["jpeg_quality"], cam["exif_orientation"])
            del img
            name = f"photos/sim-p{page_no:02d}-{n}.jpg"
            atomic_write_bytes(out / name, data)
            truth = {"file": name, "sha256": sha256_bytes(data), "page": page_no,
                     "size": list(frame), "exif_orientation": cam["exif_orientation"],
                     "homography_mm_to_px": H.tolist(), "distortion": dist, "camera": cam}
            truth["slots"] = slot_truth(page_slots, truth)
            result["photos"].append(truth)
            if progress:
                progress(1)
        del printed


def summary_line(result: dict) -> str:
    photos = result["photos"]
    visible = sum(s["fully_visible"] for p in photos for s in p["slots"])
    total = sum(len(p["slots"]) for p in photos)
    return (f"simulated {len(photos)} photo(s) of {len(result['pages'])} page(s), preset "
            f"{result['preset']}, seed {result['seed']}, {result['resolution'][0]}x{result['resolution'][1]}: "
            f"{visible} of {total} printed images fully in frame with their markers")
