"""What `physical craft` does when the run already exists: identity checks and the --force swap.

An image of a run is identified by its source — the path relative to --images (`source_file`
in the manifest; 'demo:<id>' for the bundled photos) and the sha256 of its bytes — and by its
label. Its id is given once (`physical.data.assign_ids`) and kept for that source.

A re-run without --force resumes and extends the run, and refuses, with one line naming the
image, anything that would make the manifest lie:
  * a source whose bytes changed since it was crafted (a photo replaced under the same name),
  * a label that changed (a corrected labels CSV),
  * an image the run holds that the new selection leaves out (source deleted, now unreadable,
    or a smaller --limit).
It never re-crafts such an image behind the user's back: the PDF may be printed already.
`--force` crafts the whole run again — into a staging folder beside the old one, swapped in only
when every image is done, so a failed or interrupted --force leaves the old run as it was.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

from physical.data import Item, subset_rank
from physical.errors import PhysicalError
from physical.workspace import sha256_file

STAGING_PREFIX = ".craft-tmp-"
TRASH_PREFIX = ".craft-old-"


def source_key(entry: dict, images: str) -> str | None:
    """The relative source path an entry was crafted from (older manifests: derived from `source`)."""
    if isinstance(entry.get("source_file"), str):
        return entry["source_file"]
    source = entry.get("source")
    if not isinstance(source, str):
        return None
    if source.startswith("demo:"):
        return source
    try:
        return Path(source).resolve().relative_to(Path(images).resolve()).as_posix()
    except (ValueError, OSError):
        return None


def known_ids(old: dict | None, images: str) -> dict[str, str]:
    """Relative source path → the id the run gave it."""
    out = {}
    for entry in (old or {}).get("images", []):
        key = source_key(entry, images)
        if key is not None:
            out[key] = entry["id"]
    return out


def check_rerun(run: str, old: dict, items: list[Item], selected: list[Item], limit: int | None, seed: int,
                skipped: list, images: str) -> None:
    """Refuse (one line naming the image) a re-run whose sources, labels or selection disagree
    with what the run's manifest says was crafted."""
    by_id = {it.id: it for it in selected}
    every = {it.id: it for it in items}
    reasons = {s.source: s.reason for s in skipped}
    hint = "use --force to craft the run again, or another --run"
    for entry in old["images"]:
        image_id = entry["id"]
        src = source_key(entry, images) or entry.get("source")
        item = by_id.get(image_id)
        if item is None:
            if image_id in every and limit is not None:
                rank = [it.id for it in subset_rank(list(every.values()), seed)]
                need = max(rank.index(e["id"]) for e in old["images"] if e["id"] in rank) + 1
                raise PhysicalError(f"--limit {limit} leaves out image {image_id!r} ({src}), which run {run!r} "
                                    f"already holds: give --limit {need} or more, or {hint}")
            why = reasons.get(src) if src in reasons else "its source is not in --images any more"
            raise PhysicalError(f"run {run!r} holds image {image_id!r} ({src}) that this craft would drop "
                                f"({why}); put it back, or {hint}")
        if source_key(entry, images) not in (None, item.rel):
            raise PhysicalError(f"image id {image_id!r} of run {run!r} was crafted from {src}, not {item.rel}; {hint}")
        was = entry["label"].get("index")
        if was != item.label:
            raise PhysicalError(f"image {image_id!r} ({item.rel}) is now labelled {item.label} but was crafted "
                                f"with label {was} ({entry['label'].get('name')}); {hint}")
        digest = sha256_file(item.path)
        if entry.get("source_sha256") not in (None, digest):
            raise PhysicalError(f"image {image_id!r}: its source {item.rel} changed since run {run!r} crafted it "
                                f"(sha256 {entry['source_sha256'][:12]}… → {digest[:12]}…); {hint}")


def make_staging(folder: Path) -> Path:
    """A fresh staging folder for --force inside the run folder; stale ones of a killed --force go."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in list(folder.glob(STAGING_PREFIX + "*")) + list(folder.glob(TRASH_PREFIX + "*")):
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=folder))


def swap_in(folder: Path, staging: Path, write_manifest) -> None:
    """Put the staged images/ in place of the old one, then the manifest; the old images go last.
    Only the two renames lie between a consistent old run and a consistent new one."""
    images, trash = folder / "images", folder / f"{TRASH_PREFIX}{uuid.uuid4().hex[:8]}"
    if images.exists():
        os.replace(images, trash)
    if (staging / "images").exists():
        os.replace(staging / "images", images)
    write_manifest()
    shutil.rmtree(trash, ignore_errors=True)
    shutil.rmtree(staging, ignore_errors=True)
