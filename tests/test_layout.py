"""physical layout: the printable PDF and layout.json."""
from __future__ import annotations

import io
import json

import numpy as np
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
import pytest
from click.testing import CliRunner
from PIL import Image

from conftest import make_fake_run
from physical import markers as M
from physical.cli import main
from physical.layout import make_layout

RUN_IDS = tuple(f"img{i}" for i in range(5))


@pytest.fixture(scope="module")
def laid_out(tmp_path_factory):
    """5 source images × 2 variants at 64 px laid out at 30 mm (one A4 page)."""
    root = tmp_path_factory.mktemp("ws")
    ws = make_fake_run(root, ids=RUN_IDS, size=64)
    result = make_layout(ws, "t", image_mm=30)
    return ws, result


def _pdf(result):
    return pdfium.PdfDocument(result.pdf.read_bytes())


def _render(result, page=1, dpi=150):
    doc = _pdf(result)
    bitmap = doc[page - 1].render(scale=dpi / 72)
    img = np.ascontiguousarray(bitmap.to_numpy()[..., :3])
    return img


def test_layout_json_geometry(laid_out):
    ws, result = laid_out
    lay = json.loads(result.layout_path.read_text())
    assert lay == result.layout
    assert lay["run"] == "t" and lay["markers"]["dictionary"] == M.DICTIONARY_NAME
    assert lay["schema"] == 2 and lay["markers"]["id_scheme"] == "rs241-v2" and len(lay["layout_id"]) == 16
    assert lay["run_tag"] == M.run_key("t", lay["layout_id"]).as_dict()        # rs241-v2: run + layout id
    k, dpi = lay["dots_per_pixel"], lay["dpi"]
    assert dpi == 600 and k == round(30 / 25.4 * 600 / 64) == 11
    slots = [s for p in lay["pages"] for s in p["slots"]]
    assert len(slots) == lay["n_slots"] == 10
    assert [s["index"] for s in slots] == list(range(10))
    manifest = json.loads(ws.manifest_path("t").read_text())
    ids = set()
    for s in slots:
        rec = next(i for i in manifest["images"] if i["id"] == s["image_id"])["variants"][s["variant"]]
        assert s["sha256"] == rec["sha256"] and s["file"] == rec["file"]
        x0, y0, x1, y1 = s["rect_mm"]
        # whole printer dots per pixel, on the printer's dot grid
        assert x1 - x0 == pytest.approx(64 * k * 25.4 / dpi, abs=1e-5)
        for v in s["rect_mm"]:
            assert v / 25.4 * dpi == pytest.approx(round(v / 25.4 * dpi), abs=1e-3)
        roles = [m["role"] for m in s["markers"]]
        assert roles == ["TL", "TR", "BR", "BL"]
        assert [m["id"] for m in s["markers"]] == list(M.slot_ids(s["index"], lay["run_tag"]))
        for m in s["markers"]:
            c = np.array(m["corners_mm"])
            side = lay["markers"]["size_mm"]
            assert np.allclose(c[2] - c[0], [side, side]) and np.allclose(c[1] - c[0], [side, 0])
            # outside the image, with the quiet gap
            assert c[:, 1].max() <= y0 - lay["markers"]["gap_mm"] + 1e-6 or c[:, 1].min() >= y1 + lay["markers"]["gap_mm"] - 1e-6
            ids.add(m["id"])
    assert len(ids) == 40
    # pairs: the variants of one image are neighbours in one row
    for a, b in zip(slots[::2], slots[1::2]):
        assert a["image_id"] == b["image_id"] and (a["variant"], b["variant"]) == ("clean", "fgsm-eps16")
        assert a["rect_mm"][1] == b["rect_mm"][1] and b["rect_mm"][0] > a["rect_mm"][2]


@pytest.mark.parametrize("paper", ["a4", "letter"])
def test_everything_inside_the_margins(tmp_path, paper):
    ws = make_fake_run(tmp_path, ids=tuple(f"i{n}" for n in range(12)), size=64)
    lay = make_layout(ws, "t", paper=paper).layout
    w, h, margin = lay["paper"]["width_mm"], lay["paper"]["height_mm"], lay["paper"]["margin_mm"]
    assert margin >= 6.35 and (w, h) == {"a4": (210, 297), "letter": (215.9, 279.4)}[paper]
    for page in lay["pages"]:
        pts = np.concatenate([np.array(m["corners_mm"]) for s in page["slots"] for m in s["markers"]])
        assert pts[:, 0].min() >= margin and pts[:, 0].max() <= w - margin
        assert pts[:, 1].min() >= margin and pts[:, 1].max() <= h - margin
    assert len(_pdf(make_layout(ws, "t", paper=paper, force=True)) ) == len(lay["pages"])


def test_embedded_images_are_the_pngs_bit_for_bit(laid_out):
    ws, result = laid_out
    lay = result.layout
    doc = _pdf(result)
    seen = 0
    for page in lay["pages"]:
        pdf_page = doc[page["page"] - 1]
        height_pt = pdf_page.get_height()
        objs = list(pdf_page.get_objects(filter=(pdfium_c.FPDF_PAGEOBJ_IMAGE,)))
        assert len(objs) == len(page["slots"])
        for obj in objs:
            assert obj.get_filters() == ["FlateDecode"]                       # no DCT/JPEG
            left, bottom, right, top = obj.get_bounds()
            x0, y0 = left / 72 * 25.4, (height_pt - top) / 72 * 25.4
            slot = min(page["slots"], key=lambda s: abs(s["rect_mm"][0] - x0) + abs(s["rect_mm"][1] - y0))
            assert slot["rect_mm"][0] == pytest.approx(x0, abs=0.01)
            assert slot["rect_mm"][3] == pytest.approx((height_pt - bottom) / 72 * 25.4, abs=0.01)
            png = np.asarray(Image.open(ws.printouts("t") / slot["file"]).convert("RGB"))
            extracted = obj.get_bitmap(render=False).to_numpy()[..., ::-1]    # BGR → RGB
            assert obj.get_px_size() == (png.shape[1], png.shape[0])
            assert np.array_equal(extracted, png)
            seen += 1
    assert seen == 10


def test_pdf_is_not_larger_than_the_pngs(tmp_path):
    ws = make_fake_run(tmp_path, ids=("a", "b", "c"), variants=("clean", "fgsm-eps16", "fgsm-eps4"), size=224)
    result = make_layout(ws, "t")
    png_total = sum(p.stat().st_size for p in ws.printouts("t").glob("images/*/*.png"))
    assert result.pdf.stat().st_size <= 1.05 * png_total


def test_rendered_page_markers_are_where_layout_says(laid_out):
    _, result = laid_out
    lay = result.layout
    img = _render(result, 1, dpi=150)
    # pdfium rounds the bitmap to whole pixels: use its actual scale per axis
    sx, sy = img.shape[1] / lay["paper"]["width_mm"], img.shape[0] / lay["paper"]["height_mm"]
    dets = {d.id: d.corners_px for d in M.detect(img)}
    expected = {m["id"]: np.array(m["corners_mm"]) * [sx, sy] for s in lay["pages"][0]["slots"] for m in s["markers"]}
    assert set(dets) == set(expected)
    for i, want in expected.items():
        assert np.abs(dets[i] - want).max() <= 1.0, i


def test_identify_rendered_page_and_single_image_and_other_run(laid_out, tmp_path):
    _, result = laid_out
    lay = result.layout
    img = _render(result, 1, dpi=150)
    idf = M.identify(M.detect(img), lay)
    assert idf.status == "ok" and idf.pages == [1]
    assert [(s.image_id, s.variant, s.markers_found) for s in idf.slots] == \
        [(s["image_id"], s["variant"], 4) for s in lay["pages"][0]["slots"]]
    # a photo showing only one image (and its markers) still finds it
    s3 = lay["pages"][0]["slots"][3]
    corners = np.concatenate([np.array(m["corners_mm"]) for m in s3["markers"]]) * 150 / 25.4
    (x0, y0), (x1, y1) = corners.min(0).astype(int) - 8, corners.max(0).astype(int) + 8
    crop = np.ascontiguousarray(img[y0:y1, x0:x1])
    idf = M.identify(M.detect(crop), lay)
    assert idf.status == "ok" and [(s.slot, s.markers_found) for s in idf.slots] == [(3, 4)]
    # another run's sheet
    other = make_layout(make_fake_run(tmp_path, run="other", ids=RUN_IDS, size=64), "other", image_mm=30)
    idf = M.identify(M.detect(_render(other, 1)), lay)
    assert idf.status == "other run" and not idf.slots


def test_same_run_same_bytes(tmp_path):
    ws = make_fake_run(tmp_path, ids=("a", "b"), size=64)
    first = make_layout(ws, "t", layout_id="00000000000000ab").pdf.read_bytes()
    lay1 = ws.layout_path("t").read_bytes()
    second = make_layout(ws, "t", force=True, layout_id="00000000000000ab").pdf.read_bytes()
    assert first == second and ws.layout_path("t").read_bytes() == lay1    # same run and layout id
    third = make_layout(ws, "t", force=True)                                # a new layout: new id, new codes
    assert third.layout["layout_id"] != "00000000000000ab" and third.pdf.read_bytes() != first
    assert b"D:20260101000000+00'00'" in first                   # the manifest's date


# ----------------------------------------------------------------------------- CLI
def _cli(root, *args):
    return CliRunner().invoke(main, ["--workspace", str(root), "layout", "--run", "t", *args])


def test_cli_writes_pdf_and_prints_summary(tmp_path):
    make_fake_run(tmp_path, ids=("a", "b", "c"), size=64)
    res = _cli(tmp_path, "--image-mm", "40")
    assert res.exit_code == 0, res.output
    out = res.output.strip()
    assert "\n" not in out
    assert "1 page," in out and "6 images per page" in out and "15 printer dots per image pixel" in out
    assert "40.6 × 40.6 mm" in out and "asked 40 mm" in out            # 64 px × 15 dots = 40.64 mm
    assert (tmp_path / "printouts/t/t.pdf").exists() and (tmp_path / "printouts/t/layout.json").exists()
    # refuses to overwrite without --force
    res = _cli(tmp_path)
    assert res.exit_code == 1 and "already exists" in res.output and "--force" in res.output
    res = _cli(tmp_path, "--force", "--variants", "fgsm-eps16", "--paper", "letter", "--dpi", "300",
               "--image-mm", "27.09")
    assert res.exit_code == 0, res.output
    lay = json.loads((tmp_path / "printouts/t/layout.json").read_text())
    assert lay["variants"] == ["fgsm-eps16"] and lay["paper"]["name"] == "letter" and lay["dpi"] == 300
    assert lay["dots_per_pixel"] == 5 and "asked" not in res.output                 # 64 × 5 / 300 in = 27.09 mm


@pytest.mark.parametrize("args, message", [
    (["--run", "nope"], "no run 'nope'"),
    (["--variants", "clean,bim-eps8"], "variant 'bim-eps8' was never crafted"),
    (["--image-mm", "400"], "does not fit a4 paper"),
    (["--image-mm", "8"], "too small for their markers"),
    (["--variants", " , "], "'--variants': give at least one value"),   # click's own check: exit 2, usage hint
])
def test_cli_bad_input_one_line(tmp_path, args, message):
    make_fake_run(tmp_path, ids=("a",), size=64)
    res = CliRunner().invoke(main, ["--workspace", str(tmp_path), "layout", "--run", "t", *args])
    lines = res.output.strip().splitlines()
    assert res.exit_code == (2 if "give at least" in message else 1)
    assert message in lines[-1] and lines[-1].startswith("Error:") and len(lines) <= (1 if res.exit_code == 1 else 4)
    assert not (tmp_path / "printouts/t/t.pdf").exists()


def test_cli_more_images_than_the_id_scheme(tmp_path, monkeypatch):
    make_fake_run(tmp_path, ids=("a", "b"), size=64)
    monkeypatch.setattr(M, "MAX_SLOTS", 3)
    res = _cli(tmp_path)
    assert res.exit_code == 1 and "4 images to print" in res.output and "at most 3" in res.output


def test_non_rgb_png_is_converted_not_rejected(tmp_path):
    ws = make_fake_run(tmp_path, ids=("a",), variants=("clean",), size=64)
    # replace the PNG with a palette PNG of the same pixels (and fix the manifest's hash)
    path = ws.printouts("t") / "images/a/clean.png"
    rgb = np.asarray(Image.open(path))
    buf = io.BytesIO()
    Image.fromarray(rgb).quantize(64).save(buf, format="PNG")
    path.write_bytes(buf.getvalue())
    manifest = json.loads(ws.manifest_path("t").read_text())
    from physical.workspace import sha256_bytes

    manifest["images"][0]["variants"]["clean"]["sha256"] = sha256_bytes(buf.getvalue())
    ws.manifest_path("t").write_text(json.dumps(manifest))
    result = make_layout(ws, "t")
    (obj,) = _pdf(result)[0].get_objects(filter=(pdfium_c.FPDF_PAGEOBJ_IMAGE,))
    want = np.asarray(Image.open(path).convert("RGB"))
    assert np.array_equal(obj.get_bitmap(render=False).to_numpy()[..., ::-1], want)


def test_changed_png_is_refused(tmp_path):
    ws = make_fake_run(tmp_path, ids=("a",), size=64)
    path = ws.printouts("t") / "images/a/clean.png"
    path.write_bytes(path.read_bytes() + b"x")
    res = _cli(tmp_path)
    assert res.exit_code == 1 and "changed since it was crafted" in res.output
