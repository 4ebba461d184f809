"""Typed run files (physical.records) and the run lock (physical.workspace.RunLock)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest
from click.testing import CliRunner

from conftest import make_fake_run
from physical import records
from physical.cli import main
from physical.errors import PhysicalError
from physical.workspace import Workspace, atomic_write_json, read_json


def invoke(ws, *args):
    return CliRunner().invoke(main, ["-w", str(ws.root), *args])


def test_manifest_round_trip_keeps_every_field(tmp_path):
    ws = make_fake_run(tmp_path)
    raw = read_json(ws.manifest_path("t"))
    m = ws.load_manifest("t")
    assert isinstance(m, records.Manifest) and m.images[0].label.index == raw["images"][0]["label"]["index"]
    assert m.images[1].variants["fgsm-eps16"].eps == 16
    assert m.dump() == raw                                  # nothing added, nothing lost (extra fields too)
    records.write(records.MANIFEST, ws, "t", m)
    assert read_json(ws.manifest_path("t")) == raw


@pytest.mark.parametrize("content, expected", [
    ([], "not a manifest file (a JSON list, not an object)"),
    ({"schema": 1, "run": "t"}, "is not a valid manifest file (created: field required)"),
    ("wrong-type", "images.0.label.index: input should be a valid integer"),
    ({"schema": 99}, "manifest schema 99, newer than this physical reads"),
    ({"schema": 0}, "manifest schema 0, older than this physical reads"),
    ("other-run", "belongs to run 'elsewhere', not 't'"),
])
def test_bad_manifest_is_one_clear_line_in_every_stage(tmp_path, content, expected):
    ws = make_fake_run(tmp_path)
    raw = read_json(ws.manifest_path("t"))
    if content == "wrong-type":
        raw["images"][0]["label"]["index"] = "seven"
        content = raw
    elif content == "other-run":
        content = {**raw, "run": "elsewhere"}
    elif isinstance(content, dict) and "created" not in content and content.get("schema") != 1:
        content = {**raw, **content}
    atomic_write_json(ws.manifest_path("t"), content)
    for args in (["evaluate", "--run", "t"], ["layout", "--run", "t"], ["transforms", "--run", "t"],
                 ["report", "--run", "t"]):
        res = invoke(ws, *args)
        assert res.exit_code == 1, (args, res.output)
        assert expected in res.output and "Traceback" not in res.output, (args, res.output)
        assert len(res.output.strip().splitlines()) == 1, res.output


def test_foreign_file_in_place_of_another_is_refused(tmp_path):
    ws = make_fake_run(tmp_path)
    # a layout.json where ingest.json belongs: one line naming the file
    atomic_write_json(ws.ingest_path("t"), {"schema": 1, "run": "t", "pages": []})
    with pytest.raises(PhysicalError, match=r"ingest.json is not a valid ingest file \(layout_sha256: field required"):
        records.read(records.INGEST, ws, "t")


def test_writer_refuses_an_invalid_record(tmp_path):
    ws = Workspace(tmp_path)
    with pytest.raises(Exception):
        records.write(records.METRICS, ws, "t", {"schema": 1, "run": {"name": "t"}, "rows": []})
    assert not ws.metrics_path("t").exists()



def test_rewriter_writes_the_bytes_write_does_and_validates_what_is_new(tmp_path):
    """records.Rewriter (ingest.json after every photo) encodes only new or changed items, yet every
    rewrite is byte for byte records.write(compact=True)'s, in its key order (fields, then extras),
    "used" flips included; a bad new item is refused and nothing is written."""
    ws = Workspace(tmp_path)
    path = records.INGEST.path(ws, "t")
    state = {"schema": 1, "run": "t", "layout_sha256": "ab", "crop_rule": "r \u00e9", "photos": [], "crops": [],
             "sessions": []}
    rw = records.Rewriter(records.INGEST, ws, "t", ("photos", "crops"), watch=("used",))
    for n in range(4):
        state["photos"].append({"file": f"photos/p{n}.jpg", "sha256": f"{n:x}", "status": "accepted",
                                "pages": [1], "reason": None, "slots_found": 2, "seconds": 0.1 * n})
        state["crops"] += [{"image_id": i, "variant": "clean", "file": f"crops/{i}/clean-{n}.png",
                            "photo": f"photos/p{n}.jpg", "photo_sha256": f"{n:x}", "sharpness": n + 0.5,
                            "homography_mm_to_px": [[1.0, 0.0, n], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
                            "used": False} for i in ("a", "b")]
        for c in state["crops"]:
            c["used"] = c["photo"] == f"photos/p{n}.jpg"   # the newest photo's crops are used
        rw.write(state)
        mine = path.read_bytes()
        records.write(records.INGEST, ws, "t", state, compact=True)
        assert mine == path.read_bytes()
    state["photos"].append({"file": "photos/bad.jpg", "sha256": "ff", "status": "maybe"})
    with pytest.raises(Exception, match="status"):
        rw.write(state)
    assert path.read_bytes() == mine

def test_json_schemas_cover_every_run_file():
    schemas = records.json_schemas()
    assert set(schemas) == {"manifest.json", "layout.json", "simulated.json", "ingest.json", "metrics.json",
                            "transforms.json"}
    assert "images" in schemas["manifest.json"]["properties"]
    assert "schema" in schemas["manifest.json"]["properties"]          # the alias, as in the file


def test_docs_internals_schemas_are_generated_from_records():
    from pathlib import Path

    text = (Path(__file__).parent.parent / "docs" / "internals.md").read_text(encoding="utf-8")
    assert records.schema_markdown() in text, "run `python docs/gen_schemas.py`"


# ------------------------------------------------------------------------------ the run lock
HOLD = textwrap.dedent("""
    import sys, time
    from physical.workspace import Workspace
    with Workspace(sys.argv[1]).lock("t", "craft"):
        print("held", flush=True)
        time.sleep(float(sys.argv[2]))
""")


def _holder(ws, seconds):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(ws.root), str(seconds)], stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_second_writer_is_refused_with_who_holds_the_run(tmp_path):
    ws = make_fake_run(tmp_path)
    proc = _holder(ws, 60)
    try:
        before = read_json(ws.manifest_path("t"))
        for args in (["evaluate", "--run", "t"], ["craft", "--images", "demo", "--run", "t"],
                     ["layout", "--run", "t", "--force"]):
            res = invoke(ws, *args)
            assert res.exit_code == 1 and "Traceback" not in res.output
            assert f"run t is busy: craft, pid {proc.pid}, since " in res.output, res.output
        assert read_json(ws.manifest_path("t")) == before and not ws.metrics_path("t").exists()
    finally:
        proc.kill()
        proc.wait()


def test_lock_of_a_killed_process_is_taken_over(tmp_path):
    ws = make_fake_run(tmp_path)
    proc = _holder(ws, 60)
    proc.kill()
    proc.wait()
    with ws.lock("t", "evaluate"):
        pass
    assert invoke(ws, "evaluate", "--run", "t").exit_code == 0


def test_lock_is_reentrant_within_a_process(tmp_path):
    ws = Workspace(tmp_path)
    with ws.lock("t", "run"):
        with ws.lock("t", "craft"):
            assert json.loads((tmp_path / ".locks" / "t.holder.json").read_text())["command"] == "run"
    assert not (tmp_path / ".locks" / "t.holder.json").exists()
    with ws.lock("t", "evaluate"):     # released: can be taken again
        pass
