"""Artificial transformations of paper Section 4 (Kurakin et al. 2016), on uint8 RGB images.

Each transform is one library call in uint8, as a real image pipeline would do it:

    brightness  δ levels   cv2.add(img, (δ, δ, δ))               saturating; identity δ = 0
    contrast    factor μ   cv2.convertScaleAbs(img, alpha=μ)     round(μ·X) clipped; identity μ = 1
    blur        σ pixels   cv2.GaussianBlur(img, (0, 0), σ)      identity σ = 0
    noise       σ levels   cv2.add(img, σ·N(0,1), dtype=CV_8U)   round, saturate; identity σ = 0
    jpeg        quality    Pillow JPEG encode + decode            no identity (q = 100 is close)

The paper gives its grids only in a figure; `GRID` spans PAPER.md's ranges and is recorded in
metrics.json. Noise is seeded per image (`noise_field`), independent of processing order, and
the same field is used for an image's clean and adversarial versions.
"""
from __future__ import annotations

import io
import zlib

import cv2
import numpy as np
from PIL import Image

KINDS = ("brightness", "contrast", "blur", "noise", "jpeg")
GRID: dict[str, tuple[float, ...]] = {
    "brightness": (-30, -20, -10, 10, 20, 30),
    "contrast": (0.7, 0.8, 0.9, 1.1, 1.2, 1.3),
    "blur": (0.4, 0.7, 1.0, 1.5, 2.0),
    "noise": (5, 10, 15, 20),
    "jpeg": (10, 30, 50, 70, 90, 100),
}
IDENTITY = {"brightness": 0, "contrast": 1.0, "blur": 0.0, "noise": 0.0, "jpeg": None}
OPS = {
    "brightness": "cv2.add(img, (d, d, d)) (saturating uint8 add of d levels)",
    "contrast": "cv2.convertScaleAbs(img, alpha=mu): round(mu * X) clipped to [0, 255]",
    "blur": "cv2.GaussianBlur(img, (0, 0), sigma) (kernel size from sigma, reflect-101 border)",
    "noise": "cv2.add(img, sigma * N(0,1), dtype=CV_8U) (round, saturate); N(0,1) from "
             "numpy default_rng([seed, crc32(image id)])",
    "jpeg": "Pillow JPEG encode/decode at quality q (4:2:0 chroma subsampling)",
}


def _check(img: np.ndarray) -> np.ndarray:
    if not (isinstance(img, np.ndarray) and img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3):
        raise ValueError("expected a uint8 H×W×3 RGB image")
    return img


def brightness(img: np.ndarray, delta: float) -> np.ndarray:
    """X + δ, saturated to [0, 255]."""
    _check(img)
    d = float(delta)
    return cv2.add(img, (d, d, d, 0.0))


def contrast(img: np.ndarray, factor: float) -> np.ndarray:
    """X · μ (the paper's contrast change), rounded and saturated to [0, 255]."""
    _check(img)
    if factor < 0:
        raise ValueError(f"contrast factor must be ≥ 0, got {factor}")
    return cv2.convertScaleAbs(img, alpha=float(factor), beta=0.0)


def blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of standard deviation σ pixels (σ = 0: the image unchanged)."""
    _check(img)
    if sigma < 0:
        raise ValueError(f"blur sigma must be ≥ 0, got {sigma}")
    if sigma == 0:
        return img.copy()
    return cv2.GaussianBlur(img, (0, 0), sigmaX=float(sigma), sigmaY=float(sigma))


def noise_field(shape, seed: int = 0, image_id: str = "") -> np.ndarray:
    """A standard normal float32 field, reproducible from (seed, image id)."""
    rng = np.random.default_rng([int(seed), zlib.crc32(image_id.encode("utf-8"))])
    return rng.standard_normal(size=tuple(shape), dtype=np.float32)


def noise(img: np.ndarray, sigma: float, field: np.ndarray | None = None, seed: int = 0,
          image_id: str = "") -> np.ndarray:
    """X + σ·N(0, 1), rounded and saturated; `field` (a standard normal of img's shape) or a
    field drawn from (seed, image_id)."""
    _check(img)
    if sigma < 0:
        raise ValueError(f"noise sigma must be ≥ 0, got {sigma}")
    if sigma == 0:
        return img.copy()
    if field is None:
        field = noise_field(img.shape, seed, image_id)
    if field.shape != img.shape:
        raise ValueError(f"noise field {field.shape} does not match the image {img.shape}")
    return cv2.add(img, (field * np.float32(sigma)).astype(np.float32), dtype=cv2.CV_8U)


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """JPEG compression at `quality` (1–100) and back, with Pillow."""
    _check(img)
    q = int(quality)
    if not 1 <= q <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=q)
    buf.seek(0)
    with Image.open(buf) as out:
        return np.asarray(out.convert("RGB")).copy()


def apply(kind: str, img: np.ndarray, value: float, *, seed: int = 0, image_id: str = "",
          field: np.ndarray | None = None) -> np.ndarray:
    """Apply transform `kind` of strength `value` to one uint8 image."""
    if kind == "brightness":
        return brightness(img, value)
    if kind == "contrast":
        return contrast(img, value)
    if kind == "blur":
        return blur(img, value)
    if kind == "noise":
        return noise(img, value, field=field, seed=seed, image_id=image_id)
    if kind == "jpeg":
        return jpeg(img, value)
    raise ValueError(f"unknown transform {kind!r}: use {', '.join(KINDS)}")


def stage_name(kind: str, value: float) -> str:
    return f"transform:{kind}:{value:g}"
