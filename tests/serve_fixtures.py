"""Simulated phone photos for the `physical serve` tests (small, fast: 1200x900, mild preset).

A workspace with run "g" (4 images x 2 variants, 2 pages) and a second run "other"; the
photos lie outside captures/, as on a phone, until a test uploads them."""
from __future__ import annotations

import io
import shutil
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from conftest import make_fake_run
from physical import layout as layout_mod
from physical import simulate

TOKEN = "test-token-0123456789"


def _take(ws, run: str, sim: dict, out: Path, prefix: str) -> dict[int, Path]:
    paths = {}
    for p in sim["photos"]:
        dst = out / f"{prefix}-p{p['page']}.jpg"
        shutil.move(str(ws.captures(run) / p["file"]), dst)
        paths[p["page"]] = dst
    (ws.captures(run) / "simulated.json").unlink()
    return paths


def make_photos(root: Path):
    """(workspace, {"p1", "p2", "other", "cut": Path}); "cut" is page 1 with the frame ending
    60 % across the page's first image (that image is refused, others kept)."""
    ws = make_fake_run(root, run="g", ids=("a", "b", "c", "d"), size=64)
    layout_mod.make_layout(ws, "g", image_mm=60)
    out = root / "phone"
    out.mkdir()
    sim = simulate.simulate_run(ws, "g", preset="mild", seed=4, resolution=(1200, 900))
    page1 = next(p for p in sim["photos"] if p["page"] == 1)
    g = _take(ws, "g", sim, out, "g")
    make_fake_run(root, run="other", ids=("x", "y"), size=64, seed=5)
    layout_mod.make_layout(ws, "other", image_mm=60)
    osim = simulate.simulate_run(ws, "other", preset="mild", seed=2, resolution=(1200, 900), pages=[1])
    other = _take(ws, "other", osim, out, "other")

    im = ImageOps.exif_transpose(Image.open(g[1])).convert("RGB")
    xs = [c[0] for c in page1["slots"][0]["corners_px"]]
    cut = int(min(xs) + 0.6 * (max(xs) - min(xs)))
    arr = np.asarray(im)
    arr = arr[:, cut:] if min(xs) < im.size[0] / 2 else arr[:, :cut]
    Image.fromarray(arr).save(out / "g-p1-cut.jpg", quality=92)
    return ws, {"p1": g[1], "p2": g[2], "other": other[1], "cut": out / "g-p1-cut.jpg",
                "cut_slot": page1["slots"][0]}


def png_without_markers(seed: int = 3) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def wait_for(get_status, predicate, timeout: float = 120.0) -> dict:
    """Poll /api/status until predicate(status) holds (a wait, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while True:
        status = get_status()
        if predicate(status):
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"status never satisfied the condition: {status}")
        time.sleep(0.05)


def photo(status: dict, sha: str) -> dict:
    return next(p for p in status["photos"] if p["sha256"] == sha)


def done(sha: str):
    return lambda s: any(p["sha256"] == sha and p["state"] in ("accepted", "rejected") for p in s["photos"])
