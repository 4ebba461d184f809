"""A printer + phone unlike `physical simulate`'s presets, for benchmarks (issue 12's "photos the
project did not make").

Two parts, neither of which the EOT channel models or draws from:

- `TABLE`: simulate's renderer with ranges of its own — the page smaller in the frame (fill
  0.55-0.8, so each crop pixel is fewer photo pixels) and tilted 15-40°, defocus 1-3.5 px,
  exposure 0.75-1.25, JPEG 70-90, a printer between typical and harsh.
- `develop`: a phone's image processing applied afterwards to each photo, as another maker's
  phone would: a colour-correction matrix with cross-talk (rows sum to 1, so grey stays grey),
  a contrast S-curve, chroma noise reduction, unsharp-mask sharpening (the channel only ever
  blurs), then JPEG again at quality 80-90. EXIF (the orientation tag) is kept.

    python benchmarks/unseen_camera.py PHOTOS_IN OUT_DIR [--seed 0]   # develop a folder of photos
"""
from __future__ import annotations

import argparse
import io
import os

import cv2
import numpy as np
from PIL import Image

from physical.presets import PRESETS
from physical.workspace import atomic_write_bytes

NAME = "unseen"
TABLE = {**PRESETS["typical"],
         "tilt_deg": (15, 40), "fill": (0.55, 0.8), "focal": (0.7, 0.85), "k1": (-0.05, 0.05),
         "defocus_px": (1.0, 3.5), "motion_px": (0.0, 5.0), "exposure": (0.75, 1.25),
         "gradient": (0.05, 0.35), "vignetting": (0.1, 0.35), "white_balance": (-0.1, 0.1),
         "shot_noise": (0.3, 1.0), "read_noise": (1.5, 4.0), "jpeg_quality": (70, 90),
         "gamma": (0.9, 1.3), "paper_white": (0.86, 0.99), "black": (0.05, 0.14),
         "saturation": (0.75, 1.0), "ink_blur_mm": (0.03, 0.09)}


def register() -> None:
    """Make `NAME` a simulate preset in this process only (simulate_run takes preset names)."""
    PRESETS.setdefault(NAME, TABLE)


def develop(jpeg: bytes, rng: np.random.Generator) -> bytes:
    """One photo through the other phone's processing (module docstring); JPEG bytes in and out."""
    im = Image.open(io.BytesIO(jpeg))
    exif = im.info.get("exif", b"")
    rgb = np.asarray(im.convert("RGB"), dtype=np.float32) / 255
    m = np.eye(3, dtype=np.float32) + rng.uniform(-0.08, 0.08, (3, 3)).astype(np.float32) * (1 - np.eye(3))
    m /= m.sum(axis=1, keepdims=True)
    rgb = np.clip(rgb @ m.T, 0, 1)
    a = rng.uniform(0.25, 0.5)                       # S-curve: slope 1 + a at mid grey, 1 − a at the ends
    rgb = (rgb - a * np.sin(2 * np.pi * rgb) / (2 * np.pi)).astype(np.float32)
    ycc = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)
    ycc[..., 1:] = cv2.GaussianBlur(ycc[..., 1:], (0, 0), 2.0)       # chroma noise reduction
    y = ycc[..., 0]
    ycc[..., 0] = y + rng.uniform(0.5, 1.0) * (y - cv2.GaussianBlur(y, (0, 0), rng.uniform(1.0, 2.0)))
    out = np.clip(cv2.cvtColor(ycc, cv2.COLOR_YCrCb2RGB), 0, 1)
    buf = io.BytesIO()
    Image.fromarray((out * 255 + 0.5).astype(np.uint8)).save(
        buf, format="JPEG", quality=int(rng.integers(80, 91)), subsampling="4:2:0", exif=exif)
    return buf.getvalue()


def develop_folder(src: str, dst: str, seed: int = 0) -> list[str]:
    """Every .jpg of src developed into dst (same names); returns dst's paths."""
    os.makedirs(dst, exist_ok=True)
    out = []
    for k, name in enumerate(sorted(f for f in os.listdir(src) if f.lower().endswith(".jpg"))):
        with open(os.path.join(src, name), "rb") as f:
            data = develop(f.read(), np.random.default_rng([seed, k]))
        path = os.path.join(dst, name)
        atomic_write_bytes(path, data)
        out.append(path)
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    print(f"developed {len(develop_folder(a.src, a.dst, a.seed))} photos into {a.dst}")
