"""What `physical serve` shows: per photo its ingest result and what to do about it, per
printed page which images are in and which are missing.

Pure functions of the run's files (layout.json, ingest.json, the upload log); no server here,
so they are tested directly. Ingest's rejection reasons (physical/ingest.py, the "reason" of a
photo and of each rejected slot) are mapped to advice a person holding a phone can follow.

Image numbers: the n-th printed image of a page in reading order is "image n" (slot + 1); the
sheet's caption under it shows its id and variant, which the advice names as well.
"""
from __future__ import annotations

import re
from pathlib import Path

BLUR_RATIO = 0.5   # a crop this much less sharp than the median crop of the run: "hold still"


def image_label(page: int, slot: int, image_id: str, variant: str) -> str:
    return f"image {slot + 1} of page {page} ({image_id} · {variant})"


def slot_advice(reason: str, label: str) -> str:
    """What to do about one printed image that was seen but not cropped."""
    if reason.startswith("image partly out of frame"):
        return f"{label} cut off: step back or aim so the whole image and its 4 markers are in the frame"
    if reason.startswith("too few markers"):
        found = re.search(r"\((\d+) of (\d+)", reason)
        n = f" ({found.group(1)} of {found.group(2)} found)" if found else ""
        return f"markers of {label} cut off{n}: get all 4 corner markers of it in the frame"
    if reason.startswith("markers do not fit a flat sheet"):
        return f"{label}: the sheet is not flat there; lay it flat on a table"
    return f"{label}: {reason}; take it again"


def photo_advice(run: str, reason: str | None, other_run: str | None = None) -> str:
    """What to do about a photo from which nothing was cropped. `other_run`: the run whose
    layout the photo's markers identify, when the server found one."""
    r = reason or ""
    if r.startswith("no markers found"):
        return ("no markers found: get the whole sheet in the frame, in good light, hold still "
                "(too blurred or too far away hides the markers)")
    if other_run and r.startswith(("markers of another run", "unknown markers")):
        return f"this sheet belongs to run {other_run}, not {run}: photograph the sheets of run {run}"
    if r.startswith("markers of another run"):
        return f"this sheet belongs to another run, not {run}: photograph the sheets of run {run}"
    if r.startswith("unknown markers"):
        return ("markers found but no image of this run identified: move closer, so that each image "
                "and its 4 markers fill more of the frame (or is this a sheet of another run?)")
    if r.startswith("over decompression limit"):
        return "photo too large: use the camera's normal mode, not its highest-megapixel mode"
    if r.startswith(("not an image", "unreadable", "cannot process image")):
        return "the file could not be read: take the photo again"
    if r.startswith("no usable image"):
        return "no image of this photo could be used (see each one below): take it again"
    return f"{r}: take it again" if r else "take it again"


def _crops_by_photo(state: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for c in state.get("crops", []):
        out.setdefault(c.get("photo_sha256"), []).append(c)
    return out


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    v = sorted(values)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def photo_entry(run: str, rec: dict, crops: list[dict], run_sharpness: float | None,
                other_run: str | None = None) -> dict:
    """One ingested photo as the page shows it."""
    images = [{"page": c["page"], "slot": c["slot"], "image_id": c["image_id"], "variant": c["variant"],
               "label": image_label(c["page"], c["slot"], c["image_id"], c["variant"]),
               "sharpness": c.get("sharpness"), "used": bool(c.get("used"))} for c in crops]
    advice = []
    for s in rec.get("slots_rejected", []):
        advice.append(slot_advice(s["reason"], image_label(s["page"], s["slot"], s["image_id"], s["variant"])))
    if rec.get("status") != "accepted":
        advice.insert(0, photo_advice(run, rec.get("reason"), other_run))
    elif run_sharpness and images:
        mine = _median([i["sharpness"] for i in images if i["sharpness"] is not None])
        if mine is not None and mine < BLUR_RATIO * run_sharpness:
            advice.append("too blurred compared with your other photos: hold still (or tap to focus) and take "
                          "it again; the sharpest photo of each image is the one used")
    return {"state": rec.get("status", "rejected"), "reason": rec.get("reason"), "advice": advice,
            "page": rec.get("page"), "pages": rec.get("pages", []), "images": images,
            "seconds": rec.get("seconds")}


def coverage(layout: dict, state: dict) -> list[dict]:
    """Per printed page: every image with whether a crop of it exists, and the counts."""
    got: dict[tuple[int, int], int] = {}
    for c in state.get("crops", []):
        key = (int(c["page"]), int(c["slot"]))
        got[key] = got.get(key, 0) + 1
    pages = []
    for page in layout["pages"]:
        p = int(page["page"])
        slots = [{"slot": int(s["slot"]), "number": int(s["slot"]) + 1, "image_id": s["image_id"],
                  "variant": s["variant"], "in": got.get((p, int(s["slot"])), 0) > 0,
                  "crops": got.get((p, int(s["slot"])), 0)} for s in page["slots"]]
        n_in = sum(s["in"] for s in slots)
        pages.append({"page": p, "images": slots, "in": n_in, "total": len(slots),
                      "missing": [s["number"] for s in slots if not s["in"]]})
    return pages


def build_status(run: str, layout: dict, state: dict, uploads: list[dict], queued: set[str], busy: set[str],
                 other_runs: dict[str, str | None] | None = None, failed: dict[str, str] | None = None) -> dict:
    """The JSON of GET /api/status. `uploads`: the upload log (oldest first); `queued`/`busy`:
    sha256 of photos waiting for / in the running ingest; `other_runs`: sha256 → the run whose
    sheet a refused photo shows; `failed`: sha256 → why ingest gave up on it."""
    other_runs, failed = other_runs or {}, failed or {}
    records = {p["sha256"]: p for p in state.get("photos", []) if p.get("sha256")}
    by_photo = _crops_by_photo(state)
    run_sharpness = _median([c["sharpness"] for c in state.get("crops", []) if c.get("sharpness") is not None])
    if len(state.get("photos", [])) < 3:
        run_sharpness = None  # too few photos to call one blurred by comparison
    photos, seen = [], set()
    for up in uploads:
        sha = up["sha256"]
        seen.add(sha)
        entry = {"sha256": sha, "name": up.get("name"), "file": up.get("file"), "received": up.get("time")}
        if sha in records:
            entry.update(photo_entry(run, records[sha], by_photo.get(sha, []), run_sharpness,
                                     other_runs.get(sha)))
        elif sha in failed and sha not in busy and sha not in queued:
            entry.update(state="failed", reason=failed[sha], images=[],
                         advice=[f"ingest failed ({failed[sha]}); the photo is kept and tried again when "
                                 "`physical serve` starts next"])
        else:
            entry.update(state="ingesting" if sha in busy else "queued", advice=[], images=[])
        photos.append(entry)
    for sha, rec in records.items():  # photos ingested without this server (physical ingest, simulate)
        if sha not in seen:
            entry = {"sha256": sha, "name": Path(rec.get("file", "")).name, "file": rec.get("file"), "received": None}
            entry.update(photo_entry(run, rec, by_photo.get(sha, []), run_sharpness, other_runs.get(sha)))
            photos.append(entry)
    pages = coverage(layout, state)
    printed = sum(p["total"] for p in pages)
    n_in = sum(p["in"] for p in pages)
    return {"run": run, "photos": photos, "pages": pages, "printed": printed, "in": n_in,
            "complete": printed > 0 and n_in == printed,
            "counts": {"photos": len(photos), "accepted": sum(p["state"] == "accepted" for p in photos),
                       "rejected": sum(p["state"] == "rejected" for p in photos),
                       "waiting": sum(p["state"] in ("queued", "ingesting") for p in photos),
                       "failed": sum(p["state"] == "failed" for p in photos)}}
