"""`physical report`: the HTML page is parsed, not eyeballed — every table row, every link and
image resolves inside the report folder, inputs are escaped, a partial run says what is missing."""
from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from conftest import make_fake_run, png_bytes
from physical.cli import main
from physical.report import (acceptance_curves, build_report, choose_sample, imagenet_names, manifest_view, metrics_view,
                             perturbation_image, transfer_matrix)
from physical.workspace import atomic_write_bytes, atomic_write_json, read_json

HOSTILE = "<script>alert(1)</script>"
HOSTILE_PHOTO = "<img src=x onerror=alert(1)>.jpg"
VARIANTS = ("clean", "fgsm-eps8", "fgsm-eps16", "bim-eps16")
RATES = ("clean_top1", "clean_top5", "adv_top1", "adv_top5", "digital_clean_top1", "digital_clean_top5",
         "digital_adv_top1", "digital_adv_top5", "destruction_top1", "destruction_top5",
         "clean_accept_rate", "adv_accept_rate", "clean_accepted_error", "adv_accepted_error")


def metric_row(model, attack, eps, stage, subset="average", **values):
    """A metrics.json row as docs/metrics.md defines it; every rate defaults to 0.5 ± 0.1."""
    row = {"model": model, "crafted_by": "fake", "attack": attack, "eps": eps, "variant": f"{attack}-eps{eps:g}",
           "stage": stage, "transform": None, "transform_value": None, "subset": subset, "n": 3, "clean_n": 3,
           "adv_confidence": 0.7, "destruction_n": 2, "destruction_n_top5": 2, "threshold": 0.8,
           "clean_error_reduction": 0.25, "adv_error_reduction": None}
    if stage.startswith("transform:"):
        _, kind, value = stage.split(":")
        row["transform"], row["transform_value"] = kind, float(value)
    for name in RATES:
        v = values.get(name, 0.5)
        row[name] = v
        row[f"{name}_ci"] = None if v is None else [max(0.0, v - 0.1), min(1.0, v + 0.1)]
    return row


def full_metrics():
    rows = []
    for attack, eps in (("fgsm", 8), ("fgsm", 16), ("bim", 16)):
        for stage in ("png", "photo", "transform:blur:0.5", "transform:blur:1", "transform:blur:2"):
            for subset in ("average", "prefiltered"):
                rows.append(metric_row("fake", attack, eps, stage, subset))
    # Distinct numbers to find in the page: fgsm ε=16 photo, average.
    rows[:] = [r for r in rows if not (r["attack"] == "fgsm" and r["eps"] == 16 and r["stage"] == "photo"
                                       and r["subset"] == "average")]
    rows.append(metric_row("fake", "fgsm", 16, "photo", "average", clean_top1=0.798, adv_top1=0.364,
                           digital_clean_top1=0.853, digital_adv_top1=0.363, destruction_top1=0.125,
                           destruction_top5=None))
    rows.append(metric_row("other", "fgsm", 16, "png", "average", adv_top1=0.25))
    transfer = {"crafted_by": "fake", "models": ["fake", "other"], "metric": "adv_error_top1", "entries": [
        {"stage": "png", "attack": "clean", "eps": 0, "variant": "clean", "n": {"fake": 3, "other": 3},
         "error": {"fake": 0.2, "other": 0.3}, "error_ci": {"fake": [0.1, 0.4], "other": [0.1, 0.5]}},
        {"stage": "png", "attack": "fgsm", "eps": 16, "variant": "fgsm-eps16", "n": {"fake": 3, "other": 3},
         "error": {"fake": 0.9, "other": 0.75}, "error_ci": {"fake": [0.6, 1.0], "other": [0.4, 0.9]}}]}
    return {"schema": 1, "run": {"name": "t", "created": "2026-01-01T00:00:00+00:00", "manifest_sha256": "0" * 64,
                                 "model": {"spec": "fake"}, "seed": 0, "versions": {"numpy": "9.9"},
                                 "threshold": 0.8, "models": [{"spec": "fake"}, {"spec": "other"}]},
            "photo": {"status": "ok", "message": None, "crops": 12}, "rows": rows, "transfer": transfer}


def jpeg_bytes(seed: int) -> bytes:
    buf = io.BytesIO()
    arr = np.random.default_rng(seed).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    Image.fromarray(arr).save(buf, format="JPEG")
    return buf.getvalue()


def make_full_run(root):
    ids = ("img0", HOSTILE, "img2")
    ws = make_fake_run(root, run="t", ids=ids, variants=VARIANTS, size=48, labels=[1, 2, 3])
    manifest = read_json(ws.manifest_path("t"))
    manifest["images"][1]["label"]["name"] = HOSTILE        # a hostile label name
    manifest["images"][1]["variants"]["clean"]["pred"] = {"top5": [2, 5, 6, 7, 8], "prob5": [0.9, 0.04, 0.03, 0.02, 0.01]}
    manifest["images"][2]["variants"]["bim-eps16"]["file"] = "../../../outside.png"   # must not be followed
    atomic_write_bytes(Path(root) / "outside.png", png_bytes(np.zeros((4, 4, 3), np.uint8)))
    manifest["attacks"] = {"fgsm": {"eps": [8, 16]}, "bim": {"eps": [16], "alpha": 1}}
    atomic_write_json(ws.manifest_path("t"), manifest)
    atomic_write_bytes(ws.layout_path("t"), b"{}")
    atomic_write_bytes(ws.pdf_path("t"), b"%PDF-1.4\n")
    cap = ws.captures("t")
    crops = []
    for image in manifest["images"][:2]:
        for variant in VARIANTS:
            rel = f"crops/{image['id']}/{variant}.png"
            src = ws.printouts("t") / f"images/{image['id']}/{variant}.png"
            atomic_write_bytes(cap / rel, src.read_bytes())
            crops.append({"image_id": image["id"], "variant": variant, "file": rel, "photo": "photos/p1.jpg",
                          "photo_sha256": "1" * 64,
                          "page": 1, "slot": 0, "reprojection_error_px": 0.4, "sharpness": 100.0, "used": True})
    atomic_write_bytes(cap / "photos/p1.jpg", jpeg_bytes(1))
    atomic_write_bytes(cap / "photos" / HOSTILE_PHOTO, jpeg_bytes(2))
    atomic_write_json(cap / "ingest.json", {"schema": 1, "run": "t", "layout_sha256": "0", "photos": [
        {"file": "photos/p1.jpg", "sha256": "1" * 64, "status": "accepted", "reason": None, "page": 1,
         "slots_found": 3},
        {"file": f"photos/{HOSTILE_PHOTO}", "sha256": "2" * 64, "status": "rejected", "reason": f"no markers found {HOSTILE}",
         "page": None, "slots_found": 0}], "crops": crops})
    atomic_write_json(ws.reports("t") / "metrics.json", full_metrics())
    return ws


class Page(HTMLParser):
    """Collects tags, resource links and the text of each table row."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.links, self.rows, self.text = [], [], {}, []
        self._row = None
        self._anchor = None
        self.anchored_images = []   # (href of the enclosing <a>, img src)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        for key in ("src", "href"):
            if attrs.get(key) is not None:
                self.links.append((tag, attrs[key]))
        if tag == "tr" and attrs.get("data-row"):
            self._row = attrs["data-row"]
            self.rows.setdefault(self._row, [])
        if tag == "a":
            self._anchor = attrs.get("href")
        if tag == "img" and self._anchor:
            self.anchored_images.append((self._anchor, attrs.get("src")))

    def handle_endtag(self, tag):
        if tag == "tr":
            self._row = None
        if tag == "a":
            self._anchor = None

    def handle_data(self, data):
        self.text.append(data)
        if self._row is not None:
            self.rows[self._row].append(data.strip())

    def row_text(self, key):
        return " ".join(t for t in self.rows[key] if t)


def parse(index: Path) -> Page:
    page = Page()
    page.feed(index.read_text(encoding="utf-8"))
    return page


def assert_self_contained(index: Path, page: Page, root: Path):
    html = index.read_text(encoding="utf-8")
    out = index.parent.resolve()
    assert str(root) not in html and str(root.resolve()) not in html, "absolute path in the page"
    for tag, link in page.links:
        parts = urlsplit(link)
        assert not parts.scheme and not parts.netloc, f"non-relative {tag} link {link!r}"
        assert not link.startswith("/"), link
        if not parts.path:          # "#section"
            continue
        target = (out / unquote(parts.path)).resolve()
        assert target.is_relative_to(out), f"{link} leaves the report folder"
        assert target.is_file(), f"{link} does not exist"
    assert "http://" not in html and "https://" not in html


@pytest.fixture(scope="module")
def full_report(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    ws = make_full_run(root)
    index = build_report(ws, "t", sample=3)
    return root, ws, index, parse(index)


def test_table_rows_numbers_and_nulls(full_report):
    _, _, _, page = full_report
    # Table 1 of the crafting model and of the second model, and the thresholded-classifier table.
    assert {"fgsm-eps8", "fgsm-eps16", "bim-eps16"} <= set(page.rows)
    row = page.row_text("fgsm-eps16")
    # photo clean / adv, digital clean / adv, destruction (top-5 null → —), in the paper's order
    for number in ("79.8", "36.4", "85.3", "36.3", "12.5"):
        assert number in row, (number, row)
    assert row.index("79.8") < row.index("36.4") < row.index("85.3") < row.index("36.3") < row.index("12.5")
    assert "—" in row
    assert "of 2" in row            # the destruction denominator
    assert "40–60" in page.row_text("fgsm-eps8")   # an interval: 0.5 ± 0.1
    text = " ".join(page.text)
    assert "Evaluated by other" in text                      # several models: one table each
    assert "75" in page.row_text("transfer-digital-other") and "90" in page.row_text("transfer-digital-fake")
    # Thresholded classifier: one table per stage; digital clean numbers agree → one clean row.
    assert {"clean-png", "fgsm-eps16-png", "fgsm-eps16-photo"} <= set(page.rows)
    assert "63.6" in page.row_text("fgsm-eps16-photo")          # adversarial error = 1 − 0.364


def test_links_resolve_inside_the_folder(full_report):
    root, _, index, page = full_report
    assert_self_contained(index, page, root)
    srcs = [link for tag, link in page.links if tag == "img"]
    for name in ("accuracy_vs_eps", "destruction", "acceptance", "transforms", "transfer"):
        assert f"plots/{name}.png" in srcs, name
        with Image.open(index.parent / "plots" / f"{name}.png") as im:
            assert im.size[0] > 400
    # The gallery's thumbnails link to full-size copies; the outside file was not followed.
    thumbs = [(a, s) for a, s in page.anchored_images if s.startswith("thumbs/")]
    assert len(thumbs) >= 3 * 4 + 2 * 4 + 1        # PNGs + photo crops + a rejected photo
    for href, src in thumbs:
        assert href.startswith("images/") and href != src
    assert not any("outside" in link for _, link in page.links)
    files = {p.name for p in index.parent.rglob("*")}
    assert "outside.png" not in files


def test_hostile_names_are_escaped(full_report):
    _, _, index, page = full_report
    html = index.read_text(encoding="utf-8")
    assert "script" not in page.tags
    assert HOSTILE not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x" not in html
    text = " ".join(page.text)
    assert HOSTILE in text                       # shown as text: the id, the label, the reason
    assert HOSTILE_PHOTO in text
    # The hostile id never becomes a path in the report folder.
    for p in index.parent.rglob("*"):
        assert "<" not in p.name and ">" not in p.name


def test_gallery_colours_and_perturbation(full_report):
    root, ws, index, page = full_report
    html = index.read_text(encoding="utf-8")
    # img0's clean prediction (make_fake_run: top-1 = label) is right, its adversarial ones wrong.
    assert 'class="pred right"' in html and 'class="pred wrong"' in html
    # The perturbation image is (adv − clean) × gain + 128 of the PNGs on disk.
    manifest = read_json(ws.manifest_path("t"))
    img = manifest["images"][0]
    clean = np.asarray(Image.open(ws.printouts("t") / img["variants"]["clean"]["file"]).convert("RGB"))
    adv = np.asarray(Image.open(ws.printouts("t") / img["variants"]["fgsm-eps16"]["file"]).convert("RGB"))
    pert = np.asarray(Image.open(index.parent / "images/0000-img0/fgsm-eps16-perturbation.png"))
    assert np.array_equal(pert, perturbation_image(clean, adv, 8))
    expected = np.clip(128 + 8 * (adv.astype(int) - clean.astype(int)), 0, 255)
    assert np.array_equal(pert, expected)
    assert "× 8" in html


def test_ingest_section(full_report):
    _, _, index, page = full_report
    text = " ".join(page.text)
    assert "photos rejected" in text and "no markers found" in text
    rejected = [(a, s) for a, s in page.anchored_images if s.startswith("thumbs/photos/")]
    assert len(rejected) == 1
    with Image.open(index.parent / unquote(rejected[0][1])) as im:
        assert max(im.size) <= 360


def test_transfer_matrix_reads_the_documented_block():
    m = transfer_matrix(metrics_view(full_metrics()))
    assert m["models"] == ["fake", "other"] and m["crafted_by"] == "fake"
    (digital,) = m["stages"]
    assert digital["stage"] == "digital" and digital["rows"] == ["fake", "other"]
    assert digital["cols"] == ["clean", "FGSM ε=16"]
    assert digital["values"] == [[0.2, 0.9], [0.3, 0.75]]     # model × variant
    assert transfer_matrix(metrics_view({"rows": [], "transfer": None})) is None


def test_acceptance_curve_is_exact():
    conf = [0.95, 0.8, 0.85, 0.3]
    wrong = [False, True, True, True]
    manifest = {"variants": ["clean"], "images": [
        {"id": str(i), "label": {"index": 1},
         "variants": {"clean": {"pred": {"top5": [2 if w else 1, 3, 4, 5, 6], "prob5": [c, 0, 0, 0, 0]}}}}
        for i, (c, w) in enumerate(zip(conf, wrong))]}
    curve = acceptance_curves(manifest_view(manifest))["clean"]
    t = curve["thresholds"]
    assert curve["accepted"][t.index(0.0)] == 1.0 and curve["error"][t.index(0.0)] == 0.75
    i = t.index(0.8)        # strictly greater than t is accepted: 0.8 itself is not
    assert curve["accepted"][i] == 0.5 and curve["error"][i] == 0.5
    assert curve["error"][t.index(0.99)] is None


def test_partial_run_names_missing_stages(tmp_path):
    ws = make_fake_run(tmp_path)
    index = build_report(ws, "t")
    page = parse(index)
    assert_self_contained(index, page, tmp_path)
    text = " ".join(page.text)
    assert "This run is incomplete" in text
    for hint in ("physical layout --run t", "physical ingest --run t", "physical evaluate --run t",
                 "physical transforms --run t"):
        assert hint in text, hint
    assert "No metrics yet" in text
    assert not [r for r in page.rows if r.startswith("fgsm")]
    assert (index.parent / "plots/acceptance.png").exists()       # from the manifest alone
    assert not (index.parent / "plots/destruction.png").exists()


def test_rerun_removes_stale_files(tmp_path):
    ws = make_fake_run(tmp_path, ids=("a", "b", "c"))
    build_report(ws, "t", sample=3)
    assert (ws.reports("t") / "images/0002-c/clean.png").exists()
    build_report(ws, "t", sample=1)
    kept = {p.parent.name for p in (ws.reports("t") / "images").rglob("*.png")}
    assert len(kept) == 1


def test_cli_prints_the_path(tmp_path):
    make_fake_run(tmp_path)
    result = CliRunner().invoke(main, ["--workspace", str(tmp_path), "report", "--run", "t"])
    assert result.exit_code == 0, result.output
    path = Path(result.output.strip())
    assert path == tmp_path / "reports" / "t" / "index.html" and path.is_file()


def test_cli_no_run_is_one_line(tmp_path):
    result = CliRunner().invoke(main, ["--workspace", str(tmp_path), "report", "--run", "nope"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "nope" in lines[0] and "Traceback" not in result.output


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed")
def test_screenshot_is_not_blank(full_report, tmp_path):
    _, _, index, _ = full_report
    shot = tmp_path / "shot.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1280,2000",
                    index.resolve().as_uri()], check=True, capture_output=True, timeout=90)
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float32)
    assert pixels.shape == (2000, 1280)
    assert pixels.std() > 20            # text, tables and plots, not a blank page
    # The dark header band and the light body are both there.
    assert pixels[:100].mean() < 100 and pixels[-300:].mean() > 150


def test_gallery_sample_prefers_photographed_images():
    doc = {"seed": 0, "images": [{"id": i} for i in "abcdef"]}
    manifest = manifest_view(doc)
    assert 4 in choose_sample(manifest, 2, {"e"})
    assert all(4 in choose_sample(manifest_view({**doc, "seed": s}), 1, {"e"}) for s in range(5))
    assert choose_sample(manifest, 3) == choose_sample(manifest, 3)          # deterministic
    assert choose_sample(manifest, 10) == list(range(6))


def test_class_names_do_not_import_torch():
    code = ("import sys; from physical.report import imagenet_names; n = imagenet_names(); "
            "assert len(n) == 1000 and n[967] == 'espresso', n[967]; assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# --------------------------------------------------------------------------------------------
# the report package: no model, stored crop predictions, plots that fit, a gallery that wraps
# --------------------------------------------------------------------------------------------

WIDE_VARIANTS = ("clean",) + tuple(f"{a}-eps{e}" for a in ("fgsm", "bim", "ill", "noise") for e in (2, 4, 8, 16))


def add_crops(ws, run="t", variants=VARIANTS, ids=None):
    """Photo crops (copies of the PNGs) of every variant of `ids` and an ingest.json naming them."""
    manifest = read_json(ws.manifest_path(run))
    cap = ws.captures(run)
    crops = []
    for image in manifest["images"]:
        if ids is not None and image["id"] not in ids:
            continue
        for variant in variants:
            rel = f"crops/{image['id']}/{variant}.png"
            atomic_write_bytes(cap / rel, (ws.printouts(run) / image["variants"][variant]["file"]).read_bytes())
            crops.append({"image_id": image["id"], "variant": variant, "file": rel, "used": True,
                          "photo": "photos/p1.jpg", "photo_sha256": "1" * 64, "reprojection_error_px": 0.5})
    atomic_write_bytes(cap / "photos/p1.jpg", jpeg_bytes(1))
    atomic_write_json(cap / "ingest.json", {"schema": 1, "run": run, "layout_sha256": "0" * 64, "photos": [
        {"file": "photos/p1.jpg", "sha256": "1" * 64, "status": "accepted", "reason": None, "page": 1,
         "slots_found": 3}],
        "crops": crops})
    return crops


def photo_titles(html: str) -> list[str]:
    """The title (top-1 name and class) of every prediction in the gallery's photo rows."""
    out = []
    for row in html.split('<tr class="pic"><th class="rl"><span>photo</span></th>')[1:]:
        out += [t.split('"')[0] for t in row.split("</tr>")[0].split('title="top-1: ')[1:]]
    return out


def test_gallery_shows_the_crop_predictions_evaluate_stored(tmp_path):
    ws = make_fake_run(tmp_path, ids=("a",), variants=VARIANTS, labels=[5])
    add_crops(ws)
    doc = full_metrics()
    # The crafting model's stored predictions (class 7 for clean, 9 for the rest), another model's
    # (class 3: never shown), and no prediction stored for bim-eps16 (shown as "not classified").
    doc["predictions"] = [{"model": m, "image_id": "a", "variant": v, "stage": "photo",
                           "top5": [cls, 0, 1, 2, 4], "prob5": [0.6, 0.1, 0.1, 0.1, 0.1]}
                          for m, cls in (("other", 3), ("fake", None)) for v in VARIANTS[:3]]
    for p in doc["predictions"]:
        if p["model"] == "fake":
            p["top5"][0] = 7 if p["variant"] == "clean" else 9
    # A predictions.json (nothing writes one) is not read: it used to be the fallback when
    # metrics.json stored none.
    atomic_write_json(ws.reports("t") / "metrics.json", full_metrics())
    atomic_write_json(ws.reports("t") / "predictions.json", {"predictions": [
        {"model": "fake", "image_id": "a", "variant": "bim-eps16", "stage": "photo", "top5": [11, 0, 1, 2, 3],
         "prob5": [0.9, 0, 0, 0, 0]}]})
    html = build_report(ws, "t").read_text(encoding="utf-8")
    assert photo_titles(html) == [] and html.count("not classified") == 4 and "class 11" not in html
    atomic_write_json(ws.reports("t") / "metrics.json", doc)
    html = build_report(ws, "t").read_text(encoding="utf-8")
    names = imagenet_names()
    assert photo_titles(html) == [f"{names[7]} (class 7)", f"{names[9]} (class 9)", f"{names[9]} (class 9)"]
    photo_row = html.split('<span>photo</span>')[-1].split("</tr>")[0]    # bim's table: bim-eps16 only
    assert "not classified" in photo_row and "class 11" not in html and "class 3)" not in html


def test_report_runs_no_model(tmp_path):
    """A report of a run with photo crops and no stored predictions loads neither torch nor the
    model registry (it used to classify the crops itself)."""
    ws = make_full_run(tmp_path)
    code = ("import sys; from physical.workspace import Workspace; from physical.report import build_report; "
            f"build_report(Workspace({str(tmp_path)!r}), 't', sample=3); "
            "loaded = [m for m in ('torch', 'timm', 'physical.models', 'physical.evaluate') if m in sys.modules]; "
            "assert not loaded, loaded")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    assert "not classified" in (ws.reports("t") / "index.html").read_text(encoding="utf-8")


def test_classify_option_is_accepted_and_does_nothing(tmp_path):
    make_fake_run(tmp_path)
    result = CliRunner().invoke(main, ["--workspace", str(tmp_path), "report", "--run", "t", "--no-classify"])
    assert result.exit_code == 0, result.output
    assert "no longer does anything" in result.output
    assert Path(result.output.strip().splitlines()[-1]).is_file()


def texts_outside(fig) -> list[str]:
    """What of `fig` is drawn beyond its edges: figure texts (the title, legends) and axes (their
    titles, labels and the tick labels drawn) — nothing, ideally."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    box = fig.bbox

    def out(b):
        return b.x0 < box.x0 - 1 or b.x1 > box.x1 + 1 or b.y0 < box.y0 - 1 or b.y1 > box.y1 + 1

    texts = list(fig.texts) + ([fig._suptitle] if fig._suptitle is not None else []) \
        + [t for legend in fig.legends for t in legend.get_texts()]
    bad = [t.get_text() for t in texts if t.get_visible() and t.get_text().strip() and out(t.get_window_extent(renderer))]
    bad += [f"axes {ax.get_title()!r}" for ax in fig.axes if ax.get_visible() and out(ax.get_tightbbox(renderer))]
    return bad


@pytest.mark.parametrize("attacks", [("fgsm",), ("fgsm", "bim"), ("fgsm", "bim", "ill", "noise", "gauss")])
def test_threshold_plot_title_fits_inside_the_figure(attacks):
    from physical.report import plots
    from physical.report.tables import acceptance_curves as curves_of

    doc = {"variants": ["clean"] + [f"{a}-eps{e}" for a in attacks for e in (4, 16)], "images": [
        {"id": str(i), "label": {"index": 1}, "variants": {v: {"pred": {"top5": [1 + (i + k) % 2, 3, 4, 5, 6],
                                                                      "prob5": [0.5 + 0.1 * (i % 5), 0, 0, 0, 0]}}
                                                         for k, v in enumerate(["clean"] + [f"{a}-eps{e}" for a in attacks
                                                                                            for e in (4, 16)])}}
        for i in range(6)]}
    manifest = manifest_view(doc)
    fig = plots.acceptance(manifest, curves_of(manifest), 0.8)
    assert fig._suptitle is not None and "confidence threshold" in fig._suptitle.get_text()
    assert texts_outside(fig) == []


def test_every_plot_keeps_its_text_inside(full_report):
    from physical.report import plots

    metrics = metrics_view(full_metrics())
    figs = [plots.accuracy_vs_eps(metrics.rows, "fake"), plots.destruction(metrics.rows, "fake"),
            plots.transforms(metrics.rows, "fake"), plots.transfer(transfer_matrix(metrics))]
    for fig in figs:
        assert fig is not None
        assert texts_outside(fig) == []


def test_inputs_normalise_odd_files_once():
    m = metrics_view({"rows": [None, "x", {"model": "a", "attack": None, "eps": "NaN", "stage": "png",
                                           "n": 3, "adv_top1": "high", "clean_top1": 0.5, "clean_top1_ci": [0.1],
                                           "destruction_n": 2}],
                      "predictions": [{"model": "a", "image_id": 1, "variant": "clean", "top5": []}],
                      "transfer": {"entries": [{"error": "x"}]}})
    (row,) = m.rows
    assert (row.model, row.attack, row.eps, row.subset) == ("a", "clean", None, "average")
    assert row.v("adv_top1") is None and row.v("clean_top1") == 0.5 and row.ci("clean_top1") is None
    assert row.count("destruction_n") == 2 and m.crop_predictions == {} and m.transfer.entries == []
    assert metrics_view({"rows": "nope"}) is None
    empty = manifest_view({})
    assert empty.images == [] and empty.variants == [] and empty.model.spec is None
    named = manifest_view({"variants": ["clean", "fgsm-eps2", "bim-eps0.5-to7"]})
    assert [(a.name, a.eps) for a in named.attacks] == [("fgsm", (2.0,)), ("bim", (0.5,))]


def test_unreadable_optional_files_are_reported_on_the_page(tmp_path):
    ws = make_fake_run(tmp_path)
    atomic_write_json(ws.captures("t") / "ingest.json", ["not", "an", "object"])
    atomic_write_json(ws.reports("t") / "metrics.json", {"schema": 1})
    text = " ".join(parse(build_report(ws, "t")).text)
    assert "ingest.json is not an ingest file (a JSON list, not an object)" in text
    assert "metrics.json is not a valid metrics file (run: field required)" in text
    assert "No photos ingested yet" in text and "No metrics yet" in text


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed")
def test_gallery_of_17_variants_does_not_scroll_sideways_at_1280_px(tmp_path):
    ws = make_fake_run(tmp_path, ids=("a", "b"), variants=WIDE_VARIANTS, size=32)
    add_crops(ws, variants=WIDE_VARIANTS)
    index = build_report(ws, "t", sample=2)
    # Measured by the browser: a copy of the page with a script that writes, for every element of
    # the gallery that is wider inside than it shows, its class; and the page's own width.
    probe = index.parent / "probe.html"
    probe.write_text(index.read_text(encoding="utf-8").replace("</body>", (
        "<script>const g = document.getElementById('gallery');"
        "const wide = [...g.querySelectorAll('*')].filter(e => e.scrollWidth > e.clientWidth + 1 && e.clientWidth > 0);"
        "document.body.setAttribute('data-probe', JSON.stringify({page: document.documentElement.scrollWidth,"
        " tables: g.querySelectorAll('table.strip').length, wide: wide.map(e => e.tagName + '.' + e.className)}));"
        "</script></body>")), encoding="utf-8")
    dom = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                          "--disable-component-update", "--disable-sync", "--no-first-run",
                          f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,2000", "--dump-dom",
                          probe.resolve().as_uri()], check=True, capture_output=True, timeout=90, text=True).stdout
    found = json.loads(unescape(dom.split('data-probe="')[1].split('"')[0]))
    assert found["tables"] == 2 * 5                 # two images × (clean + four attacks)
    assert found["wide"] == [] and found["page"] <= 1280, found
