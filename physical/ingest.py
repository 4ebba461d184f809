"""Photo ingest: phone photos of printed sheets → one crop per printed image.

Per photo (`ingest_photo`, run in a process pool: forkserver, else spawn; see physical/ingest_pool.py):

1. Read the header with PIL and refuse images over the pixel limit before decoding
   (decompression bombs); decode (OpenCV for complete JPEGs, PIL otherwise, which reports
   truncated/corrupt files; HEIC/HEIF through pillow-heif, see `_open_heif`). The EXIF orientation is applied exactly as
   `PIL.ImageOps.exif_transpose` does (tested), but by coordinates: the full-resolution pixels
   stay as stored and every point is mapped through the orientation, which saves a 12 MP copy.
2. Find markers on a grey copy reduced to `DETECT_LONG_SIDE` pixels (area interpolation) with a
   fast pass of markers.py's detector (coarser threshold sweep); when that misses markers of a
   found image: again at a scale giving markers of `TARGET_SIDE` px (looking for smaller markers
   too when those seen are near the fast pass's smallest perimeter: "fast-small"), then
   `markers.detect` (the fully tuned detector); corners scale back exactly (pixel-corner convention). The
   detectors hold the ids of the layouts read first in their dictionary (`markers.Detector`:
   the same markers, found after fewer code comparisons).
3. `physical.markers.identify` → run, page and slot for every image whose markers were found;
   with earlier layouts kept (printouts/<run>/layouts/), `markers.identify_layouts` against the
   current one and each kept one, every marker explaining one layout at most. A sheet of an
   earlier layout is read against that layout and labelled by *its* slots; such a slot's crop is
   refused unless the PNG it printed is still the manifest's (same sha256). A sheet of no kept
   layout is refused with one line naming what it is (physical/layout_history.py).
4. Per image: a homography page-mm → photo-px from its own markers' corners (16 points), plus
   the page's other marker corners within one image diagonal that agree with that fit
   (residual ≤ max(`EXTRA_POINT_TOL_PX`, 2 × own RMS)), kept only if the own points still fit
   as well. Refused, with the reason recorded: when the image is partly out of the frame (its
   outline, 16 points per edge, mapped outside the photo; the paper discarded those), when the
   points used leave an image corner more than `HULL_TOL` × its side outside their convex
   hull (`HULL_TOL_FEW` with fewer than 3 of its own markers: too much extrapolation, e.g.
   2 of 4 markers on one side and no neighbours found), or when the markers do not
   fit one plane (RMS > `MAX_REPROJECTION_RATIO` × marker side).
5. The image rectangle is warped (one `cv2.warpPerspective`, bilinear, run in 4 channels:
   physical/ingest_warp.py) to a square of k × the source PNG's size, k = ceil(photo pixels
   across the image / PNG pixels), 2 ≤ k ≤ 8, so the warp never down-samples by more than 1×
   and no detail is lost, then reduced with area interpolation to the model's input size
   (DESIGN.md: blur is the main enemy).

Sharpness of a crop = variance of the Laplacian (3×3 aperture) of its grey version at the
source PNG's size. Several photos of one printed image: every crop is kept
(`crops/<id>/<variant>.png`, then `<variant>-2.png`, …) and the sharpest one is `used`
(ties: lower reprojection error, then the earlier photo).

Coordinates: photo pixels as displayed (EXIF applied), a pixel's top-left corner at its integer
coordinate; page millimetres from the top-left corner (docs/internals.md).

captures/<run>/ingest.json (schema 1; rewritten atomically after every photo)::

    {"schema": 1, "run": "r1", "layout_sha256": "…", "crop_rule": "…", "used_rule": "…",
     "photos": [{"file": "photos/p1.jpg" (relative to captures/<run>/, else absolute), "sha256": "…",
                 "status": "accepted" | "rejected", "reason": null | "no markers found" |
                 "markers of another run: …" | "markers of another run or layout (tag t): …" |
                 "markers of an earlier layout of this run: …" | "unknown markers: …" | "image partly out of frame" |
                 "too few markers around the image (…)" | "not an image (…)" |
                 "unreadable (truncated or corrupt: …)" | "over decompression limit (…)" | …,
                 "page": 1, "pages": [1], "slots_found": 6, "size": [w, h] (displayed),
                 "layouts": ["<layout_id>", …] (the layouts found; page/pages are the first one's),
                 "exif_orientation": 1, "markers_found": 24, "detect_scale": 0.5,
                 "detect_pass": "fast" | "fast-small" | "tuned",
                 "slots_rejected": [{"page", "slot", "image_id", "variant", "reason", "layout_id"}],
                 "seconds": 0.4, "cpu_seconds": 0.4}],
     "crops": [{"image_id", "variant", "file": "crops/<id>/<variant>[-<n>].png", "photo", "photo_sha256",
                "page", "slot", "layout_id" (whose page/slot: the layout id, or "v1-…" for a schema-1
                layout), "corners_px": 4x2 (image corners TL, TR, BR, BL in the photo),
                "homography_mm_to_px": 3x3, "points", "extra_points", "markers_found",
                "markers_expected", "reprojection_error_px" (RMS over the points used),
                "sharpness", "warp_px": [w, h], "used": bool}],
     "sessions": [{"time", "photos_dir", "files", "new", "already_ingested", "forgotten", "read", "accepted",
                   "rejected", "reasons": {kind: n}, "seconds", "note"?}],
     "summary": {"read", "accepted", "rejected", "reasons", "printed", "visible", "recovered", "crops"}}
"""
from __future__ import annotations

import io
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from physical import geometry, markers
from physical.errors import PhysicalError
from physical.ingest_layouts import KeptLayout, identify_all, kept_contexts, unmatched_reason
from physical.ingest_pool import pool_size, process, start_forkserver
from physical.ingest_warp import warp_bgra
from physical.workspace import Workspace, atomic_write_bytes, remove_inside, run_locked, sha256_bytes, sha256_file

DEFAULT_MAX_PIXELS = 200_000_000   # 200 MP: the largest phone sensors; more is a decompression bomb
DETECT_LONG_SIDE = 2000            # markers are searched on a copy this size (long side)
TARGET_SIDE = 36                   # when markers are missed, look again at a scale giving markers this size
SMALL_PERIMETER_RATIO = 1.25       # markers seen under this x the fast pass's smallest perimeter: look for smaller
EXTRA_POINT_TOL_PX = 0.75          # page points joining an image's fit must agree this well
MAX_REPROJECTION_RATIO = 0.08      # RMS reprojection error / marker side above which a fit is refused
MIN_K, MAX_K = 2, 8                # warp the crop at k × the PNG's pixels
EDGE_SAMPLES = 16                  # points per image edge checked against the frame
HULL_TOL_FEW = 0.2                 # ... when fewer than 3 of its own 4 markers were found
HULL_TOL = 0.75                    # image corners may lie this fraction of its side outside the points used

class Rejected(Exception):
    """A photo that cannot be used; the message is the reason recorded in ingest.json."""


# --------------------------------------------------------------------------------------------
# Reading


# the EXIF table, point mapping and outlines live in geometry.py; these names stay for callers
orientation_matrix = geometry.orientation_matrix
_to_displayed = geometry.to_displayed
_transform = geometry.map_points


def read_photo(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[np.ndarray, int]:
    """Decode photo bytes → (stored BGR uint8 array, EXIF orientation tag). Raises Rejected.

    The header (size, EXIF) is read with PIL before anything is decoded. A complete JPEG
    (ending in its EOI marker) is decoded by OpenCV straight into an array (faster: no copy);
    anything else by PIL, which reports truncated or corrupt data."""
    if data[4:8] == b"ftyp":   # an ISO-BMFF file: HEIC/HEIF (iPhones), read through pillow-heif
        _open_heif()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
            w, h = im.size
            if w * h > max_pixels:
                raise Rejected(f"over decompression limit ({w}x{h} = {w * h / 1e6:.0f} MP > "
                               f"{max_pixels / 1e6:.0f} MP)")
            try:
                tag = int(im.getexif().get(0x0112, 1) or 1)
            except Exception:  # a broken EXIF block is not a reason to drop the photo
                tag = 1
            tag = tag if tag in geometry.ORIENTATIONS else 1
            if im.format == "JPEG" and data.rstrip(b"\0")[-2:] == b"\xff\xd9":
                arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
                if arr is not None and arr.shape[:2] == (h, w):
                    return arr, tag
            im.load()
    except Rejected:
        raise
    except Image.DecompressionBombError as exc:
        raise Rejected(f"over decompression limit ({exc})") from None
    except UnidentifiedImageError:
        raise Rejected("not an image (cannot identify image file)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise Rejected(f"unreadable (truncated or corrupt: {exc})") from None
    if im.mode.startswith("I") or im.mode == "F":  # 16/32-bit grey: scale, don't clip, to 8 bits
        a = np.asarray(im).astype(np.float64)
        a = a / 257.0 if a.max() > 255 else a
        im = Image.fromarray(np.clip(a + 0.5, 0, 255).astype(np.uint8), "L")
    if im.mode not in ("RGB", "L"):
        im = im.convert("RGB")
    arr = np.asarray(im)
    if arr.ndim == 2:
        return cv2.cvtColor(arr, cv2.COLOR_GRAY2BGR), tag
    return cv2.cvtColor(arr, cv2.COLOR_RGB2BGR), tag


_HEIF = False


def _open_heif() -> None:
    """Teach PIL to open HEIC/HEIF (pillow-heif, once per process). libheif applies the image's
    rotation and mirroring (irot/imir, which HEIF makes normative) while decoding and pillow-heif
    then reports EXIF orientation 1, so such a photo comes back displayed, with tag 1."""
    global _HEIF
    if not _HEIF:
        try:
            import pillow_heif
        except ImportError:
            raise Rejected("a HEIC/HEIF photo, but pillow-heif is not installed (pip install pillow-heif)") from None
        pillow_heif.register_heif_opener()
        _HEIF = True


def find_markers(bgr: np.ndarray, tag: int, layout: dict, detect_long_side: int = DETECT_LONG_SIDE,
                 others: list[dict] = ()) -> tuple[list[markers.Detection], "markers.Identification", dict]:
    """Markers in the displayed photo (corners in displayed full-resolution pixels), their
    identification, and how they were found. `bgr` is the stored array; `tag` its EXIF orientation.

    Markers are searched on a grey copy whose long side is `detect_long_side` with a fast
    detector (markers.py's parameters with a coarser threshold sweep and fewer tiny
    candidates). When that finds markers but leaves a found image with missing markers, or
    identifies nothing: again at a scale giving markers of `TARGET_SIDE` pixels (or on the same
    copy, when that is full size), with the tuned detector's smallest perimeter when the markers
    seen are within `SMALL_PERIMETER_RATIO` of the fast pass's ("fast-small"), and if still
    incomplete, with `markers.detect` (the fully tuned detector). A photo that one of the `others`
    (kept earlier layouts) reads completely is complete too.
    """
    ids = markers.layout_ids(layout, *others)
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    scale = min(1.0, detect_long_side / max(grey.shape))
    small = _displayed_copy(grey, tag, scale)
    how = {"scale": scale, "pass": "fast"}
    dets = _fast_detect(small, ids)
    ident = markers.identify(dets, layout)

    def complete(ident, dets):
        return any(i.status == markers.STATUS_OK and all(m.markers_found == m.markers_expected for m in i.slots)
                   for i in (ident, *(markers.identify(dets, lay, explain=False) for lay in others)))

    if dets and not complete(ident, dets):
        side = float(np.median([d.side_px for d in dets]))
        # markers near the fast pass's smallest perimeter (a whole page from afar): those missed are
        # likely just under it, and stay so in a larger copy (the floor is a fraction of the copy's
        # size), so the next pass also looks for smaller ones (~0.25 s on a 12 MP photo instead of
        # ~0.5 s for a fast pass there that misses them and the tuned detector after it)
        small_markers = 4 * side < SMALL_PERIMETER_RATIO * _fast_parameters().minMarkerPerimeterRate * max(small.shape)
        if small_markers:
            how["pass"] = "fast-small"
        larger = scale < 1.0 and side < TARGET_SIDE   # markers small in the copy: look with more pixels
        if larger:
            scale = min(1.0, scale * TARGET_SIDE / side)
            small = _displayed_copy(grey, tag, scale)
            how["scale"] = scale
        if larger or small_markers:
            dets = _fast_detect(small, ids, small_markers)
            ident = markers.identify(dets, layout)
        if dets and not complete(ident, dets):
            # the tuned detector costs seconds on heavily textured photos (28 s on a 400x300
            # noise image): only worth it when the fast pass saw part of a sheet
            how["pass"] = "tuned"
            dets = markers.detect(small, ids)
    dets = _to_full(dets, scale)
    return dets, markers.identify(dets, layout), how


def _fast_parameters():
    """markers.detector_parameters with a cheaper candidate search."""
    p = markers.detector_parameters()
    p.adaptiveThreshWinSizeStep = max(p.adaptiveThreshWinSizeStep, 20)
    p.minMarkerPerimeterRate = max(p.minMarkerPerimeterRate, 0.03)
    p.polygonalApproxAccuracyRate = min(p.polygonalApproxAccuracyRate, 0.03)
    return p


def _fast_small_parameters():
    """_fast_parameters, down to markers.detector_parameters' smallest perimeter."""
    p = _fast_parameters()
    p.minMarkerPerimeterRate = markers.detector_parameters().minMarkerPerimeterRate
    return p


def _fast_detect(grey: np.ndarray, ids=None, small_markers: bool = False) -> list[markers.Detection]:
    """markers.detect with a cheaper candidate search (same dictionary, same corner convention);
    `ids`: those of the layouts read (markers.Detector: faster, same result)."""
    return markers.cached_detector(ids, _fast_small_parameters if small_markers else _fast_parameters)(grey)


def _displayed_copy(grey: np.ndarray, tag: int, scale: float) -> np.ndarray:
    small = grey if scale == 1.0 else cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(geometry.to_displayed(small, tag))


def _to_full(dets: list[markers.Detection], scale: float) -> list[markers.Detection]:
    """Corners found in the reduced copy → full-resolution displayed pixels. With the pixel-
    corner convention the reduction is an exact scale. (cv2.cornerSubPix at full resolution
    was tried and made the 12 MP corner error worse, 0.23 vs 0.19 source px, and cost time:
    blurred outer marker corners pull it inwards.)"""
    if scale == 1.0:
        return dets
    return [markers.Detection(d.id, d.corners_px / scale) for d in dets]


# --------------------------------------------------------------------------------------------
# Geometry


@dataclass
class SlotFit:
    H: np.ndarray            # page mm → displayed photo px
    rms_px: float            # RMS reprojection error of the points used
    points: int
    extra_points: int
    points_mm: np.ndarray    # the page points the fit used


def _fit(mm: np.ndarray, px: np.ndarray) -> np.ndarray | None:
    H, _ = geometry.fit_homography(mm, px)
    return H


def _residuals(H: np.ndarray, mm: np.ndarray, px: np.ndarray) -> np.ndarray:
    return np.linalg.norm(geometry.map_points(H, mm) - px, axis=1)


def fit_slot(match: markers.SlotMatch, page_mm: np.ndarray | None, page_px: np.ndarray | None,
             rect_mm) -> SlotFit | None:
    """Homography for one printed image: its own marker corners, plus nearby page marker corners
    that agree with that fit (they add accuracy where its own markers are blurred or few)."""
    mm, px = np.asarray(match.points_mm, np.float64), np.asarray(match.points_px, np.float64)
    if len(mm) < 4:
        return None
    H = _fit(mm, px)
    if H is None:
        return None
    rms = float(np.sqrt(np.mean(_residuals(H, mm, px) ** 2)))
    extra = 0
    if page_mm is not None and len(page_mm) > len(mm):
        x0, y0, x1, y1 = rect_mm
        centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
        reach = math.hypot(x1 - x0, y1 - y0)
        # page points that are not this image's own, within one image diagonal of its centre
        same = (np.abs(page_mm[:, None, :] - mm[None, :, :]).max(axis=2) < 1e-6).any(axis=1)
        cand = ~same & (np.linalg.norm(page_mm - centre, axis=1) <= reach)
        if cand.any():
            cm, cp = page_mm[cand], page_px[cand]
            ok = _residuals(H, cm, cp) <= max(EXTRA_POINT_TOL_PX, 2 * rms)
            if ok.any():
                mm2, px2 = np.concatenate([mm, cm[ok]]), np.concatenate([px, cp[ok]])
                H2 = _fit(mm2, px2)
                if H2 is not None:
                    own_rms2 = float(np.sqrt(np.mean(_residuals(H2, mm, px) ** 2)))
                    if own_rms2 <= 1.25 * rms + 0.05:
                        H, mm, px, extra = H2, mm2, px2, int(ok.sum())
                        rms = float(np.sqrt(np.mean(_residuals(H, mm, px) ** 2)))
    return SlotFit(H=H / H[2, 2], rms_px=rms, points=len(mm), extra_points=extra, points_mm=mm)


def _in_frame(H: np.ndarray, rect_mm, size: tuple[int, int]) -> bool:
    """Whether the whole image rectangle (its outline, densely sampled) maps inside the photo."""
    outline = geometry.map_points(H, geometry.rect_outline(rect_mm, EDGE_SAMPLES))
    return bool(np.all(np.isfinite(outline)) and np.all((outline >= 0) & (outline <= size)))


def _inside_hull(points_mm: np.ndarray, query_mm: np.ndarray, tol_mm: float = 0.25) -> bool:
    hull = cv2.convexHull(points_mm.astype(np.float32))
    return all(cv2.pointPolygonTest(hull, (float(x), float(y)), True) >= -tol_mm for x, y in query_mm)


def crop_matrix(H: np.ndarray, rect_mm, out_size: tuple[int, int], M_disp: np.ndarray | None = None
                ) -> np.ndarray:
    """3×3 map: crop pixel index → source image pixel index (for WARP_INVERSE_MAP).

    crop index (i, j) has its centre at crop corner coords (i + .5, j + .5) → page mm in the
    image rectangle → displayed photo px (H) → stored px (M_disp⁻¹) → stored index (− .5)."""
    x0, y0, x1, y1 = map(float, rect_mm)
    nw, nh = out_size
    S = np.array([[(x1 - x0) / nw, 0, x0 + 0.5 * (x1 - x0) / nw],
                  [0, (y1 - y0) / nh, y0 + 0.5 * (y1 - y0) / nh], [0, 0, 1.0]])
    back = np.linalg.inv(M_disp) if M_disp is not None else np.eye(3)
    return geometry.CORNER_TO_INDEX @ back @ H @ S


def sharpness(crop_bgr: np.ndarray) -> float:
    """Variance of the 3×3 Laplacian of the grey crop (at the source PNG's size)."""
    grey = cv2.cvtColor(crop_bgr, cv2.COLOR_BGR2GRAY)   # uint8 in, float out: the same integer sums
    return float(cv2.Laplacian(grey, cv2.CV_32F, ksize=1).var())


# --------------------------------------------------------------------------------------------
# One photo (runs in a worker process)


@dataclass
class Context:
    layout: dict
    rects: dict                 # (page, slot) -> rect_mm
    source_size: dict           # (image_id, variant) -> (w, h) of the PNG
    input_size: int
    max_pixels: int = DEFAULT_MAX_PIXELS
    detect_long_side: int = DETECT_LONG_SIDE
    label: str | None = None    # the current layout's name (physical.layout_history.layout_label)
    kept: list[KeptLayout] = field(default_factory=list)


def ingest_photo(data: bytes, ctx: Context) -> dict:
    """Everything ingest learns from one photo's bytes: {"photo": record, "crops": [record +
    "png": bytes]} (crop file names are given later, by the caller)."""
    t0, c0 = time.perf_counter(), time.process_time()
    rec: dict = {"status": "rejected", "reason": None, "page": None, "pages": [], "slots_found": 0}
    crops: list[dict] = []
    try:
        bgr, tag = read_photo(data, ctx.max_pixels)
        M, disp_size = geometry.orientation_matrix(tag, (bgr.shape[1], bgr.shape[0]))
        rec.update(size=list(disp_size), exif_orientation=tag)
        dets, ident, how = find_markers(bgr, tag, ctx.layout, ctx.detect_long_side, [k.layout for k in ctx.kept])
        rec.update(markers_found=len(dets), detect_scale=round(how["scale"], 4), detect_pass=how["pass"])
        found = identify_all(dets, ident, ctx)   # [(KeptLayout, Identification)], one per layout seen
        if not found:
            raise Rejected(unmatched_reason(dets, ident, ctx))
        ident = found[0][1]
        rec["layouts"] = [lay.label for lay, _ in found]
        rec["pages"] = list(ident.pages)
        rec["page"] = ident.pages[0] if ident.pages else None
        sides = np.median([d.side_px for d in dets])
        skipped = []
        for lay, ident, match in ((lay, idf, m) for lay, idf in found for m in idf.slots):
            rect = lay.rects[(match.page, match.slot)]
            why = lay.stale.get((match.page, match.slot))
            fit = None if why else fit_slot(match, ident.page_points_mm.get(match.page),
                                            ident.page_points_px.get(match.page), rect)
            if why:
                pass
            elif fit is None:
                why = "markers do not give a homography"
            elif not _in_frame(fit.H, rect, disp_size):
                why = "image partly out of frame"
            elif not _inside_hull(fit.points_mm, geometry.rect_corners(rect),
                                  (HULL_TOL if match.markers_found >= 3 else HULL_TOL_FEW)
                                  * max(rect[2] - rect[0], rect[3] - rect[1])):
                why = f"too few markers around the image ({match.markers_found} of {match.markers_expected} found)"
            elif fit.rms_px > max(1.0, MAX_REPROJECTION_RATIO * sides):
                why = f"markers do not fit a flat sheet (reprojection error {fit.rms_px:.1f} px)"
            if why:
                skipped.append({"page": match.page, "slot": match.slot, "image_id": match.image_id,
                                "variant": match.variant, "reason": why, "layout_id": lay.label})
                continue
            crops.append({**_make_crop(bgr, M, match, fit, rect, ctx), "layout_id": lay.label})
        rec["slots_rejected"] = skipped
        rec["slots_found"] = len(crops)
        if crops:
            rec["status"] = "accepted"
        else:
            reasons = sorted({s["reason"] for s in skipped})
            raise Rejected(reasons[0] if len(reasons) == 1 else "no usable image: " + "; ".join(reasons))
    except Rejected as exc:
        rec["status"], rec["reason"] = "rejected", str(exc)
    except cv2.error as exc:  # e.g. an image too small or odd for the detector
        rec["status"], rec["reason"] = "rejected", f"cannot process image ({str(exc).strip().splitlines()[-1]})"
    rec["seconds"] = round(time.perf_counter() - t0, 3)
    rec["cpu_seconds"] = round(time.process_time() - c0, 3)
    return {"photo": rec, "crops": crops}


_STATUS_REASON = {markers.STATUS_OTHER_RUN: "markers of another run",
                  markers.STATUS_UNKNOWN: "unknown markers"}


_PNG_STORED = [cv2.IMWRITE_PNG_COMPRESSION, 0, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE]


def _make_crop(bgr: np.ndarray, M: np.ndarray, match, fit: SlotFit, rect, ctx: Context) -> dict:
    src_w, src_h = ctx.source_size[(match.image_id, match.variant)]
    corners = geometry.map_points(fit.H, geometry.rect_corners(rect))
    extent = max(np.linalg.norm(corners[1] - corners[0]), np.linalg.norm(corners[2] - corners[3]),
                 np.linalg.norm(corners[3] - corners[0]), np.linalg.norm(corners[2] - corners[1]))
    k = int(min(MAX_K, max(MIN_K, math.ceil(extent / max(src_w, src_h)))))
    size = (k * src_w, k * src_h)
    W = crop_matrix(fit.H, rect, size, M)
    # cv2.warpPerspective, bilinear, replicated border, to the bit, in 4 channels (faster); reduced,
    # per channel too, before the 4th is dropped
    big = warp_bgra(bgr, W, size)
    at_source = cv2.cvtColor(cv2.resize(big, (src_w, src_h), interpolation=cv2.INTER_AREA), cv2.COLOR_BGRA2BGR)
    n = ctx.input_size
    final = at_source if (src_w, src_h) == (n, n) else cv2.cvtColor(
        cv2.resize(big, (n, n), interpolation=cv2.INTER_AREA), cv2.COLOR_BGRA2BGR)
    # stored (deflate level 0, no filter): lossless and deterministic like any PNG, 0.4 ms a 224 px
    # crop instead of 2.3 ms Huffman-coded ("up" filter), ~10 % of a 12 MP photo's CPU; 151 KB vs 89 KB
    ok, png = cv2.imencode(".png", final, _PNG_STORED)
    return {"image_id": match.image_id, "variant": match.variant, "page": match.page, "slot": match.slot,
            "corners_px": corners.round(3).tolist(), "homography_mm_to_px": fit.H.tolist(),
            "points": fit.points, "extra_points": fit.extra_points, "markers_found": match.markers_found,
            "markers_expected": match.markers_expected, "reprojection_error_px": round(fit.rms_px, 4),
            "sharpness": round(sharpness(at_source), 3), "warp_px": list(size), "png": png.tobytes()}


# --------------------------------------------------------------------------------------------
# The stage

def _context(ws: Workspace, run: str, layout: dict, max_pixels: int) -> Context:
    manifest = ws.load_manifest(run).dump()
    rects, source_size = {}, {}
    files = {(im["id"], v): rec["file"] for im in manifest["images"] for v, rec in im["variants"].items()}
    for page in layout["pages"]:
        for slot in page["slots"]:
            rects[(int(page["page"]), int(slot["slot"]))] = [float(v) for v in slot["rect_mm"]]
            key = (slot["image_id"], slot["variant"])
            if key in source_size:
                continue
            if slot.get("size_px"):
                source_size[key] = tuple(int(v) for v in slot["size_px"])
                continue
            rel = files.get(key)
            if rel is None:
                raise PhysicalError(f"layout.json prints {key[0]}/{key[1]}, which is not in the manifest of run {run!r}")
            try:
                with Image.open(ws.printouts(run) / rel) as im:
                    source_size[key] = im.size
            except OSError as exc:
                raise PhysicalError(f"cannot read the source PNG {ws.printouts(run) / rel}: {exc}") from None
    label, kept = kept_contexts(ws, run, layout, manifest, source_size)
    return Context(layout=layout, rects=rects, source_size=source_size,
                   input_size=int(manifest["model"]["input_size"]), max_pixels=max_pixels, label=label, kept=kept)


@run_locked("ingest")
def ingest_run(ws: Workspace, run: str, photos: str | os.PathLike | None = None, *,
               workers: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS, force: bool = False,
               progress: Callable[[int], object] | None = None, total: Callable[[int], object] | None = None,
               only: list[str | os.PathLike] | None = None) -> dict:
    """Ingest every new photo in `photos` (default captures/<run>/photos); returns ingest.json's
    content plus a "summary" block. Photos already ingested (same sha256) are skipped.
    `only`: just these files of that folder, in this order, instead of listing it (a caller that
    knows which photos are new, like `physical serve`, saves hashing every earlier photo again)."""
    layout_path = ws.layout_path(run)
    if not layout_path.exists():
        raise PhysicalError(f"{layout_path} does not exist: run `physical layout --run {run}` first")
    folder = Path(photos) if photos is not None else ws.photos_dir(run)
    if not folder.is_dir():
        raise PhysicalError(f"photo folder {folder} does not exist" +
                            (f" (simulate some with `physical simulate --run {run}`, or pass --photos)"
                             if photos is None else ""))
    files = ws.list_photos(run, folder) if only is None else [p for p in map(Path, only) if p.is_file()]
    if pool_size(workers, len(files)) > 1:
        start_forkserver()   # it imports cv2 & co. on the other core while this one reads the run and hashes photos
    from physical import records   # here, not at the top: pool workers need no pydantic (~0.15 s CPU to import)
    from physical.layout_history import ensure_pdf, read_layout

    layout = read_layout(layout_path, run)
    ensure_pdf(ws, run, layout, required=False)   # only repairs: ingest reads no PDF
    layout_sha = sha256_file(layout_path)
    captures = ws.captures(run)
    ingest_json = ws.ingest_path(run)
    state = records.read(records.INGEST, ws, run).dump() if ingest_json.exists() and not force else None
    if state is not None and state.get("layout_sha256") != layout_sha:
        raise PhysicalError(f"{ingest_json} was made from another layout.json (the PDF was rebuilt); "
                            "use --force to start ingest over")
    if state is None:
        if force and (captures / "crops").exists():
            _clear_crops(captures, ingest_json)
        state = {"schema": 1, "run": run, "layout_sha256": layout_sha,
                 "crop_rule": ("warp the image rectangle to k x the PNG size (k = ceil(photo px across / "
                               "PNG px), 2..8), area-resize to the model input"),
                 "used_rule": ("the sharpest crop of each printed image is used: variance of the 3x3 "
                               "Laplacian of its grey version at the PNG's size; ties: lower reprojection "
                               "error, then the earlier photo"),
                 "photos": [], "crops": [], "sessions": []}
    ctx = _context(ws, run, layout, max_pixels)
    digests = [(path, sha256_file(path)) for path in files]
    # a call for some files (`only`, physical serve) forgets nothing: it has not looked at the folder
    forgotten = _forget_changed_photos(ws, run, state, folder, {d for _, d in digests}) if only is None else 0
    known = {p["sha256"] for p in state["photos"] if p.get("sha256")}
    todo, skipped = [], 0
    for path, digest in digests:
        if digest in known:
            skipped += 1
            continue
        known.add(digest)
        todo.append((path, digest))
    if total:
        total(len(todo))
    session = {"time": datetime.now(timezone.utc).isoformat(timespec="seconds"), "photos_dir": str(folder),
               "files": len(files), "new": len(todo), "already_ingested": skipped, "forgotten": forgotten}
    t0 = time.perf_counter()
    new_records = []
    rewriter = records.Rewriter(records.INGEST, ws, run, ("photos", "crops"), watch=("used",))
    for path, digest, result in process(todo, ingest_photo, ctx, workers):
        rec = {"file": _relative(path, captures), "sha256": digest, **result["photo"]}
        for crop in result["crops"]:
            png = crop.pop("png")
            name = _crop_name(state, crop["image_id"], crop["variant"])
            atomic_write_bytes(captures / name, png)
            state["crops"].append({"image_id": crop["image_id"], "variant": crop["variant"], "file": name,
                                   "sha256": sha256_bytes(png),
                                   "photo": rec["file"], "photo_sha256": digest, **{
                                       k: v for k, v in crop.items() if k not in ("image_id", "variant")},
                                   "used": False})
        state["photos"].append(rec)
        new_records.append(rec)
        _choose_used(state["crops"])
        # after every photo (an interruption loses at most one; serve shows each as it lands), on
        # one line: indented JSON of a few hundred crops costs ~15 ms a write; the last write indents
        rewriter.write(state)
        if progress:
            progress(1)
    session["seconds"] = round(time.perf_counter() - t0, 3)
    session.update(_counts(new_records))
    if not files:
        session["note"] = f"no files in {folder}"
    state["sessions"].append(session)
    _choose_used(state["crops"])
    state["summary"] = summarize(state, layout)
    records.write(records.INGEST, ws, run, state)
    state["last_session"] = session
    return state


def _forget_changed_photos(ws: Workspace, run: str, state: dict, folder: Path, present: set[str]) -> int:
    """Drop the records and crops of photos once read from `folder` that are no longer there with
    the same content (deleted, or replaced, e.g. by `physical simulate --force`): ingest owns its
    crops and ingest.json, so it is ingest that notices, not the stage that changed the photos.
    Photos ingested from other folders are kept. Returns how many photos were forgotten."""
    captures = ws.captures(run)
    root = folder.resolve()
    gone = []
    for rec in state["photos"]:
        path = Path(rec.get("file", ""))
        path = (path if path.is_absolute() else captures / path).resolve()
        if path.parent.is_relative_to(root) and rec.get("sha256") not in present:
            gone.append(rec)
    if not gone:
        return 0
    keys = {(rec.get("file"), rec.get("sha256")) for rec in gone}
    kept = []
    for crop in state["crops"]:
        if (crop.get("photo"), crop.get("photo_sha256")) in keys:
            remove_inside(ws, run, captures, crop["file"])  # a path read from ingest.json: inside the run only
        else:
            kept.append(crop)
    state["crops"] = kept
    state["photos"] = [rec for rec in state["photos"] if not any(rec is g for g in gone)]
    return len(gone)


def _relative(path: Path, captures: Path) -> str:
    try:
        return path.resolve().relative_to(captures.resolve()).as_posix()
    except ValueError:
        return str(path.resolve())


def _crop_name(state: dict, image_id: str, variant: str) -> str:
    taken = {c["file"] for c in state["crops"]}
    n = 1
    while True:
        name = f"crops/{image_id}/{variant}.png" if n == 1 else f"crops/{image_id}/{variant}-{n}.png"
        if name not in taken:
            return name
        n += 1


def _choose_used(crops: list[dict]) -> None:
    best: dict = {}
    for i, c in enumerate(crops):
        key = (c["image_id"], c["variant"])
        score = (c["sharpness"], -c["reprojection_error_px"], -i)
        if key not in best or score > best[key][0]:
            best[key] = (score, i)
    chosen = {i for _, i in best.values()}
    for i, c in enumerate(crops):
        c["used"] = i in chosen


def _clear_crops(captures: Path, ingest_json: Path) -> None:
    import shutil

    shutil.rmtree(captures / "crops", ignore_errors=True)
    ingest_json.unlink(missing_ok=True)


def _counts(records: list[dict]) -> dict:
    reasons: dict[str, int] = {}
    for r in records:
        if r["status"] != "accepted":
            key = _reason_kind(r["reason"])
            reasons[key] = reasons.get(key, 0) + 1
    return {"read": len(records), "accepted": sum(r["status"] == "accepted" for r in records),
            "rejected": sum(r["status"] != "accepted" for r in records), "reasons": reasons}


def _reason_kind(reason: str | None) -> str:
    """The reason without its details (for counting): text before the first '(' or ':'."""
    reason = reason or "unknown"
    for sep in (" (", ":"):
        reason = reason.split(sep)[0]
    return reason.strip()


def summarize(state: dict, layout: dict) -> dict:
    printed = {(s["image_id"], s["variant"]) for p in layout["pages"] for s in p["slots"]}
    recovered = {(c["image_id"], c["variant"]) for c in state["crops"]}
    visible = set(recovered)
    for p in state["photos"]:
        for s in p.get("slots_rejected", []):
            visible.add((s["image_id"], s["variant"]))
    out = _counts(state["photos"])
    out.update(printed=len(printed), visible=len(visible), recovered=len(recovered),
               crops=len(state["crops"]))
    return out


def summary_line(state: dict) -> str:
    s, last = state["summary"], state.get("last_session", {})
    reasons = ", ".join(f"{n} {k}" for k, n in sorted(s["reasons"].items(), key=lambda kv: -kv[1]))
    gone = f", {last['forgotten']} gone or replaced: their crops dropped" if last.get("forgotten") else ""
    new = f" ({last.get('new', 0)} new, {last.get('already_ingested', 0)} already ingested{gone})" if last else ""
    return (f"ingest {state['run']}: {s['read']} photos read{new}, {s['accepted']} accepted, "
            f"{s['rejected']} rejected{' (' + reasons + ')' if reasons else ''}; "
            f"{s['recovered']} of {s['visible']} images visible in photos recovered "
            f"({s['printed']} printed)")
