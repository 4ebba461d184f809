"""An office printer and a phone camera of this benchmark's own that photograph a run's PDF (issue 12).

    python benchmarks/pdf_camera.py PDF OUT_DIR [--photos-per-page 1] [--seed 0] [--set NAME=JSON ...]

Written blind: none of physical/channel*.py, presets.py, simulate.py, profiles.py, calibrate*.py,
benchmarks/unseen_camera.py or the docs on robustness/calibration was read. Every model and range
below comes from what real printers, papers, rooms and phone cameras do, so its photos test whether
examples crafted through the project's channel survive a print and a photo the channel never saw.

`photograph_pdf(pdf, out_dir, photos_per_page=1, seed=0, ranges=RANGES)` rasterises each page with
pdftoppm and, per page and photo, draws one printer and one phone from RANGES (seeded with
np.random.default_rng((seed, page, photo)), so a photo does not depend on the others):

* print: the driver's contone raster (300 dpi) → gamut compression, black-point compensation, grey
  component replacement, per-ink tone calibration for a nominal Yule-Nielsen factor (plus a residual
  mid-tone dot gain) → halftone at the engine's 600 dpi grid: laser = clustered-dot screens (rational
  tangent, 141-212 lpi, one angle per ink) with pulse-width modulated dot edges, inkjet = stochastic
  (blue-noise) dots with 2-4 drop levels → subtractive inks with unwanted absorptions (a gamut narrower
  than sRGB; black ink is not black) → toner / ink spread, light scattering in the paper (optical dot
  gain), paper white with a tint (brighteners → bluish, recycled → yellowish), fibre texture,
  sometimes banding; the printer's own scale, skew and offset on the sheet.
* scene: the sheet on a desk (wood, laminate, dark or white top), maybe curled at one edge, lit by
  a 2700-6500 K light (sometimes two; brighteners glow only as far as it has UV), unevenly: gradient,
  a soft shadow band, a weak glare blob.
* phone: 8-12 MP, portrait or landscape, 24-28 mm (sometimes 2x) lens, pose with 0-35 degree tilt,
  residual barrel distortion, lateral chromatic aberration, residual vignetting, depth-dependent
  defocus (thin lens), hand shake; raw through the sensor's own colour mixing and channel gains,
  exposure error, RGGB mosaic with shot and read noise, 10-bit; demosaic (bilinear / EA / VNG),
  partial auto white balance, colour matrix with a saturation boost, tone curve (sRGB, brightening,
  S-curve), local contrast, luma and chroma noise reduction, unsharp mask, JPEG 80-95; portrait
  photos sometimes stored as landscape pixels with an EXIF orientation tag. cv2's Bayer codes are
  named by the pattern's second row: an RGGB mosaic is COLOR_BayerRGGB2RGB (= COLOR_BayerBG2RGB),
  not COLOR_BayerRG2RGB, which swaps red and blue (checked on a synthetic mosaic).

8-12 MP photos take 4-8 s each on 2 shared cores (most of it the 600 dpi halftone of a whole A4 page).

Measured (eot_survival.py --presets pdfcam on kept runs: 40 photos, ε = 16, K = 8, phone channel;
seeds 1 and 2, 1 and 2 photos per page, lasers only, inkjets only): 120 of 120 printed images
recovered in every run; clean photo top-1 42-50 % against 68 % digital (the labels are fragile:
median digital top-1 probability 0.49; images above 0.5 keep most of their top-1, those below lose
it); targeted (924, 80 EOT steps) survival BIM 0 % in every run, EOT 61-71 % (95 % CIs ~45-83);
untargeted destruction BIM 33-44 %, EOT 0 %. EOT's targeted survival drops most with the pose
(tilt >= 15 degrees: 48 % vs 71 %; page < 70 % of the frame: 54 % vs 71 %), less with warm light
(57 % vs 68 %) and the printer (inkjet 61 %, laser 68 %).

Photos are written atomically as pageNN-K.jpg, the drawn parameters to the hidden .pdfcam.json
(ingest lists no hidden files). pdftoppm writes PPM here, not -png: the same pixels (checked on an
A4 page at 600 dpi), but PNG's zlib costs 6 of 7 s per page.
"""
from __future__ import annotations

import argparse
import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from physical.workspace import atomic_write_bytes, atomic_write_json  # noqa: E402

NAME = "pdfcam"

# name: (value, why). A value is (lo, hi) drawn uniformly (log-uniformly where the code says so),
# a probability, or a tuple of options. Pass a changed copy as `ranges` to pin a condition, e.g.
# {**RANGES, "laser_p": (1.0, "laser only")}.
RANGES: dict = {
    # printer
    "laser_p": (0.5, "office prints come from colour lasers and inkjets about equally"),
    "contone_dpi": ((300,), "drivers send images at 300 dpi contone: the PDF's 150 ppi images keep every pixel"),
    "laser_dpi": ((600,), "office colour lasers image at 600 dpi (1200 'class' modes are 600 dpi plus edge tricks)"),
    "laser_pwm_levels": ((3, 4), "laser pulse-width modulation: a dot's edge pixel is exposed in 2-3 partial widths"),
    "laser_screens": ((((3, 3), (4, 1), (1, 4), (4, 0)),          # K 45°/141, C 14°/146, M 76°/146, Y 0°/150 lpi
                       ((2, 2), (3, 1), (1, 3), (3, 0)),          # 45°/212, 18°/190, 72°/190, 0°/200 lpi
                       ((3, 2), (3, 1), (2, 3), (3, 0))),         # 34°/166, 18°/190, 56°/166, 0°/200 lpi
                      "rational-tangent clustered-dot screens K, C, M, Y at 600 dpi: 141-212 lpi, one angle per ink"),
    "inkjet_dpi": ((600,), "the inkjet's dot grid: office heads are 600 dpi native or finer (addressable 1200-4800)"),
    "inkjet_levels": ((2, 4), "drop sizes incl. none (at most 4); 300 dpi heads have at least 3 (variable drops)"),
    "toner_spread_um": ((15, 35), "toner scatter and fusing: laser dots have fuzzy edges (Gaussian sigma)"),
    "ink_spread_um": ((12, 35), "ink wicking into uncoated office paper (Gaussian sigma)"),
    "paper_scatter_um": ((30, 80), "light travels ~0.1 mm inside paper fibres: optical dot gain (Yule-Nielsen)"),
    "driver_n": ((1.3, 1.8), "the Yule-Nielsen n the driver's tone calibration assumes (plain-paper profiles)"),
    "dot_gain": ((-0.03, 0.10), "residual mid-tone gain after the driver's calibration (toner age, humidity, ink lot)"),
    "gcr": ((0.4, 1.0), "grey component replacement: how much of the neutral is printed with black"),
    "gamut_compress": ((0.0, 0.15), "the driver's perceptual intent pulls saturated colours in (chroma-proportional)"),
    "ink_density_sd": (0.08, "ink/toner density differs by cartridge and printer (sd of the log-density factor)"),
    "black_laser": ((0.03, 0.06), "solid black toner on plain paper: density 1.2-1.5"),
    "black_inkjet": ((0.05, 0.10), "pigment / dye black on uncoated paper: density 1.0-1.3"),
    "brightened_paper_p": (0.7, "most office paper carries optical brighteners; the rest is recycled or natural"),
    "paper_Y": ((0.80, 0.90), "diffuse reflectance of office paper (ISO brightness 85-100 incl. fluorescence)"),
    "paper_oba": ((0.03, 0.10), "brighteners' blue boost in daylight (UV); scaled by the light's uv below"),
    "paper_yellow": ((0.04, 0.12), "recycled / natural paper absorbs blue"),
    "paper_texture": ((0.004, 0.015), "fibre and formation noise of the sheet (sd of reflectance)"),
    "banding_p": (0.3, "banding is occasional: a worn drum or gear, a clogged or misaligned nozzle pass"),
    "banding_amp": ((0.01, 0.04), "density modulation of the bands"),
    "print_scale_sd": (0.002, "paper feed and fuser stretch (per axis)"),
    "fit_to_page_p": (0.1, "some people print with 'fit to page' on"),
    "fit_to_page": ((0.94, 0.97), "what fit-to-page does to an A4 page on A4 paper"),
    "print_skew_deg": ((-0.4, 0.4), "paper feed skew"),
    "print_offset_mm": ((-1.5, 1.5), "the engine's registration against the sheet's edges"),
    # scene
    "desk": (("wood", "laminate", "dark", "white"), "the desk or table top the sheet lies on"),
    "curl_p": (0.5, "a sheet from the printer (laser heat, inkjet moisture) curls at one edge"),
    "curl_mm": ((0.5, 4.0), "height that edge lifts toward the camera"),
    "cct_k": ((2700, 6500), "tungsten / warm LED to overcast daylight"),
    "tint_duv": ((-0.03, 0.03), "LED / fluorescent green-magenta tint (relative green gain)"),
    "uv_daylight": ((0.6, 1.0), "UV relative to daylight, lights of 5000 K and above (window, some fluorescents)"),
    "uv_indoor": ((0.1, 0.4), "UV of warm LED and tungsten light: brighteners barely glow"),
    "mixed_light_p": (0.25, "window daylight plus a lamp: the colour changes across the page"),
    "light_gradient": ((1.0, 1.6), "a lamp to one side: brightest / darkest edge of the page"),
    "shadow_p": (0.35, "the phone or hand casts a soft shadow band"),
    "shadow_depth": ((0.15, 0.55), "fraction of the light the shadow takes away"),
    "shadow_width_mm": ((30, 150), "width of the shadow band on the page"),
    "shadow_soft_mm": ((8, 40), "penumbra of a large, near light source"),
    "glare_p": (0.3, "a weak specular reflection of the lamp (matte paper: broad and low)"),
    "glare_peak": ((0.01, 0.08), "peak glare in units of the paper white"),
    "glare_radius": ((0.08, 0.25), "glare blob radius, fraction of the frame's long side"),
    # pose
    "tilt_deg": ((0.0, 35.0), "people aim roughly square to the page: density falls linearly to 0 at 35 degrees"),
    "near_axis_p": (0.8, "the phone square to the page (0/90/180/270 degrees) give or take a few degrees"),
    "near_axis_sd_deg": (4.0, "sd of the in-plane rotation around the axis"),
    "upright_p": (0.85, "page not upside down in the frame (near-axis photos)"),
    "match_orientation_p": (0.85, "portrait page in a portrait frame (or turned with a landscape frame)"),
    "fit": ((0.45, 0.97), "the page's extent in the frame's limiting direction: ~40-85 % of the width"),
    "cut_p": (0.1, "sometimes the page is framed so tight that a corner or edge leaves the frame"),
    "cut_fit": ((0.97, 1.04), "the page's extent then"),
    # phone camera
    "frame": (((4032, 3024), (4000, 3000), (3648, 2736), (3264, 2448)), "12, 12, 10, 8 MP 4:3 frames"),
    "portrait_p": (0.75, "pages are mostly photographed in portrait"),
    "exif_rotated_p": (0.4, "phones that store portrait photos as sensor-native landscape pixels + EXIF tag"),
    "focal_eq_mm": ((24.0, 28.0), "main camera, 35 mm equivalent"),
    "tele_p": (0.1, "some zoom 2x for a document"),
    "tele_eq_mm": ((48.0, 52.0), "2x zoom, 35 mm equivalent"),
    "crop_factor": ((4.5, 7.5), "1/1.3 inch to 1/2.5 inch sensors"),
    "f_number": ((1.5, 2.2), "phone main lenses are fixed-aperture and fast"),
    "focus_error": ((-0.04, 0.04), "autofocus lands a few % of the distance off the page centre"),
    "lens_sigma_px": ((0.4, 0.7), "diffraction + aberrations of a small lens (Gaussian sigma)"),
    "distortion_k1": ((-0.025, 0.0), "residual barrel after the ISP's distortion correction (at the corner)"),
    "lateral_ca_px": ((0.0, 1.0), "residual lateral chromatic aberration at the corner (red vs blue)"),
    "vignetting": ((0.0, 0.25), "residual corner falloff after lens-shading correction"),
    "shake_sd_px": (0.8, "hand shake left after OIS in a 1/30-1/120 s exposure (half-normal length of the blur line)"),
    "shake_max_px": (6.0, "a really blurred photo is retaken"),
    "exposure_target": ((0.55, 0.85), "where auto exposure puts the paper white in the raw (highlight headroom)"),
    "exposure_ev_sd": (0.2, "auto exposure error (sd, EV)"),
    "raw_sens_r": ((0.45, 0.65), "red channel's sensitivity relative to green under D65"),
    "raw_sens_b": ((0.55, 0.80), "blue channel's sensitivity relative to green under D65"),
    "sensor_purity": ((0.6, 0.8), "sensor colour filters overlap: raw is a desaturated mix of sRGB"),
    "full_well_e": ((3000, 30000), "electrons at raw white after multi-frame merging (log-uniform; indoor light)"),
    "read_noise_e": ((1.5, 4.0), "read noise, electrons"),
    "demosaic": (("bilinear", "ea", "vng"), "cv2's demosaicing algorithms"),
    "awb_adaptation": ((0.7, 1.0), "auto white balance corrects most, not all, of a warm or cool light"),
    "awb_error_sd": (0.02, "illuminant estimation error per channel"),
    "ccm_error_sd": (0.012, "the colour matrix is tuned on another unit of the sensor (output-side error; ΔE ~ 2-4)"),
    "saturation_boost": ((1.0, 1.15), "phones render colours a bit more saturated"),
    "brightening": ((1.0, 1.25), "the ISP's digital gain / global tone mapping brightens documents"),
    "s_curve": ((0.0, 0.35), "contrast S-curve of the phone's look"),
    "local_contrast": ((0.0, 0.3), "local tone mapping / 'clarity' (large-radius unsharp on luma)"),
    "luma_nr": ((0.2, 0.8), "edge-aware luma noise reduction strength"),
    "chroma_nr_px": ((1.0, 4.0), "chroma noise reduction (Gaussian sigma on Cb/Cr)"),
    "sharpen": ((0.3, 1.2), "unsharp mask amount"),
    "sharpen_px": ((0.7, 1.8), "unsharp mask sigma"),
    "jpeg_quality": ((80, 95), "phone camera apps store JPEG at quality ~80-95"),
    "chroma_444_p": (0.2, "some phones store 4:4:4, most 4:2:0"),
}

_SRGB_TO_Y = np.array([0.2126, 0.7152, 0.0722], np.float32)
_XYZ_TO_SRGB = np.array([[3.2406, -1.5372, -0.4986], [-0.9689, 1.8758, 0.0415], [0.0557, -0.2040, 1.0570]])
# solid inks / toners, linear reflectance relative to the paper in sRGB's R, G, B (unwanted absorptions
# included: cyan takes some green, magenta a lot of blue); K is set per printer
_INKS = {"C": (0.06, 0.36, 0.78), "M": (0.80, 0.06, 0.28), "Y": (0.92, 0.84, 0.05)}
_STEP = 8   # coarse grid of the geometry (frame sizes are multiples of 8)


class _Draw:
    def __init__(self, rng: np.random.Generator, ranges: dict):
        self.rng, self.ranges = rng, ranges

    def val(self, name):
        return self.ranges[name][0]

    def u(self, name) -> float:
        lo, hi = self.val(name)
        return float(self.rng.uniform(lo, hi))

    def logu(self, name) -> float:
        lo, hi = self.val(name)
        return float(np.exp(self.rng.uniform(np.log(lo), np.log(hi))))

    def p(self, name) -> bool:
        return bool(self.rng.random() < self.val(name))

    def pick(self, name):
        opts = self.val(name)
        return opts[int(self.rng.integers(len(opts)))]

    def normal(self, name) -> float:
        return float(self.rng.normal(0.0, self.val(name)))


def _srgb_decode(v):
    v = np.asarray(v, np.float64)
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def _srgb_encode(x):
    x = np.clip(np.asarray(x, np.float64), 0, 1)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055)


def light_rgb(cct: float) -> np.ndarray:
    """Linear sRGB of a Planckian light (Kang et al. 2002 approximation of its xy), green = 1."""
    t = float(cct)
    if t < 4000:
        x = -0.2661239e9 / t ** 3 - 0.2343589e6 / t ** 2 + 0.8776956e3 / t + 0.179910
    else:
        x = -3.0258469e9 / t ** 3 + 2.1070379e6 / t ** 2 + 0.2226347e3 / t + 0.240390
    if t < 2222:
        y = -1.1063814 * x ** 3 - 1.34811020 * x ** 2 + 2.18555832 * x - 0.20219683
    elif t < 4000:
        y = -0.9549476 * x ** 3 - 1.37418593 * x ** 2 + 2.09137015 * x - 0.16748867
    else:
        y = 3.0817580 * x ** 3 - 5.87338670 * x ** 2 + 3.75112997 * x - 0.37001483
    rgb = _XYZ_TO_SRGB @ np.array([x / y, 1.0, (1 - x - y) / y])
    return rgb / rgb[1]


# ---------------------------------------------------------------------------------------- PDF

def pdf_info(pdf_path) -> tuple[int, tuple[float, float]]:
    """(pages, (width, height) of the first page in mm), by one pdfinfo call; ValueError if it is no PDF."""
    run = subprocess.run(["pdfinfo", str(pdf_path)], capture_output=True, text=True)
    if run.returncode != 0:
        raise ValueError(f"{pdf_path}: not a readable PDF ({(run.stderr.strip().splitlines() or ['pdfinfo failed'])[-1]})")
    lines = run.stdout.splitlines()
    pages = int(next(line.split()[1] for line in lines if line.startswith("Pages:")))
    size = next(line for line in lines if line.startswith("Page size:"))
    w, h = (float(v) for v in size.split(":", 1)[1].split()[0:3:2])
    return pages, (w / 72 * 25.4, h / 72 * 25.4)


def rasterise(pdf_path, page: int, dpi: int) -> np.ndarray:
    """One PDF page (1-based) as an RGB uint8 array at `dpi`, by pdftoppm (PPM through a pipe)."""
    out = subprocess.run(["pdftoppm", "-r", str(dpi), "-f", str(page), "-l", str(page), str(pdf_path)],
                         capture_output=True, check=True).stdout
    bgr = cv2.imdecode(np.frombuffer(out, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise RuntimeError(f"pdftoppm gave no image for page {page} of {pdf_path}")
    return np.ascontiguousarray(bgr[..., ::-1])


# ---------------------------------------------------------------------------------------- printer

def draw_printer(d: _Draw) -> dict:
    laser = d.p("laser_p")
    P = {"kind": "laser" if laser else "inkjet", "contone_dpi": int(d.pick("contone_dpi"))}
    if laser:
        P["dpi"] = int(d.pick("laser_dpi"))
        screens = [list(v) for v in d.pick("laser_screens")]
        if d.rng.random() < 0.5:   # the mirrored set (angles 90° - a)
            screens = [[b, a] for a, b in screens]
        P["screens"] = screens
        lo, hi = d.val("laser_pwm_levels")
        P["levels"] = int(d.rng.integers(lo, hi + 1))          # exposure levels per dot (area: 0, 1/3, …, 1)
        P["spread_um"] = d.u("toner_spread_um")
        P["black"] = d.u("black_laser")
    else:
        P["dpi"] = int(d.pick("inkjet_dpi"))
        lo, hi = d.val("inkjet_levels")
        lo = max(lo, 3) if P["dpi"] <= 300 else lo             # coarse heads make up with more drop sizes
        P["levels"] = int(d.rng.integers(lo, max(lo, hi) + 1))
        P["spread_um"] = d.u("ink_spread_um")
        P["black"] = d.u("black_inkjet")
    P["scatter_um"] = d.u("paper_scatter_um")
    P["driver_n"] = d.u("driver_n")
    P["dot_gain"] = [d.u("dot_gain") for _ in range(4)]
    P["gcr"] = d.u("gcr")
    P["gamut_compress"] = d.u("gamut_compress")
    inks = [np.array(_INKS[k]) for k in "CMY"] + [np.array([1.0, 1.0, 1.0]) * P["black"]]
    sd = d.val("ink_density_sd")
    P["inks"] = [np.clip(t ** (1 + d.rng.normal(0, sd)), 1e-3, 1).tolist() for t in inks]  # K, C, M, Y order below
    P["brightened"] = d.p("brightened_paper_p")
    P["paper_Y"] = d.u("paper_Y")
    P["paper_oba"] = d.u("paper_oba") if P["brightened"] else 0.0
    P["paper_yellow"] = 0.0 if P["brightened"] else d.u("paper_yellow")
    P["texture"] = d.u("paper_texture")
    P["banding"] = None
    if d.p("banding_p"):
        amp = d.u("banding_amp")
        period = float(d.rng.uniform(0.8, 3.0) if laser else d.rng.uniform(2.0, 12.0))   # gear / head swath
        P["banding"] = {"amp": amp, "period_mm": period, "phase": float(d.rng.uniform(0, 1))}
    fit = d.u("fit_to_page") if d.p("fit_to_page_p") else 1.0
    sd = d.val("print_scale_sd")
    P["scale"] = [fit * (1 + d.rng.normal(0, sd)), fit * (1 + d.rng.normal(0, sd))]
    P["skew_deg"] = d.u("print_skew_deg")
    P["offset_mm"] = [d.u("print_offset_mm"), d.u("print_offset_mm")]
    P["screen_phase"] = [int(v) for v in d.rng.integers(0, 1 << 16, 8)]
    return P


def _am_tile(a: int, b: int, rng) -> np.ndarray:
    """Thresholds (0..1) of a clustered-dot screen with cell vectors (a, b), (-b, a) in printer dots:
    periodic on an N x N tile, N = a² + b²; dots grow from the cell centres (round, checkerboard at
    50 %, then holes), and the rank order over the whole tile spreads the levels over its cells."""
    n = a * a + b * b
    y, x = np.mgrid[0:n, 0:n] + 0.5
    u = (x * a + y * b) / n
    v = (-x * b + y * a) / n
    s = np.cos(2 * np.pi * u) + np.cos(2 * np.pi * v) + 1e-6 * rng.random((n, n))
    rank = np.empty(n * n)
    rank[np.argsort(s, axis=None, kind="stable")] = np.arange(n * n)
    return ((rank + 0.5) / (n * n)).reshape(n, n).astype(np.float32)


def _blue_tile(rng, n: int = 128, rounds: int = 4) -> np.ndarray:
    """Thresholds of a stochastic (blue-noise) screen, periodic on n x n: white noise, then a few
    rounds of rank → take out the low frequencies → rank, which pushes the dots of every level apart
    (the look of error diffusion without its worms)."""
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(n), np.fft.fftfreq(n)))
    keep = (1 - np.exp(-(f / 0.3) ** 4)) * np.exp(-(f / 0.55) ** 4)
    s = rng.standard_normal((n, n))
    rank = np.empty(n * n)
    for _ in range(rounds):
        rank[np.argsort(s, axis=None, kind="stable")] = np.arange(n * n)
        s = np.real(np.fft.ifft2(np.fft.fft2(rank.reshape(n, n)) * keep))
    rank[np.argsort(s, axis=None, kind="stable")] = np.arange(n * n)
    return ((rank + 0.5) / (n * n)).reshape(n, n).astype(np.float32)


def _ink_luts(P: dict) -> list[np.ndarray]:
    """Per ink (K, C, M, Y): target reflectance (0..1, 4096 steps) → the value print_page screens.
    The driver inverts Yule-Nielsen with its assumed n; a residual mid-tone gain follows. Inkjet:
    the mean per-pass transmittance is matched by dithering two adjacent drop levels (value = level
    coordinate in [0, L-1]). Laser: the value is the one whose PWM clustered dot covers that area."""
    r = np.linspace(0, 1, 4096)
    n = P["driver_n"]
    laser = P["kind"] == "laser"
    L = P["levels"]
    out = []
    for i, ink in enumerate(_ink_order(P)):
        t_main = float(min(ink))                     # the ink's solid reflectance in its own channel
        a = np.clip((1 - r ** (1 / n)) / (1 - t_main ** (1 / n)), 0, 1)
        g = P["dot_gain"][i]
        a = np.clip(a + g * 4 * a * (1 - a), 0, 1)
        if laser:
            out.append(np.interp(a, *_pwm_area(float(sum(v * v for v in P["screens"][i])), L)).astype(np.float32))
            continue
        tau = math.sqrt(t_main)                      # one pass through the ink layer
        m = 1 - a * (1 - tau)                        # the mean per-pass transmittance the driver wants
        levels = tau ** (np.arange(L) / (L - 1))     # a drop of level j passes tau^(j/(L-1))
        j = np.clip(np.searchsorted(-levels, -m, side="right") - 1, 0, L - 2)
        frac = np.clip((levels[j] - m) / (levels[j] - levels[j + 1]), 0, 1)
        out.append((j + frac).astype(np.float32))
    return out


def _pwm_area(cell: float, L: int):
    """(covered area, value) pairs of a PWM clustered-dot screen: at value v a pixel of threshold T
    is exposed round(clip((v - T) cell + 1/2, 0, 1) (L-1)) / (L-1) of its area."""
    T = (np.arange(4096) + 0.5) / 4096
    v = np.linspace(-0.6 / cell, 1 + 0.6 / cell, 2049)
    area = np.clip(np.floor((np.clip((v[:, None] - T) * cell + 0.5, 0, 1)) * (L - 1) + 0.5), 0, L - 1).mean(1) / (L - 1)
    area = np.maximum.accumulate(area) + np.arange(v.size) * 1e-9
    return area, v


def _ink_order(P: dict) -> list:
    c, m, y, k = P["inks"]
    return [k, c, m, y]


def _separate(rgb8: np.ndarray, P: dict, luts: list[np.ndarray]) -> list[np.ndarray]:
    """Contone RGB uint8 (h, w, 3) → level coordinates of K, C, M, Y (4 planes (h, w) float32).

    The driver: gamut compression, black-point compensation, then in optical density: black takes
    `gcr` of the grey component (the smallest density), and C, M, Y split the rest by the masking
    equations (their unwanted absorptions included, so greys stay grey); each ink's main-channel
    reflectance then goes through its tone LUT. Paper white needs no ink: only other pixels are computed."""
    lin = _srgb_decode(np.arange(256) / 255).astype(np.float32)
    h, w = rgb8.shape[:2]
    flat = rgb8.reshape(-1, 3)
    inked = np.flatnonzero(cv2.inRange(rgb8, (255, 255, 255), (255, 255, 255)).reshape(-1) == 0)
    R, G, B = (lin[flat[inked, c]] for c in range(3))         # target linear reflectance
    Y = 0.2126 * R + 0.7152 * G + 0.0722 * B
    f = 1 - P["gamut_compress"] * (np.maximum(np.maximum(R, G), B) - np.minimum(np.minimum(R, G), B))
    k_t = np.float32(P["black"])
    logs = -np.log(np.linspace(0, 1, 4096).clip(1e-4)).astype(np.float32)
    dens = []
    for c in (R, G, B):
        c = Y + (c - Y) * f
        np.clip(c, 0, 1, out=c)
        c = k_t + (1 - k_t) * c                                 # black-point compensation
        dens.append(logs[(c * 4095 + 0.5).astype(np.int32)])
    grey = np.minimum(np.minimum(dens[0], dens[1]), dens[2])
    d_k = np.float32(P["gcr"]) * grey                           # density black prints
    inks = np.array(_ink_order(P))
    Dm = -np.log(inks[1:]).T                                    # (channel, ink C/M/Y) solid densities
    Minv = np.linalg.inv(Dm).astype(np.float32)
    rest = [dn - d_k for dn in dens]
    planes = [np.exp(-d_k)]
    for i in range(3):                                          # amount of ink i (1 = solid)
        x = Minv[i, 0] * rest[0] + Minv[i, 1] * rest[1] + Minv[i, 2] * rest[2]
        np.clip(x, 0, 1, out=x)
        planes.append(np.exp(-x * np.float32(Dm[i, i])))         # the ink's own-channel reflectance
    out = []
    for lut, plane in zip(luts, planes):
        q = np.full(h * w, lut[-1], np.float32)               # no ink
        q[inked] = lut[(plane * 4095 + 0.5).astype(np.int32)]
        out.append(q.reshape(h, w))
    return out


def _ksize(sigma: float) -> tuple[int, int]:
    n = 2 * int(math.ceil(3 * sigma)) + 1
    return n, n


def _banding(P: dict, rows: np.ndarray, dpi: int) -> np.ndarray | None:
    b = P["banding"]
    if b is None:
        return None
    mm = rows * 25.4 / dpi
    ph = (mm / b["period_mm"] + b["phase"]) % 1.0
    if P["kind"] == "laser":
        prof = np.sin(2 * np.pi * ph)
    else:   # a narrow light or dark line where head passes meet
        prof = 2 * np.exp(-((ph - 0.5) / 0.06) ** 2) - 0.3
    return (1 + b["amp"] * prof).astype(np.float32)


def paper_rgb(P: dict) -> np.ndarray:
    """The sheet's white, linear sRGB: luminance paper_Y, bluish with brighteners, yellowish if recycled."""
    y = P["paper_yellow"]
    paper = np.array([1.0 - 0.15 * y, 1.0 - 0.3 * y, 1.0 - y]) * (1 + np.array([-0.2, 0.0, 1.0]) * P["paper_oba"])
    return paper * (P["paper_Y"] / float(paper @ _SRGB_TO_Y))


def print_density(P: dict, want: float) -> float:
    """The sampling (px/mm) print_page returns: at most the printer's grid, and a whole number of
    rows per band of printer rows, so that bands can be area-averaged one at a time."""
    grid = P["dpi"] / 25.4
    rows = max(1, min(_BAND, int(_BAND * want / grid)))
    return grid * rows / _BAND


_BAND = 1024   # printer rows per band


def print_page(contone: np.ndarray, P: dict, rng, out_density: float) -> list[np.ndarray]:
    """The printed page's linear reflectance (R, G, B planes (h, w) float32) sampled at `out_density` px/mm
    (a value print_density gave), area-averaged from the printer's grid one band at a time."""
    dpi, cdpi = P["dpi"], P["contone_dpi"]
    up = dpi // cdpi
    L = P["levels"]
    assert L ** 4 <= 256 and _BAND % up == 0
    luts = _ink_luts(P)
    if P["kind"] == "laser":
        tiles = [_am_tile(a, b, rng) for a, b in P["screens"]]
    else:
        tiles = [_blue_tile(rng) for _ in range(4)]
    H, W = contone.shape[0] * up, contone.shape[1] * up
    px_um = 25400.0 / dpi
    s_spread, s_scatter = P["spread_um"] / px_um, P["scatter_um"] / px_um
    halo = int(math.ceil(4 * (s_spread + s_scatter))) + 2
    halo += (-halo) % up
    # level = clip((A + B) >> 8, 0, L-1), A from the page (256 q · gain), B from the screen's thresholds T:
    # inkjet (dispersed, multi-drop): gain 1, B = 256 (1 - T) → floor(q) + (frac(q) > T);
    # laser (clustered, PWM): the pixel's exposed area clip((q - T) N + 1/2, 0, 1), N = pixels per cell
    # (one cell's level step), in L-1 widths: gain N (L-1), B = 256 (((1/2 - T N)(L-1)) + 1/2)
    planes = []
    for i, t in enumerate(tiles):
        n = t.shape[0]
        if P["kind"] == "laser":
            cell = float(sum(v * v for v in P["screens"][i]))
            gain, b = cell * (L - 1), ((0.5 - t * cell) * (L - 1) + 0.5) * 256
        else:
            gain, b = 1.0, (1 - t) * 256
        big = np.tile(np.floor(b).astype(np.int16), ((_BAND + 2 * halo) // n + 2, W // n + 2))
        ox = P["screen_phase"][2 * i + 1] % n
        planes.append((np.ascontiguousarray(big[:, ox:ox + W]), n, P["screen_phase"][2 * i] % n, gain))
    # every combination of the four inks' levels → transmittance in R, G, B (two passes through the ink)
    inks = np.array(_ink_order(P))                              # (4, 3) solid reflectance
    combo = np.stack(np.meshgrid(*[np.arange(L)] * 4, indexing="ij"), -1).reshape(-1, 4)[:, ::-1]
    lut = np.ones((256, 3))
    tau = np.sqrt(inks)                                         # one pass through a solid layer
    if P["kind"] == "laser":    # level j exposes j/(L-1) of the pixel's area
        lut[:L ** 4] = np.prod(1 - (combo / (L - 1))[:, :, None] * (1 - tau)[None], axis=1)
    else:                       # a drop of level j deposits j/(L-1) of the ink (small / light drops)
        lut[:L ** 4] = np.exp(combo / (L - 1) @ np.log(tau))
    paper = paper_rgb(P)
    # the paper's white folded in: R = paper · s · blur(s), s from the LUT scaled by sqrt(paper)
    luts_c = [np.ascontiguousarray(lut[:, c] * math.sqrt(paper[c]), np.float32) for c in range(3)]
    weights = [L ** i for i in range(4)]                        # ink 0 (K) is the fastest digit, as in combo
    rows_out = max(1, round(out_density * _BAND / (dpi / 25.4)))
    out_w = max(1, round(W * rows_out / _BAND))
    band_rows = [rows_out if y0 + _BAND <= H else max(1, round((H - y0) * rows_out / _BAND))
                 for y0 in range(0, H, _BAND)]
    small = [np.empty((sum(band_rows), out_w), np.float32) for _ in range(3)]
    r0 = 0
    for y0 in range(0, H, _BAND):
        y1 = min(H, y0 + _BAND)
        a0, a1 = max(0, y0 - halo), min(H, y1 + halo)
        q = _separate(contone[a0 // up:a1 // up], P, luts)
        bnd = _banding(P, np.arange(a0 // up, a1 // up) * up, dpi)
        h = a1 - a0
        idx = np.zeros((h, W), np.uint8)
        for i, (plane, (thr, n, oy, gain)) in enumerate(zip(q, planes)):
            if bnd is not None:
                plane = plane * bnd[:, None]
            qi = np.round(np.minimum(plane, 1.1 if P["kind"] == "laser" else L - 1) * (256 * gain)).astype(np.int16)
            if up > 1:
                qi = cv2.resize(qi, (W, h), interpolation=cv2.INTER_NEAREST)
            o = (a0 + oy) % n
            lev = np.clip(cv2.add(qi, thr[o:o + h]) >> 8, 0, L - 1).astype(np.uint8)
            idx += lev * np.uint8(weights[i]) if weights[i] > 1 else lev
        rows = band_rows[y0 // _BAND]
        for c in range(3):
            s = cv2.LUT(idx, luts_c[c])                         # transmittance of one pass through the inks
            if s_spread >= 0.2:
                s = cv2.GaussianBlur(s, _ksize(s_spread), s_spread)           # toner / ink spread
            r = cv2.multiply(s, cv2.GaussianBlur(s, _ksize(s_scatter), s_scatter))   # in, scattered, out
            small[c][r0:r0 + rows] = cv2.resize(r[y0 - a0:y1 - a0], (out_w, rows), interpolation=cv2.INTER_AREA)
        r0 += rows
    # paper texture: fibres (elongated along the sheet's grain) and fine grain from one noise field,
    # formation clouds (~1 mm) from a coarser one; made at <= 10 px/mm (0.1 mm), as a camera resolves it
    amp = P["texture"]
    if amp > 0:
        oh, ow = small[0].shape
        f = min(1.0, 10.0 / out_density)
        th, tw, td = max(2, round(oh * f)), max(2, round(ow * f)), out_density * f
        z = rng.standard_normal((th, tw), dtype=np.float32)
        fib = cv2.GaussianBlur(z, (0, 0), max(0.3, 0.03 * td), sigmaY=max(0.3, 0.4 * td))
        fib *= np.float32(1 / max(1e-6, float(fib[::4, ::4].std())))
        cw, chh = max(2, int(tw / td * 2)), max(2, int(th / td * 2))   # 0.5 mm cells
        cloud = cv2.GaussianBlur(rng.standard_normal((chh, cw), dtype=np.float32), (0, 0), 2)
        cloud = cv2.resize(cloud / max(1e-6, float(cloud.std())), (tw, th), interpolation=cv2.INTER_LINEAR)
        tex = cv2.addWeighted(fib, 0.5, cloud, 0.6, 0)
        tex = cv2.scaleAdd(z, 0.4, tex)
        tex = cv2.addWeighted(tex, amp / 0.9, tex, 0.0, 1.0)
        if (th, tw) != (oh, ow):
            tex = cv2.resize(tex, (ow, oh), interpolation=cv2.INTER_LINEAR)
        for p in small:
            cv2.multiply(p, tex, dst=p)
    return small


# ---------------------------------------------------------------------------------------- scene + camera

def draw_camera(d: _Draw, page_mm: tuple[float, float]) -> dict:
    C = {}
    W, H = d.pick("frame")
    near = d.p("near_axis_p")
    page_portrait = page_mm[1] >= page_mm[0]
    if near:
        match = d.p("match_orientation_p")
        portrait = d.p("portrait_p")
        upright = d.p("upright_p")
        turned = (portrait != page_portrait) == match     # page turned 90° in the frame
        base = (90.0 if turned else 0.0) + (0.0 if upright else 180.0)
        if turned and d.rng.random() < 0.5:
            base += 180.0
        roll = base + d.normal("near_axis_sd_deg")
    else:
        portrait = d.p("portrait_p")
        roll = float(d.rng.uniform(0, 360))
    if portrait:
        W, H = H, W
    C.update(W=int(W), H=int(H), portrait=bool(portrait), roll_deg=float(roll) % 360)
    C["exif"] = 1
    if portrait and d.p("exif_rotated_p"):
        C["exif"] = 6 if d.rng.random() < 0.8 else 8
    lo, hi = d.val("tilt_deg")
    C["tilt_deg"] = float(lo + (hi - lo) * (1 - math.sqrt(1 - d.rng.random())))
    C["tilt_azimuth_deg"] = float(d.rng.uniform(0, 360))
    C["fit"] = d.u("cut_fit") if d.p("cut_p") else d.u("fit")
    C["offset"] = [float(v) for v in d.rng.uniform(-0.9, 0.9, 2)]
    C["focal_eq_mm"] = d.u("tele_eq_mm") if d.p("tele_p") else d.u("focal_eq_mm")
    C["crop_factor"] = d.u("crop_factor")
    C["f_number"] = d.u("f_number")
    C["focus_error"] = d.u("focus_error")
    C["lens_sigma_px"] = d.u("lens_sigma_px")
    C["k1"] = d.u("distortion_k1")
    C["ca_px"] = d.u("lateral_ca_px")
    C["vignetting"] = d.u("vignetting")
    C["shake_px"] = float(min(abs(d.rng.normal(0, d.val("shake_sd_px"))), d.val("shake_max_px")))
    C["shake_angle_deg"] = float(d.rng.uniform(0, 180))
    C["curl"] = None
    if d.p("curl_p"):
        C["curl"] = {"mm": d.u("curl_mm"), "edge": int(d.rng.integers(4)), "start": float(d.rng.uniform(0.6, 0.85))}
    # light
    C["cct"] = d.u("cct_k")
    C["tint"] = d.u("tint_duv")
    C["uv"] = d.u("uv_daylight") if C["cct"] >= 5000 else d.u("uv_indoor")
    C["cct2"] = d.u("cct_k") if d.p("mixed_light_p") else None
    C["gradient"] = d.u("light_gradient")
    C["gradient_angle_deg"] = float(d.rng.uniform(0, 360))
    C["shadow"] = None
    if d.p("shadow_p"):
        C["shadow"] = {"depth": d.u("shadow_depth"), "width_mm": d.u("shadow_width_mm"),
                       "soft_mm": d.u("shadow_soft_mm"), "angle_deg": float(d.rng.uniform(0, 180)),
                       "pos": float(d.rng.uniform(-0.45, 0.45))}
    C["glare"] = None
    if d.p("glare_p"):
        C["glare"] = {"peak": d.u("glare_peak"), "radius": d.u("glare_radius"),
                      "at": [float(v) for v in d.rng.uniform(0.15, 0.85, 2)]}
    C["desk"] = d.pick("desk")
    C["desk_seed"] = int(d.rng.integers(1 << 31))
    # sensor + ISP
    C["exposure_target"] = d.u("exposure_target")
    C["ev_error"] = d.normal("exposure_ev_sd")
    C["sens"] = [d.u("raw_sens_r"), 1.0, d.u("raw_sens_b")]
    C["purity"] = d.u("sensor_purity")
    C["mix_jitter"] = d.rng.normal(0, 0.03, (3, 3)).tolist()
    C["full_well"] = d.logu("full_well_e")
    C["read_noise"] = d.u("read_noise_e")
    C["demosaic"] = d.pick("demosaic")
    C["awb_adaptation"] = d.u("awb_adaptation")
    C["awb_error"] = d.rng.normal(0, d.val("awb_error_sd"), 3).tolist()
    C["ccm_error"] = d.rng.normal(0, d.val("ccm_error_sd"), (3, 3)).tolist()
    C["saturation"] = d.u("saturation_boost")
    C["brightening"] = d.u("brightening")
    C["s_curve"] = d.u("s_curve")
    C["local_contrast"] = d.u("local_contrast")
    C["luma_nr"] = d.u("luma_nr")
    C["chroma_nr_px"] = d.u("chroma_nr_px")
    C["sharpen"] = d.u("sharpen")
    C["sharpen_px"] = d.u("sharpen_px")
    C["jpeg_quality"] = int(round(d.u("jpeg_quality")))
    C["chroma_444"] = d.p("chroma_444_p")
    C["noise_seed"] = int(d.rng.integers(1 << 31))
    return C


class _Geometry:
    """Pinhole camera with residual radial distortion above the sheet (world: x right, y down the page,
    z into the desk, mm; camera: x right, y down, z forward)."""

    def __init__(self, C: dict, page_mm: tuple[float, float]):
        self.C, self.pw, self.ph = C, float(page_mm[0]), float(page_mm[1])
        W, H = C["W"], C["H"]
        diag = math.hypot(W, H)
        self.f = C["focal_eq_mm"] / 43.27 * diag
        self.cx, self.cy = W / 2, H / 2
        self.rn2 = ((diag / 2) / self.f) ** 2                     # normalised half-diagonal², distortion's unit
        th, az, ro = (math.radians(C[k]) for k in ("tilt_deg", "tilt_azimuth_deg", "roll_deg"))
        v = np.array([math.sin(th) * math.cos(az), math.sin(th) * math.sin(az), math.cos(th)])
        ref = np.array([math.cos(ro), math.sin(ro), 0.0])
        x = ref - ref.dot(v) * v
        x /= np.linalg.norm(x)
        y = np.cross(v, x)
        self.R = np.stack([x, y, v])                            # world → camera rows
        aim = np.array([self.pw / 2, self.ph / 2, 0.0])
        corners = np.array([[0, 0, 0], [self.pw, 0, 0], [self.pw, self.ph, 0], [0, self.ph, 0]], float)
        edges = np.concatenate([corners, (corners + np.roll(corners, -1, 0)) / 2])
        lo, hi = 50.0, 5000.0
        for _ in range(60):                                     # distance that gives the drawn fit
            dist = math.sqrt(lo * hi)
            self.Cpos = aim - dist * v
            u, w = self.project(edges)
            ext = max((u.max() - u.min()) / W, (w.max() - w.min()) / H)
            lo, hi = (dist, hi) if ext > C["fit"] else (lo, dist)
        for _ in range(3):                                      # move the camera parallel to the sheet
            u, w = self.project(edges)
            free = np.array([W - (u.max() - u.min()), H - (w.max() - w.min())])
            want = np.array([W / 2, H / 2]) + np.array(C["offset"]) * np.maximum(free, -free * 0.5) / 2
            have = np.array([(u.max() + u.min()) / 2, (w.max() + w.min()) / 2])
            X0 = self.backproject(np.array([have[0]]), np.array([have[1]]), flat=True)
            X1 = self.backproject(np.array([want[0]]), np.array([want[1]]), flat=True)
            self.Cpos = self.Cpos + np.array([X0[0][0] - X1[0][0], X0[1][0] - X1[1][0], 0.0])

    def project(self, P):
        pc = (P - self.Cpos) @ self.R.T
        x, y = pc[:, 0] / pc[:, 2], pc[:, 1] / pc[:, 2]
        r2 = (x * x + y * y) / self.rn2
        k = 1 + self.C["k1"] * r2
        return self.f * x * k + self.cx, self.f * y * k + self.cy

    def curl_z(self, X, Y):
        c = self.C["curl"]
        if c is None:
            return np.zeros_like(X)
        s = [X / self.pw, 1 - X / self.pw, Y / self.ph, 1 - Y / self.ph][c["edge"]]
        s = np.clip((s - c["start"]) / (1 - c["start"]), 0, None)
        return -c["mm"] * s * s                                 # lifted toward the camera (-z)

    def backproject(self, u, v, scale: float = 1.0, flat: bool = False):
        """Pixel coordinates → world X, Y on the sheet (or the desk plane) and the camera depth.
        `scale` magnifies the image around the optical centre (lateral chromatic aberration)."""
        xd = (u - self.cx) / (self.f * scale)
        yd = (v - self.cy) / (self.f * scale)
        xu, yu = xd.copy(), yd.copy()
        for _ in range(6):
            r2 = (xu * xu + yu * yu) / self.rn2
            k = 1 + self.C["k1"] * r2
            xu, yu = xd / k, yd / k
        dirs = np.stack([xu, yu, np.ones_like(xu)], -1) @ self.R  # camera → world
        X = Y = None
        z = np.zeros_like(xu)
        for _ in range(1 if flat else 4):
            t = (z - self.Cpos[2]) / dirs[..., 2]
            X = self.Cpos[0] + t * dirs[..., 0]
            Y = self.Cpos[1] + t * dirs[..., 1]
            inside = (X > 0) & (X < self.pw) & (Y > 0) & (Y < self.ph)
            z = np.where(inside, self.curl_z(X, Y), 0.0)
        depth = t * 1.0                                          # dirs have camera z = 1
        return X, Y, depth


def _disk(radius: float) -> np.ndarray:
    r = max(radius, 0.0)
    n = int(math.ceil(r)) + 1
    y, x = np.mgrid[-n:n + 1, -n:n + 1]
    k = np.clip(r + 0.5 - np.hypot(x, y), 0, 1)             # anti-aliased disk
    if k.sum() == 0:
        k[n, n] = 1
    return k / k.sum()


def _kernel(defocus_r: float, C: dict) -> np.ndarray:
    """Defocus disk ⊛ lens Gaussian ⊛ hand-shake line, as one small kernel."""
    k = _disk(defocus_r)
    s = C["lens_sigma_px"]
    g = cv2.getGaussianKernel(2 * int(math.ceil(3 * s)) + 1, s)
    k = _conv_full(k, g @ g.T)
    L = C["shake_px"]
    if L > 0.3:
        n = int(math.ceil(L / 2)) + 1
        line = np.zeros((2 * n + 1, 2 * n + 1))
        a = math.radians(C["shake_angle_deg"])
        for t in np.linspace(-L / 2, L / 2, 4 * int(math.ceil(L)) + 1):
            x, y = n + t * math.cos(a), n + t * math.sin(a)
            x0, y0 = int(math.floor(x)), int(math.floor(y))
            fx, fy = x - x0, y - y0
            for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)),
                              (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
                line[y0 + dy, x0 + dx] += w
        k = _conv_full(k, line / line.sum())
    return (k / k.sum()).astype(np.float32)


def _conv_full(a, b):
    """Full 2-D convolution of two small kernels."""
    out = np.zeros((a.shape[0] + b.shape[0] - 1, a.shape[1] + b.shape[1] - 1))
    for (i, j), v in np.ndenumerate(b):
        if v:
            out[i:i + a.shape[0], j:j + a.shape[1]] += v * a
    return out


def _desk_texture(kind: str, seed: int, size: int = 1024, mm_per_px: float = 1.25) -> np.ndarray:
    """A desk top around the sheet, linear reflectance (size, size, 3), 1.25 mm per pixel."""
    rng = np.random.default_rng(seed)

    def smooth(sigma):
        z = cv2.GaussianBlur(rng.standard_normal((size, size)).astype(np.float32), (0, 0), sigma)
        return z / max(1e-6, float(z.std()))
    if kind == "wood":
        base = np.array([0.30, 0.15, 0.06]) * rng.uniform(0.4, 1.6)
        y, x = np.mgrid[0:size, 0:size].astype(np.float32)
        a = rng.uniform(0, np.pi)
        along = (x * math.cos(a) + y * math.sin(a)) * mm_per_px
        warp = smooth(25) * rng.uniform(6, 20) + smooth(6) * rng.uniform(0.5, 2)
        grain = np.sin(2 * np.pi * (along + warp) / rng.uniform(4, 14))
        envelope = np.clip(0.6 + 0.4 * smooth(15), 0, 1)
        lum = 1 + rng.uniform(0.05, 0.12) * grain * envelope + 0.05 * smooth(1.5) + 0.12 * smooth(40)
    elif kind == "laminate":
        base = np.array([1.0, 1.0, 1.0]) * rng.uniform(0.15, 0.45) * (1 + rng.normal(0, 0.06, 3))
        lum = 1 + 0.03 * smooth(1) + 0.05 * smooth(20)
    elif kind == "dark":
        base = np.array([1.0, 1.0, 1.0]) * rng.uniform(0.03, 0.08) * (1 + rng.normal(0, 0.1, 3))
        lum = 1 + 0.08 * smooth(1.5) + 0.1 * smooth(25)
    else:   # white desk
        base = np.array([1.0, 1.0, 1.0]) * rng.uniform(0.55, 0.75) * (1 + rng.normal(0, 0.03, 3))
        lum = 1 + 0.02 * smooth(1) + 0.04 * smooth(30)
    return np.clip(lum[..., None] * base.astype(np.float32), 0, 1).astype(np.float32)


def _light_field(X, Y, C: dict, pw: float, ph: float) -> np.ndarray:
    """Illuminance colour (…, 3) at world points: light colour(s), gradient, shadow band."""
    l1 = light_rgb(C["cct"]) * np.array([1.0, 1 + C["tint"], 1.0])
    a = math.radians(C["gradient_angle_deg"])
    s = ((X - pw / 2) * math.cos(a) + (Y - ph / 2) * math.sin(a)) / math.hypot(pw, ph)   # ~ -0.5 .. 0.5
    g = C["gradient"] ** s
    if C["cct2"] is not None:
        l2 = light_rgb(C["cct2"])
        w = np.clip(s + 0.5, 0, 1)[..., None]
        col = l1 * (1 - w) + l2 * w
    else:
        col = np.broadcast_to(l1, X.shape + (3,))
    E = col * g[..., None]
    sh = C["shadow"]
    if sh is not None:
        b = math.radians(sh["angle_deg"])
        dist = (X - pw / 2) * math.cos(b) + (Y - ph / 2) * math.sin(b) - sh["pos"] * math.hypot(pw, ph)

        def step(t):
            return 1 / (1 + np.exp(-t / (sh["soft_mm"] / 4)))
        inside = step(dist + sh["width_mm"] / 2) * step(sh["width_mm"] / 2 - dist)
        E = E * (1 - sh["depth"] * inside)[..., None]
    return E.astype(np.float32)


def _sensor_mix(C: dict) -> np.ndarray:
    p = C["purity"]
    M = p * np.eye(3) + (1 - p) * np.tile(_SRGB_TO_Y, (3, 1)) + np.array(C["mix_jitter"]) * (1 - p)
    return M / M.sum(axis=1, keepdims=True)                      # rows sum to 1: grey stays grey


def photograph_page(page_refl: list[np.ndarray], density: float, P: dict, C: dict, page_mm,
                    geo: _Geometry | None = None) -> np.ndarray:
    """The displayed photo (H, W, 3) uint8 RGB of the printed page `page_refl` (R, G, B planes of
    linear reflectance at `density` px/mm of the PDF page)."""
    W, H = C["W"], C["H"]
    geo = geo or _Geometry(C, page_mm)
    pw, ph = geo.pw, geo.ph
    gw, gh = W // _STEP, H // _STEP
    gu, gv = np.meshgrid(np.arange(gw) * _STEP + (_STEP - 1) / 2, np.arange(gh) * _STEP + (_STEP - 1) / 2)
    half_diag = math.hypot(W, H) / 2
    ca = C["ca_px"] / half_diag
    # the printer put the PDF page on the sheet scaled, skewed, shifted: sheet mm → PDF mm
    sk = math.radians(P["skew_deg"])
    A = np.array([[math.cos(sk), -math.sin(sk)], [math.sin(sk), math.cos(sk)]]) @ np.diag(P["scale"])
    Ainv = np.linalg.inv(A)
    centre = np.array([pw / 2, ph / 2])
    off = centre + np.array(P["offset_mm"])

    def up(a):   # coarse grid → full frame (smooth fields and maps only)
        return cv2.resize(np.ascontiguousarray(a, np.float32), (W, H), interpolation=cv2.INTER_LINEAR)

    X, Y, depth = geo.backproject(gu, gv)
    on = (X > 0) & (X < pw) & (Y > 0) & (Y < ph)
    dens = float(np.median(_STEP / np.hypot(np.diff(X, axis=1), np.diff(Y, axis=1))[on[:, 1:]])) if on.any() else 5.0
    # light on the sheet and desk, residual vignetting, glare: smooth, on the coarse grid
    E = _light_field(X, Y, C, pw, ph)
    r2 = ((gu - geo.cx) ** 2 + (gv - geo.cy) ** 2) / half_diag ** 2
    E *= (1 - C["vignetting"] * r2 ** 1.5)[..., None].astype(np.float32)
    g = C["glare"]
    glare = None
    if g is not None:
        rr = ((gu - g["at"][0] * W) ** 2 + (gv - g["at"][1] * H) ** 2) / (g["radius"] * max(W, H)) ** 2
        glare = up(g["peak"] * P["paper_Y"] * np.exp(-rr / 2))
    # the sheet's edge (anti-aliased) and the desk
    alpha = up(np.minimum(np.minimum(X, pw - X), np.minimum(Y, ph - Y)) * dens + 0.5)
    np.clip(alpha, 0, 1, out=alpha)
    desk = _desk_texture(C["desk"], C["desk_seed"])
    dmx, dmy = up((X - pw / 2) / 1.25 + desk.shape[1] / 2), up((Y - ph / 2) / 1.25 + desk.shape[0] / 2)
    desk_img = [cv2.remap(np.ascontiguousarray(desk[..., c]), dmx, dmy, cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT) for c in range(3)]
    del dmx, dmy
    planes = page_refl
    if P["paper_oba"] > 0:   # the sheet was printed with its daylight glow; this light has less UV
        cv2.multiply(planes[2], (1 + P["paper_oba"] * C["uv"]) / (1 + P["paper_oba"]), dst=planes[2])
    light_c = light_rgb(C["cct"])
    rad = []
    for ch, scale in ((0, 1 + ca / 2), (1, 1.0), (2, 1 - ca / 2)):   # lateral CA: R magnified, B shrunk
        Xc, Yc, _ = (X, Y, None) if ch == 1 else geo.backproject(gu, gv, scale)
        qx = Ainv[0, 0] * (Xc - off[0]) + Ainv[0, 1] * (Yc - off[1]) + centre[0]
        qy = Ainv[1, 0] * (Xc - off[0]) + Ainv[1, 1] * (Yc - off[1]) + centre[1]
        page = cv2.remap(planes[ch], up(qx * density - 0.5), up(qy * density - 0.5), cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)
        r = cv2.add(desk_img[ch], cv2.multiply(alpha, cv2.subtract(page, desk_img[ch])))
        r = cv2.multiply(r, up(E[..., ch]))
        if glare is not None:
            r = cv2.scaleAdd(glare, float(light_c[ch]), r)
        rad.append(r)
    del planes, desk_img, alpha, glare
    # defocus: thin lens focused near the frame centre; two blurs blended by the circle of confusion
    _, _, dc = geo.backproject(np.array([W / 2.0]), np.array([H / 2.0]))
    zf = float(dc[0]) * (1 + C["focus_error"])
    aperture_mm = C["focal_eq_mm"] / C["crop_factor"] / C["f_number"]
    coc = aperture_mm * geo.f * np.abs(depth - zf) / (depth * zf) / 2        # blur radius, px
    r_lo, r_hi = float(np.percentile(coc, 2)), float(np.percentile(coc, 98))
    k_lo = _kernel(r_lo, C)
    k_hi = _kernel(r_hi, C) if r_hi - r_lo > 0.35 else None
    w = up(np.clip((coc - r_lo) / max(1e-6, r_hi - r_lo), 0, 1)) if k_hi is not None else None
    for ch in range(3):
        lo = cv2.filter2D(rad[ch], -1, k_lo, borderType=cv2.BORDER_REFLECT)
        if k_hi is not None:
            hi = cv2.filter2D(rad[ch], -1, k_hi, borderType=cv2.BORDER_REFLECT)
            lo = cv2.add(lo, cv2.multiply(w, cv2.subtract(hi, lo)))
        rad[ch] = lo
    del w
    # sensor: the filters' own colour mix and channel gains, exposure, RGGB mosaic, noise, 10 bits
    M = _sensor_mix(C)
    sens = np.array(C["sens"])
    light1 = light_c * np.array([1.0, 1 + C["tint"], 1.0])
    spatial = float(np.mean(E[on][:, 1])) / light1[1] if on.any() else 1.0     # gradient, shadow, vignetting
    white_raw = sens * (M @ (paper_rgb(P) * light1)) * spatial
    k = C["exposure_target"] / float(white_raw.max()) * 2.0 ** C["ev_error"]
    T = np.diag(sens) @ M * k
    mos = np.empty((H, W), np.float32)
    for (oy, ox), row in (((0, 0), 0), ((0, 1), 1), ((1, 0), 1), ((1, 1), 2)):
        sub = [rad[c][oy::2, ox::2] for c in range(3)]
        mos[oy::2, ox::2] = T[row, 0] * sub[0] + T[row, 1] * sub[1] + T[row, 2] * sub[2]
    del rad, sub
    np.clip(mos, 0, 1, out=mos)
    nrng = np.random.default_rng(C["noise_seed"])
    fw, rn = C["full_well"], C["read_noise"]
    sd = cv2.sqrt(cv2.add(mos * np.float32(1 / fw), float((rn / fw) ** 2)))
    mos += sd * nrng.standard_normal((H, W), dtype=np.float32)
    del sd
    np.clip(mos, 0, 1, out=mos)
    if C["demosaic"] == "vng":   # cv2's VNG takes 8 bits only: demosaic a gamma-2 encoding of the raw
        m8 = (cv2.sqrt(mos) * 255 + 0.5).astype(np.uint8)
        rgb = cv2.cvtColor(m8, cv2.COLOR_BayerRGGB2RGB_VNG).astype(np.float32) * np.float32(1 / 255)
        rgb = cv2.multiply(rgb, rgb)
    else:
        m16 = (mos * 1023 + 0.5).astype(np.uint16)
        code = cv2.COLOR_BayerRGGB2RGB_EA if C["demosaic"] == "ea" else cv2.COLOR_BayerRGGB2RGB
        rgb = cv2.cvtColor(m16, code).astype(np.float32) * np.float32(1 / 1023)
    del mos
    return _isp(rgb, C, M, sens, light1)


def _isp(rgb: np.ndarray, C: dict, M: np.ndarray, sens: np.ndarray, light1: np.ndarray) -> np.ndarray:
    """Phone ISP on demosaiced linear raw: white balance, colour matrix, tone, NR, sharpening."""
    H, W = rgb.shape[:2]
    # auto white balance: the light as estimated (with an error), rendered with part of its cast kept;
    # the colour matrix is the one for that light (phones interpolate matrices calibrated per
    # illuminant), tuned on another unit of the sensor, with the phone's saturation boost
    est = light1 * (1 + np.array(C["awb_error"]))
    a = C["awb_adaptation"]
    keep = (light1 / light1[1]) ** (1 - a)                          # the cast the rendering keeps
    to_raw = np.diag(sens) @ M @ np.diag(est)
    s = C["saturation"]
    sat = s * np.eye(3) + (1 - s) * np.tile(_SRGB_TO_Y, (3, 1))
    err = np.eye(3) + np.array(C["ccm_error"])
    err /= err.sum(axis=1, keepdims=True)                          # grey stays grey (up to the AWB error)
    ccm = err @ sat @ np.diag(keep) @ np.linalg.inv(to_raw)
    # a white under the light lands where auto exposure put it in the raw (its largest channel)
    w_raw = sens * (M @ light1)
    T = (ccm * float(w_raw.max()) / max(1e-6, float((ccm @ w_raw).max()))).astype(np.float32)
    lin = cv2.transform(rgb, T)
    del rgb
    # tone curve (per channel): brightening, sRGB, S-curve → LUT on 12 bits
    x = np.linspace(0, 1, 4096)
    y = _srgb_encode(x * C["brightening"])
    lut = ((1 - C["s_curve"]) * y + C["s_curve"] * (3 * y * y - 2 * y ** 3)).astype(np.float32)
    cv2.threshold(lin, 1.0, 1.0, cv2.THRESH_TRUNC, dst=lin)
    cv2.threshold(lin, 0.0, 0.0, cv2.THRESH_TOZERO, dst=lin)
    img = lut[cv2.addWeighted(lin, 4095.0, lin, 0.0, 0.5).astype(np.uint16)]
    del lin
    # on luma: edge-aware noise reduction, local contrast, unsharp mask; chroma: a wide blur
    Yl = cv2.transform(img, np.array([[0.299, 0.587, 0.114]], np.float32))
    sc = C["chroma_nr_px"]
    out = cv2.GaussianBlur(img, (0, 0), sc)
    del img
    base_c = cv2.GaussianBlur(Yl, (0, 0), sc)
    d = cv2.subtract(Yl, cv2.GaussianBlur(Yl, (0, 0), 1.2))
    w = np.float32(C["luma_nr"]) / (1 + cv2.multiply(d, d) * np.float32(1 / 0.02 ** 2))
    Yp = cv2.subtract(Yl, cv2.multiply(w, d))
    del d, w
    if C["local_contrast"] > 0:
        small = cv2.resize(Yp, (W // 8, H // 8), interpolation=cv2.INTER_AREA)
        base = cv2.resize(cv2.GaussianBlur(small, (0, 0), 5), (W, H), interpolation=cv2.INTER_LINEAR)
        Yp = cv2.addWeighted(Yp, 1 + C["local_contrast"], base, -C["local_contrast"], 0)
        del small, base
    Yp = cv2.addWeighted(Yp, 1 + C["sharpen"], cv2.GaussianBlur(Yp, (0, 0), C["sharpen_px"]), -C["sharpen"], 0)
    out += cv2.subtract(Yp, base_c)[..., None]                    # chroma from the blur, luma processed
    del Yp, base_c, Yl
    cv2.threshold(out, 0.0, 0.0, cv2.THRESH_TOZERO, dst=out)
    return cv2.convertScaleAbs(out, alpha=255.0)


def encode_jpeg(rgb: np.ndarray, C: dict) -> bytes:
    """JPEG bytes; a portrait photo with C['exif'] 6 or 8 is stored as landscape pixels plus the tag
    that turns it upright (6: rotate 90° clockwise to display, 8: counter-clockwise)."""
    tag = C["exif"]
    stored = rgb
    if tag == 6:
        stored = np.rot90(rgb, 1)
    elif tag == 8:
        stored = np.rot90(rgb, -1)
    im = Image.fromarray(np.ascontiguousarray(stored))
    exif = Image.Exif()
    exif[0x010F] = "pdfcam"
    exif[0x0112] = int(tag)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=int(C["jpeg_quality"]), subsampling=0 if C["chroma_444"] else 2,
            exif=exif.tobytes())
    return buf.getvalue()


def _jsonable(o):
    if isinstance(o, dict):
        return {k: _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (np.floating, np.integer, np.bool_)):
        return o.item()
    return o


def photograph_pdf(pdf_path, out_dir, *, photos_per_page: int = 1, seed: int = 0, ranges: dict = RANGES,
                   pages: list[int] | None = None, log=None) -> list[dict]:
    """Print every page of `pdf_path` and photograph it `photos_per_page` times into `out_dir`
    (pageNN-K.jpg). Returns one record per photo (file, printer, camera parameters), also written
    to out_dir/.pdfcam.json."""
    import time

    n_pages, page_mm = pdf_info(pdf_path)   # before anything is written: a bad path leaves no folder
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    records = []
    for page in (pages or range(1, n_pages + 1)):
        cache: dict[int, np.ndarray] = {}
        for k in range(photos_per_page):
            t0 = time.perf_counter()
            rng = np.random.default_rng((int(seed), int(page), int(k)))
            d = _Draw(rng, ranges)
            P = draw_printer(d)
            C = draw_camera(d, page_mm)
            if P["contone_dpi"] not in cache:
                cache[P["contone_dpi"]] = rasterise(pdf_path, page, P["contone_dpi"])
            geo = _Geometry(C, page_mm)
            density = print_density(P, 1.3 * _max_density(geo, C))
            refl = print_page(cache[P["contone_dpi"]], P, rng, density)
            rgb = photograph_page(refl, density, P, C, page_mm, geo)
            del refl
            name = f"page{page:02d}-{k + 1}.jpg"
            atomic_write_bytes(out_dir / name, encode_jpeg(rgb, C))
            rec = {"file": name, "page": page, "photo": k + 1, "seconds": round(time.perf_counter() - t0, 2),
                   "printer": {kk: v for kk, v in P.items() if kk != "screen_phase"}, "camera": C}
            records.append(_jsonable(rec))
            if log:
                log(f"{name}: {P['kind']} {P['dpi']} dpi, {C['W']}x{C['H']}, tilt {C['tilt_deg']:.0f}°, "
                    f"{C['cct']:.0f} K, {rec['seconds']:.1f} s")
    atomic_write_json(out_dir / ".pdfcam.json", {"pdf": str(pdf_path), "seed": seed, "photos": records})
    return records


def _max_density(geo: _Geometry, C: dict) -> float:
    """Largest camera pixels per page mm over the sheet (near parts of a tilted page)."""
    W, H = C["W"], C["H"]
    u, v = np.meshgrid(np.linspace(0, W, 33), np.linspace(0, H, 33))
    X, Y, _ = geo.backproject(u, v)
    step = W / 32
    d = step / np.hypot(np.diff(X, axis=1), np.diff(Y, axis=1))
    on = (X[:, 1:] > 0) & (X[:, 1:] < geo.pw) & (Y[:, 1:] > 0) & (Y[:, 1:] < geo.ph)
    return float(d[on].max()) if on.any() else 10.0


def parse_set(items: list[str]) -> dict:
    ranges = dict(RANGES)
    for item in items:
        name, _, value = item.partition("=")
        if name not in RANGES:
            raise SystemExit(f"--set: no range named {name!r}")
        v = json.loads(value)
        ranges[name] = (tuple(v) if isinstance(v, list) else v, "set on the command line")
    return ranges


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("pdf")
    ap.add_argument("out_dir")
    ap.add_argument("--photos-per-page", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], metavar="NAME=JSON",
                    help="override a range, e.g. --set laser_p=1 or --set tilt_deg=[0,5]")
    args = ap.parse_args(argv)
    try:
        photograph_pdf(args.pdf, args.out_dir, photos_per_page=args.photos_per_page, seed=args.seed,
                       ranges=parse_set(args.set), log=print)
    except ValueError as e:   # a path that is no PDF: one line, not a traceback
        raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
    main()
