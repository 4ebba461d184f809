"""Digit data for the lab: scikit-learn's bundled 8×8 handwritten digits (offline, the default)
or MNIST from a local folder in torchvision's layout.

Pixels are float32 in [0, 1], images flattened to vectors (m = 64 for digits, 784 for MNIST).
"""
from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from physical.errors import PhysicalError

MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


@dataclass
class Digits:
    """A train/test split; x_* float32 N×m in [0, 1], y_* int64 N."""
    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    shape: tuple[int, int]   # image height, width (for plots)
    source: str

    @property
    def dim(self) -> int:
        return int(self.x_train.shape[1])

    def info(self) -> dict:
        return {"name": self.name, "source": self.source, "image_shape": list(self.shape),
                "train": int(len(self.y_train)), "test": int(len(self.y_test)), "dim": self.dim}


def load_data(spec: str = "digits", seed: int = 0) -> Digits:
    """`digits` or `mnist:DIR`. Unknown names and incomplete MNIST folders are PhysicalErrors."""
    spec = (spec or "digits").strip()
    if spec == "digits":
        return load_sklearn_digits(seed)
    if spec.startswith("mnist:"):
        folder = spec[len("mnist:"):]
        if not folder:
            raise PhysicalError("--data mnist:DIR needs a folder, e.g. mnist:~/data (torchvision's MNIST/raw layout)")
        return load_mnist(os.path.expanduser(folder))
    raise PhysicalError(f"unknown data {spec!r}: use digits (scikit-learn's bundled 8×8 digits) "
                        "or mnist:DIR (a local MNIST copy in torchvision's layout)")


def load_sklearn_digits(seed: int = 0, test_fraction: float = 0.25) -> Digits:
    """The 1797 8×8 digits bundled with scikit-learn (values 0..16 → [0, 1]); a seeded,
    stratified 75/25 train/test split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_fraction, random_state=seed, stratify=y)
    return Digits("digits", x_tr, y_tr, x_te, y_te, (8, 8), "sklearn.datasets.load_digits (bundled)")


def _find_mnist_raw(folder: str) -> Path:
    """DIR may be the torchvision root (DIR/MNIST/raw), DIR/MNIST, or the raw folder itself."""
    root = Path(folder)
    if not root.is_dir():
        raise PhysicalError(f"MNIST folder {folder} does not exist")
    for cand in (root / "MNIST" / "raw", root / "raw", root):
        if cand.is_dir() and all(_idx_path(cand, f) is not None for f in MNIST_FILES.values()):
            return cand
    # Report against the folder a user most likely meant.
    base = next((c for c in (root / "MNIST" / "raw", root / "raw") if c.is_dir()), root)
    missing = [f for f in MNIST_FILES.values() if _idx_path(base, f) is None]
    raise PhysicalError(f"{base} is not an MNIST folder: missing {', '.join(missing)} "
                        "(expected torchvision's layout DIR/MNIST/raw/*-idx?-ubyte[.gz])")


def _idx_path(folder: Path, name: str) -> Path | None:
    for cand in (folder / name, folder / (name + ".gz")):
        if cand.is_file():
            return cand
    return None


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (MNIST's format: magic 0x0000 0x08 ndim, big-endian sizes, uint8 data)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise PhysicalError(f"{path} is not an unsigned-byte IDX file (bad magic number)")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    count = int(np.prod(dims)) if dims else 0
    if len(data) - offset != count:
        raise PhysicalError(f"{path} is truncated: header says {dims}, file holds {len(data) - offset} values")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(dims)


def load_mnist(folder: str) -> Digits:
    raw = _find_mnist_raw(folder)
    arrays = {key: read_idx(_idx_path(raw, name)) for key, name in MNIST_FILES.items()}
    for split in ("train", "test"):
        imgs, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if imgs.ndim != 3 or labels.ndim != 1 or len(imgs) != len(labels):
            raise PhysicalError(f"MNIST {split} files in {raw} disagree: images {imgs.shape}, labels {labels.shape}")
    h, w = arrays["train_images"].shape[1:]

    def flat(a):
        return (a.reshape(len(a), -1).astype(np.float32) / 255.0)

    return Digits("mnist", flat(arrays["train_images"]), arrays["train_labels"].astype(np.int64),
                  flat(arrays["test_images"]), arrays["test_labels"].astype(np.int64), (int(h), int(w)),
                  str(raw))
