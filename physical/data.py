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
import hashlib
import io
import os
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
    """One source image and its label (class index in the model's 1000 ImageNet classes).
    `rel`: the path relative to the source folder (posix), or 'demo:<id>' — what identifies the
    image in a run, with the sha256 of its bytes (see `assign_ids`)."""
    id: str
    path: str
    label: int
    rel: str = ""


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
    return [Item(image_id, _demo_path(pkg, name), label, f"demo:{image_id}")
            for image_id, pkg, name, label in DEMO_IMAGES]


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


class CsvLabels:
    """The rows of a labels CSV: `exact` maps each file as written to its class index; a row
    also labels files of the same base name elsewhere, unless rows of several paths share that
    base name (then `ambiguous` names their lines and such a file must be listed by its path)."""

    def __init__(self):
        self.exact: dict[str, int] = {}
        self.by_name: dict[str, int] = {}
        self.ambiguous: dict[str, list[int]] = {}
        self._name_lines: dict[str, list[tuple[int, str]]] = {}

    def add_basename(self, file: str, index: int, line_no: int) -> None:
        name = os.path.basename(file)
        seen = self._name_lines.setdefault(name, [])
        seen.append((line_no, file))
        if len({f for _, f in seen}) == 1:
            self.by_name[name] = index
        else:
            self.by_name.pop(name, None)
            self.ambiguous[name] = [n for n, _ in seen]


def _read_labels_csv(path: str, table: ClassTable) -> CsvLabels:
    """Read `file,label` rows (UTF-8; a header row and '#' comments allowed). A file listed twice
    is refused with both line numbers, whether the labels agree or not: which row is meant
    is the user's call, not ours."""
    if not os.path.isfile(path):
        raise PhysicalError(f"labels file {path} does not exist")
    from physical import imagenet

    if imagenet.is_devkit_ground_truth(path):  # the devkit's file for a flat val/ folder
        labels = CsvLabels()
        labels.exact.update(imagenet.devkit_labels(path, table))
        return labels
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PhysicalError(f"labels file {path} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset "
                            f"{exc.start}): save it as UTF-8 (\"CSV UTF-8\" in a spreadsheet)") from None
    except OSError as exc:
        raise PhysicalError(f"cannot read labels file {path}: {exc.strerror}") from None
    labels = CsvLabels()
    first_line: dict[str, int] = {}
    reader = csv.reader(io.StringIO(text, newline=""))
    line_no, data_rows = 0, 0
    for row in reader:
        line_no, start = reader.line_num, line_no + 1   # a quoted field may span lines
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        if len(row) < 2:
            raise PhysicalError(f"{path}:{start}: expected 'file,label', got {','.join(row)!r}")
        file, label = row[0].strip(), row[1].strip()
        data_rows += 1
        if data_rows == 1 and file.lower() in ("file", "filename", "image", "path"):
            continue  # header
        file = file.removeprefix("./")
        if file in first_line:
            verb = "with another label" if labels.exact[file] != table.resolve(label) else "again"
            raise PhysicalError(f"{path}:{start}: {file!r} is listed {verb} (first at line {first_line[file]}): "
                                "keep one row per file")
        index = table.resolve(label)
        if index is None:
            raise PhysicalError(f"{path}:{start}: label {label!r} names no class "
                                "(use a class index 0-999, a wnid like n01440764, or a class name)")
        first_line[file] = start
        labels.exact[file] = index
        labels.add_basename(file, index, start)
    return labels


def collect(images: str, table: ClassTable, labels_csv: str | None = None, limit: int | None = None,
            seed: int = 0, known_ids: dict[str, str] | None = None) -> tuple[list[Item], list[Skipped]]:
    """The labelled images of a source (a folder or 'demo'), optionally a seeded subset of `limit`.

    `known_ids` maps a source's relative path to the id an earlier craft of the run gave it, so
    an id never moves to another file (see `assign_ids`). The subset takes the `limit` images of
    smallest sha256(seed, relative path): reproducible, independent of listing order, and nested —
    a larger --limit keeps every image of a smaller one, so a run can grow."""
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
        items, skipped = _collect_folder(images, table, labels_csv, known_ids or {})
    return subset(items, limit, seed), skipped


def subset_rank(items: list[Item], seed: int) -> list[Item]:
    """The order --limit takes images in: by sha256(seed, relative path)."""
    return sorted(items, key=lambda it: hashlib.sha256(f"{seed}\0{it.rel}".encode("utf-8")).hexdigest())


def subset(items: list[Item], limit: int | None, seed: int) -> list[Item]:
    """The paper's "average case": a reproducible random subset of `limit` images (all if None)."""
    if limit is None:
        return items
    if limit <= 0:
        raise PhysicalError(f"--limit must be positive, got {limit}")
    if limit >= len(items):
        return items
    return sorted(subset_rank(items, seed)[:limit], key=lambda it: it.path)


def base_id(rel: str) -> str:
    """The id a file gets when no other file claims it: its relative path without the suffix,
    made folder-safe (`n01440764/a.JPEG` → `n01440764_a`)."""
    stem = rel.rsplit(".", 1)[0] if "." in rel.rsplit("/", 1)[-1] else rel
    return safe_id(stem.replace("/", "_"))


def assign_ids(rels: list[str], known_ids: dict[str, str]) -> dict[str, str]:
    """Relative path → image id, stable for a source whatever else is in the folder:

    1. a path the run's manifest already knows keeps its id;
    2. otherwise the id is `base_id(path)` when no other file of the folder has the same base id
       and no known image holds it;
    3. otherwise (`a b.png` next to `a_b.jpg`) it is `base_id-<first 8 hex of sha256(path)>` —
       for every file of the clash, so no file wins a name by sorting first.
    """
    out: dict[str, str] = {}
    held = {image_id: rel for rel, image_id in known_ids.items()}
    clashes: dict[str, list[str]] = {}
    for rel in rels:
        clashes.setdefault(base_id(rel), []).append(rel)
    for rel in rels:
        if rel in known_ids:
            out[rel] = known_ids[rel]
            continue
        base = base_id(rel)
        if len(clashes[base]) == 1 and base not in held:
            out[rel] = base
        else:
            out[rel] = f"{base[:71]}-{hashlib.sha256(rel.encode('utf-8')).hexdigest()[:8]}"
    taken: dict[str, str] = {}
    for rel, image_id in out.items():
        if image_id in taken or (image_id in held and held[image_id] != rel):
            raise PhysicalError(f"{rel!r} and {taken.get(image_id) or held[image_id]!r} both map to image id "
                                f"{image_id!r}: rename one of them")
        taken[image_id] = rel
    return out


def _collect_folder(folder: str, table: ClassTable, labels_csv: str | None, known_ids: dict[str, str]):
    root = Path(folder)
    if not root.exists():
        raise PhysicalError(f"image folder {folder} does not exist")
    if not root.is_dir():
        raise PhysicalError(f"{folder} is not a folder (give a folder of images, or 'demo')")
    csv_labels = _read_labels_csv(labels_csv, table) if labels_csv else None
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    if not files:
        raise PhysicalError(f"image folder {folder} is empty")
    found, skipped = [], []
    for path in files:
        rel = path.relative_to(root).as_posix()
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            skipped.append(Skipped(rel, f"not an image file (suffix {path.suffix or 'none'})"))
            continue
        label = _label_for(rel, path, table, csv_labels)
        if label is None:
            if csv_labels is not None and path.name in csv_labels.ambiguous:
                lines = ", ".join(str(n) for n in csv_labels.ambiguous[path.name])
                how = f"rows of several paths named {path.name} in the labels CSV (lines {lines}): list it by its path"
            else:
                how = "no row in the labels CSV" if csv_labels is not None else \
                    "no label: give --labels CSV, a class sub-folder, or a wnid file-name prefix"
            skipped.append(Skipped(rel, how))
            continue
        found.append((rel, path, label))
    ids = assign_ids([rel for rel, _, _ in found], known_ids)
    items = [Item(ids[rel], str(path), label, rel) for rel, path, label in found]
    if not items:
        reasons = sorted({s.reason for s in skipped})
        raise PhysicalError(f"no usable labelled images in {folder} ({'; '.join(reasons)[:300]})")
    return items, skipped


def _label_for(rel: str, path: Path, table: ClassTable, csv_labels: CsvLabels | None) -> int | None:
    if csv_labels is not None:
        for key in (rel, path.name, path.stem):
            if key in csv_labels.exact:
                return csv_labels.exact[key]
        return csv_labels.by_name.get(path.name)
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
    """Any Pillow mode → 8-bit RGB. Alpha is composited over white (paper is white).

    Integer images of more than 8 bits are scaled from 0..65535 (or kept, when no value is over
    255). A float image (mode F, e.g. a float32 TIFF) is read by its range: [0, 1] is scaled to
    0..255 (the float convention of most image libraries), [0, 255] kept, [0, 65535] scaled down;
    nan, inf, negative values or values over 65535 are refused (ValueError), never guessed."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(im).astype(np.float64)
        if im.mode == "F":
            if not np.isfinite(a).all():
                raise ValueError("float image holds nan or inf values")
            if a.size and (a.min() < 0 or a.max() > 65535):
                raise ValueError(f"float image with values in [{a.min():g}, {a.max():g}]: expected [0, 1], "
                                 "[0, 255] or [0, 65535]")
            hi = 1.0 if a.max() <= 1.0 else (255.0 if a.max() <= 255 else 65535.0)
        else:
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
