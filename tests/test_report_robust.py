"""The report's "standard vs robust" section (BIM vs EOT, targeted success and survival, perturbation
sizes, the targeted gallery) and its calibration section (profile, tone curves, chart photo,
printability): the numbers on the page are computed here again, independently, and each section
is absent when the run has nothing for it."""
from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from conftest import make_fake_run, png_bytes
from test_report import metric_row, parse
from physical import calibrate, chart
from physical import layout as layout_mod
from physical import simulate as simulate_mod
from physical.cli import main
from physical.channel import STAGES
from physical.profiles import inside_gamut
from physical.report import build_report
from physical.workspace import atomic_write_bytes, atomic_write_json, read_json, sha256_bytes

TARGET = 924                       # guacamole
IDS = ("cat", "dog")
UNTARGETED = ("clean", "bim-eps16", "eot-eps16")
TARGETED = ("bim-eps16-to924", "eot-eps16-to924")


def add_targeted(ws, run, variants=TARGETED, eps=16, preds=None):
    """Targeted variants as craft records them (`target`, the attacks block's `<attack>-to<t>`)."""
    doc = read_json(ws.manifest_path(run))
    rng = np.random.default_rng(5)
    for image in doc["images"]:
        clean = np.asarray(Image.open(ws.printouts(run) / image["variants"]["clean"]["file"]).convert("RGB")).astype(int)
        for v in variants:
            attack = v.split("-eps")[0]
            arr = np.clip(clean + rng.integers(-eps, eps + 1, clean.shape), 0, 255).astype(np.uint8)
            data = png_bytes(arr)
            rel = f"images/{image['id']}/{v}.png"
            atomic_write_bytes(ws.printouts(run) / rel, data)
            pred = (preds or {}).get((image["id"], v)) or {"top5": [TARGET, 1, 2, 3, 4], "prob5": [0.9, 0.04, 0.03, 0.02, 0.01]}
            image["variants"][v] = {"file": rel, "sha256": sha256_bytes(data), "pred": pred, "attack": attack,
                                    "eps": float(eps), "target": TARGET}
    for v in variants:
        attack = v.split("-eps")[0]
        doc["attacks"][f"{attack}-to{TARGET}"] = {"eps": [float(eps)], "attack": attack,
                                                 "target": {"index": TARGET, "wnid": "n07583066", "name": "guacamole"},
                                                 **({"channel": {"table": "typical", "stages": list(STAGES)}}
                                                    if attack == "eot" else {})}
    doc["variants"] += [v for v in variants if v not in doc["variants"]]
    atomic_write_json(ws.manifest_path(run), doc)
    return doc


def targeted_row(attack, stage, variant, **values):
    row = metric_row("fake", attack, 16, stage, **{k: v for k, v in values.items() if not k.startswith("targeted")})
    row["variant"] = variant
    row["target"] = TARGET
    for k in ("targeted_success_digital", "targeted_success", "targeted_survival"):
        row[k] = values.get(k)
        row[f"{k}_ci"] = None if values.get(k) is None else [0.1, 0.9]
    row["targeted_survival_n"] = values.get("targeted_survival_n")
    return row


def make_robust_run(root, crops=True):
    ws = make_fake_run(root, run="r", ids=IDS, variants=UNTARGETED, size=32, labels=[281, 207])
    doc = add_targeted(ws, "r")
    eot = {"eps": [16.0], "channel": {"table": "typical", "stages": list(STAGES)}}
    doc["attacks"].update({"bim": {"eps": [16.0]}, "eot": eot})
    atomic_write_json(ws.manifest_path("r"), doc)
    rows = []
    for stage in ("png", "photo"):
        for subset in ("average", "prefiltered"):
            rows.append(metric_row("fake", "bim", 16, stage, subset, adv_top1=0.111, destruction_top1=0.4))
            rows.append(metric_row("fake", "eot", 16, stage, subset, adv_top1=0.222, destruction_top1=0.05))
    for subset in ("average", "prefiltered"):
        rows += [targeted_row("bim", "png", "bim-eps16-to924", adv_top1=0.999, targeted_success_digital=0.875,
                              targeted_success=0.875),
                 targeted_row("bim", "photo", "bim-eps16-to924", adv_top1=0.999, targeted_success_digital=0.75,
                              targeted_success=0.125, targeted_survival=0.166667, targeted_survival_n=6),
                 targeted_row("eot", "png", "eot-eps16-to924", adv_top1=0.999, targeted_success_digital=1.0,
                              targeted_success=1.0),
                 targeted_row("eot", "photo", "eot-eps16-to924", adv_top1=0.999, targeted_success_digital=0.95,
                              targeted_success=0.9, targeted_survival=0.947368, targeted_survival_n=19)]
    predictions = []
    if crops:
        cap = ws.captures("r")
        crop_recs = []
        for image in doc["images"]:
            for v in UNTARGETED + TARGETED:
                rel = f"crops/{image['id']}/{v}.png"
                atomic_write_bytes(cap / rel, (ws.printouts("r") / image["variants"][v]["file"]).read_bytes())
                crop_recs.append({"image_id": image["id"], "variant": v, "file": rel, "photo": "photos/p1.jpg",
                                  "photo_sha256": "1" * 64, "used": True, "sha256": sha256_bytes((cap / rel).read_bytes())})
        # the photo of cat's BIM lost the target (read as class 285, target outside the top-5); EOT kept it
        predictions = [{"model": "fake", "image_id": "cat", "variant": "bim-eps16-to924", "stage": "photo",
                        "top5": [285, 281, 282, 283, 284], "prob5": [0.5, 0.2, 0.1, 0.05, 0.0035]},
                       {"model": "fake", "image_id": "cat", "variant": "eot-eps16-to924", "stage": "photo",
                        "top5": [TARGET, 281, 282, 283, 284], "prob5": [0.64, 0.2, 0.1, 0.05, 0.01]},
                       {"model": "fake", "image_id": "cat", "variant": "clean", "stage": "photo",
                        "top5": [281, 282, TARGET, 283, 284], "prob5": [0.6, 0.2, 0.02, 0.01, 0.005]}]
        atomic_write_json(cap / "ingest.json", {"schema": 1, "run": "r", "layout_sha256": "0", "photos": [
            {"file": "photos/p1.jpg", "sha256": "1" * 64, "status": "accepted", "page": 1, "slots_found": 10}],
            "crops": crop_recs})
    atomic_write_json(ws.metrics_path("r"), {
        "schema": 1, "run": {"name": "r", "created": "2026-01-01T00:00:00+00:00", "manifest_sha256": "0" * 64,
                             "threshold": 0.8, "models": [{"spec": "fake"}]},
        "photo": {"status": "ok"}, "rows": rows, "predictions": predictions})
    return ws, doc


def sizes(ws, doc, variant):
    """mean |δ|, L2 and L∞ of a variant, straight from its PNGs."""
    out = []
    for image in doc["images"]:
        load = lambda v: np.asarray(Image.open(ws.printouts("r") / image["variants"][v]["file"]).convert("RGB")).astype(float)  # noqa: E731
        d = load(variant) - load("clean")
        out.append((np.abs(d).mean(), np.sqrt((d ** 2).sum()), np.abs(d).max()))
    return np.mean([o[0] for o in out]), np.mean([o[1] for o in out]), max(o[2] for o in out)


@pytest.fixture(scope="module")
def robust_report(tmp_path_factory):
    root = tmp_path_factory.mktemp("robust")
    ws, doc = make_robust_run(root)
    index = build_report(ws, "r", sample=2)
    return ws, doc, index, parse(index)


def test_targeted_success_survival_and_sizes(robust_report):
    ws, doc, index, page = robust_report
    for variant, digital, photo, survival, n in (("bim-eps16-to924", "75.0", "12.5", "16.7", "of 6"),
                                                 ("eot-eps16-to924", "95.0", "90.0", "94.7", "of 19")):
        text = page.row_text(f"robust-{variant}")
        mean_abs, l2, linf = sizes(ws, doc, variant)
        # digital success over the photographed images (the photo row's), as in Table 1
        assert text.split()[-3:] == [f"{mean_abs:.2f}", f"{l2:.0f}", f"{linf:.0f}"], text
        for want in (digital, photo, survival, n):
            assert want in text, (want, text)
    text = re.sub(r"\s+([,)])", r"\1", " ".join(" ".join(page.text).split()))   # text split at tags
    assert "target guacamole (class 924), ε = 16" in text


def test_bim_vs_eot_destruction(robust_report):
    ws, doc, _, page = robust_report
    bim, eot = page.row_text("robust-bim-eps16"), page.row_text("robust-eot-eps16")
    assert "40.0" in bim and "11.1" in bim and "5.0" in eot and "22.2" in eot
    assert eot.split()[-3] == f"{sizes(ws, doc, 'eot-eps16')[0]:.2f}"


def test_table_1_leaves_targeted_variants_out(robust_report):
    _, _, index, page = robust_report
    table1 = page.row_text("bim-eps16")
    assert "11.1" in table1 and "99.9" not in table1       # the untargeted BIM row, not its targeted twin
    assert "Every attack of this run is targeted" not in index.read_text(encoding="utf-8")


def test_targeted_gallery_shows_top1_and_target_probability(robust_report):
    _, _, index, page = robust_report
    png, photo = page.row_text("targeted-png-cat"), page.row_text("targeted-photo-cat")
    assert png.count("guacamole") >= 2 and "p(guacamole) 0.90" in png
    # clean crop: target 3rd of the top-5; BIM's lost it (bounded by the fifth); EOT's on target
    assert "p(guacamole) 0.02" in photo and "p(guacamole) < 0.0035" in photo and "p(guacamole) 0.64" in photo
    assert "Egyptian cat" in photo and "64 %" in photo      # the BIM photo's top-1 (ImageNet class 285)
    html = index.read_text(encoding="utf-8")
    assert "BIM → guacamole" in html and "channel: typical preset" in html


def test_sections_absent_when_not_applicable(tmp_path):
    ws = make_fake_run(tmp_path, run="t", variants=("clean", "fgsm-eps8", "bim-eps16"), size=32)
    html = build_report(ws, "t").read_text(encoding="utf-8")
    assert 'id="robust"' not in html and 'id="calibration"' not in html and "Standard vs robust" not in html


def test_a_targeted_only_run_says_where_its_numbers_are(tmp_path):
    ws = make_fake_run(tmp_path, run="r", ids=IDS, variants=("clean",), size=32, labels=[281, 207])
    add_targeted(ws, "r")
    rows = [targeted_row("bim", "png", "bim-eps16-to924", adv_top1=0.0, targeted_success_digital=1.0, targeted_success=1.0)]
    atomic_write_json(ws.metrics_path("r"), {"schema": 1, "run": {"name": "r", "created": "x", "manifest_sha256": "0",
                                                                   "threshold": 0.8, "models": []}, "rows": rows})
    index = build_report(ws, "r")
    html, page = index.read_text(encoding="utf-8"), parse(index)
    assert "Every attack of this run is targeted" in html and "No metrics yet" not in html
    assert "100.0" in page.row_text("robust-bim-eps16-to924") and "acceptance.png" not in html
    assert "No photographed rows yet" in html


# --------------------------------------------------------------------------------------------
# calibration
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def profile_path(tmp_path_factory):
    """A profile fitted on two simulated photos of the chart (a device unlike the presets)."""
    root = tmp_path_factory.mktemp("calib")
    chart.write_chart(root / "chart", "a4")
    calibrate.simulate_chart_photos(root / "chart", root / "photos", seed=0, n=2, resolution=(1600, 1200),
                                    printer={"saturation": 0.75, "black": 0.12, "gamma": 0.9},
                                    camera={"defocus_px": 0.0, "motion_px": 0.0, "jpeg_quality": 85})
    res = CliRunner().invoke(main, ["calibrate", "fit", "--photos", str(root / "photos"), "--out", str(root / "profile.json")])
    assert res.exit_code == 0, res.output
    return root / "profile.json"


def test_fit_keeps_a_chart_photo_thumbnail(profile_path):
    cp = read_json(profile_path)["chart_photo"]
    photo = profile_path.parent / "photos" / cp["file"]
    assert cp["sha256"] == sha256_bytes(photo.read_bytes())
    with Image.open(io.BytesIO(base64.b64decode(cp["jpeg_base64"]))) as im:
        assert im.format == "JPEG" and im.size == (cp["width"], cp["height"]) and max(im.size) == calibrate.THUMB_EDGE


def test_report_of_a_profiled_run(profile_path, tmp_path):
    prof = read_json(profile_path)
    ws = make_fake_run(tmp_path, run="p", ids=("a", "b"), variants=("clean", "fgsm-eps16"), size=48)
    layout_mod.make_layout(ws, "p", image_mm=40)
    res = CliRunner().invoke(main, ["-w", str(tmp_path), "simulate", "--run", "p", "--profile", str(profile_path),
                                    "--resolution", "1000x750"])
    assert res.exit_code == 0, res.output
    sim = read_json(ws.simulated_path("p"))["profile"]
    copy = ws.captures("p") / sim["file"]
    assert copy.read_bytes() == profile_path.read_bytes() and sim["sha256"] == sha256_bytes(copy.read_bytes())

    index = build_report(ws, "p")
    html, page = index.read_text(encoding="utf-8"), parse(index)
    assert 'id="calibration"' in html and prof["chart"]["id"] in html
    assert f"{prof['heldout']['mean_de00']:.2f}" in html and f"{prof['heldout']['p95_de00']:.2f}" in html
    assert "frame centre " + ", ".join(map(str, prof["light"]["centre_rgb"])) in " ".join(html.split())  # the light seen
    shown = index.parent / "images/calibration/chart-photo.jpg"
    assert shown.read_bytes() == base64.b64decode(prof["chart_photo"]["jpeg_base64"])
    assert (index.parent / "plots/tone_curves.png").is_file()
    manifest = read_json(ws.manifest_path("p"))
    for variant in ("clean", "fgsm-eps16"):     # per-image outside_gamut, averaged: computed independently
        fr = [calibrate.outside_gamut(ws.printouts("p") / im["variants"][variant]["file"], profile_path)
              for im in manifest["images"]]
        text = page.row_text(f"gamut-{variant}")
        assert f"{100 * np.mean(fr):.2f} %" in text and f"{100 * max(fr):.2f} %" in text, (text, fr)

    # a replaced copy is refused with one line, and the section left out
    atomic_write_bytes(copy, copy.read_bytes().replace(b'"schema"', b'"schema" ', 1))
    html = build_report(ws, "p").read_text(encoding="utf-8")
    assert 'id="calibration"' not in html and "changed after `physical simulate` wrote it" in html
    # simulated again without a profile: the copy is removed with the old photos
    simulate_mod.simulate_run(ws, "p", resolution=(1000, 750), force=True)
    assert not copy.exists() and "profile" not in read_json(ws.simulated_path("p"))
    assert 'id="calibration"' not in build_report(ws, "p").read_text(encoding="utf-8")
    # the profile given to the report (a run photographed for real)
    res = CliRunner().invoke(main, ["-w", str(tmp_path), "report", "--run", "p", "--profile", str(profile_path)])
    assert res.exit_code == 0, res.output
    assert "given to the report" in index.read_text(encoding="utf-8")
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    res = CliRunner().invoke(main, ["-w", str(tmp_path), "report", "--run", "p", "--profile", str(bad)])
    assert res.exit_code == 1 and "not a calibration profile" in res.output and "Traceback" not in res.output


def test_inside_gamut_agrees_with_outside_gamut(profile_path):
    prof = read_json(profile_path)
    img = np.random.default_rng(1).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    inside = inside_gamut(img.reshape(-1, 3), prof)
    assert calibrate.outside_gamut(img, prof) == pytest.approx(1 - inside.mean())
    assert 0 < inside.mean() < 1


def test_profile_of_an_eot_channel_is_shown(profile_path, tmp_path):
    """craft --channel profile.json records the profile's path and sha256 in the attack's channel
    block: the header names it, the calibration section shows it while the file is unchanged."""
    prof = read_json(profile_path)
    ws = make_fake_run(tmp_path, run="c", ids=("a",), variants=("clean", "eot-eps8"), size=32)
    doc = read_json(ws.manifest_path("c"))
    channel = {"table": "profile", "preset": "typical", "stages": list(STAGES),
               "profile": {"path": str(profile_path), "sha256": sha256_bytes(profile_path.read_bytes()),
                           "chart": prof["chart"]}}
    doc["attacks"] = {"eot": {"eps": [8.0], "channel": channel}}
    atomic_write_json(ws.manifest_path("c"), doc)
    html = build_report(ws, "c").read_text(encoding="utf-8")
    assert f"channel: calibration profile {prof['chart']['id']}" in html
    assert 'id="calibration"' in html and "eot was crafted through it" in html
    channel["profile"]["sha256"] = "0" * 64       # the file changed since craft used it
    atomic_write_json(ws.manifest_path("c"), doc)
    html = build_report(ws, "c").read_text(encoding="utf-8")
    assert 'id="calibration"' not in html and "changed since `physical craft` used it" in html
