"""Image sources → labelled uint8 images at the model's input size.

A source is a folder of images (or `demo`, the bundled real photos; `demo:chelsea,coffee` some of them). Labels come from, in order:
  1. `--labels CSV` with rows `file,label` (label = class index, wnid or class name);
  2. the image's sub-folder, ImageNet style (`n01440764/…` or `0/…`);
  3. a wnid prefix in the file name (`n01440764_10026.JPEG`).
Images are EXIF-transposed, converted to RGB (grey, palette, alpha over white, CMYK, 16-bit),
resized on the short side (bicubic) to `resize` and centre-cropped to `crop` (the model's own
preprocessing: 256 → 224 for EfficientNet-Lite0).
"""
from __future__ import annotations

import csv
import os
import random
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from physical.errors import PhysicalError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm"}
WNID = re.compile(r"^(n\d{8})")

# The bundled demo set: real photos shipped inside scikit-image and scikit-learn, with the
# ImageNet class a person would give them (each is in the default model's top-5).
DEMO_IMAGES = [
    # id, package, file, ImageNet index
    ("coffee", "skimage", "coffee.png", 967),          # espresso
    ("chelsea", "skimage", "chelsea.png", 281),        # tabby cat
    ("camera", "skimage", "camera.png", 872),          # tripod (the cameraman's), greyscale
    ("rocket", "skimage", "rocket.jpg", 657),          # missile
    ("motorcycle", "skimage", "motorcycle_left.png", 665),  # moped
    ("china", "sklearn", "china.jpg", 698),            # palace
    ("flower", "sklearn", "flower.jpg", 985),          # daisy
]


@dataclass
class Item:
    """One source image and its label (class index in the model's 1000 ImageNet classes)."""
    id: str
    path: str
    label: int


@dataclass
class Skipped:
    source: str
    reason: str


def _demo_path(package: str, name: str) -> str:
    if package == "skimage":
        import skimage.data

        return os.path.join(os.path.dirname(skimage.data.__file__), name)
    import sklearn.datasets

    return os.path.join(os.path.dirname(sklearn.datasets.__file__), "images", name)


def demo_items() -> list[Item]:
    return [Item(image_id, _demo_path(pkg, name), label) for image_id, pkg, name, label in DEMO_IMAGES]


class ClassTable:
    """Resolves a label given as index, wnid or class name to a class index."""

    def __init__(self, wnids: list[str], names: list[str]):
        self.wnids, self.names = wnids, names
        self._by_wnid = {w: i for i, w in enumerate(wnids) if w}
        self._by_name = {}
        for i, n in enumerate(names):
            self._by_name.setdefault(n.lower(), i)

    def resolve(self, label: str) -> int | None:
        label = label.strip()
        if label.isdigit():
            index = int(label)
            return index if index < len(self.names) else None
        if label in self._by_wnid:
            return self._by_wnid[label]
        return self._by_name.get(label.lower())

    def describe(self, index: int) -> dict:
        return {"index": int(index), "wnid": self.wnids[index], "name": self.names[index]}


def safe_id(text: str) -> str:
    """A folder-safe image id: letters, digits, '.', '_', '-'."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")
    return cleaned[:80] or "image"


def _read_labels_csv(path: str, table: ClassTable) -> dict[str, int]:
    if not os.path.isfile(path):
        raise PhysicalError(f"labels file {path} does not exist")
    labels = {}
    with open(path, newline="", encoding="utf-8-sig") as f:
        for line_no, row in enumerate(csv.reader(f), start=1):
            if not row or row[0].startswith("#"):
                continue
            if len(row) < 2:
                raise PhysicalError(f"{path}:{line_no}: expected 'file,label', got {','.join(row)!r}")
            file, label = row[0].strip(), row[1].strip()
            if line_no == 1 and file.lower() in ("file", "filename", "image", "path"):
                continue  # header
            index = table.resolve(label)
            if index is None:
                raise PhysicalError(f"{path}:{line_no}: label {label!r} names no class "
                                    "(use a class index 0-999, a wnid like n01440764, or a class name)")
            labels[file] = index
            labels.setdefault(os.path.basename(file), index)
    return labels


def collect(images: str, table: ClassTable, labels_csv: str | None = None, limit: int | None = None,
            seed: int = 0) -> tuple[list[Item], list[Skipped]]:
    """The labelled images of a source (a folder or 'demo'), optionally a seeded random subset."""
    if images == "demo":
        items, skipped = demo_items(), []
    elif images.startswith("demo:"):  # some demo photos by id, e.g. demo:chelsea,coffee
        wanted = [w.strip() for w in images[5:].split(",") if w.strip()]
        known = {it.id: it for it in demo_items()}
        unknown = [w for w in wanted if w not in known]
        if unknown or not wanted:
            raise PhysicalError(f"no demo photo {', '.join(unknown) or '(none given)'}: choose from {', '.join(known)}")
        items, skipped = [known[w] for w in wanted], []
    else:
        items, skipped = _collect_folder(images, table, labels_csv)
    if limit is not None:
        if limit <= 0:
            raise PhysicalError(f"--limit must be positive, got {limit}")
        if limit < len(items):
            # The paper's "average case": a reproducible random subset.
            items = sorted(random.Random(seed).sample(items, limit), key=lambda it: it.path)
    return items, skipped


def _collect_folder(folder: str, table: ClassTable, labels_csv: str | None):
    root = Path(folder)
    if not root.exists():
        raise PhysicalError(f"image folder {folder} does not exist")
    if not root.is_dir():
        raise PhysicalError(f"{folder} is not a folder (give a folder of images, or 'demo')")
    csv_labels = _read_labels_csv(labels_csv, table) if labels_csv else None
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    if not files:
        raise PhysicalError(f"image folder {folder} is empty")
    items, skipped, used_ids = [], [], set()
    for path in files:
        rel = path.relative_to(root).as_posix()
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            skipped.append(Skipped(rel, f"not an image file (suffix {path.suffix or 'none'})"))
            continue
        label = _label_for(rel, path, table, csv_labels)
        if label is None:
            how = "no row in the labels CSV" if csv_labels is not None else \
                "no label: give --labels CSV, a class sub-folder, or a wnid file-name prefix"
            skipped.append(Skipped(rel, how))
            continue
        image_id = safe_id(path.stem if path.parent == root else f"{path.parent.name}_{path.stem}")
        base, n = image_id, 2
        while image_id in used_ids:
            image_id, n = f"{base}-{n}", n + 1
        used_ids.add(image_id)
        items.append(Item(image_id, str(path), label))
    if not items:
        reasons = sorted({s.reason for s in skipped})
        raise PhysicalError(f"no usable labelled images in {folder} ({'; '.join(reasons)[:300]})")
    return items, skipped


def _label_for(rel: str, path: Path, table: ClassTable, csv_labels: dict | None) -> int | None:
    if csv_labels is not None:
        for key in (rel, path.name, path.stem):
            if key in csv_labels:
                return csv_labels[key]
        return None
    if path.parent.name and rel.count("/") >= 1:
        index = table.resolve(path.parent.name)
        if index is not None:
            return index
    m = WNID.match(path.name)
    if m:
        return table.resolve(m.group(1))
    return None


def load_image(path: str, crop: int, resize: int | None = None) -> np.ndarray:
    """Read an image file as uint8 crop×crop×3 RGB: EXIF orientation applied, short side resized
    (bicubic) to `resize`, centre crop. Raises ValueError with a reason for unreadable files."""
    resize = resize or int(round(crop / 0.875))
    with warnings.catch_warnings():
        # Pillow only warns between 1× and 2× its pixel limit; treat both as the bomb they are.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(path) as im:
                im.load()
                im = ImageOps.exif_transpose(im)
                rgb = to_rgb(im)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ValueError(f"image is larger than Pillow's decompression-bomb limit "
                             f"({Image.MAX_IMAGE_PIXELS} pixels)") from None
        except UnidentifiedImageError:
            raise ValueError("not an image (cannot identify image file)") from None
        except (OSError, SyntaxError) as exc:
            raise ValueError(f"unreadable image ({exc})") from None
    return resize_center_crop(rgb, crop, resize)


def to_rgb(im: Image.Image) -> Image.Image:
    """Any Pillow mode → 8-bit RGB. Alpha is composited over white (paper is white)."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(im).astype(np.float64)
        hi = 65535.0 if im.mode.startswith("I;16") or a.max() > 255 else 255.0
        im = Image.fromarray(np.clip(a / hi * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if im.mode == "P":
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA"):
        im = im.convert("RGBA")
        white = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, im)
    return im.convert("RGB")


def resize_center_crop(im: Image.Image, crop: int, resize: int) -> np.ndarray:
    w, h = im.size
    scale = resize / min(w, h)
    new_w, new_h = max(crop, round(w * scale)), max(crop, round(h * scale))
    im = im.resize((new_w, new_h), Image.BICUBIC)
    left, top = (new_w - crop) // 2, (new_h - crop) // 2
    return np.asarray(im.crop((left, top, left + crop, top + crop)), dtype=np.uint8).copy()
