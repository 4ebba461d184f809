"""`physical evaluate` / `physical transforms` on tiny fake runs (conftest.make_fake_run)."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from conftest import make_fake_run, png_bytes, replace_png, textured_image
from physical.cli import main
from physical.metrics import wilson
from physical.workspace import atomic_write_bytes, atomic_write_json, read_json, sha256_file

SIZE = 64


@pytest.fixture(scope="session")
def lite0(request):
    """The real default model, loaded once (shared with conftest's `default_model` when it exists)."""
    try:
        return request.getfixturevalue("default_model")
    except pytest.FixtureLookupError:
        from physical.models import load_model

        return load_model("default", "cpu")


class Mean(nn.Module):
    """A tiny classifier: class scores are a fixed linear map of the mean colour."""

    def __init__(self, num_classes):
        super().__init__()
        self.num_classes = num_classes
        g = torch.Generator().manual_seed(0)
        self.w = nn.Parameter(torch.randn(3, num_classes, generator=g))

    def forward(self, x):
        return x.mean(dim=(2, 3)) @ self.w


def tiny(num_classes, spec):
    from physical.models import Classifier

    return Classifier(Mean(num_classes), spec=spec, arch="mean", input_size=SIZE, mean=(0.5,) * 3, std=(0.5,) * 3,
                      crop_pct=1.0, interpolation="bilinear", weights_sha256="1" * 64,
                      class_names=[f"class {i}" for i in range(num_classes)] if num_classes != 1000 else None)


@pytest.fixture
def models(monkeypatch, request):
    """load_model: 'default' → the module's EfficientNet-Lite0 (loaded once); 'tiny10' / 'tiny1000'
    → tiny classifiers with 10 / 1000 classes."""
    import physical.models as pm

    made = {"tiny10": tiny(10, "tiny10"), "tiny1000": tiny(1000, "tiny1000")}

    def load(spec="default", device="cpu", arch=None):
        if spec in made:
            return made[spec]
        if spec == "default":
            return request.getfixturevalue("lite0")
        raise AssertionError(f"unexpected model {spec}")

    monkeypatch.setattr(pm, "load_model", load)
    return made


def invoke(ws, *args):
    return CliRunner().invoke(main, ["-w", str(ws.root), *args])


def metrics(ws, run="t"):
    return read_json(ws.reports(run) / "metrics.json")


def combined(ws, run="t"):
    """What a reader of both files sees: evaluate's metrics.json plus the transform rows and block
    of transforms.json (each command writes only its own file)."""
    has_metrics = (ws.reports(run) / "metrics.json").exists()
    doc = metrics(ws, run) if has_metrics else {"rows": []}
    path = ws.reports(run) / "transforms.json"
    if path.exists():
        tr = read_json(path)
        assert not any(r["stage"] in ("png", "photo") for r in tr["rows"])
        doc["rows"] = doc["rows"] + tr["rows"]
        doc["transforms"] = tr["transforms"]
    if has_metrics:
        assert not any(r["stage"].startswith("transform:") for r in metrics(ws, run)["rows"])
    return doc


def row(doc, **keys):
    found = [r for r in doc["rows"] if all(r[k] == v for k, v in keys.items())]
    assert len(found) == 1, (keys, len(found))
    return found[0]


def set_pred(ws, run, image_id, variant, top5, prob5):
    path = ws.manifest_path(run)
    m = read_json(path)
    for img in m["images"]:
        if img["id"] == image_id:
            img["variants"][variant]["pred"] = {"top5": top5, "prob5": prob5}
    atomic_write_json(path, m)


def make_ingest(ws, run, crops, layout_sha=None):
    """captures/<run>/crops + ingest.json; layout.json written so its hash can be checked."""
    atomic_write_json(ws.layout_path(run), {"pages": [], "note": "fake layout"})
    cap = ws.captures(run)
    entries = []
    for (image_id, variant), arr in crops.items():
        rel = f"crops/{image_id}/{variant}.png"
        atomic_write_bytes(cap / rel, png_bytes(arr))
        entries.append({"image_id": image_id, "variant": variant, "file": rel, "photo": "photos/p1.jpg", "photo_sha256": "1" * 64,
                        "page": 1, "slot": 0, "reprojection_error_px": 0.1, "sharpness": 1.0, "used": True})
    atomic_write_json(cap / "ingest.json", {
        "schema": 1, "run": run, "layout_sha256": layout_sha or sha256_file(ws.layout_path(run)),
        "photos": [{"file": "photos/p1.jpg", "sha256": "1" * 64, "status": "accepted", "reason": None, "page": 1, "slots_found": 4},
                   {"file": "photos/p2.jpg", "sha256": "2" * 64, "status": "rejected", "reason": "no markers found", "page": None,
                    "slots_found": 0}],
        "crops": entries})


# ---------------------------------------------------------------- PNG stage, no model needed
def test_png_stage_from_manifest_without_photos(tmp_path):
    ws = make_fake_run(tmp_path, ids=("a", "b", "c"), variants=("clean", "fgsm-eps16", "noise-eps4"), labels=[1, 2, 3])
    # image c: adversarial wrong in top-1 and top-5 at exactly 0.8 confidence → prefiltered
    set_pred(ws, "t", "c", "fgsm-eps16", [7, 8, 9, 10, 11], [0.8, 0.05, 0.05, 0.05, 0.05])
    res = invoke(ws, "evaluate", "--run", "t")
    assert res.exit_code == 0, res.output
    assert "no photos ingested" in res.output and "PNG stage only" in res.output
    doc = metrics(ws)
    assert doc["photo"]["status"] == "missing"
    assert {r["stage"] for r in doc["rows"]} == {"png"}
    assert len(doc["rows"]) == 2 * 2  # 2 adversarial variants × 2 subsets
    assert doc["run"]["models"][0]["png_predictions"] == "manifest"
    assert doc["run"]["seed"] == 0 and "torch" in doc["run"]["versions"]
    r = row(doc, variant="fgsm-eps16", subset="average")
    # fake manifest: clean top-1 right; adversarial label moved to rank 5 (c: out of the top-5)
    assert (r["n"], r["clean_top1"], r["adv_top1"]) == (3, 1.0, 0.0)
    assert r["adv_top5"] == pytest.approx(2 / 3, abs=1e-6)
    assert r["adv_top5_ci"] == pytest.approx(list(wilson(2, 3)), abs=1e-6)
    assert r["destruction_n"] == 3 and r["destruction_top1"] == 0.0   # png: T is the identity
    assert r["destruction_n_top5"] == 1
    p = row(doc, variant="fgsm-eps16", subset="prefiltered")
    assert p["n"] == 1 and p["digital_clean_top1"] == 1.0 and p["digital_adv_top5"] == 0.0
    q = row(doc, variant="noise-eps4", subset="prefiltered")
    assert q["n"] == 0 and q["adv_top1"] is None and q["destruction_top1"] is None and q["adv_top1_ci"] is None
    assert doc["transfer"] is None
    assert "fgsm-eps16" in res.output and "clean@1" in res.output  # terminal table
    with open(ws.reports("t") / "metrics.csv", newline="") as f:
        lines = list(csv.DictReader(f))
    assert len(lines) == 4 and lines[0]["adv_top1_ci_lo"] == "0.0" and "destruction_n_top5" in lines[0]


@pytest.mark.parametrize("bad", ["0", "1", "1.5", "-0.2"])
def test_threshold_outside_open_interval_is_one_line_error(fake_run, bad):
    res = invoke(fake_run, "evaluate", "--run", "t", "--threshold", bad)
    assert res.exit_code != 0
    assert "threshold" in res.output and "Traceback" not in res.output


def test_no_run_is_one_line_error(tmp_path):
    make_fake_run(tmp_path)
    res = CliRunner().invoke(main, ["-w", str(tmp_path), "evaluate", "--run", "nope"])
    assert res.exit_code == 1 and "no run 'nope'" in res.output
    res = CliRunner().invoke(main, ["-w", str(tmp_path), "transforms", "--run", "nope"])
    assert res.exit_code == 1 and "no run 'nope'" in res.output


def test_crops_from_another_layout_are_refused(fake_run):
    clean = textured_image(SIZE, 0)
    make_ingest(fake_run, "t", {("img0", "clean"): clean}, layout_sha="f" * 64)
    res = invoke(fake_run, "evaluate", "--run", "t")
    assert res.exit_code == 1 and "another layout" in res.output
    assert not (fake_run.reports("t") / "metrics.json").exists()


def test_model_without_1000_classes_needs_labels(tmp_path, models):
    ws = make_fake_run(tmp_path, labels=[1, 2])
    res = invoke(ws, "evaluate", "--run", "t", "--model", "tiny10")
    assert res.exit_code == 1 and "10 classes" in res.output and "--labels" in res.output
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(f"class {i}" for i in range(10)) + "\n")  # make_fake_run names: "class <i>"
    res = invoke(ws, "evaluate", "--run", "t", "--model", "tiny10", "--labels", str(labels))
    assert res.exit_code == 0, res.output
    doc = metrics(ws)
    assert doc["run"]["models"][0]["num_classes"] == 10 and doc["run"]["models"][0]["labels"] == str(labels)
    assert row(doc, variant="fgsm-eps16", subset="average")["n"] == 2


# ---------------------------------------------------------------- photo stage, transfer, transforms (real model)
@pytest.fixture
def swapped_run(tmp_path, lite0):
    """Two images the default model labels differently; each adversarial PNG is the *other*
    image, so the adversarial version is wrong for sure; labels = the model's own clean top-1."""
    from physical.models import predict

    cleans = [textured_image(SIZE, 0), textured_image(SIZE, 1)]
    top5, _ = predict(lite0, np.stack(cleans))
    labels = [int(t) for t in top5[:, 0]]
    assert labels[0] != labels[1]
    ws = make_fake_run(tmp_path, variants=("clean", "fgsm-eps16"), labels=labels)
    for image_id, other in (("img0", cleans[1]), ("img1", cleans[0])):
        replace_png(ws, "t", image_id, "fgsm-eps16", other)
    return ws, cleans


def test_photo_stage_destruction_uses_digital_clean(swapped_run, models):
    ws, cleans = swapped_run
    # the photo of each adversarial print looks like its clean image again (destroyed); the
    # clean photo of img1 looks like img0 (photographed clean wrong), and img1's adversarial crop is missing
    make_ingest(ws, "t", {("img0", "clean"): cleans[0], ("img1", "clean"): cleans[0],
                          ("img0", "fgsm-eps16"): cleans[0]})
    res = invoke(ws, "evaluate", "--run", "t", "--model", "default")
    assert res.exit_code == 0, res.output
    doc = metrics(ws)
    assert doc["photo"] == {"status": "ok", "message": None, "crops": 3, "photos_accepted": 1,
                            "photos_rejected": 1, "layout_sha256": sha256_file(ws.layout_path("t"))}
    assert doc["run"]["models"][0]["png_predictions"] == "computed"
    png = row(doc, stage="png", subset="average")
    assert (png["n"], png["digital_clean_top1"], png["digital_adv_top1"], png["destruction_n"]) == (2, 1.0, 0.0, 2)
    photo = row(doc, stage="photo", subset="average")
    assert photo["n"] == 1 and photo["clean_n"] == 1       # img1 has no adversarial crop
    assert photo["adv_top1"] == 1.0 and photo["destruction_top1"] == 1.0 and photo["destruction_n"] == 1
    assert photo["digital_clean_top1"] == 1.0
    # now with img1's adversarial crop: the photographed clean img1 is wrong, but d still uses
    # the digital clean (right) → both adversarial images counted and destroyed
    make_ingest(ws, "t", {("img0", "clean"): cleans[0], ("img1", "clean"): cleans[0],
                          ("img0", "fgsm-eps16"): cleans[0], ("img1", "fgsm-eps16"): cleans[1]})
    assert invoke(ws, "evaluate", "--run", "t", "--model", "default").exit_code == 0
    photo = row(metrics(ws), stage="photo", subset="average")
    assert (photo["n"], photo["clean_top1"], photo["digital_clean_top1"]) == (2, 0.5, 1.0)
    assert photo["destruction_top1"] == 1.0 and photo["destruction_n"] == 2


def test_transfer_matrix_with_two_models_and_noise_rows(tmp_path, models):
    ws = make_fake_run(tmp_path, variants=("clean", "fgsm-eps16", "noise-eps16"), labels=[1, 2])
    res = invoke(ws, "evaluate", "--run", "t", "--model", "tiny1000", "--model", "fake")
    assert res.exit_code == 0, res.output
    doc = metrics(ws)
    t = doc["transfer"]
    assert t["models"] == ["tiny1000", "fake"] and t["crafted_by"] == "fake"
    assert [e["variant"] for e in t["entries"]] == ["clean", "fgsm-eps16", "noise-eps16"]
    fgsm = t["entries"][1]
    assert fgsm["error"]["fake"] == 1.0                      # manifest: adversarial top-1 always wrong
    tiny_row = row(doc, model="tiny1000", variant="fgsm-eps16", subset="average")
    assert fgsm["error"]["tiny1000"] == pytest.approx(1 - tiny_row["adv_top1"])
    assert {r["model"] for r in doc["rows"]} == {"tiny1000", "fake"}
    assert "transfer" in res.output


def test_transforms_merge_and_rerun_replace(tmp_path, models):
    ws = make_fake_run(tmp_path, labels=[1, 2])
    assert invoke(ws, "evaluate", "--run", "t").exit_code == 0          # crafting model: from the manifest
    n_eval = len(metrics(ws)["rows"])
    res = invoke(ws, "transforms", "--run", "t", "--kinds", "blur,jpeg,noise", "--model", "tiny1000")
    assert res.exit_code == 0, res.output
    assert "destruction rate top-1" in res.output and "jpeg:10" in res.output and "blur:2" in res.output
    doc = combined(ws)
    stages = [r["stage"] for r in doc["rows"]]
    assert stages.count("png") == 2                          # evaluate's rows kept
    assert "transform:blur:0.4" in stages and "transform:jpeg:10" in stages and "transform:noise:20" in stages
    assert not any(s.startswith("transform:contrast") for s in stages)
    n_all = len(doc["rows"])
    assert n_all == n_eval + 2 * (5 + 6 + 4)                 # 1 variant × 2 subsets × 15 grid values
    block = doc["transforms"]
    assert block["grid"]["blur"] == [0.4, 0.7, 1, 1.5, 2] and block["seed"] == 0 and block["models"] == ["tiny1000"]
    assert block["kinds"] == ["blur", "noise", "jpeg"] and set(block["ops"]) == {"blur", "noise", "jpeg"}
    r = row(doc, stage="transform:jpeg:100", subset="average")
    assert r["transform"] == "jpeg" and r["transform_value"] == 100 and r["model"] == "tiny1000" and r["n"] == 2
    # seeded: the same command gives the same numbers; rerun replaces its own rows
    before = {(x["stage"], x["subset"]): x for x in doc["rows"] if x["model"] == "tiny1000"}
    assert invoke(ws, "transforms", "--run", "t", "--kinds", "blur,jpeg,noise", "--model", "tiny1000").exit_code == 0
    doc = combined(ws)
    assert len(doc["rows"]) == n_all
    assert {(x["stage"], x["subset"]): x for x in doc["rows"] if x["model"] == "tiny1000"} == before
    # evaluate again: the transform rows stay
    assert invoke(ws, "evaluate", "--run", "t").exit_code == 0
    assert len(combined(ws)["rows"]) == n_all and combined(ws)["transforms"]["models"] == ["tiny1000"]


def test_transforms_rejects_unknown_kind(fake_run):
    res = invoke(fake_run, "transforms", "--run", "t", "--kinds", "sharpen")
    assert res.exit_code == 2 and "unknown kinds 'sharpen'" in res.output   # refused by click, before any work


def test_missing_png_is_one_line_error(fake_run, models):
    (fake_run.printouts("t") / "images" / "img1" / "fgsm-eps16.png").unlink()
    res = invoke(fake_run, "evaluate", "--run", "t", "--model", "tiny1000")
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "cannot read" in res.output and "fgsm-eps16.png" in res.output


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe\x00binary"])
def test_broken_manifest_is_one_line_error(fake_run, content):
    fake_run.manifest_path("t").write_bytes(content)
    res = invoke(fake_run, "evaluate", "--run", "t")
    assert res.exit_code == 1 and "is not valid JSON" in res.output and "Traceback" not in res.output


def test_transforms_eps_writes_rows_only_for_that_eps(tmp_path, models):
    ws = make_fake_run(tmp_path, variants=("clean", "fgsm-eps4", "fgsm-eps16"))
    res = invoke(ws, "transforms", "--run", "t", "--model", "tiny1000", "--kinds", "blur", "--eps", "16")
    assert res.exit_code == 0, res.output
    rows = [r for r in combined(ws)["rows"] if r["stage"].startswith("transform:")]
    assert rows and {r["variant"] for r in rows} == {"fgsm-eps16"}
    assert all(r["n"] == 2 for r in rows if r["subset"] == "average")


def read_predictions(ws, run="t"):
    with open(ws.reports(run) / "predictions.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_predictions_csv_one_row_per_model_stage_image_variant(tmp_path, models):
    ws = make_fake_run(tmp_path, ids=("a", "b"), variants=("clean", "fgsm-eps16"), labels=[1, 2])
    manifest = read_json(ws.manifest_path("t"))
    manifest["model"].update(spec="tiny1000", weights_sha256="1" * 64)    # crafted by the tiny model
    atomic_write_json(ws.manifest_path("t"), manifest)
    make_ingest(ws, "t", {("a", "clean"): textured_image(SIZE, 0), ("b", "fgsm-eps16"): textured_image(SIZE, 1)})
    assert invoke(ws, "evaluate", "--run", "t", "--model", "tiny1000", "--model", "default").exit_code == 0
    rows = read_predictions(ws)
    assert list(rows[0]) == ["model", "stage", "image", "variant", "label", "top1", "top1_prob", "top5"]
    keys = [(r["model"], r["stage"], r["image"], r["variant"]) for r in rows]
    assert len(keys) == len(set(keys))
    # PNG stage: 2 models × 2 images × 2 variants; photo stage: the 2 crops × 2 models
    assert sum(r["stage"] == "png" for r in rows) == 8 and sum(r["stage"] == "photo" for r in rows) == 4
    manifest = read_json(ws.manifest_path("t"))
    for r in rows:
        if r["model"] == "tiny1000" and r["stage"] == "png":   # the crafting model: the manifest's predictions
            rec = next(e for e in manifest["images"] if e["id"] == r["image"])["variants"][r["variant"]]
            assert [int(c) for c in r["top5"].split()] == rec["pred"]["top5"]
            assert int(r["top1"]) == rec["pred"]["top5"][0]
            assert abs(float(r["top1_prob"]) - rec["pred"]["prob5"][0]) < 1e-6
        assert int(r["label"]) == {"a": 1, "b": 2}[r["image"]]
    photo = {(r["model"], r["image"], r["variant"]): r for r in rows if r["stage"] == "photo"}
    doc = metrics(ws)
    for p in doc["predictions"]:                            # the same numbers as metrics.json's crop list
        assert [int(c) for c in photo[(p["model"], p["image_id"], p["variant"])]["top5"].split()] == p["top5"]
    # transforms adds its own stages and keeps evaluate's rows; evaluate again keeps the transforms' rows
    assert invoke(ws, "transforms", "--run", "t", "--kinds", "jpeg", "--model", "tiny1000").exit_code == 0
    rows2 = read_predictions(ws)
    tr = [r for r in rows2 if r["stage"].startswith("transform:jpeg:")]
    assert len(tr) == 2 * 2 * 6 and {r["model"] for r in tr} == {"tiny1000"}   # images × variants × grid
    assert [r for r in rows2 if not r["stage"].startswith("transform:")] == rows
    assert invoke(ws, "evaluate", "--run", "t", "--model", "tiny1000", "--model", "default").exit_code == 0
    assert sorted(map(tuple, (r.values() for r in read_predictions(ws)))) == sorted(map(tuple, (r.values() for r in rows2)))


def test_replaced_png_is_refused_by_transforms(fake_run, models):
    # a PNG swapped after craft would give rows of the wrong image: every stage checks the sha256
    atomic_write_bytes(fake_run.printouts("t") / "images/img1/fgsm-eps16.png", png_bytes(textured_image(SIZE, 9)))
    for args in (("transforms", "--run", "t", "--kinds", "blur", "--model", "tiny1000"),
                 ("evaluate", "--run", "t", "--model", "tiny1000")):
        res = invoke(fake_run, *args)
        assert res.exit_code == 1 and "changed after `physical craft` wrote it" in res.output, res.output
        assert "img1/fgsm-eps16.png" in res.output and "Traceback" not in res.output
    assert not (fake_run.reports("t") / "transforms.json").exists()
