"""`physical craft` end to end on tiny inputs, resume/--force, and every bad input of the issue."""
import json
import os

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from physical.cli import main
from physical.quantize import read_png
from physical.workspace import sha256_file

FAST = ["--attacks", "fgsm,bim,ill,noise", "--eps", "2,16", "--steps", "2"]


def run_cli(ws, *args):
    result = CliRunner().invoke(main, ["--workspace", str(ws), "-q", *args])
    return result


@pytest.fixture
def photo_folder(tmp_path):
    """Two real photos, labelled by wnid file-name prefixes, plus one non-image file."""
    from physical.data import demo_items

    folder = tmp_path / "photos"
    folder.mkdir()
    items = {it.id: it for it in demo_items()}
    Image.open(items["coffee"].path).resize((200, 150)).save(folder / "n07920052_coffee.jpg")  # espresso
    Image.open(items["chelsea"].path).save(folder / "n02123045_chelsea.png")  # tabby
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_craft_writes_pngs_and_manifest(tmp_path, photo_folder, cached_model):
    result = run_cli(tmp_path, "craft", "--images", str(photo_folder), "--run", "r1", *FAST)
    assert result.exit_code == 0, result.output
    assert "crafted 2 images" in result.output and "quantisation" in result.output
    run = tmp_path / "printouts" / "r1"
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["schema"] == 1 and manifest["model"]["input_size"] == 224
    assert manifest["attacks"]["bim"]["steps"] == {"2": 2, "16": 2}
    assert [s["source"] for s in manifest["skipped"]] == ["notes.txt"]
    assert set(manifest["variants"]) == {"clean", *(f"{a}-eps{e}" for a in ("fgsm", "bim", "ill", "noise") for e in (2, 16))}
    labels = {e["id"]: e["label"]["name"] for e in manifest["images"]}
    assert labels == {"n07920052_coffee": "espresso", "n02123045_chelsea": "tabby"}
    for entry in manifest["images"]:
        clean = read_png(run / entry["variants"]["clean"]["file"])
        assert clean.shape == (224, 224, 3) and clean.dtype == np.uint8
        for name, rec in entry["variants"].items():
            path = run / rec["file"]
            assert sha256_file(path) == rec["sha256"]
            assert len(rec["pred"]["top5"]) == 5 and rec["pred"]["prob5"] == sorted(rec["pred"]["prob5"], reverse=True)
            if name != "clean":
                delta = np.abs(read_png(path).astype(int) - clean.astype(int))
                assert delta.max() == rec["linf"] <= rec["eps"]
                assert rec["quantization_flipped"] == (rec["pred_float"]["top5"][0] != rec["pred"]["top5"][0])
    assert manifest["summary"]["images"] == 2


def test_craft_resumes_and_force_redoes(tmp_path, photo_folder, cached_model):
    args = ["craft", "--images", str(photo_folder), "--run", "r1", "--attacks", "fgsm", "--eps", "4"]
    assert run_cli(tmp_path, *args).exit_code == 0
    png = tmp_path / "printouts/r1/images/n07920052_coffee/fgsm-eps4.png"
    stamp = os.stat(png).st_mtime_ns
    assert run_cli(tmp_path, *args).exit_code == 0
    assert os.stat(png).st_mtime_ns == stamp  # finished images are skipped
    # A damaged PNG is noticed and redone; adding an ε adds variants to finished images.
    png.write_bytes(b"garbage")
    result = run_cli(tmp_path, "craft", "--images", str(photo_folder), "--run", "r1", "--attacks", "fgsm", "--eps", "4,8")
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "printouts/r1/manifest.json").read_text())
    assert read_png(png).shape == (224, 224, 3)
    assert all({"fgsm-eps4", "fgsm-eps8"} <= set(e["variants"]) for e in manifest["images"])
    assert run_cli(tmp_path, *args, "--force").exit_code == 0
    assert os.stat(png).st_mtime_ns != stamp


def test_craft_refuses_a_run_made_with_another_model(tmp_path, photo_folder, cached_model):
    args = ["craft", "--images", str(photo_folder), "--run", "r1", "--attacks", "fgsm", "--eps", "4"]
    assert run_cli(tmp_path, *args).exit_code == 0
    path = tmp_path / "printouts/r1/manifest.json"
    manifest = json.loads(path.read_text())
    manifest["model"]["weights_sha256"] = "f" * 64
    path.write_text(json.dumps(manifest))
    result = run_cli(tmp_path, *args)
    assert result.exit_code == 1 and "other weights" in result.output and "--force" in result.output
    assert json.loads(path.read_text())["model"]["weights_sha256"] == "f" * 64  # nothing overwritten


def _bomb(folder):
    Image.MAX_IMAGE_PIXELS  # noqa: B018 - the limit the loader enforces
    big = folder / "n07920052_big.png"
    Image.new("RGB", (12000, 8000), "white").save(big, optimize=False, compress_level=1)
    return big


@pytest.mark.parametrize("case", [
    "missing", "empty", "no_images", "bad_label", "model", "weights", "eps0", "eps256", "attack", "run_name", "bomb",
    "corrupt_only",
])
def test_bad_inputs_give_one_line_and_nonzero_exit(tmp_path, case, monkeypatch, cached_model):
    folder = tmp_path / "in"
    folder.mkdir()
    from physical.data import demo_items

    Image.open(demo_items()[0].path).save(folder / "n07920052_ok.png")
    args = ["craft", "--images", str(folder), "--run", "r1", "--attacks", "fgsm", "--eps", "4"]
    expect = {
        "missing": "does not exist", "empty": "is empty", "no_images": "no usable labelled images",
        "bad_label": "names no class", "model": "unknown model spec", "weights": "does not exist",
        "eps0": "(0, 255]", "eps256": "(0, 255]", "attack": "unknown attack", "run_name": "invalid run name",
        "bomb": "decompression-bomb", "corrupt_only": "no image could be read",
    }[case]
    if case == "missing":
        args[2] = str(tmp_path / "nope")
    elif case == "empty":
        empty = tmp_path / "empty"
        empty.mkdir()
        args[2] = str(empty)
    elif case == "no_images":
        (folder / "n07920052_ok.png").unlink()
        (folder / "a.txt").write_text("x")
    elif case == "bad_label":
        (tmp_path / "labels.csv").write_text("file,label\nn07920052_ok.png,not a class\n")
        args += ["--labels", str(tmp_path / "labels.csv")]
    elif case == "model":
        args += ["--model", "no-such-model"]
    elif case == "weights":
        args += ["--model", str(tmp_path / "missing.pth")]
    elif case == "eps0":
        args[args.index("--eps") + 1] = "0"
    elif case == "eps256":
        args[args.index("--eps") + 1] = "256"
    elif case == "attack":
        args[args.index("--attacks") + 1] = "fgsm,pgd"
    elif case == "run_name":
        args[args.index("--run") + 1] = "../evil"
    elif case in ("bomb", "corrupt_only"):
        (folder / "n07920052_ok.png").unlink()
        if case == "bomb":
            monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000_000)
            _bomb(folder)
        else:
            (folder / "n07920052_cut.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 40)
    result = run_cli(tmp_path, *args)
    assert result.exit_code != 0
    assert expect in result.output, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) <= 3 and lines[-1].startswith("Error: ")  # one message (after click's usage hint)
    assert not (tmp_path / "printouts" / "r1" / "manifest.json").exists()


def test_unreadable_files_are_skipped_with_a_reason_when_others_are_fine(tmp_path, cached_model):
    from physical.data import demo_items

    folder = tmp_path / "in"
    folder.mkdir()
    Image.open(demo_items()[0].path).save(folder / "n07920052_ok.png")
    (folder / "n07920052_cut.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 40)
    result = run_cli(tmp_path, "craft", "--images", str(folder), "--run", "r1", "--attacks", "fgsm", "--eps", "4")
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "printouts/r1/manifest.json").read_text())
    assert [e["id"] for e in manifest["images"]] == ["n07920052_ok"]
    assert "unreadable" in manifest["skipped"][0]["reason"] or "not an image" in manifest["skipped"][0]["reason"]


def test_craft_refuses_other_attack_settings_in_the_same_run(tmp_path, photo_folder, cached_model):
    args = ["craft", "--images", str(photo_folder), "--run", "r1", "--attacks", "bim", "--eps", "2"]
    assert run_cli(tmp_path, *args).exit_code == 0
    result = run_cli(tmp_path, *args, "--steps", "1")
    assert result.exit_code == 1 and "steps at ε 2: 2 vs 1" in result.output
    result = run_cli(tmp_path, *args, "--alpha", "0.5")
    assert result.exit_code == 1 and "alpha" in result.output


def test_craft_refuses_another_seed_once_noise_is_saved(tmp_path, photo_folder, cached_model):
    base = ["craft", "--images", str(photo_folder), "--run", "r1", "--eps", "2"]
    assert run_cli(tmp_path, *base, "--attacks", "noise").exit_code == 0
    # no noise asked for now, but the run's noise PNGs were made with seed 0: the manifest must not say 1
    result = run_cli(tmp_path, *base, "--attacks", "fgsm", "--seed", "1")
    assert result.exit_code == 1 and "used --seed 0" in result.output
    assert run_cli(tmp_path, *base, "--attacks", "fgsm").exit_code == 0


def test_craft_bim_and_ill_together_writes_the_pngs_of_each_alone(tmp_path, photo_folder, cached_model):
    """craft runs BIM and ILL in shared passes (atk.run_attacks): the same files as one attack a run."""
    for run, attacks in (("both", "bim,ill"), ("bim", "bim"), ("ill", "ill")):
        result = run_cli(tmp_path, "craft", "--images", str(photo_folder), "--run", run, "--attacks", attacks,
                         "--eps", "2,4", "--steps", "3")
        assert result.exit_code == 0, result.output

    def files(run):
        manifest = json.loads((tmp_path / "printouts" / run / "manifest.json").read_text())
        return {(e["id"], v): rec["sha256"] for e in manifest["images"] for v, rec in e["variants"].items() if v != "clean"}

    both = files("both")
    assert len(both) == 2 * 4 and both == {**files("bim"), **files("ill")}
