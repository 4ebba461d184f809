"""Float images → 8-bit PNG, and what that quantisation changed.

FGSM values like 34.487 do not exist in an 8-bit image: saving rounds them (to nearest, never
truncating) and clips to [0, 255]. Every later stage scores the PNG as saved and read back,
so a perturbation that only worked in floating point is not counted as working.
"""
from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float N×3×H×W (or 3×H×W) in [0, 255] → uint8 N×H×W×3 (or H×W×3), rounded to nearest."""
    a = torch.clamp(torch.round(x.detach().float().cpu()), 0, 255).to(torch.uint8)
    return a.movedim(-3, -1).contiguous().numpy()


def encode_png(image: np.ndarray) -> bytes:
    """uint8 H×W×3 → PNG bytes (lossless; compress level 6 as Pillow's default)."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected uint8 H×W×3, got {image.dtype} {image.shape}")
    buf = io.BytesIO()
    Image.fromarray(image, "RGB").save(buf, format="PNG")
    return buf.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


def read_png(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


def quantization_error(x: torch.Tensor, quantized: np.ndarray) -> dict:
    """How far the saved 8-bit image is from the float one: max and mean |difference|, and the
    fraction of values that changed."""
    q = torch.from_numpy(quantized).movedim(-1, -3).float()
    diff = (x.detach().float().cpu() - q).abs()
    return {"max_abs": round(float(diff.max()), 4), "mean_abs": round(float(diff.mean()), 4),
            "changed_fraction": round(float((diff > 1e-6).float().mean()), 6)}
