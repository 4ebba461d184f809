"""`physical craft` with eot and --target: variants, skips, manifest, targeted metrics, bad input."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from physical.cli import main
from physical.metrics import Preds, on_target, survival, targeted_metrics
from physical.quantize import read_png


def run_cli(ws, *args):
    return CliRunner().invoke(main, ["--workspace", str(ws), "-q", *args])


@pytest.mark.parametrize("args, message", [
    (["--attacks", "eot", "--eot-samples", "0"], "'--eot-samples': 0 is not in the range 1<=x<=1024"),
    (["--attacks", "eot", "--eot-samples", "-3"], "'--eot-samples': -3 is not in the range 1<=x<=1024"),
    (["--attacks", "eot", "--eot-steps", "0"], "'--eot-steps': 0 is not in the range 1<=x<=10000"),
    (["--attacks", "eot", "--channel", "glossy"], "unknown --channel 'glossy': name a preset (mild, typical, harsh, broad, phones, phone)"),
    (["--attacks", "bim", "--target", "not-a-class"], "--target 'not-a-class' names no class: name a class by its "
                                                      "index 0-999"),
    (["--attacks", "bim", "--target", "1000"], "--target '1000' names no class"),
])
def test_bad_robust_input_is_one_line(tmp_path, cached_model, args, message):
    result = run_cli(tmp_path, "craft", "--images", "demo:chelsea", "--run", "r", "--eps", "2", *args)
    # option types are click's (exit 2, checked before anything runs); the rest is craft's check (exit 1)
    assert result.exit_code == (2 if "is not in the range" in message else 1), result.output
    lines = [ln for ln in result.output.strip().splitlines() if ln.startswith("Error")]
    assert len(lines) == 1 and message in lines[0], result.output
    assert "Traceback" not in result.output


def test_unknown_demo_photo_is_one_line(tmp_path, cached_model):
    result = run_cli(tmp_path, "craft", "--images", "demo:unicorn", "--run", "r", "--attacks", "fgsm", "--eps", "2")
    assert result.exit_code == 1 and "no demo photo unicorn: choose from coffee, chelsea" in result.output


def test_targeted_and_eot_craft(tmp_path, cached_model):
    # chelsea is a tabby (281): targeted to tabby it is skipped, with the reason; coffee is attacked
    args = ["craft", "--images", "demo:chelsea,coffee", "--run", "r", "--attacks", "fgsm,bim,eot", "--eps", "4",
            "--steps", "2", "--eot-samples", "2", "--eot-steps", "2", "--target", "tabby"]
    result = run_cli(tmp_path, *args)
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "printouts/r/manifest.json").read_text())
    assert manifest["variants"] == ["clean", "fgsm-eps4-to281", "bim-eps4-to281", "eot-eps4-to281"]
    cat, coffee = manifest["images"]
    assert set(cat["variants"]) == {"clean"}
    assert set(cat["skipped_variants"]) == {"fgsm-eps4-to281", "bim-eps4-to281", "eot-eps4-to281"}
    assert "label is the target class (281 tabby)" in cat["skipped_variants"]["eot-eps4-to281"]
    clean = read_png(tmp_path / "printouts/r" / coffee["variants"]["clean"]["file"]).astype(int)
    for name in ("fgsm-eps4-to281", "bim-eps4-to281", "eot-eps4-to281"):
        rec = coffee["variants"][name]
        assert rec["target"] == 281 and rec["attack"] == name.split("-")[0] and rec["eps"] == 4
        assert np.abs(read_png(tmp_path / "printouts/r" / rec["file"]).astype(int) - clean).max() <= 4
    eot = manifest["attacks"]["eot-to281"]
    assert eot["samples"] == 2 and eot["steps"] == {"4": 2} and eot["target"]["name"] == "tabby"
    assert eot["channel"]["table"] == "phone" and "jpeg" in eot["channel"]["stages"]
    # resuming does not redo the skipped image's variants (it is done), and the output is the same
    before = (tmp_path / "printouts/r/manifest.json").read_text()
    assert run_cli(tmp_path, *args).exit_code == 0
    assert (tmp_path / "printouts/r/manifest.json").read_text() == before

    # evaluate: targeted rows carry success and survival
    result = run_cli(tmp_path, "evaluate", "--run", "r")
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "reports/r/metrics.json").read_text())["rows"]
    row = next(r for r in rows if r["variant"] == "eot-eps4-to281" and r["subset"] == "average")
    assert row["target"] == 281 and row["n"] == 1
    on = coffee["variants"]["eot-eps4-to281"]["pred"]["top5"][0] == 281
    assert row["targeted_success_digital"] == float(on) == row["targeted_success"]
    untargeted = [r for r in rows if r["variant"] == "clean"] or [r for r in rows if r.get("target") is None]
    assert all(r.get("targeted_success") is None for r in untargeted)


def test_targeted_metrics_are_counted_right():
    # 4 images: on target digitally for 0, 1, 2; in the photo for 1, 3
    digital = Preds([[7, 1, 2, 3, 4], [7, 0, 1, 2, 3], [7, 0, 1, 2, 3], [5, 7, 1, 2, 3]], np.full((4, 5), 0.2))
    photo = Preds([[1, 7, 2, 3, 4], [7, 0, 1, 2, 3], [2, 0, 1, 3, 4], [7, 5, 1, 2, 3]], np.full((4, 5), 0.2))
    assert on_target(digital, 7).tolist() == [True, True, True, False]
    assert survival(on_target(digital, 7), on_target(photo, 7)).k == 1
    m = targeted_metrics(7, digital, photo)
    assert m["targeted_success_digital"] == 0.75 and m["targeted_success"] == 0.5
    assert m["targeted_survival"] == pytest.approx(1 / 3, abs=1e-6) and m["targeted_survival_n"] == 3
    assert m["targeted_survival_ci"][0] < 1 / 3 < m["targeted_survival_ci"][1]
    assert targeted_metrics(7, digital.take([3]), photo.take([3]))["targeted_survival"] is None


def test_manifest_records_the_default_eot_steps_and_channel():
    # what craft writes when --eot-steps and --channel are not given: BIM's steps untargeted, four
    # times them targeted, through the phone channel (robust.settings builds the attacks block)
    from physical import attacks as atk, robust
    from physical.channel import Channel
    from physical.craft import CraftOptions

    options = CraftOptions(attacks=("eot",), eps=(4.0, 16.0))
    assert options.channel == "phone" and options.eot_steps is None
    base = {"eot": {"eps": [4.0, 16.0]}}
    plain = robust.settings(base, options, robust.Plan(None, None, Channel(options.channel)))["eot"]
    assert plain["steps"] == {"4": atk.paper_steps(4), "16": 20} and plain["channel"]["table"] == "phone"
    info = {"index": 924, "wnid": "n07583066", "name": "guacamole"}
    aimed = robust.settings(base, options, robust.Plan(924, info, Channel(options.channel)))["eot-to924"]
    assert aimed["steps"] == {"4": 8 * atk.paper_steps(4), "16": 160} and "targeted" in aimed["steps_rule"]


def test_a_run_crafted_through_typical_resumes_only_through_typical(tmp_path, cached_model):
    # runs crafted before the default became phone: resuming with the defaults is refused in one
    # line that says how to continue, and nothing crafted is touched
    args = ["craft", "--images", "demo:coffee", "--run", "r", "--attacks", "eot", "--eps", "2",
            "--eot-samples", "1", "--eot-steps", "1"]
    assert run_cli(tmp_path, *args, "--channel", "typical").exit_code == 0
    before = (tmp_path / "printouts/r/manifest.json").read_text()
    result = run_cli(tmp_path, *args)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert ("through another channel (preset typical vs preset phone); continue it with --channel typical"
            in result.output), result.output
    assert (tmp_path / "printouts/r/manifest.json").read_text() == before
    assert run_cli(tmp_path, *args, "--channel", "typical").exit_code == 0


def test_a_run_crafted_through_an_earlier_version_of_a_preset_is_not_resumed_silently(tmp_path, cached_model):
    # phone's ranges changed (its shadow plug); a run crafted as an earlier version drew it must not
    # mix examples of two channels under one manifest entry: one line, nothing touched
    args = ["craft", "--images", "demo:coffee", "--run", "r", "--attacks", "eot", "--eps", "2",
            "--eot-samples", "1", "--eot-steps", "1"]
    assert run_cli(tmp_path, *args).exit_code == 0
    path = tmp_path / "printouts/r/manifest.json"
    doc = json.loads(path.read_text())
    del doc["attacks"]["eot"]["channel"]["ranges"]["shadow_plug"]   # as phone was before the plug
    path.write_text(json.dumps(doc))
    before = path.read_text()
    result = run_cli(tmp_path, *args)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "through preset phone as an earlier version of physical drew it" in result.output, result.output
    assert path.read_text() == before
    assert run_cli(tmp_path, *args, "--force").exit_code == 0


def test_a_run_resumed_with_other_eot_steps_says_how_to_continue_it(tmp_path, cached_model):
    # e.g. a targeted run crafted at the earlier default of 80 steps, resumed at today's 160
    args = ["craft", "--images", "demo:coffee", "--run", "r", "--attacks", "eot", "--eps", "2", "--eot-samples", "1"]
    assert run_cli(tmp_path, *args, "--eot-steps", "1").exit_code == 0
    result = run_cli(tmp_path, *args, "--eot-steps", "2")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert ("made eot with other settings (steps at ε 2: 1 vs 2); continue it with --eot-steps 1, use --force, "
            "or another --run") in result.output, result.output
    assert run_cli(tmp_path, *args, "--eot-steps", "1").exit_code == 0
