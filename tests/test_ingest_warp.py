"""physical.ingest_warp.warp_bgr is cv2.warpPerspective (bilinear, replicated border) to the bit:
crops inside, across and beyond the photo's edges, strong perspective, mirrored maps, a buffer
full of another photo's pixels, and maps it cannot bound."""
from __future__ import annotations

import cv2
import numpy as np

from physical import ingest_warp


def _plain(img, W, size):
    return cv2.warpPerspective(img, W, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_REPLICATE)


def test_warp_bgr_is_warp_perspective_to_the_bit():
    rng = np.random.default_rng(0)
    h, w = 700, 900
    smooth = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (0, 0), 3)
    photo = np.clip(smooth.astype(int) + rng.integers(-40, 41, (h, w, 3)), 0, 255).astype(np.uint8)
    other = np.full_like(photo, 255)
    cases = 0
    for i in range(300):
        # crop-like maps: output px -> photo px, a scale, rotation, perspective, anywhere on the photo
        s = rng.uniform(0.2, 1.5) * rng.choice([-1, 1])
        a = rng.uniform(0, 2 * np.pi)
        A = np.array([[s * np.cos(a), -abs(s) * np.sin(a), rng.uniform(-60, w + 60)],
                      [s * np.sin(a), abs(s) * np.cos(a), rng.uniform(-60, h + 60)],
                      [rng.uniform(-2e-3, 2e-3), rng.uniform(-2e-3, 2e-3), 1.0]])
        size = (int(rng.integers(8, 400)), int(rng.integers(8, 400)))
        ingest_warp.warp_bgr(other, A[[1, 0, 2]], size)   # the buffer now holds another image's pixels
        got = ingest_warp.warp_bgr(photo, A, size)
        assert got.dtype == np.uint8 and got.shape == (size[1], size[0], 3)
        assert np.array_equal(got, _plain(photo, A, size)), (i, A, size)
        cases += ingest_warp._read_box(A, size, (h, w)) is not None
    assert cases > 250   # nearly all through the 4-channel buffer, not the fallback
    # a map whose denominator changes sign over the crop cannot be bounded: warped as it is
    W = np.array([[1.0, 0, 10], [0, 1.0, 10], [0.02, 0, -1.0]])
    assert ingest_warp._read_box(W, (100, 100), (h, w)) is None
    assert np.array_equal(ingest_warp.warp_bgr(photo, W, (100, 100)), _plain(photo, W, (100, 100)))
    ingest_warp.release_buffer()   # the pool's caller drops it when done; the next warp makes a new one
    assert not ingest_warp._BUFFER
    assert np.array_equal(ingest_warp.warp_bgr(photo, A, size), _plain(photo, A, size))
