"""benchmarks/pdf_camera.py: a two-page PDF from the project's own layout, printed and photographed
by the benchmark's printer + phone, is ingested with its images recovered under the right image
and variant; the same seed gives the same bytes; EXIF-rotated photos display upright."""
from __future__ import annotations

import io
import os
import sys

import numpy as np
import pytest
from PIL import Image, ImageOps

from conftest import make_fake_run
from physical import ingest, records
from physical import layout as layout_mod

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
import pdf_camera  # noqa: E402

SIZE = 64
# the real printer, scene and phone, on 3 MP frames so that the test stays quick
FAST = {**pdf_camera.RANGES, "frame": (((2048, 1536),), "test: 3 MP")}


@pytest.fixture(scope="module")
def printed(tmp_path_factory):
    """4 source images x 2 variants, 60 mm wide (4 per page, 2 pages), photographed once per page."""
    root = tmp_path_factory.mktemp("pdfcam")
    ws = make_fake_run(root / "ws", run="g", ids=("a", "b", "c", "d"), size=SIZE)
    layout_mod.make_layout(ws, "g", image_mm=60, layout_id="5e11a11ae7c0ffee")
    photos = root / "photos"
    recs = pdf_camera.photograph_pdf(ws.pdf_path("g"), photos, seed=3, ranges=FAST)
    return ws, photos, recs


def _grey(a: np.ndarray) -> np.ndarray:
    g = np.asarray(a, np.float64).mean(axis=2)
    g = g - g.mean()
    return g / (np.linalg.norm(g) + 1e-9)


def test_photos_are_ingested_with_every_crop_under_its_own_image(printed):
    ws, photos, recs = printed
    assert [r["file"] for r in recs] == ["page01-1.jpg", "page02-1.jpg"]
    assert sorted(os.listdir(photos)) == [".pdfcam.json", "page01-1.jpg", "page02-1.jpg"]
    for r in recs:   # 3 MP JPEGs as drawn, displayed portrait or landscape
        im = ImageOps.exif_transpose(Image.open(photos / r["file"]))
        assert sorted(im.size) == [1536, 2048]
    state = ingest.ingest_run(ws, "g", photos, workers=1, force=True)
    s = state["summary"]
    assert s["accepted"] == 2 and s["printed"] == 8
    assert s["recovered"] >= 7, s
    # each crop looks like its own PNG (grey pattern correlation), not like another image's
    pngs = {i: np.asarray(Image.open(ws.printouts("g") / f"images/{i}/clean.png").convert("RGB")) for i in "abcd"}
    crops = records.read(records.INGEST, ws, "g").dump()["crops"]
    assert len(crops) == s["recovered"]
    for c in crops:
        crop = np.asarray(Image.open(ws.captures("g") / c["file"]).convert("RGB").resize((SIZE, SIZE)))
        corr = {i: float((_grey(crop) * _grey(p)).sum()) for i, p in pngs.items()}
        assert max(corr, key=corr.get) == c["image_id"], (c["image_id"], c["variant"], corr)
        assert corr[c["image_id"]] > 0.6, corr


def test_same_seed_same_bytes_other_seed_other_photo(printed, tmp_path):
    ws, photos, _ = printed
    again = pdf_camera.photograph_pdf(ws.pdf_path("g"), tmp_path / "a", seed=3, ranges=FAST, pages=[1])
    assert again[0]["file"] == "page01-1.jpg"
    assert (tmp_path / "a" / "page01-1.jpg").read_bytes() == (photos / "page01-1.jpg").read_bytes()
    assert not [p for p in os.listdir(tmp_path / "a") if p.endswith(".tmp")]
    other = pdf_camera.photograph_pdf(ws.pdf_path("g"), tmp_path / "b", seed=4, ranges=FAST, pages=[1])
    assert other[0]["camera"] != again[0]["camera"]
    assert (tmp_path / "b" / "page01-1.jpg").read_bytes() != (photos / "page01-1.jpg").read_bytes()


def test_exif_orientation_turns_the_stored_pixels_upright():
    rgb = np.zeros((40, 30, 3), np.uint8)   # portrait, a red mark top-left as displayed
    rgb[:5, :5] = (255, 0, 0)
    for tag in (1, 6, 8):
        data = pdf_camera.encode_jpeg(rgb, {"exif": tag, "jpeg_quality": 95, "chroma_444": True})
        im = Image.open(io.BytesIO(data))
        assert im.getexif().get(0x0112) == tag
        assert im.size == ((30, 40) if tag == 1 else (40, 30))
        shown = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
        assert shown.shape == rgb.shape
        assert shown[2, 2, 0] > 200 and shown[2, 2, 1] < 60 and shown[-3, -3, 0] < 60
