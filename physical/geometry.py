"""Plane geometry shared by layout, simulate, ingest and markers: one place, separately tested.

Convention (every function here, and every coordinate in the run files):

* Points are ``(x, y)``: x to the right, y down, in arrays of shape ``(N, 2)`` (float64).
  A single point is ``(1, 2)``, never ``(2,)``; a wrong shape raises ``ValueError`` naming
  the expected one.
* Page coordinates are **millimetres** from the page's top-left corner. Printer and render
  resolutions are dots (pixels) per inch; `dots_to_mm` / `mm_to_dots` convert (25.4 mm/inch).
* Image coordinates are **pixels** in the *corner* convention: the top-left pixel's top-left
  corner is ``(0, 0)``, so pixel ``(i, j)`` (column i, row j) covers ``[i, i+1) × [j, j+1)`` and
  its centre is at ``(i + 0.5, j + 0.5)``. A W×H image spans ``[0, W] × [0, H]``; a page point at
  ``(x, y)`` mm rendered at ``s`` px/mm lands at ``(x·s, y·s)`` whatever ``s`` is, so rescaling
  an image is an exact scaling of its coordinates.
* OpenCV's detectors, ``warpPerspective`` and ``remap`` index pixels by their *centres*
  (centre of pixel i at i). `from_opencv` / `to_opencv` (and the matrices `INDEX_TO_CORNER`,
  `CORNER_TO_INDEX`) convert. (ingest.crop_matrix writes its crop's half pixel into its
  scale matrix, so that its numbers stay bit for bit what they were.)
* A homography ``H`` (3×3, float64) maps source points to destination points; for
  ``homography_mm_to_px`` that is page mm → photo px. Mapping and fitting are OpenCV's
  (`cv2.perspectiveTransform`, `cv2.findHomography`), float64 throughout;
  `cv2.getPerspectiveTransform` is not used: it takes float32 points (~1e-4 px off at 4000 px).
* Photos are in *displayed* orientation (the EXIF orientation tag applied, as
  ``PIL.ImageOps.exif_transpose`` shows them); `ORIENTATIONS` is the one table of the eight tags.
* Rectangles are ``(x0, y0, x1, y1)`` with x0 < x1 and y0 < y1; corners come in the order
  top-left, top-right, bottom-right, bottom-left (ArUco's order), outlines clockwise from TL.
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

MM_PER_INCH = 25.4

# OpenCV pixel-centre indices ↔ corner-convention coordinates, as homogeneous 3×3 maps.
INDEX_TO_CORNER = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1.0]])
CORNER_TO_INDEX = np.array([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1.0]])

# EXIF orientation tag → (k, mirror) with displayed = fliplr?(np.rot90(stored, k)), i.e. first
# rotate k × 90° counter-clockwise, then mirror left-right. Matches PIL.ImageOps.exif_transpose
# (tested for all eight tags).
ORIENTATIONS: dict[int, tuple[int, bool]] = {
    1: (0, False), 2: (0, True), 3: (2, False), 4: (2, True),
    5: (-1, True), 6: (-1, False), 7: (1, True), 8: (1, False)}


# --------------------------------------------------------------------------------- checks
def as_points(pts, name: str = "points") -> np.ndarray:
    """`pts` as a float64 (N, 2) array; ValueError naming the expected shape otherwise."""
    a = np.asarray(pts, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != 2:
        raise ValueError(f"{name} must have shape (N, 2) as (x, y) rows, got shape {a.shape}")
    return a


def as_homography(H, name: str = "homography") -> np.ndarray:
    """`H` as a float64 3×3 array; ValueError naming the expected shape otherwise."""
    a = np.asarray(H, dtype=np.float64)
    if a.shape != (3, 3):
        raise ValueError(f"{name} must have shape (3, 3), got shape {a.shape}")
    return a


# ----------------------------------------------------------------------- homographies
def map_points(H, pts) -> np.ndarray:
    """Apply homography H (3, 3) to points (N, 2) → (N, 2), with `cv2.perspectiveTransform`.

    Points on H's line at infinity (|w| ≤ DBL_EPSILON, where OpenCV returns 0) come back as
    inf/nan, so that a test like ``np.isfinite`` sees them."""
    H, p = as_homography(H), as_points(pts)
    if len(p) == 0:
        return p.copy()
    out = cv2.perspectiveTransform(np.ascontiguousarray(p).reshape(-1, 1, 2), H).reshape(-1, 2)
    w = p @ H[2, :2] + H[2, 2]
    at_infinity = np.abs(w) <= np.finfo(np.float64).eps
    if at_infinity.any():
        out[at_infinity] = np.inf
    return out


def fit_homography(src, dst, ransac_tol: float | None = None) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The homography src → dst from ≥ 4 point pairs (each (N, 2)), with `cv2.findHomography`:
    least squares over all points (``ransac_tol=None``), or RANSAC with that reprojection
    tolerance in dst units. Returns (H or None when OpenCV finds none, inlier mask or None)."""
    s, d = as_points(src, "src"), as_points(dst, "dst")
    if len(s) != len(d):
        raise ValueError(f"src and dst must have the same number of points, got {len(s)} and {len(d)}")
    if len(s) < 4:
        raise ValueError(f"a homography needs at least 4 point pairs, got {len(s)}")
    if ransac_tol is None:
        return cv2.findHomography(s, d, 0)
    return cv2.findHomography(s, d, cv2.RANSAC, float(ransac_tol))


def warp_perspective(image: np.ndarray, dst_to_src, size: tuple[int, int],
                     interpolation: int = cv2.INTER_LINEAR,
                     border: int = cv2.BORDER_REPLICATE) -> np.ndarray:
    """Resample `image` into a `size` = (w, h) image: output point p (corner convention) takes
    the source value at ``dst_to_src(p)`` (corner convention). One `cv2.warpPerspective`
    (WARP_INVERSE_MAP) with the ±0.5 of OpenCV's pixel-centre indexing put in here, so the
    identity map returns the image unchanged."""
    M = CORNER_TO_INDEX @ as_homography(dst_to_src, "dst_to_src") @ INDEX_TO_CORNER
    w, h = (int(v) for v in size)
    return cv2.warpPerspective(image, M, (w, h), flags=interpolation | cv2.WARP_INVERSE_MAP, borderMode=border)


# ------------------------------------------------------------------------ conventions
def from_opencv(pts) -> np.ndarray:
    """OpenCV pixel-centre coordinates (centre of pixel i at i; e.g. ArUco corners) → corner
    convention (centre at i + 0.5). Any shape ending in 2."""
    return np.asarray(pts, dtype=np.float64) + 0.5


def to_opencv(pts) -> np.ndarray:
    """Corner convention → OpenCV pixel-centre coordinates (for remap / warp maps)."""
    return np.asarray(pts, dtype=np.float64) - 0.5


def dots_to_mm(dots, dpi: float):
    """Printer dots (or render pixels) at `dpi` → millimetres."""
    return dots * MM_PER_INCH / dpi


def mm_to_dots(mm, dpi: float):
    """Millimetres → printer dots (or render pixels) at `dpi`, unrounded."""
    return mm / MM_PER_INCH * dpi


# ------------------------------------------------------------------------- rectangles
def rect_corners(rect) -> np.ndarray:
    """Corners (4, 2) of rectangle (x0, y0, x1, y1): TL, TR, BR, BL."""
    if len(rect) != 4:
        raise ValueError(f"a rectangle is (x0, y0, x1, y1), got {len(rect)} values")
    x0, y0, x1, y1 = map(float, rect)
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])


def rect_outline(rect, n: int) -> np.ndarray:
    """(4n, 2) points along the rectangle's edges, `n` per edge evenly spaced, clockwise from
    the top-left corner (each corner once, as the first point of its edge)."""
    if int(n) != n or n < 1:
        raise ValueError(f"points per edge must be a positive integer, got {n!r}")
    c = rect_corners(rect)
    t = np.linspace(0, 1, int(n), endpoint=False)[:, None]
    return np.concatenate([c[i] + (c[(i + 1) % 4] - c[i]) * t for i in range(4)])


def inside(pts, size: tuple[float, float], margin: float = 0.0) -> bool:
    """Whether every point (N, 2) lies in [margin, w − margin] × [margin, h − margin]."""
    p = as_points(pts)
    w, h = size
    return bool(np.all((p[:, 0] >= margin) & (p[:, 0] <= w - margin)
                       & (p[:, 1] >= margin) & (p[:, 1] <= h - margin)))


# ------------------------------------------------------------------- EXIF orientation
def _orientation(tag: int) -> tuple[int, bool]:
    try:
        return ORIENTATIONS[int(tag)]
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"EXIF orientation must be one of 1..8, got {tag!r}") from None


def orientation_matrix(tag: int, stored_size: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]]:
    """3×3 map stored-pixel corner coordinates → displayed ones for an EXIF orientation tag
    (unknown tags: the identity, as readers treat them), and the displayed size (w, h)."""
    w, h = stored_size
    k, mirror = ORIENTATIONS.get(int(tag), (0, False))
    M = np.eye(3)
    size = (w, h)
    for _ in range(k % 4):  # np.rot90 with k = 1: counter-clockwise; (x, y) → (y, W - x)
        W, Hh = size
        M = np.array([[0, 1, 0], [-1, 0, W], [0, 0, 1.0]]) @ M
        size = (Hh, W)
    if mirror:
        M = np.array([[-1, 0, size[0]], [0, 1, 0], [0, 0, 1.0]]) @ M
    return M, size


def to_displayed(stored: np.ndarray, tag: int) -> np.ndarray:
    """Stored pixels (H×W[×C]) → the photo as displayed for EXIF tag 1..8 (a view, no copy)."""
    k, mirror = _orientation(tag)
    out = np.rot90(stored, k)
    return np.fliplr(out) if mirror else out


def to_stored(displayed: np.ndarray, tag: int) -> np.ndarray:
    """Inverse of `to_displayed`: the pixels a camera stores with tag 1..8 (a view, no copy)."""
    k, mirror = _orientation(tag)
    return np.rot90(np.fliplr(displayed) if mirror else displayed, -k)


def exif_tags() -> Sequence[int]:
    """The eight EXIF orientation tags, 1..8."""
    return tuple(ORIENTATIONS)
