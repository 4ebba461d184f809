"""The report's images: the gallery of sampled images (PNG, photo crop, perturbation per
variant) and the rejected photos, copied or drawn into the report folder by `Assets`.

Predictions shown are stored ones only: the PNGs' from the manifest, the photo crops' from
metrics.json (`predictions`, written by evaluate). The report never runs a model.
"""
from __future__ import annotations

import io
import random
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
from PIL import Image

from physical.report.inputs import ClassNames, Manifest, Pred, RunInputs, inside
from physical.report.tables import attack_label, variant_title
from physical.workspace import atomic_write_bytes, read_verified

THUMB = 176          # thumbnail edge in pixels (shown at 88 CSS px: sharp on 2× screens)
PHOTO_THUMB = 360    # thumbnail edge for phone photos
OWN_DIRS = ("plots", "images", "thumbs")   # sub-folders of reports/<run>/ the report rewrites


def slug(text: Any, limit: int = 40) -> str:
    """A file-name-safe version of an id or variant name (ids are data: never trust them as paths)."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("._") or "x"
    return s[:limit]


def href(rel: str) -> str:
    """A relative path inside the report folder as a URL (each segment percent-encoded)."""
    return "/".join(quote(part) for part in rel.split("/"))


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


class Assets:
    """Copies source files into the report folder and makes thumbnails; remembers what it wrote
    so stale files from an earlier report can be removed."""

    def __init__(self, out: Path):
        self.out = out
        self.written: set[Path] = set()

    def _write(self, rel: str, data: bytes) -> str:
        path = self.out / rel
        atomic_write_bytes(path, data)
        self.written.add(path.resolve())
        return href(rel)

    def copy(self, src: Path | bytes, rel: str) -> str:
        return self._write(rel, src if isinstance(src, bytes) else src.read_bytes())

    def array(self, arr: np.ndarray, rel: str) -> str:
        return self._write(rel, _png(arr))

    def thumb(self, src: Path | np.ndarray, rel: str, edge: int = THUMB) -> str:
        """A small JPEG preview (adversarial noise makes PNG thumbnails ten times larger); the
        page links each to its lossless full-size file."""
        if isinstance(src, np.ndarray):
            img = Image.fromarray(src).convert("RGB")
        else:
            with Image.open(io.BytesIO(src) if isinstance(src, bytes) else src) as im:  # closed here, not whenever the garbage collector runs
                img = im.convert("RGB")
        img.thumbnail((edge, edge), Image.LANCZOS)
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=88)
        return self._write(rel, buf.getvalue())

    def plot_path(self, name: str) -> Path:
        """Where plot `name` goes (kept by `prune`)."""
        path = self.out / "plots" / name
        self.written.add(path.resolve())
        return path

    def prune(self) -> None:
        """Remove files of an earlier report that this one did not write."""
        for sub in OWN_DIRS:
            d = self.out / sub
            if not d.is_dir():
                continue
            for p in sorted(d.rglob("*"), reverse=True):
                if p.is_file() and p.resolve() not in self.written:
                    p.unlink()
                elif p.is_dir() and not any(p.iterdir()):
                    p.rmdir()


def load_rgb(path: Path | bytes) -> np.ndarray | None:
    try:
        with Image.open(io.BytesIO(path) if isinstance(path, bytes) else path) as im:
            return np.asarray(im.convert("RGB"))
    except OSError:
        return None


def perturbation_image(clean: np.ndarray, adv: np.ndarray, gain: float) -> np.ndarray:
    """(adv − clean) × gain around mid-grey, clipped: what the attack added, made visible."""
    diff = adv.astype(np.float32) - clean.astype(np.float32)
    return np.clip(np.rint(128.0 + gain * diff), 0, 255).astype(np.uint8)


def default_gain(eps: float | None) -> int:
    """A gain that maps ±ε to about ±half the grey range (ε=16 → ×8, ε=2 → ×64)."""
    if not eps or eps <= 0:
        return 8
    return max(1, int(128 // eps))


def choose_sample(manifest: Manifest, k: int, prefer: set[str] | frozenset = frozenset()) -> list[int]:
    """A deterministic sample (the run's seed) of k image indices, in manifest order; images
    whose id is in `prefer` (those with photo crops) are drawn first."""
    images = manifest.images
    n = len(images)
    if k >= n:
        return list(range(n))
    rng = random.Random(manifest.seed if manifest.seed is not None else 0)
    first = [i for i in range(n) if images[i].id in prefer]
    rest = [i for i in range(n) if images[i].id not in prefer]
    chosen = rng.sample(first, min(k, len(first)))
    chosen += rng.sample(rest, k - len(chosen))
    return sorted(chosen)


def pred_view(pred: Pred | None, label: int | None, names: ClassNames) -> dict | None:
    """A prediction as the gallery shows it: top-1 name, confidence, right/wrong (None: no label)."""
    if pred is None:
        return None
    return {"name": names(pred.top1), "index": pred.top1, "conf": pred.conf,
            "correct": (pred.top1 == label) if label is not None else None,
            "in_top5": (label in pred.top5[:5]) if label is not None else None}


def used_crops(inp: RunInputs) -> dict[tuple[str, str], bytes]:
    """(image id, variant) → the bytes of the crop ingest used (sha-checked: a replaced crop is one line)."""
    out: dict[tuple[str, str], bytes] = {}
    for c in inp.ingest.crops if inp.ingest else []:
        path = inside(inp.captures, c.file) if c.used else None
        if path is not None and (c.image_id, c.variant) not in out:
            out[(c.image_id, c.variant)] = read_verified(path, c.sha256, "physical ingest --force")
    return out


def galleries(inp: RunInputs, names: ClassNames, assets: Assets, sample: int) -> list[dict]:
    """The sampled images: per image, one cell per variant (PNG, photo crop, perturbation and
    their predictions), grouped by attack so that the page can wrap the groups."""
    manifest = inp.manifest
    crops = used_crops(inp)
    crop_preds = inp.metrics.crop_predictions if inp.metrics else {}
    crafting = manifest.model.spec
    out = []
    for i in choose_sample(manifest, sample, {image_id for image_id, _ in crops}):
        image = manifest.images[i]
        folder = f"{i:04d}-{slug(image.id)}"
        clean = image.variants.get("clean")
        clean_path = inside(inp.printouts, clean.file) if clean else None
        clean_arr = load_rgb(read_verified(clean_path, clean.sha256, "physical craft")) if clean_path else None
        cells = []
        for v in manifest.variants:
            rec = image.variants.get(v)
            if rec is None:
                continue
            vslug = slug(v)
            cell = {"variant": v, "title": variant_title(v, rec.attack, rec.eps), "attack": rec.attack,
                    "sub": f"→ {names(rec.target)}" if rec.target is not None else None,   # a narrow column: a line of its own
                    "png": None, "photo": None, "pert": None, "photo_pred": None,
                    "pred": pred_view(rec.pred, image.label_index, names), "flipped": rec.flipped}
            src = inside(inp.printouts, rec.file)
            if src is not None:
                src = read_verified(src, rec.sha256, "physical craft")   # never a replaced PNG
                cell["png"] = {"full": assets.copy(src, f"images/{folder}/{vslug}.png"),
                               "thumb": assets.thumb(src, f"thumbs/{folder}/{vslug}.jpg")}
                if v != "clean" and clean_arr is not None:
                    adv = load_rgb(src)
                    if adv is not None and adv.shape == clean_arr.shape:
                        gain = default_gain(rec.eps)
                        pert = perturbation_image(clean_arr, adv, gain)
                        cell["pert"] = {"full": assets.array(pert, f"images/{folder}/{vslug}-perturbation.png"),
                                        "thumb": assets.thumb(pert, f"thumbs/{folder}/{vslug}-perturbation.jpg"),
                                        "gain": gain,
                                        "linf": int(np.abs(adv.astype(int) - clean_arr.astype(int)).max())}
            crop = crops.get((image.id, v))
            if crop is not None:
                cell["photo"] = {"full": assets.copy(crop, f"images/{folder}/{vslug}-photo.png"),
                                 "thumb": assets.thumb(crop, f"thumbs/{folder}/{vslug}-photo.jpg")}
                cell["photo_pred"] = pred_view(crop_preds.get((str(crafting), image.id, v)), image.label_index, names)
            cells.append(cell)
        groups: dict[str, list[dict]] = {}
        for cell in cells:
            groups.setdefault(cell["attack"], []).append(cell)
        out.append({"id": image.id, "label": image.label_name or names(image.label_index),
                    "label_index": image.label_index, "wnid": image.wnid, "cells": cells,
                    "groups": [{"attack": a, "label": attack_label(a), "cells": cs,
                                "has_pert": any(c["pert"] for c in cs)} for a, cs in groups.items()],
                    "has_photo": any(c["photo"] for c in cells), "ingested": inp.ingest is not None})
    return out


def photo_views(inp: RunInputs, assets: Assets) -> list[dict]:
    """Every photo ingest saw, with a thumbnail and the full file for the rejected ones."""
    views = []
    for n, p in enumerate(inp.ingest.photos if inp.ingest else []):
        view = {"file": p.file, "status": p.status, "reason": p.reason, "page": p.page,
                "slots_found": p.slots_found, "thumb": None, "full": None}
        src = inside(inp.captures, p.file) if p.status != "accepted" else None
        if src is not None:
            name = f"{n:04d}-{slug(Path(p.file).stem)}"
            try:
                view["thumb"] = assets.thumb(src, f"thumbs/photos/{name}.jpg", edge=PHOTO_THUMB)
                view["full"] = assets.copy(src, f"images/photos/{name}.{slug(src.suffix.lower()[1:] or 'jpg')}")
            except OSError as exc:
                view["reason"] = f"{p.reason or 'rejected'} (unreadable: {exc})"
        views.append(view)
    return views
