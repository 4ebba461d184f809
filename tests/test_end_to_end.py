"""The whole loop on two bundled photos at small settings, asserting on every stage's outputs;
and `physical run`'s stop-after-layout → photos → run-again workflow."""
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pypdfium2
import pytest
from click.testing import CliRunner

from physical.cli import main
from physical.craft import CraftOptions
from physical.pipeline import PipelineOptions, run_pipeline
from physical.workspace import Workspace

SMALL_GRID = {"blur": (1.0,), "jpeg": (30,)}


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.targets = []

    def handle_starttag(self, tag, attrs):
        for key, value in attrs:
            if key in ("src", "href") and value and not value.startswith("#"):
                self.targets.append(value)


def small_options(**extra):
    craft = CraftOptions(images="demo", limit=2, attacks=("fgsm", "ill"), eps=(16.0,), steps=3, batch_size=2,
                         device="cpu", progress=False)
    return PipelineOptions(craft=craft, simulate=True, preset="mild", resolution=(1600, 1200), image_mm=30,
                           kinds=("blur", "jpeg"), transform_grid=SMALL_GRID, progress=False, **extra)


@pytest.mark.slow
def test_whole_loop_on_two_bundled_photos(tmp_path, cached_model):
    ws = Workspace(tmp_path)
    lines = []
    timings = run_pipeline(ws, "e2e", small_options(), echo=lines.append)
    assert list(timings) == ["craft", "layout", "simulate", "ingest", "evaluate", "transforms", "report"], lines

    manifest = json.loads((tmp_path / "printouts/e2e/manifest.json").read_text())
    variants = ["clean", "fgsm-eps16", "ill-eps16"]
    assert len(manifest["images"]) == 2
    assert all(set(e["variants"]) == set(variants) for e in manifest["images"])

    # The PDF embeds every PNG, bit for bit.
    layout = json.loads((tmp_path / "printouts/e2e/layout.json").read_text())
    printed = {(s["image_id"], s["variant"]): s["sha256"] for p in layout["pages"] for s in p["slots"]}
    assert set(printed) == {(e["id"], v) for e in manifest["images"] for v in variants}
    pdf = pypdfium2.PdfDocument(str(tmp_path / "printouts/e2e/e2e.pdf"))
    embedded = sum(1 for page in pdf for obj in page.get_objects() if obj.type == pypdfium2.raw.FPDF_PAGEOBJ_IMAGE)
    assert embedded == len(printed)

    # Every printed image was recovered from the simulated photos, under its own name.
    ingest = json.loads((tmp_path / "captures/e2e/ingest.json").read_text())
    used = {(c["image_id"], c["variant"]) for c in ingest["crops"] if c["used"]}
    assert used == set(printed)
    assert all((tmp_path / "captures/e2e" / c["file"]).exists() for c in ingest["crops"])

    # Metrics rows for every attack × ε × stage, and the transform grid.
    metrics = json.loads((tmp_path / "reports/e2e/metrics.json").read_text())
    transformed = json.loads((tmp_path / "reports/e2e/transforms.json").read_text())   # transforms' own file
    stages = {(r["attack"], r["eps"], r["stage"], r["subset"]) for r in metrics["rows"] + transformed["rows"]}
    for attack in ("fgsm", "ill"):
        for stage in ("png", "photo", "transform:blur:1", "transform:jpeg:30"):
            assert (attack, 16, stage, "average") in stages, (attack, stage)
            assert (attack, 16, stage, "prefiltered") in stages
    photo = [r for r in metrics["rows"] if r["stage"] == "photo" and r["subset"] == "average"]
    assert all(r["n"] == 2 for r in photo)
    # Each used crop's prediction is stored (the report's gallery reads them), consistent with the rows.
    stored = {(p["image_id"], p["variant"]): p for p in metrics["predictions"]}
    assert set(stored) == used
    labels = {e["id"]: e["label"]["index"] for e in manifest["images"]}
    clean_photo_top1 = sum(stored[(i, "clean")]["top5"][0] == labels[i] for i in labels) / len(labels)
    assert clean_photo_top1 == pytest.approx(photo[0]["clean_top1"])

    # The report links only files that exist inside its own folder.
    index = tmp_path / "reports/e2e/index.html"
    parser = Links()
    parser.feed(index.read_text())
    assert parser.targets
    for target in parser.targets:
        assert not re.match(r"^(https?:|/|file:)", target), target
        assert (index.parent / Path(target.split("?")[0].replace("%20", " "))).exists(), target

    # Running again redoes nothing that is up to date.
    lines = []
    timings = run_pipeline(ws, "e2e", small_options(), echo=lines.append)
    assert list(timings) == ["craft"], lines  # craft resumes (nothing to do); the rest is skipped
    assert any("layout" in line and "skipped" in line for line in lines)

    # A new photo of a sheet: ingest, evaluate and report run again; the transform rows (PNG-only)
    # of this craft stay valid and are not recomputed.
    from PIL import Image

    photos = tmp_path / "captures/e2e/photos"
    first = sorted(photos.iterdir())[0]
    with Image.open(first) as im:
        im.save(photos / "extra.jpg", quality=80)
    lines = []
    timings = run_pipeline(ws, "e2e", small_options(), echo=lines.append)
    assert list(timings) == ["craft", "ingest", "evaluate", "report"], lines
    transformed_again = json.loads((tmp_path / "reports/e2e/transforms.json").read_text())
    assert transformed_again == transformed and any(r["stage"] == "transform:blur:1" for r in transformed_again["rows"])


@pytest.mark.slow
def test_run_stops_after_layout_then_finishes_with_photos(tmp_path, cached_model):
    args = ["--workspace", str(tmp_path), "-q", "run", "--run", "r1", "--limit", "1", "--attacks", "fgsm",
            "--eps", "16", "--kinds", "", "--image-mm", "30"]
    result = CliRunner().invoke(main, [*args, "--stop-after", "layout"])
    assert result.exit_code == 0, result.output
    assert "stopped after layout" in result.output
    assert (tmp_path / "printouts/r1/r1.pdf").exists()
    assert not (tmp_path / "reports/r1").exists()

    # Without photos the run says where to put them and still evaluates the PNGs.
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "no photos in" in result.output and "captures/r1/photos" in result.output
    metrics = json.loads((tmp_path / "reports/r1/metrics.json").read_text())
    assert {r["stage"] for r in metrics["rows"]} == {"png"}

    # "Photograph" the sheet (the simulator stands in for a phone), then run the same command.
    from physical.simulate import simulate_run

    simulate_run(Workspace(tmp_path), "r1", preset="mild", resolution=(1600, 1200))
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert re.search(r"layout\s+skipped", result.output)
    metrics = json.loads((tmp_path / "reports/r1/metrics.json").read_text())
    assert "photo" in {r["stage"] for r in metrics["rows"]}
    assert (tmp_path / "reports/r1/index.html").exists()


@pytest.mark.slow
def test_demo_command_runs_offline_and_ends_with_headline_and_report(tmp_path, cached_model):
    result = CliRunner().invoke(main, ["--workspace", str(tmp_path), "-q", "demo", "--quick"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    # one line per stage: the targeted EOT run (chelsea → guacamole) first, then the main loop
    assert sum(line.startswith("[") for line in lines) == 14
    assert any("eot-eps16-to924" in line and "digital" in line for line in lines), result.output
    assert any("bim-eps16-to924" in line and "digital" in line for line in lines), result.output
    assert any(line.startswith("  digital top-1: clean") for line in lines)
    assert any(line.startswith("  photo   top-1: clean") for line in lines)
    assert any("destruction by the photo" in line for line in lines)
    assert lines[-1] == f"report: {tmp_path / 'reports/demo/index.html'}"
    assert (tmp_path / "reports/demo/index.html").exists()
    # the targeted run's report: its own section (Table 1 is untargeted), the chelsea example in its gallery
    targeted = (tmp_path / "reports/demo-target/index.html").read_text(encoding="utf-8")
    assert 'id="robust"' in targeted and 'data-row="targeted-photo-chelsea"' in targeted
