"""Issue 11 §1 and §5: destructive steps check every input first, build beside the old outputs
and swap at the end; paths read from run files are acted on only inside the run; a stage
deletes only its own outputs; an OSError on write is one line naming the path."""
from __future__ import annotations

import errno
import json
import tempfile

import pytest
from click.testing import CliRunner
from PIL import Image

from conftest import make_fake_run
from physical import ingest, simulate
from physical import layout as layout_mod
from physical import layout_history
from physical.cli import main
from physical.errors import PhysicalError
from physical.workspace import Workspace, atomic_write_bytes, read_json, sha256_file

RES = ["--resolution", "800x600"]


def _cli(ws_root, *args):
    return CliRunner().invoke(main, ["-w", str(ws_root), "-q", *args])


def _one_line(result, *needles, code=1):
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) <= 3 and lines[-1].startswith("Error: "), result.output
    for needle in needles:
        assert needle in lines[-1], lines[-1]


def _snapshot(folder):
    """{relative path: sha256} of every file under a folder."""
    return {p.relative_to(folder).as_posix(): sha256_file(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def _run_is_usable(ws: Workspace, run: str) -> None:
    """Every PNG the manifest lists is there with its sha256, and the run lays out."""
    manifest = ws.load_manifest(run).dump()
    for entry in manifest["images"]:
        for rec in entry["variants"].values():
            assert sha256_file(ws.printouts(run) / rec["file"]) == rec["sha256"]
    assert not list(ws.printouts(run).glob(".craft-*"))  # no staging left behind
    layout_mod.make_layout(ws, run, image_mm=60, force=True)


class TestAFailedForceLeavesTheOldRunUsable:
    # ---- craft --------------------------------------------------------------------------------
    @pytest.fixture
    def crafted(self, tmp_path, cached_model):
        from physical.data import demo_items

        demo = {it.id: it.path for it in demo_items()}
        src = tmp_path / "src"
        src.mkdir()
        Image.open(demo["coffee"]).resize((160, 120)).save(src / "n07920052_coffee.png")
        Image.open(demo["chelsea"]).resize((160, 120)).save(src / "n02123045_cat.png")
        args = ["craft", "--images", str(src), "--run", "r1", "--attacks", "fgsm", "--eps", "4"]
        assert _cli(tmp_path, *args).exit_code == 0
        return Workspace(tmp_path), src, args

    def test_craft_force_with_every_source_gone_or_unreadable(self, crafted):
        ws, src, args = crafted
        before = _snapshot(ws.printouts("r1"))
        (src / "n07920052_coffee.png").unlink()
        (src / "n02123045_cat.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 30)  # a damaged PNG
        _one_line(_cli(ws.root, *args, "--force"), "no image could be read")
        assert _snapshot(ws.printouts("r1")) == before
        _run_is_usable(ws, "r1")

    def test_craft_force_interrupted_half_way(self, crafted, monkeypatch):
        ws, src, args = crafted
        before = _snapshot(ws.printouts("r1"))
        import physical.craft as craft_mod

        real, calls = craft_mod.encode_png, []

        def failing(image):   # the disk dies after the third PNG of the new craft
            calls.append(1)
            if len(calls) > 3:
                raise OSError(errno.EIO, "Input/output error")
            return real(image)

        monkeypatch.setattr(craft_mod, "encode_png", failing)
        result = _cli(ws.root, *args, "--eps", "4,8", "--force")
        assert result.exit_code != 0 and len(calls) == 4
        assert _snapshot(ws.printouts("r1")) == before
        monkeypatch.setattr(craft_mod, "encode_png", real)
        _run_is_usable(ws, "r1")

    def test_craft_force_that_succeeds_replaces_every_png(self, crafted):
        ws, src, args = crafted
        old = ws.load_manifest("r1").dump()
        result = _cli(ws.root, *args[:-1], "8", "--force")     # ε 8 instead of 4
        assert result.exit_code == 0, result.output
        new = ws.load_manifest("r1").dump()
        assert set(new["variants"]) == {"clean", "fgsm-eps8"} and new["created"] >= old["created"]
        assert not list(ws.printouts("r1").glob("images/*/fgsm-eps4.png"))
        _run_is_usable(ws, "r1")

    # ---- simulate -----------------------------------------------------------------------------
    @pytest.fixture
    def simulated(self, tmp_path):
        ws = make_fake_run(tmp_path, run="s", ids=("a", "b"), size=64)
        layout_mod.make_layout(ws, "s", image_mm=60)
        assert _cli(tmp_path, "simulate", "--run", "s", *RES, "--seed", "1").exit_code == 0
        ingest.ingest_run(ws, "s", workers=1)
        return ws

    def test_simulate_force_with_a_bad_seed_or_a_damaged_pdf(self, simulated):
        ws = simulated
        before = _snapshot(ws.captures("s"))
        _one_line(_cli(ws.root, "simulate", "--run", "s", "--force", "--seed", "-1"), "--seed", code=2)
        pdf = ws.pdf_path("s")
        kept = layout_history.history_dir(ws, "s") / read_json(ws.layout_path("s"))["layout_id"] / pdf.name
        for damaged in (pdf, kept):                      # the PDF and the copy that could restore it
            damaged.write_bytes(damaged.read_bytes()[:300])
        # refused by its sha256 against layout.json before it is even opened
        _one_line(_cli(ws.root, "simulate", "--run", "s", "--force", *RES), "is not the PDF")
        assert _snapshot(ws.captures("s")) == before     # photos, simulated.json, ingest.json, crops

    def test_simulate_force_interrupted(self, simulated, monkeypatch):
        ws = simulated
        before = _snapshot(ws.captures("s"))
        real, calls = simulate.encode_jpeg, []

        def failing(*a, **k):
            calls.append(1)
            if len(calls) > 1:
                raise KeyboardInterrupt
            return real(*a, **k)

        monkeypatch.setattr(simulate, "encode_jpeg", failing)
        result = _cli(ws.root, "simulate", "--run", "s", "--force", "--seed", "2", "--photos-per-page", "2", *RES)
        assert result.exit_code != 0 and len(calls) == 2
        assert _snapshot(ws.captures("s")) == before
        assert not list(ws.captures("s").glob(".simulate-tmp-*"))

    def test_simulate_force_never_deletes_outside_the_run(self, simulated, tmp_path):
        ws = simulated
        victims = [tmp_path / "victim.txt", tmp_path.parent / "victim2.txt"]
        for v in victims:
            v.write_text("precious")
        sim_json = ws.captures("s") / "simulated.json"
        doc = read_json(sim_json)
        for bad in ("../../../victim.txt", str(victims[1]), "photos/../../../../victim.txt"):
            tampered = dict(doc, photos=doc["photos"] + [dict(doc["photos"][0], file=bad)])
            sim_json.write_text(json.dumps(tampered))
            before = _snapshot(ws.captures("s"))
            _one_line(_cli(ws.root, "simulate", "--run", "s", "--force", *RES), "not inside run 's'")
            assert all(v.read_text() == "precious" for v in victims)
            assert _snapshot(ws.captures("s")) == before

    def test_ingest_notices_replaced_photos_itself(self, simulated):
        ws = simulated
        first = read_json(ws.captures("s") / "ingest.json")
        assert first["crops"]
        old_crops = {c["file"] for c in first["crops"]}
        assert _cli(ws.root, "simulate", "--run", "s", "--force", "--seed", "5", *RES).exit_code == 0
        # simulate left ingest's files alone …
        assert read_json(ws.captures("s") / "ingest.json") == first
        state = ingest.ingest_run(ws, "s", workers=1)
        # … and ingest dropped the records and crops of the photos that were replaced
        now = {p["file"]: p["sha256"] for p in read_json(ws.captures("s") / "simulated.json")["photos"]}
        assert {p["file"]: p["sha256"] for p in state["photos"]} == now
        assert all(c["photo_sha256"] == now[c["photo"]] for c in state["crops"])
        assert state["last_session"]["forgotten"] == len(first["photos"])
        for name in old_crops - {c["file"] for c in state["crops"]}:
            assert not (ws.captures("s") / name).exists()
        # the same simulation again gives the same bytes: nothing is forgotten or re-read
        again = ingest.ingest_run(ws, "s", workers=1)
        assert again["last_session"]["forgotten"] == 0 and again["last_session"]["new"] == 0


# ---- a workspace that cannot be written ---------------------------------------------------------

def test_an_oserror_on_write_is_one_line_naming_the_path(tmp_path, monkeypatch):
    ws = make_fake_run(tmp_path, run="t")

    def read_only(*a, dir=None, **k):
        raise OSError(errno.EROFS, "Read-only file system", dir)

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    with pytest.raises(PhysicalError, match=r"cannot write .*x\.json: Read-only file system"):
        atomic_write_bytes(tmp_path / "x.json", b"{}")
    result = _cli(ws.root, "layout", "--run", "t")
    _one_line(result, "cannot write", "printouts/t", "Read-only file system")


def test_a_workspace_under_a_file_is_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    result = _cli(tmp_path / "file" / "ws", "craft", "--images", "demo", "--run", "r")
    _one_line(result, "cannot write", "Not a directory")


def test_inside_accepts_only_paths_within_the_run(tmp_path):
    ws = Workspace(tmp_path)
    cap = ws.captures("r")
    (cap / "photos").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (cap / "photos" / "link").symlink_to(tmp_path / "elsewhere")
    assert ws.inside("r", cap / "photos" / "a.jpg") and ws.inside("r", ws.printouts("r") / "x.png")
    for bad in (cap / "../../x", tmp_path / "x", cap, cap / "photos" / "link" / "a.jpg", ws.captures("r2") / "a"):
        assert not ws.inside("r", bad), bad
