"""Scale-out: a real 2-rank torchrun (gloo, CPU) makes the run folder one process makes;
--shard K/N + merge; a stopped shard resumes. A tiny timm network saved as a checkpoint file
is the model, because subprocess ranks cannot see a monkeypatched load_model."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from physical.cli import main
from physical.workspace import read_json
from tests.conftest import textured_image

WNIDS = ["n01440764", "n01443537", "n01484850", "n01491361", "n01494475"]
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    import timm

    base = tmp_path_factory.mktemp("scale")
    images = base / "images"
    images.mkdir()
    for n, wnid in enumerate(WNIDS):
        Image.fromarray(textured_image(64, 100 + n)).save(images / f"{wnid}_{n}.png")
    torch.manual_seed(0)
    ckpt = base / "tiny.pth"
    torch.save(timm.create_model("test_efficientnet").state_dict(), ckpt)
    return base, images, ckpt


def craft_args(images, ckpt, *extra):
    return ["craft", "--images", str(images), "--run", "r1", "--model", str(ckpt), "--arch", "test_efficientnet",
            "--attacks", "fgsm,bim,noise", "--eps", "2,4", "--device", "cpu", "--batch-size", "2", *extra]


def cli(ws, *args):
    result = CliRunner().invoke(main, ["--workspace", str(ws), "-q", *args])
    assert result.exit_code == 0, result.output
    return result


def files(ws):
    root = Path(ws) / "printouts" / "r1"
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def png(ws, rel):
    return np.asarray(Image.open(Path(ws) / "printouts" / "r1" / rel))


def assert_same_run(ws_a, ws_b):
    assert files(ws_a) == files(ws_b)
    a = read_json(Path(ws_a) / "printouts/r1/manifest.json")
    b = read_json(Path(ws_b) / "printouts/r1/manifest.json")
    ids = [e["id"] for e in a["images"]]
    assert ids == [e["id"] for e in b["images"]] and len(set(ids)) == len(ids) == len(WNIDS)
    assert a["summary"] == b["summary"] and a["variants"] == b["variants"] and a["skipped"] == b["skipped"]
    same = total = 0
    for ea, eb in zip(a["images"], b["images"]):
        for v in ("clean", "noise-eps2", "noise-eps4"):  # no gradient in them: the same bytes
            assert ea["variants"][v]["sha256"] == eb["variants"][v]["sha256"], (ea["id"], v)
        for v in ("fgsm-eps2", "fgsm-eps4"):
            pa, pb = png(ws_a, ea["variants"][v]["file"]), png(ws_b, eb["variants"][v]["file"])
            same, total = same + int((pa == pb).sum()), total + pa.size
    assert same / total >= 0.999


def test_two_rank_torchrun_makes_the_single_process_run(setup):
    base, images, ckpt = setup
    single, ranks = base / "single", base / "ranks"
    cli(single, *craft_args(images, ckpt))
    env = {**os.environ, "PHYSICAL_WORKSPACE": str(ranks), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    # Exactly the guide's command; the `--` keeps torchrun's parser off --run (its --run-path).
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "physical", "--", *craft_args(images, ckpt)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "crafted 5 images" in proc.stdout and proc.stdout.count("crafted 5 images") == 1  # rank 0 prints
    assert not (ranks / "printouts/r1/.shards").exists()
    assert_same_run(single, ranks)

    # transforms under the same 2 ranks: each predicts half the items, rank 0 writes the rows.
    targs = ["transforms", "--run", "r1", "--kinds", "blur", "--eps", "4", "--device", "cpu"]
    cli(single, *targs)
    proc = subprocess.run([*cmd[:cmd.index("--") + 1], *targs], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = [read_json(ws / "reports/r1/transforms.json")["rows"] for ws in (single, ranks)]
    strip = [[{k: v for k, v in r.items() if k != "created"} for r in rs] for rs in rows]
    assert len(strip[0]) > 0 and strip[0] == strip[1]


def test_shard_jobs_then_merge_make_the_single_process_run(setup, tmp_path):
    base, images, ckpt = setup
    single, jobs = tmp_path / "single", tmp_path / "jobs"
    cli(single, *craft_args(images, ckpt))
    out0 = cli(jobs, *craft_args(images, ckpt, "--shard", "0/2")).output
    assert not (jobs / "printouts/r1/manifest.json").exists() and "physical merge --run r1" in out0
    cli(jobs, *craft_args(images, ckpt, "--shard", "1/2"))
    shard = read_json(jobs / "printouts/r1/.shards/shard-1-of-2.json")
    assert [e["id"] for e in shard["images"]] == [f"{WNIDS[n]}_{n}" for n in (1, 3)]  # i % 2 == 1
    cli(jobs, "merge", "--run", "r1")
    assert_same_run(single, jobs)


def test_a_stopped_shard_is_taken_in_by_a_plain_rerun(setup, tmp_path):
    base, images, ckpt = setup
    ws = tmp_path / "ws"
    cli(ws, *craft_args(images, ckpt, "--shard", "0/2"))       # shard 1/2 "died" before it started
    result = CliRunner().invoke(main, ["--workspace", str(ws), "-q", "merge", "--run", "r1"])
    assert result.exit_code == 1 and "1/2" in result.output and "Traceback" not in result.output
    done = {p: p.stat().st_mtime_ns for p in (ws / "printouts/r1/images").rglob("*.png")}
    cli(ws, *craft_args(images, ckpt))                            # a plain rerun resumes
    manifest = read_json(ws / "printouts/r1/manifest.json")
    assert [e["id"] for e in manifest["images"]] == [f"{w}_{n}" for n, w in enumerate(WNIDS)]
    assert all(p.stat().st_mtime_ns == t for p, t in done.items())  # shard 0's PNGs were not redone
    assert not (ws / "printouts/r1/.shards").exists()


def test_shard_mistakes_are_one_line_errors(setup, tmp_path):
    base, images, ckpt = setup
    for extra, words in ((["--shard", "2/2"], "0 <= K < N"), (["--shard", "x"], "K/N"),
                         (["--shard", "0/2", "--force"], "--force")):
        result = CliRunner().invoke(main, ["--workspace", str(tmp_path), *craft_args(images, ckpt, *extra)])
        assert result.exit_code == 1 and words in result.output and "Traceback" not in result.output


def test_relaunch_args_rebuild_the_command(setup, tmp_path):
    import click

    from physical.distributed import relaunch_args

    base, images, ckpt = setup
    seen = {}

    @click.command("craft")
    @click.option("--eps", callback=lambda c, p, v: [float(x) for x in v.split(",")], default="2,4")
    @click.option("--model", "models", multiple=True)
    @click.option("--force", is_flag=True)
    @click.option("--procs", type=int, default=1)
    @click.pass_context
    def fake(ctx, eps, models, force, procs):
        seen["args"] = relaunch_args(ctx)

    from physical.workspace import Workspace

    CliRunner().invoke(fake, ["--eps", "2,16", "--model", "a", "--model", "b", "--force", "--procs", "2"],
                       obj={"workspace": Workspace(tmp_path), "quiet": True})
    assert seen["args"] == ["--workspace", str(tmp_path), "--quiet", "craft", "--eps", "2,16",
                            "--model", "a", "--model", "b", "--force"]
    assert json.dumps(seen["args"])
