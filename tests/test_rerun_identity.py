"""Issue 11 §2 and §5: an image is its source (path + bytes) and label; ids never depend on what
else is in the folder; a re-run refuses, with one line naming the image, what would make the
manifest lie; labels CSVs are read strictly; odd image files are read by their range."""
from __future__ import annotations

import json
import random

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from physical.cli import main
from physical.data import ClassTable, assign_ids, base_id, collect, load_image, subset
from physical.errors import PhysicalError
from physical.models import imagenet_classes


@pytest.fixture(scope="module")
def table():
    return ClassTable(*imagenet_classes())


def _img(path, color=(200, 30, 30), size=(40, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)


# ---- ids ------------------------------------------------------------------------------------

def test_ids_of_a_clash_do_not_depend_on_listing_order():
    rels = ["a b.png", "a_b.jpg", "a_b.png", "sub/x.png", "sub_x.png", "plain.png"]
    first = assign_ids(rels, {})
    for seed in range(20):
        shuffled = rels[:]
        random.Random(seed).shuffle(shuffled)
        assert assign_ids(shuffled, {}) == first
    assert first["plain.png"] == "plain"
    clash = [first[r] for r in ("a b.png", "a_b.jpg", "a_b.png")]
    assert len(set(clash)) == 3 and all(i.startswith("a_b-") and len(i) == len("a_b-") + 8 for i in clash)
    assert first["sub/x.png"] != first["sub_x.png"]
    assert base_id("n01440764/n01440764_10026.JPEG") == "n01440764_n01440764_10026"


def test_a_known_image_keeps_its_id_when_a_clashing_file_arrives():
    alone = assign_ids(["a_b.jpg"], {})
    assert alone == {"a_b.jpg": "a_b"}
    later = assign_ids(["a b.png", "a_b.jpg"], known_ids=alone)
    assert later["a_b.jpg"] == "a_b" and later["a b.png"].startswith("a_b-")


def test_limit_subsets_are_nested_and_seeded(tmp_path, table):
    for i in range(30):
        _img(tmp_path / f"n07920052_{i:02d}.png")
    items, _ = collect(str(tmp_path), table)
    small, big = subset(items, 5, seed=3), subset(items, 12, seed=3)
    assert {i.id for i in small} <= {i.id for i in big} and len(big) == 12
    assert {i.id for i in subset(items, 5, seed=4)} != {i.id for i in small}
    # the subset depends on the images, not on where they sit in the listing
    assert [i.id for i in subset(list(reversed(items)), 5, seed=3)] == [i.id for i in small]


# ---- labels CSV -----------------------------------------------------------------------------

@pytest.mark.parametrize("rows,match", [
    ("file,label\na.png,espresso\nb.png,3\na.png,espresso\n", r"labels.csv:4: 'a.png' is listed again \(first at line 2\)"),
    ("a.png,espresso\n\nb.png,3\n./a.png,tabby\n", r"labels.csv:4: 'a.png' is listed with another label \(first at line 1\)"),
])
def test_duplicate_and_conflicting_csv_rows_are_refused_with_line_numbers(tmp_path, table, rows, match):
    _img(tmp_path / "img" / "a.png")
    (tmp_path / "labels.csv").write_text(rows)
    with pytest.raises(PhysicalError, match=match):
        collect(str(tmp_path / "img"), table, labels_csv=str(tmp_path / "labels.csv"))


def test_rows_of_several_paths_with_one_base_name_label_no_other_file(tmp_path, table):
    for rel in ("x/a.png", "y/a.png", "z/a.png"):
        _img(tmp_path / "img" / rel)
    (tmp_path / "labels.csv").write_text("x/a.png,3\ny/a.png,4\nelsewhere/b.png,5\n")
    items, skipped = collect(str(tmp_path / "img"), table, labels_csv=str(tmp_path / "labels.csv"))
    assert {i.rel: i.label for i in items} == {"x/a.png": 3, "y/a.png": 4}
    assert "lines 1, 2" in skipped[0].reason and skipped[0].source == "z/a.png"


def test_a_labels_csv_that_is_not_utf8_is_one_line(tmp_path, table):
    _img(tmp_path / "img" / "caf.png")
    (tmp_path / "labels.csv").write_bytes("café.png,espresso\n".encode("latin-1"))
    with pytest.raises(PhysicalError, match=r"not UTF-8 text \(byte 0xe9 at offset 3\)"):
        collect(str(tmp_path / "img"), table, labels_csv=str(tmp_path / "labels.csv"))


# ---- odd image files ------------------------------------------------------------------------

def test_a_float_tiff_in_0_1_is_scaled_not_read_as_black(tmp_path):
    ramp = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (64, 1))
    Image.fromarray(ramp, "F").save(tmp_path / "f.tif")
    out = load_image(str(tmp_path / "f.tif"), 32, 64)
    assert out.max() > 150 and out.min() < 100   # read as levels it would be black (max 1)
    as_levels = np.tile(np.linspace(0, 255, 64, dtype=np.float32), (64, 1))
    Image.fromarray(as_levels, "F").save(tmp_path / "g.tif")
    assert np.abs(load_image(str(tmp_path / "g.tif"), 32, 64).astype(int) - out.astype(int)).max() <= 2
    bad = ramp.copy()
    bad[0, 0] = np.nan
    Image.fromarray(bad, "F").save(tmp_path / "nan.tif")
    with pytest.raises(ValueError, match="nan"):
        load_image(str(tmp_path / "nan.tif"), 32, 64)
    Image.fromarray(ramp - 0.5, "F").save(tmp_path / "neg.tif")
    with pytest.raises(ValueError, match="expected"):
        load_image(str(tmp_path / "neg.tif"), 32, 64)


# ---- re-running craft -----------------------------------------------------------------------

def _cli(ws, *args):
    return CliRunner().invoke(main, ["--workspace", str(ws), "-q", *args])


def _one_line_error(result, *needles):
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_a_rerun_refuses_changed_labels_sources_and_dropped_images(tmp_path, cached_model):
    from physical.data import demo_items

    demo = {it.id: it.path for it in demo_items()}
    src = tmp_path / "src"
    src.mkdir()
    Image.open(demo["coffee"]).resize((160, 120)).save(src / "a_b.png")
    Image.open(demo["chelsea"]).resize((160, 120)).save(src / "cat.png")
    labels = tmp_path / "labels.csv"
    labels.write_text("a_b.png,espresso\ncat.png,tabby\n")
    args = ["craft", "--images", str(src), "--labels", str(labels), "--run", "r1", "--attacks", "fgsm", "--eps", "4"]
    assert _cli(tmp_path, *args).exit_code == 0
    manifest_path = tmp_path / "printouts/r1/manifest.json"
    before = manifest_path.read_bytes()
    entries = {e["id"]: e for e in json.loads(before)["images"]}
    assert entries["a_b"]["source_file"] == "a_b.png" and entries["cat"]["label"]["name"] == "tabby"

    labels.write_text("a_b.png,espresso\ncat.png,tiger cat\n")           # a corrected label
    _one_line_error(_cli(tmp_path, *args), "image 'cat' (cat.png)", "crafted with label 281", "--force")
    labels.write_text("a_b.png,espresso\ncat.png,tabby\n")

    original = (src / "cat.png").read_bytes()
    Image.open(demo["rocket"]).resize((160, 120)).save(src / "cat.png")  # another photo, same name
    _one_line_error(_cli(tmp_path, *args), "image 'cat'", "changed since run 'r1' crafted it")
    (src / "cat.png").write_bytes(original)

    _one_line_error(_cli(tmp_path, *args, "--limit", "1"), "--limit 1 leaves out image", "--limit 2 or more")
    (src / "cat.png").rename(tmp_path / "cat.png")
    _one_line_error(_cli(tmp_path, *args), "holds image 'cat' (cat.png)", "not in --images any more")
    (tmp_path / "cat.png").rename(src / "cat.png")
    assert manifest_path.read_bytes() == before                          # every refusal changed nothing

    # A file whose name sanitises to an existing id: the crafted image keeps its id, the new one
    # gets its own, and both are in the manifest once.
    Image.open(demo["rocket"]).resize((160, 120)).save(src / "a b.png")
    labels.write_text("a_b.png,espresso\ncat.png,tabby\na b.png,missile\n")
    result = _cli(tmp_path, *args)
    assert result.exit_code == 0, result.output
    after = {e["id"]: e for e in json.loads(manifest_path.read_text())["images"]}
    assert after["a_b"]["source_file"] == "a_b.png"
    assert after["a_b"]["variants"]["clean"]["sha256"] == entries["a_b"]["variants"]["clean"]["sha256"]
    new = [i for i in after if i.startswith("a_b-")]
    assert len(after) == 3 and len(new) == 1 and after[new[0]]["source_file"] == "a b.png"
    assert after[new[0]]["label"]["name"] == "missile"


@pytest.mark.parametrize("content", ["[]", '{"images": [{"id": 3}]}', '{"images": "x"}'])
def test_a_manifest_of_the_wrong_shape_is_one_line_before_the_model_loads(tmp_path, monkeypatch, content):
    import physical.craft as craft_mod

    def refuse(*a, **k):
        raise AssertionError("the model was loaded before the manifest was checked")

    monkeypatch.setattr(craft_mod, "load_model", refuse)
    path = tmp_path / "printouts" / "r1" / "manifest.json"
    path.parent.mkdir(parents=True)
    path.write_text(content)
    _one_line_error(_cli(tmp_path, "craft", "--images", "demo", "--run", "r1"), "manifest file")   # physical.records' line
    assert path.read_text() == content
