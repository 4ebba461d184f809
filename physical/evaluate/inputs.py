"""What evaluation reads: a crafted run (manifest → PNGs) and ingest's crops, through
physical.records, every file checked against the sha256 its writer recorded."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from physical import records
from physical.errors import PhysicalError
from physical.metrics import Preds
from physical.quantize import decode_png
from physical.workspace import Workspace, read_verified, sha256_file

log = logging.getLogger(__name__)


@dataclass
class RunData:
    """A crafted run: images in manifest order, adversarial variants, true labels."""

    name: str
    manifest: records.Manifest
    manifest_sha256: str
    root: Path                                  # printouts/<run>/
    ids: list[str]
    labels: list[records.Label]
    variants: list[dict]                        # adversarial variants: {"name", "attack", "eps"}
    files: dict[tuple[int, str], Path]          # (image index, variant) → PNG path
    hashes: dict[tuple[int, str], str]          # (image index, variant) → the PNG's recorded sha256
    manifest_preds: dict[str, Preds]            # variant → crafting model's PNG predictions
    present: dict[str, np.ndarray]              # variant → image has it
    preds_complete: bool = True                 # every PNG has its crafting-model `pred` in the manifest

    @property
    def crafted_by(self) -> str:
        return self.manifest.model.spec

    def read_png(self, key: tuple[int, str]) -> np.ndarray:
        """A crafted PNG as uint8 H×W×3, refused when it is not the file craft wrote."""
        return read_image(self.files[key], self.hashes[key], "physical craft")


def _num(x):
    x = float(x)
    return int(x) if x.is_integer() else x


def read_image(path: Path, sha256: str | None, stage: str) -> np.ndarray:
    """A PNG of the run (crafted or a crop): decoded after its bytes matched `sha256` (None: an
    older run that did not record it). A missing, replaced or broken file is one line."""
    data = read_verified(path, sha256, stage)
    try:
        return decode_png(data)
    except (OSError, ValueError) as exc:
        raise PhysicalError(f"cannot decode {path} ({exc}): re-run `{stage}`") from None


def load_run(ws: Workspace, run: str) -> RunData:
    manifest = ws.load_manifest(run)
    images = manifest.images
    if not images:
        raise PhysicalError(f"run {run!r} has no images in its manifest (did `physical craft` skip them all?)")
    root = ws.printouts(run)
    names = list(manifest.variants)
    if "clean" not in names:
        names.insert(0, "clean")
    variants, files, hashes, preds, present = [], {}, {}, {}, {}
    complete = True
    for name in names:
        top5 = np.full((len(images), 5), -1, dtype=np.int64)
        prob5 = np.zeros((len(images), 5))
        mask = np.zeros(len(images), dtype=bool)
        info = None
        for i, img in enumerate(images):
            rec = img.variants.get(name)
            if rec is None:
                continue
            mask[i] = True
            files[(i, name)] = root / rec.file
            hashes[(i, name)] = rec.sha256
            if rec.pred is not None and rec.pred.top5:
                k = min(5, len(rec.pred.top5))
                top5[i, :k] = rec.pred.top5[:k]
                prob5[i, :k] = rec.pred.prob5[:k]
            else:
                complete = False
            if name != "clean" and info is None:
                from physical.attacks import parse_variant

                attack, eps = parse_variant(name)
                info = {"name": name, "attack": rec.attack or attack,
                        "eps": _num(rec.eps if rec.eps is not None else eps), "target": rec.target}
        preds[name], present[name] = Preds(top5, prob5), mask
        if info is not None:
            variants.append(info)
    return RunData(name=run, manifest=manifest, manifest_sha256=sha256_file(ws.manifest_path(run)), root=root,
                   ids=[img.id for img in images], labels=[img.label for img in images], variants=variants,
                   files=files, hashes=hashes, manifest_preds=preds, present=present, preds_complete=complete)


@dataclass
class Photos:
    status: str                                  # "ok" | "missing"
    message: str | None = None
    files: dict[tuple[int, str], Path] = field(default_factory=dict)   # (image index, variant) → crop
    hashes: dict[tuple[int, str], str | None] = field(default_factory=dict)
    accepted: int = 0
    rejected: int = 0
    layout_sha256: str | None = None

    def block(self) -> dict:
        return {"status": self.status, "message": self.message, "crops": len(self.files),
                "photos_accepted": self.accepted, "photos_rejected": self.rejected,
                "layout_sha256": self.layout_sha256}

    def read(self, key: tuple[int, str]) -> np.ndarray:
        return read_image(self.files[key], self.hashes.get(key), "physical ingest --force")


def load_photos(ws: Workspace, data: RunData) -> Photos:
    """The crops ingest marked `used`; status "missing" (not an error) when there are none.
    PhysicalError when the crops come from an ingest made with another layout."""
    run = data.name
    ingest = records.read_optional(records.INGEST, ws, run)
    if ingest is None:
        return Photos("missing", f"no photos ingested for run {run!r} yet: evaluated the PNG stage only "
                                 f"(run `physical ingest --run {run} --photos DIR` to add the photo stage)")
    cap = ws.captures(run)
    layout_path = ws.layout_path(run)
    if layout_path.exists():
        current = sha256_file(layout_path)
        if ingest.layout_sha256 != current:
            raise PhysicalError(
                f"the crops in {cap} come from an ingest made with another layout "
                f"(ingest.json layout_sha256 {ingest.layout_sha256[:12]}…, {layout_path} is {current[:12]}…): "
                f"re-run `physical ingest --run {run} --photos DIR`")
    else:
        log.warning("%s is missing: cannot check that the crops match the printed layout", layout_path)
    index = {image_id: i for i, image_id in enumerate(data.ids)}
    files, hashes, unknown, missing = {}, {}, 0, 0
    for crop in ingest.crops:
        if not crop.used:
            continue
        i = index.get(crop.image_id)
        if i is None or (i, crop.variant) not in data.files:
            unknown += 1
            continue
        path = ws.inside(run, cap / crop.file)
        if path is None or not path.exists():
            missing += 1
            continue
        files[(i, crop.variant)] = path
        hashes[(i, crop.variant)] = crop.sha256
    if unknown:
        log.warning("%d crops name images or variants this run's manifest does not have: ignored", unknown)
    if missing:
        log.warning("%d crop files listed in ingest.json are missing: ignored", missing)
    acc = sum(1 for p in ingest.photos if p.status == "accepted")
    rej = sum(1 for p in ingest.photos if p.status == "rejected")
    if not files:
        return Photos("missing", f"ingest of run {run!r} produced no usable crops "
                                 f"({acc} photos accepted, {rej} rejected): evaluated the PNG stage only",
                      accepted=acc, rejected=rej, layout_sha256=ingest.layout_sha256)
    return Photos("ok", None, files, hashes, acc, rej, ingest.layout_sha256)
