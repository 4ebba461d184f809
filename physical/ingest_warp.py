"""The crop warp of ingest: `cv2.warpPerspective` (bilinear, replicated border, inverse map) of a
stored BGR photo, the same pixels to the bit, at about a third of the cost.

OpenCV's bilinear remap of 8-bit images has a SIMD path for 4 channels and none for 3 (a 448 px
crop of a 12 MP photo: 0.6 ms BGRA, 1.6 ms BGR; interpolation is per channel, so the 4-channel
result's first three channels are the 3-channel result). Converting the whole photo to BGRA
costs ~10 ms, as much as it saves, so only the region a crop's warp reads is converted, into a
photo-sized BGRA buffer at the same coordinates: the warp then runs with the same matrix on the
same values (a warp of a cut-out region would need a shifted matrix, whose rounding moves a few
pixels by one level). The buffer is kept per process (one photo's size: 48 MB at 12 MP) and
never cleared; what the warp reads was written for this crop:

a homography with a positive denominator over the crop is linear-fractional in each coordinate,
so over the crop's rectangle of pixel centres its source x and y are extreme at the rectangle's
corners; bilinear interpolation reads the pixels at floor(x) and floor(x) + 1 of each (OpenCV
rounds x to 1/32 px first), and the replicated border reads edge pixels, inside the clipped box.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

MARGIN_PX = 3   # pixels converted beyond the corners' bounding box (bilinear reads 1 more, rounding ~0)

_BUFFER: dict = {}   # "bgra": this process's photo-sized BGRA buffer


def _buffer(shape: tuple[int, int]) -> np.ndarray:
    buf = _BUFFER.get("bgra")
    if buf is None or buf.shape[:2] != shape:
        _BUFFER.clear()   # one photo size at a time: a 12 MP buffer is 48 MB
        buf = _BUFFER["bgra"] = np.empty((*shape, 4), np.uint8)
    return buf


def release_buffer() -> None:
    """Drop this process's buffer (a caller of ingest's pool that goes on with other work)."""
    _BUFFER.clear()


def _read_box(W: np.ndarray, size: tuple[int, int], shape: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1): the stored pixels a warp with inverse map W to `size` reads, clipped to
    the photo; None when W's denominator is not positive at every corner (no bound: warp it all)."""
    w, h = size
    corners = np.array([[0, 0, 1], [w - 1, 0, 1], [w - 1, h - 1, 1], [0, h - 1, 1]], np.float64)
    p = corners @ np.asarray(W, np.float64).T
    if not np.all(np.isfinite(p)) or not np.all(p[:, 2] > 0):
        return None
    x, y = p[:, 0] / p[:, 2], p[:, 1] / p[:, 2]
    rows, cols = shape
    x0 = min(max(math.floor(x.min()) - MARGIN_PX, 0), cols - 1)
    y0 = min(max(math.floor(y.min()) - MARGIN_PX, 0), rows - 1)
    x1 = max(min(math.ceil(x.max()) + MARGIN_PX + 1, cols), x0 + 1)
    y1 = max(min(math.ceil(y.max()) + MARGIN_PX + 1, rows), y0 + 1)
    return x0, y0, x1, y1


def warp_bgra(bgr: np.ndarray, W: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`warp_bgr`, before the alpha channel is dropped: (h, w, 4), its first three channels the
    warp's, the fourth meaningless (a caller that area-reduces the crop drops it after that,
    on fewer pixels; reducing is per channel too)."""
    def warp(image):
        return cv2.warpPerspective(image, W, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                   borderMode=cv2.BORDER_REPLICATE)

    box = _read_box(W, size, bgr.shape[:2])
    if bgr.dtype == np.uint8 and bgr.ndim == 3 and bgr.shape[2] == 3 and box is not None:
        x0, y0, x1, y1 = box
        view = _buffer(bgr.shape[:2])[y0:y1, x0:x1]
        done = cv2.cvtColor(bgr[y0:y1, x0:x1], cv2.COLOR_BGR2BGRA, dst=view)
        if done.ctypes.data == view.ctypes.data:   # else OpenCV wrote elsewhere (never seen): no shortcut
            return warp(_BUFFER["bgra"])
    return cv2.cvtColor(warp(bgr), cv2.COLOR_BGR2BGRA)


def warp_bgr(bgr: np.ndarray, W: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """cv2.warpPerspective(bgr, W, size, INTER_LINEAR | WARP_INVERSE_MAP, BORDER_REPLICATE) of an
    8-bit BGR image, computed through 4 channels (see the module docstring): the same array."""
    return cv2.cvtColor(warp_bgra(bgr, W, size), cv2.COLOR_BGRA2BGR)
