"""Layout identity (issue 11, section 3): every layout has its own marker code, earlier layouts are
kept and their sheets read against them, and no photo of any sheet — this layout's, an earlier
one's, another workspace's — ever gives a crop under the wrong image or variant."""
from __future__ import annotations

import io
import itertools
import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageOps

from conftest import make_fake_run
from physical import ingest, simulate
from physical import layout as layout_mod
from physical import layout_history
from physical import markers as M
from physical.cli import main
from physical.errors import PhysicalError
from physical.workspace import Workspace, atomic_write_bytes, atomic_write_json, read_json, sha256_bytes

SIZE = 32          # source PNG pixels: small and fast; printed 60 mm wide, 4 images on one A4 page
RES = (1000, 750)
VARIANTS = ("clean", "fgsm-eps16")


def _photograph(ws: Workspace, run: str, label: str, seed: int, scratch) -> tuple[bytes, dict]:
    """A simulated photo of the printed sheet of kept layout `label` (its own PDF and layout.json,
    rendered in a scratch workspace), and that photo's ground truth."""
    src = layout_history.history_dir(ws, run) / label
    tmp = Workspace(scratch / f"{label}-{seed}")
    tmp.printouts(run).mkdir(parents=True)
    shutil.copy(src / "layout.json", tmp.layout_path(run))
    shutil.copy(src / f"{run}.pdf", tmp.pdf_path(run))
    sim = simulate.simulate_run(tmp, run, preset="mild", seed=seed, resolution=RES, pages=[1])
    photo = sim["photos"][0]
    data = (tmp.captures(run) / photo["file"]).read_bytes()
    shutil.rmtree(tmp.root)
    return data, {"layout": label, "slots": photo["slots"]}


def _side_by_side(a: bytes, b: bytes, truth_a: dict, truth_b: dict) -> tuple[bytes, list[dict]]:
    """One photo showing two sheets: the displayed photos side by side (white padding)."""
    ims = [np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(d))).convert("RGB")) for d in (a, b)]
    h = max(i.shape[0] for i in ims)
    ims = [np.pad(i, ((0, h - i.shape[0]), (0, 0), (0, 0)), constant_values=255) for i in ims]
    buf = io.BytesIO()
    Image.fromarray(np.hstack(ims)).save(buf, format="JPEG", quality=92)
    dx = ims[0].shape[1]
    shifted = {"layout": truth_b["layout"],
               "slots": [{**s, "corners_px": (np.asarray(s["corners_px"]) + [dx, 0]).tolist()} for s in truth_b["slots"]]}
    return buf.getvalue(), [truth_a, shifted]


def _check(ws: Workspace, run: str, state: dict, truths: dict) -> tuple[int, int]:
    """Every crop: the printed image at its place in the photo has the crop's image id and variant,
    and comes from the layout the crop names; crops of earlier layouts only where the PNG they
    printed is still the manifest's. Returns (crops checked, crops of earlier layouts)."""
    man = ws.load_manifest(run).dump()
    pngs = {(im["id"], v): rec["sha256"] for im in man["images"] for v, rec in im["variants"].items()}
    current = read_json(ws.layout_path(run))["layout_id"]
    n = old = 0
    for c in state["crops"]:
        sheets = truths[c["photo"].rsplit("/", 1)[-1]]
        got = np.asarray(c["corners_px"])
        dist, sheet, slot = min((np.abs(np.asarray(s["corners_px"]) - got).max(), t, s)
                                for t in sheets for s in t["slots"])
        assert dist < 3.0, (c, dist)                       # the crop is where that printed image is ...
        assert (slot["image_id"], slot["variant"]) == (c["image_id"], c["variant"]), (c, slot)   # ... and is it
        assert c["layout_id"] == sheet["layout"]
        if c["layout_id"] != current:
            kept = read_json(layout_history.history_dir(ws, run) / c["layout_id"] / "layout.json")
            printed = next(s for p in kept["pages"] for s in p["slots"] if s["slot"] == c["slot"])
            assert printed["sha256"] == pngs[(c["image_id"], c["variant"])]
            old += 1
        n += 1
    return n, old


@pytest.mark.parametrize("seed", range(5))
def test_random_relayouts_crafts_and_photos_never_misassign(tmp_path, seed):
    """Random sequences of craft / layout --force / photos of the current and earlier sheets (and
    of two sheets in one photo), ingested at random points: no crop is ever mislabelled."""
    rng = np.random.default_rng(seed)
    run, root = "p", tmp_path / "ws"
    ws = make_fake_run(root, run=run, ids=("a", "b"), size=SIZE, seed=100 * seed)
    layout_mod.make_layout(ws, run, image_mm=60)
    labels = [read_json(ws.layout_path(run))["layout_id"]]
    photos = ws.captures(run) / "photos"
    photos.mkdir(parents=True)
    truths, n_photo, checked, old, ingested = {}, 0, 0, 0, 0
    ops = ["relayout", "photo", "photo", "relayout", "photo", "craft", "photo", "ingest", "photo"]
    rng.shuffle(ops)
    for op in [*ops, "current photo", "ingest"]:
        if op == "relayout":
            variants = list(rng.permutation(VARIANTS)) if rng.random() < 0.7 else [str(rng.choice(VARIANTS))]
            layout_mod.make_layout(ws, run, image_mm=float(rng.choice([60, 56])), variants=variants, force=True)
            labels.append(read_json(ws.layout_path(run))["layout_id"])
        elif op == "craft":        # new PNGs under the same names (earlier sheets now show stale pixels), or an image gone
            ids = ("a", "b") if rng.random() < 0.5 else ("a", "c")
            make_fake_run(root, run=run, ids=ids, size=SIZE, seed=100 * seed + 1 + len(labels))
        elif op.endswith("photo"):
            label = labels[-1] if op == "current photo" else str(rng.choice(labels))
            data, truth = _photograph(ws, run, label, int(rng.integers(1000)), tmp_path)
            truth = [truth]
            if op == "photo" and rng.random() < 0.35:       # two sheets in one photo
                other, t2 = _photograph(ws, run, str(rng.choice(labels)), int(rng.integers(1000)), tmp_path)
                data, truth = _side_by_side(data, other, truth[0], t2)
            n_photo += 1
            name = f"shot{n_photo}.jpg"
            atomic_write_bytes(photos / name, data)
            truths[name] = truth
        elif op == "ingest" and truths:
            state = ingest.ingest_run(ws, run, workers=1, force=True)
            n, o = _check(ws, run, state, truths)
            checked, old, ingested = checked + n, old + o, ingested + 1
    assert ingested >= 1 and checked > 0
    # the layouts are all kept and all carry different codes
    kept = layout_history.kept_layouts(ws, run)
    assert set(kept) == set(labels) and len(labels) == 3
    assert len({lay["run_tag"]["tag"] for lay in kept.values()} | {M.run_key(run).tag}) == len(labels) + 1


def test_photo_of_an_earlier_sheet_is_read_against_its_layout(tmp_path):
    """The issue's case: layout, print, `layout --force` with the variants swapped; photos of the
    first sheet are labelled by the first layout's slots (they would have been swapped before),
    photos of the second by the second's, and with the first layout's folder gone, refused."""
    run = "p"
    ws = make_fake_run(tmp_path / "ws", run=run, ids=("a", "b"), size=SIZE)
    first = layout_mod.make_layout(ws, run, image_mm=60, variants=["clean", "fgsm-eps16"]).layout
    second = layout_mod.make_layout(ws, run, image_mm=60, variants=["fgsm-eps16", "clean"], force=True).layout
    assert first["layout_id"] != second["layout_id"]
    pos = lambda lay: {(s["image_id"], s["variant"]): s["rect_mm"] for s in lay["pages"][0]["slots"]}  # noqa: E731
    assert pos(first)[("a", "clean")] == pos(second)[("a", "fgsm-eps16")]      # same places, swapped contents
    photos = ws.captures(run) / "photos"
    truths = {}
    for k, lay in enumerate((first, second)):
        data, truth = _photograph(ws, run, lay["layout_id"], 7 + k, tmp_path)
        atomic_write_bytes(photos / f"sheet{k}.jpg", data)
        truths[f"sheet{k}.jpg"] = [truth]
    state = ingest.ingest_run(ws, run, workers=1)
    n, old = _check(ws, run, state, truths)
    assert n == 8 and old == 4                     # every image of both sheets, each under its own layout
    assert [p["layouts"] for p in state["photos"]] == [[first["layout_id"]], [second["layout_id"]]]
    # the PDF and layout.json of the first layout are still there, byte for byte what it was
    kept = layout_history.history_dir(ws, run) / first["layout_id"]
    assert read_json(kept / "layout.json") == first
    assert sha256_bytes((kept / f"{run}.pdf").read_bytes()) == first["pdf_sha256"]
    # without the first layout kept, its sheet is refused with one line naming what it is
    shutil.rmtree(kept)
    state = ingest.ingest_run(ws, run, workers=1, force=True)
    rec = {p["file"]: p for p in state["photos"]}["photos/sheet0.jpg"]
    assert rec["status"] == "rejected" and rec["reason"].startswith("markers of another run or layout")
    assert f"layout {second['layout_id']}" in rec["reason"] and "\n" not in rec["reason"]
    assert {c["photo"] for c in state["crops"]} == {"photos/sheet1.jpg"}
    _check(ws, run, state, truths)


def test_earlier_sheet_with_recrafted_pngs_is_refused_per_image(tmp_path):
    run = "p"
    ws = make_fake_run(tmp_path / "ws", run=run, ids=("a", "b"), size=SIZE)
    first = layout_mod.make_layout(ws, run, image_mm=60).layout
    layout_mod.make_layout(ws, run, image_mm=60, force=True)
    data, truth = _photograph(ws, run, first["layout_id"], 3, tmp_path)
    make_fake_run(tmp_path / "ws", run=run, ids=("a", "b"), size=SIZE, seed=5)   # craft again: new PNGs
    atomic_write_bytes(ws.captures(run) / "photos" / "old.jpg", data)
    state = ingest.ingest_run(ws, run, workers=1)
    (rec,) = state["photos"]
    assert rec["status"] == "rejected" and not state["crops"] and len(rec["slots_rejected"]) == 4
    assert rec["reason"] == (f"printed by layout {first['layout_id']} from another PNG than the manifest's "
                             "(sha256 differs: the run was crafted again since)")
    assert {s["layout_id"] for s in rec["slots_rejected"]} == {first["layout_id"]}


def test_two_workspaces_with_the_same_run_name(tmp_path):
    """Every user's `demo`: identical runs in two workspaces print different codes, and a photo of
    one's sheet is refused by the other (it would have been read as its own before layout ids)."""
    a = make_fake_run(tmp_path / "alice", run="demo", ids=("a", "b"), size=SIZE)
    b = make_fake_run(tmp_path / "bob", run="demo", ids=("b", "a"), size=SIZE)   # same names, other order
    la = layout_mod.make_layout(a, "demo", image_mm=60).layout
    lb = layout_mod.make_layout(b, "demo", image_mm=60).layout
    ids = lambda lay: [m["id"] for s in lay["pages"][0]["slots"] for m in s["markers"]]  # noqa: E731
    assert la["layout_id"] != lb["layout_id"] and ids(la) != ids(lb)
    data, _ = _photograph(b, "demo", lb["layout_id"], 11, tmp_path)
    atomic_write_bytes(a.captures("demo") / "photos" / "bobs.jpg", data)
    res = CliRunner().invoke(main, ["-w", str(a.root), "ingest", "--run", "demo"])
    assert res.exit_code == 1 and "no usable photo" in res.output
    (rec,) = read_json(a.captures("demo") / "ingest.json")["photos"]
    assert rec["status"] == "rejected" and rec["reason"].startswith("markers of another run or layout")
    assert "another workspace's run of that name" in rec["reason"]
    # ... and Bob's own ingest reads it
    atomic_write_bytes(b.captures("demo") / "photos" / "bobs.jpg", data)
    assert len(ingest.ingest_run(b, "demo", workers=1)["crops"]) == 4


# ----------------------------------------------------------------------------- schema 1 layouts
def _v1_layout(ws: Workspace, run: str) -> dict:
    """Write layout.json + PDF as physical wrote them before layout ids (schema 1, rs241-v1)."""
    items = layout_mod.collect_items(ws, run, ws.load_manifest(run).dump(), None)
    lay = layout_mod.plan(items, run, "a4", 600, 60.0)
    pdf = layout_mod.render_pdf(lay, {(it.image_id, it.variant): it for it in items}, "2026-01-01T00:00:00+00:00")
    lay = {"schema": 1, "run": run, "created": "2026-01-01T00:00:00+00:00", "pdf": f"{run}.pdf",
           "pdf_sha256": sha256_bytes(pdf), "manifest_sha256": "0" * 64, "variants": list(VARIANTS),
           **{k: v for k, v in lay.items() if k not in ("schema", "run")}}
    assert "layout_id" not in lay and lay["markers"]["id_scheme"] == "rs241-v1"
    atomic_write_bytes(ws.pdf_path(run), pdf)
    atomic_write_json(ws.layout_path(run), lay)
    return lay


def test_schema_1_layout_ingests_as_before_and_is_kept_by_force(tmp_path):
    run = "p"
    ws = make_fake_run(tmp_path / "ws", run=run, ids=("a", "b"), size=SIZE)
    v1 = _v1_layout(ws, run)
    assert [m["id"] for m in v1["pages"][0]["slots"][0]["markers"]] == list(M.slot_ids(0, M.run_key(run)))
    sim = simulate.simulate_run(ws, run, preset="mild", seed=1, resolution=RES)
    state = ingest.ingest_run(ws, run, workers=1)
    assert len(state["crops"]) == 4 and {c["layout_id"] for c in state["crops"]} == {layout_history.layout_label(
        v1, ws.layout_path(run))}
    label = layout_history.layout_label(v1, ws.layout_path(run))
    assert label.startswith("v1-") and len(label) == 19
    # layout --force keeps it (as layouts/v1-…) and the v1 sheet's photo still reads, against it
    new = layout_mod.make_layout(ws, run, image_mm=60, variants=["fgsm-eps16", "clean"], force=True).layout
    assert new["schema"] == 2 and new["run_tag"]["tag"] != v1["run_tag"]["tag"]
    assert read_json(layout_history.history_dir(ws, run) / label / "layout.json") == v1
    state = ingest.ingest_run(ws, run, workers=1, force=True)
    truths = {p["file"].rsplit("/", 1)[-1]: [{"layout": label, "slots": p["slots"]}] for p in sim["photos"]}
    n, old = _check(ws, run, state, truths)
    assert n == old == 4
    # with the v1 layout gone, one line says what the sheet is
    shutil.rmtree(layout_history.history_dir(ws, run) / label)
    state = ingest.ingest_run(ws, run, workers=1, force=True)
    assert state["photos"][0]["reason"].startswith("markers of an earlier layout of this run: one printed before "
                                                   "layout ids (id scheme rs241-v1) and not kept")


@pytest.mark.parametrize("edit, message", [
    (lambda lay: lay.update(schema=3), "schema 3, which this version of physical cannot read (written by a newer"),
    (lambda lay: lay.update(schema="x"), "schema 'x'"),
    (lambda lay: lay.update(layout_id="nope"), "no valid layout_id"),
    (lambda lay: lay.pop("run_tag"), "no run_tag"),
    (lambda lay: lay.update(run="q"), "a layout of run 'q', not of run 'p'"),
])
def test_bad_layout_json_is_one_line(tmp_path, edit, message):
    ws = make_fake_run(tmp_path, run="p", ids=("a",), size=SIZE)
    layout_mod.make_layout(ws, "p", image_mm=60)
    lay = read_json(ws.layout_path("p"))
    edit(lay)
    ws.layout_path("p").write_text(json.dumps(lay))
    (ws.captures("p") / "photos").mkdir(parents=True)
    res = CliRunner().invoke(main, ["-w", str(tmp_path), "ingest", "--run", "p"])
    assert res.exit_code == 1 and message in res.output and res.output.strip().count("\n") == 0, res.output


# ----------------------------------------------------------------------------- pairing and history
@pytest.mark.parametrize("crash_at", [1, 2, 3, 4])
def test_interrupted_layout_never_leaves_an_unpaired_pdf(tmp_path, monkeypatch, crash_at):
    """A crash at each write of `layout --force`: the PDF a user finds at printouts/<run>/ always
    has its layout.json kept, layout.json is the old or the new one, whole, and the next reader
    of the PDF (simulate, layout, ingest) puts the PDF layout.json names beside it."""
    run = "p"
    ws = make_fake_run(tmp_path, run=run, ids=("a",), size=SIZE)
    first = layout_mod.make_layout(ws, run, image_mm=60).layout
    calls = []

    def crashing(real):
        def write(*args, **kw):
            calls.append(real.__name__)
            if len(calls) == crash_at:
                raise KeyboardInterrupt
            return real(*args, **kw)
        return write

    for name in ("atomic_write_bytes", "atomic_write_json", "_copy_file"):
        monkeypatch.setattr(layout_mod, name, crashing(getattr(layout_mod, name)))
    with pytest.raises(KeyboardInterrupt):
        layout_mod.make_layout(ws, run, image_mm=56, force=True)
    monkeypatch.undo()
    assert len(calls) == crash_at
    lay = layout_history.read_layout(ws.layout_path(run), run)
    kept = layout_history.kept_layouts(ws, run)
    assert lay == first or (crash_at == 4 and lay == kept[lay["layout_id"]])
    shown = sha256_bytes(ws.pdf_path(run).read_bytes())
    assert any(k["pdf_sha256"] == shown for k in kept.values())          # whichever PDF is there is kept
    simulate.simulate_run(ws, run, preset="mild", seed=0, resolution=(640, 480))
    assert sha256_bytes(ws.pdf_path(run).read_bytes()) == lay["pdf_sha256"]
    # and a PDF nobody can restore is one line
    ws.pdf_path(run).write_bytes(b"%PDF-1.4 something else")
    shutil.rmtree(layout_history.history_dir(ws, run) / lay["layout_id"])
    with pytest.raises(PhysicalError, match="is not the PDF .* describes"):
        simulate.simulate_run(ws, run, preset="mild", seed=0, resolution=(640, 480), force=True)


def test_layout_ids_avoid_kept_tags_and_given_ids_are_checked(tmp_path):
    run = "p"
    ws = make_fake_run(tmp_path, run=run, ids=("a",), size=SIZE)
    tags = {M.run_key(run).tag}
    for _ in range(6):
        lay = layout_mod.make_layout(ws, run, image_mm=60, force=True).layout
        assert lay["run_tag"]["tag"] not in tags
        tags.add(lay["run_tag"]["tag"])
    # an id whose tag a kept layout has is refused, as is a kept id for a different layout
    kept = layout_history.kept_layouts(ws, run)
    clash = next(f"{n:016x}" for n in itertools.count()
                 if M.run_key(run, f"{n:016x}").tag in tags - {M.run_key(run).tag} and f"{n:016x}" not in kept)
    with pytest.raises(PhysicalError, match="has the tag of another layout"):
        layout_mod.make_layout(ws, run, image_mm=60, force=True, layout_id=clash)
    some = sorted(kept)[0]
    with pytest.raises(PhysicalError, match="already used by another layout"):
        layout_mod.make_layout(ws, run, image_mm=50, force=True, layout_id=some)


# ----------------------------------------------------------------------------- the marker rule
def _sheet_detections(lay: dict, page: int = 1, scale: float = 8.0) -> list[M.Detection]:
    return [M.Detection(m["id"], np.asarray(m["corners_mm"]) * scale + [40.0, 30.0])
            for s in lay["pages"][page - 1]["slots"] for m in s["markers"]]


def test_two_markers_of_an_earlier_sheet_that_decode_to_a_current_slot_are_not_trusted(tmp_path):
    """Two points fix a line over GF(241): a pair of markers of an earlier sheet can decode to a
    valid slot of the current layout. Find such a pair, then show it identifies nothing."""
    run = "p"
    ws = make_fake_run(tmp_path, run=run, ids=("a", "b"), size=SIZE)
    items = layout_mod.collect_items(ws, run, ws.load_manifest(run).dump(), None)
    cur_id = "0123456789abcdef"
    cur = layout_mod.plan(items, run, "a4", 600, 60.0, cur_id)
    key = M.run_key(run, cur_id)
    n_slots = cur["n_slots"]
    for n in itertools.count():
        old_id = f"{n:016x}"
        okey = M.run_key(run, old_id)
        if okey.tag == key.tag:
            continue
        hits = [(s, pair) for s in range(n_slots) for pair in itertools.combinations(range(4), 2)
                if (d := M.decode_slot({r: M.slot_ids(s, okey)[r] for r in pair}, key)) is not None and d < n_slots]
        if hits:
            break
    (s_old, pair), *_ = hits
    old = layout_mod.plan(items, run, "a4", 600, 60.0, old_id)
    photo = _sheet_detections(old)
    # the whole earlier sheet: nothing of the current layout (two markers are not enough) ...
    assert M.identify(photo, cur).status != M.STATUS_OK
    # ... not even when the photo shows just that pair, which is a codeword of the current layout
    old_slot = old["pages"][0]["slots"][s_old]
    pair_only = [d for d in photo if d.id in {old_slot["markers"][r]["id"] for r in pair}]
    assert len(pair_only) == 2
    assert M.identify(pair_only, cur).status != M.STATUS_OK
    # against both layouts, the sheet is the earlier one's, every marker used once
    found = M.identify_layouts(photo, [cur, old])
    assert [k for k, _ in found] == [1] and len(found[0][1].used) == len(photo)
    # and a photo of both sheets at once gives both, each with its own markers
    both = photo + [M.Detection(d.id, d.corners_px + [2000.0, 0]) for d in _sheet_detections(cur)]
    found = M.identify_layouts(both, [cur, old])
    assert sorted(k for k, _ in found) == [0, 1]
    assert sorted(i for _, idf in found for i in idf.used) == list(range(len(both)))


def _frame_layout(run: str, slots: list[tuple[list[float], list[int], tuple[str, str]]]) -> dict:
    """A one-page layout.json-shaped dict from (rect_mm, 4 marker ids, (image id, variant))."""
    out = []
    for n, (rect, ids, (image_id, variant)) in enumerate(slots):
        corners = M.slot_marker_corners(rect, 8, 2)
        out.append({"slot": n, "index": n, "image_id": image_id, "variant": variant, "rect_mm": rect,
                    "markers": [{"id": int(i), "role": M.ROLES[r], "corners_mm": c.tolist()}
                                for r, (i, c) in enumerate(zip(ids, corners))]})
    return {"run": run, "run_tag": {"tag": 0, "offset": 0}, "pages": [{"page": 1, "slots": out}]}


def test_markers_of_two_neighbouring_images_are_not_read_as_one_wider_image():
    """TL and BL of slot n with TR and BR of slot n + 1 are always a codeword (of tag t − 1/2)
    around a wider frame: a layout whose wide image has exactly those ids must not read a photo of
    the two narrow ones as its image — the markers between them are inside its frame."""
    key = M.run_key("p", "0123456789abcdef")
    narrow = [([10.0 + 45 * k, 30.0, 50.0 + 45 * k, 70.0], M.slot_ids(k, key), (f"img{k}", "clean")) for k in range(2)]
    sheet = _frame_layout("p", narrow)
    a, b = M.slot_ids(0, key), M.slot_ids(1, key)
    mixed = (a[0], b[1], b[2], a[3])
    assert M.decode_tag(dict(enumerate(mixed))) == (key.tag - pow(2, -1, M.PRIME)) % M.PRIME
    wide = _frame_layout("p", [([10.0, 30.0, 95.0, 70.0], mixed, ("wide", "fgsm-eps16"))])
    photo = _sheet_detections(sheet)
    assert M.identify(photo, sheet).status == M.STATUS_OK
    assert M.identify(photo, wide).status != M.STATUS_OK                # TR/BR of img0, TL/BL of img1 inside
    # the same four markers alone (the others hidden) would frame the wide image: nothing contradicts it
    alone = [d for d in photo if d.id in mixed]
    assert M.identify(alone, wide).status == M.STATUS_OK
    # the sheet's own tag, not the mixed one, is what the photo shows
    assert M.photo_tags(photo) == [key.tag]


def test_a_foreign_marker_where_a_slot_has_its_own_refuses_that_slot():
    key = M.run_key("p", "0123456789abcdef")
    lay = _frame_layout("p", [([10.0 + 45 * k, 30.0, 50.0 + 45 * k, 70.0], M.slot_ids(k, key), (f"i{k}", "clean"))
                              for k in range(3)])
    page_ids = {m["id"] for s in lay["pages"][0]["slots"] for m in s["markers"]}
    photo = _sheet_detections(lay)
    foreign = next(i for i in range(750, 991) if i not in page_ids)        # a BL id printed nowhere here
    bl1 = lay["pages"][0]["slots"][1]["markers"][3]["id"]
    photo = [M.Detection(foreign, d.corners_px) if d.id == bl1 else d for d in photo]
    idf = M.identify(photo, lay)
    assert idf.status == M.STATUS_OK and [s.slot for s in idf.slots] == [0, 2]


def test_pdf_edited_in_place_leaves_its_kept_copy_to_restore_it(tmp_path):
    """The printable PDF and its copy in layouts/<id>/ are separate files: an editor that rewrites
    the PDF in place (same inode) must not damage the copy that `ensure_pdf` restores it from."""
    run = "e"
    ws = make_fake_run(tmp_path, run=run, ids=("a",), size=SIZE)
    lay = layout_mod.make_layout(ws, run, image_mm=60).layout
    pdf = ws.pdf_path(run)
    kept = layout_history.history_dir(ws, run) / lay["layout_id"] / pdf.name
    good = pdf.read_bytes()
    with open(pdf, "r+b") as f:                     # in place: same inode
        f.seek(0)
        f.write(b"%PDF-9.9")
    assert kept.read_bytes() == good
    layout_history.ensure_pdf(ws, run, lay)
    assert pdf.read_bytes() == good
