"""Ingest against the simulator's ground truth: every visible image recovered, corners within a
source pixel, never a crop under the wrong image or variant; bad inputs each recorded with a
reason; re-runs add photos; the sharpest of several crops is used."""
from __future__ import annotations

import io
import os
from pathlib import Path
import shutil
import struct
import subprocess
import sys
import zlib

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageOps

from conftest import make_fake_run
from physical import ingest, markers, simulate
from physical import layout as layout_mod
from physical.cli import main
from physical.workspace import read_json

SIZE = 64  # source PNG pixels


@pytest.fixture(scope="module")
def run_ws(tmp_path_factory):
    """4 source images x 2 variants, printed 60 mm wide (4 per page, 2 pages)."""
    ws = make_fake_run(tmp_path_factory.mktemp("ing"), run="g", ids=("a", "b", "c", "d"), size=SIZE)
    layout_mod.make_layout(ws, "g", image_mm=60)
    return ws


def _score(ws, run, sim, state):
    """(visible, recovered, wrong, corner errors in source px) of one ingest against its truth."""
    lay = read_json(ws.layout_path(run))
    rects = {(p["page"], s["slot"]): s["rect_mm"] for p in lay["pages"] for s in p["slots"]}
    truth = {p["file"]: p for p in sim["photos"]}
    visible = recovered = wrong = 0
    errors = []
    for photo in state["photos"]:
        t = truth.get(photo["file"])
        if t is None:  # not a simulated photo (a file another test left there)
            continue
        crops = {c["slot"]: c for c in state["crops"] if c["photo"] == photo["file"]}
        for s in t["slots"]:
            if s["fully_visible"]:
                visible += 1
                recovered += s["slot"] in crops
        for c in crops.values():
            ts = [s for s in t["slots"] if s["slot"] == c["slot"]]
            if c["page"] != t["page"] or not ts or (ts[0]["image_id"], ts[0]["variant"]) != (c["image_id"], c["variant"]):
                wrong += 1
                continue
            # where the true image corners land under ingest's homography, in source pixels
            x0, y0, x1, y1 = rects[(c["page"], c["slot"])]
            mm = ingest._transform(np.linalg.inv(np.asarray(c["homography_mm_to_px"])), np.asarray(ts[0]["corners_px"]))
            ref = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
            errors.extend(np.linalg.norm(mm - ref, axis=1) * SIZE / (x1 - x0))
    return visible, recovered, wrong, errors


def test_typical_many_seeds_exact_and_never_wrong(run_ws):
    ws = run_ws
    visible = recovered = wrong = 0
    errors, exif_tags = [], set()
    for seed in range(12):
        sim = simulate.simulate_run(ws, "g", preset="typical", seed=seed, resolution=(1200, 900), force=True,
                                    photos_per_page=2 if seed == 0 else 1)
        state = ingest.ingest_run(ws, "g", workers=2)  # 4 photos: through the process pool
        v, r, w, e = _score(ws, "g", sim, state)
        visible, recovered, wrong, errors = visible + v, recovered + r, wrong + w, errors + e
        exif_tags |= {p["exif_orientation"] for p in sim["photos"]}
        if seed == 0:
            assert len(state["photos"]) == 4 and any(c["file"].endswith("-2.png") for c in state["crops"])
        # contract: exactly one used crop per (image, variant); files exist at the model input size
        used = [(c["image_id"], c["variant"]) for c in state["crops"] if c["used"]]
        assert len(used) == len(set(used)) == len({(c["image_id"], c["variant"]) for c in state["crops"]})
        for c in state["crops"]:
            assert Image.open(ws.captures("g") / c["file"]).size == (SIZE, SIZE)
    assert visible >= 90
    assert recovered >= 0.99 * visible
    assert wrong == 0
    assert np.mean(errors) <= 1.0 and np.max(errors) <= 2.0
    assert exif_tags - {1}  # some photos stored rotated pixels + an EXIF tag, and were read right


def test_mild_crop_looks_like_the_clean_png(run_ws):
    ws = run_ws
    simulate.simulate_run(ws, "g", preset="mild", seed=5, resolution=(1200, 900), force=True)
    state = ingest.ingest_run(ws, "g")
    man = ws.load_manifest("g").dump()
    pngs = {im["id"]: np.asarray(Image.open(ws.printouts("g") / im["variants"]["clean"]["file"])).astype(float)
            for im in man["images"]}
    clean_crops = [c for c in state["crops"] if c["variant"] == "clean" and c["used"]]
    assert len(clean_crops) == len(pngs)
    for c in clean_crops:
        crop = np.asarray(Image.open(ws.captures("g") / c["file"]).convert("RGB")).astype(float)
        own = min(np.corrcoef(crop[..., k].ravel(), pngs[c["image_id"]][..., k].ravel())[0, 1] for k in range(3))
        others = max(np.corrcoef(crop[..., 0].ravel(), png[..., 0].ravel())[0, 1]
                     for i, png in pngs.items() if i != c["image_id"])
        assert own > 0.95 and own > others + 0.2
        # the printer/camera tone change is mild: a level stretch brings it back within a few levels
        for k in range(3):
            a, b = np.polyfit(crop[..., k].ravel(), pngs[c["image_id"]][..., k].ravel(), 1)
            assert np.abs(a * crop[..., k] + b - pngs[c["image_id"]][..., k]).mean() < 8


def test_several_photos_keep_all_crops_and_use_the_sharpest(run_ws, tmp_path):
    ws = run_ws
    sim = simulate.simulate_run(ws, "g", preset="typical", seed=21, resolution=(1000, 750), photos_per_page=2,
                                pages=[1], force=True)
    photos = ws.captures("g") / "photos"
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    shutil.copy(photos / sim["photos"][0]["file"].split("/")[1], first)
    state1 = ingest.ingest_run(ws, "g", first, force=True)
    files1 = {c["file"]: (ws.captures("g") / c["file"]).read_bytes() for c in state1["crops"]}
    assert files1 and all("-" not in f.split("/")[-1].replace("fgsm-eps16", "") for f in files1)
    # a new folder with the old photo again plus a second photo of the same sheet: only the new one is read
    shutil.copytree(first, second)
    shutil.copy(photos / sim["photos"][1]["file"].split("/")[1], second)
    state2 = ingest.ingest_run(ws, "g", second)
    assert state2["last_session"]["new"] == 1 and state2["last_session"]["already_ingested"] == 1
    assert len(state2["photos"]) == 2
    for name, data in files1.items():  # earlier crops untouched
        assert (ws.captures("g") / name).read_bytes() == data
    by_key = {}
    for c in state2["crops"]:
        by_key.setdefault((c["image_id"], c["variant"]), []).append(c)
    assert any(len(v) == 2 for v in by_key.values())
    for (image_id, variant), crops in by_key.items():
        names = sorted((c["file"] for c in crops), key=len)
        assert names[0] == f"crops/{image_id}/{variant}.png"
        if len(crops) == 2:
            assert names[1] == f"crops/{image_id}/{variant}-2.png"
        assert sum(c["used"] for c in crops) == 1
        assert max(crops, key=lambda c: c["sharpness"])["used"]


def _png_claiming(width, height) -> bytes:
    """A PNG whose header says width x height (its data is 1 pixel): a decompression bomb's header."""
    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr) & 0xFFFFFFFF)
    return bytes(data)


def test_bad_inputs_each_recorded_with_a_reason(run_ws, tmp_path):
    ws = run_ws
    sim = simulate.simulate_run(ws, "g", preset="mild", seed=2, resolution=(1000, 750), pages=[1], force=True)
    good = (ws.captures("g") / sim["photos"][0]["file"]).read_bytes()
    # another run's sheet, same images: its markers must not be read as ours
    other = make_fake_run(tmp_path / "other", run="other", ids=("a", "b"), size=SIZE)
    layout_mod.make_layout(other, "other", image_mm=60)
    osim = simulate.simulate_run(other, "other", preset="mild", seed=2, resolution=(1000, 750), pages=[1])
    d = tmp_path / "photos"
    d.mkdir()
    (d / "good.jpg").write_bytes(good)
    (d / "notes.txt").write_text("not a photo")
    (d / "other-run.jpg").write_bytes((other.captures("other") / osim["photos"][0]["file"]).read_bytes())
    (d / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (d / "huge.png").write_bytes(_png_claiming(30000, 30000))
    noise = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noise).save(buf, format="JPEG")
    (d / "no-markers.jpg").write_bytes(buf.getvalue())
    state = ingest.ingest_run(ws, "g", d, force=True)
    reasons = {p["file"].rsplit("/", 1)[-1]: (p["status"], p["reason"]) for p in state["photos"]}
    assert reasons["good.jpg"] == ("accepted", None)
    assert reasons["notes.txt"][1].startswith("not an image")
    assert reasons["other-run.jpg"][1].startswith("markers of another run")
    assert reasons["truncated.jpg"][1].startswith("unreadable")
    assert reasons["huge.png"][1].startswith("over decompression limit")
    assert reasons["no-markers.jpg"][1] == "no markers found"
    assert all(r[0] == "rejected" for f, r in reasons.items() if f != "good.jpg")
    assert {c["photo"].rsplit("/", 1)[-1] for c in state["crops"]} == {"good.jpg"}
    line = ingest.summary_line(state)
    for part in ("6 photos read", "1 accepted", "5 rejected", "not an image", "markers of another run",
                 "unreadable", "over decompression limit", "no markers found"):
        assert part in line


def test_partly_out_of_frame_is_refused(run_ws, tmp_path):
    """A photo cut through an image: that image is refused with the reason, the others kept."""
    ws = run_ws
    sim = simulate.simulate_run(ws, "g", preset="mild", seed=4, resolution=(1200, 900), pages=[1], force=True)
    photo = sim["photos"][0]
    path = ws.captures("g") / photo["file"]
    im = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
    slot = photo["slots"][0]
    xs = [p[0] for p in slot["corners_px"]]
    cut = int(min(xs) + 0.6 * (max(xs) - min(xs)))  # the frame ends 60 % across the first image
    keep = [s for s in photo["slots"] if min(p[0] for p in s["corners_px"]) > cut + 60]
    d = tmp_path / "cut"
    d.mkdir()
    arr = np.asarray(im).copy()
    arr = arr[:, cut:] if min(xs) < im.size[0] / 2 else arr[:, :cut]
    if min(xs) >= im.size[0] / 2:
        keep = [s for s in photo["slots"] if max(p[0] for p in s["corners_px"]) < cut - 60]
    Image.fromarray(arr).save(d / "cut.jpg", quality=95)
    state = ingest.ingest_run(ws, "g", d, force=True)
    rec = state["photos"][0]
    refused = {(s["image_id"], s["variant"]): s["reason"] for s in rec.get("slots_rejected", [])}
    got = {(c["image_id"], c["variant"]) for c in state["crops"]}
    key = (slot["image_id"], slot["variant"])
    assert key not in got
    assert refused.get(key) == "image partly out of frame" or rec["reason"] == "image partly out of frame"
    assert {(s["image_id"], s["variant"]) for s in keep} <= got


def test_heic_photo_is_ingested_like_the_jpeg_with_its_orientation(run_ws, tmp_path):
    """A HEIC photo (what iPhones send; written by pillow-heif from a simulated photo, stored
    pixels turned and EXIF orientation 6) gives the images at the same corners as the same
    photo as a JPEG, both against the simulator's truth."""
    import pillow_heif   # a dependency (setup.cfg)

    pillow_heif.register_heif_opener()
    ws = run_ws
    sim = simulate.simulate_run(ws, "g", preset="mild", seed=4, resolution=(1200, 900), pages=[1], force=True)
    truth = sim["photos"][0]
    shown = np.asarray(ImageOps.exif_transpose(Image.open(ws.captures("g") / truth["file"])).convert("RGB"))
    stored = np.ascontiguousarray(np.rot90(shown, 1))     # tag 6: displayed = stored turned 90° clockwise
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x0110] = "test phone"
    d = tmp_path / "heic"
    d.mkdir()
    Image.fromarray(stored).save(d / "IMG_0001.jpg", quality=95, exif=exif.tobytes())
    Image.fromarray(stored).save(d / "IMG_0001.HEIC", format="HEIF", quality=95, exif=exif.tobytes())
    heic = (d / "IMG_0001.HEIC").read_bytes()
    assert heic[4:12] == b"ftypheic"
    assert np.asarray(Image.open(d / "IMG_0001.HEIC")).shape == shown.shape   # pillow-heif applied it
    state = ingest.ingest_run(ws, "g", d, force=True)
    recs = {Path(p["file"]).suffix: p for p in state["photos"]}
    assert recs[".HEIC"]["status"] == recs[".jpg"]["status"] == "accepted"
    assert recs[".HEIC"]["size"] == recs[".jpg"]["size"] == [shown.shape[1], shown.shape[0]]
    want = {s["slot"]: np.asarray(s["corners_px"]) for s in truth["slots"] if s["fully_visible"]}
    for suffix in (".jpg", ".HEIC"):
        crops = {c["slot"]: c for c in state["crops"] if c["photo"].endswith(suffix)}
        assert sorted(crops) == sorted(want)
        for slot, c in crops.items():
            assert np.abs(np.asarray(c["corners_px"]) - want[slot]).max() < 1.0, (suffix, slot)


def test_orientation_matrix_matches_pil_exif_transpose():
    rng = np.random.default_rng(0)
    stored = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    for tag in range(1, 9):
        im = Image.fromarray(stored)
        exif = Image.Exif()
        exif[0x0112] = tag
        buf = io.BytesIO()
        im.save(buf, format="PNG", exif=exif.tobytes())
        shown = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(buf.getvalue()))))
        M, size = ingest.orientation_matrix(tag, (7, 5))
        assert size == (shown.shape[1], shown.shape[0])
        np.testing.assert_array_equal(ingest._to_displayed(stored, tag), shown)
        # every stored pixel centre lands on the displayed pixel holding the same value
        for y in range(5):
            for x in range(7):
                dx, dy = ingest._transform(M, [[x + 0.5, y + 0.5]])[0] - 0.5
                assert (shown[int(round(dy)), int(round(dx))] == stored[y, x]).all()


def test_cli_exit_codes(run_ws, tmp_path):
    ws = run_ws
    empty = tmp_path / "empty"
    empty.mkdir()
    r = CliRunner().invoke(main, ["-w", str(ws.root), "ingest", "--run", "g", "--photos", str(empty), "--force"])
    assert r.exit_code == 1 and "no usable photo" in r.output and "0 photos read" in r.output
    assert read_json(ws.captures("g") / "ingest.json")["sessions"][-1]["note"].startswith("no files")
    r = CliRunner().invoke(main, ["-w", str(ws.root), "ingest", "--run", "g", "--photos", str(tmp_path / "nope")])
    assert r.exit_code == 1 and "does not exist" in r.output and "Traceback" not in r.output
    simulate.simulate_run(ws, "g", preset="mild", seed=9, resolution=(800, 600), pages=[2], force=True)
    (ws.captures("g") / "photos" / "junk.bin").write_bytes(b"\x00" * 100)
    r = CliRunner().invoke(main, ["-w", str(ws.root), "ingest", "--run", "g"])
    assert r.exit_code == 0, r.output
    assert "2 photos read" in r.output and "1 accepted" in r.output and "1 rejected (1 not an image)" in r.output
    (ws.captures("g") / "photos" / "junk.bin").unlink()


def test_pool_and_one_process_give_the_same_records_and_crops(run_ws):
    """The pool (workers, and this process taking photos from the queue's end while they start)
    changes nothing: the same records in the same order and the same crop files, byte for byte."""
    ws = run_ws
    simulate.simulate_run(ws, "g", preset="typical", seed=3, resolution=(1200, 900), force=True, photos_per_page=3)
    runs = []
    for workers in (1, 2):
        state = ingest.ingest_run(ws, "g", workers=workers, force=True)
        photos = [{k: v for k, v in p.items() if k not in ("seconds", "cpu_seconds")} for p in state["photos"]]
        files = {c["file"]: (ws.captures("g") / c["file"]).read_bytes() for c in state["crops"]}
        runs.append((photos, state["crops"], files, state["summary"]))
    assert len(runs[0][0]) == 6 and runs[0][1]
    assert runs[0] == runs[1]



def test_pool_workers_run_the_callers_physical_whatever_the_working_directory(tmp_path):
    """The forkserver runs `python -c`, so its sys.path starts with the working directory: from a
    folder holding another `physical` (a checkout's root), the workers imported that one."""
    cwd = tmp_path / "checkout"
    (cwd / "physical").mkdir(parents=True)
    (cwd / "physical" / "__init__.py").write_text("# another checkout's physical\n")
    script = tmp_path / "where.py"
    script.write_text("from concurrent.futures import ProcessPoolExecutor\nfrom physical import ingest_pool\n"
                      "def where(_):\n    import physical\n    return physical.__file__\n"
                      "if __name__ == '__main__':\n    ingest_pool.start_forkserver()\n"
                      "    with ProcessPoolExecutor(1, mp_context=ingest_pool.pool_context()) as pool:\n"
                      "        print(pool.submit(where, 0).result())\n")
    ours = Path(ingest.__file__).resolve().parent
    out = subprocess.run([sys.executable, str(script)], cwd=cwd, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ours.parent)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert Path(out.stdout.strip()).resolve() == ours / "__init__.py"


def test_ingest_processes_ask_numpy_for_no_huge_pages():
    """While ingest's pool runs (freed_memory_kept; keep_freed_memory in workers, for good) numpy
    does not madvise huge pages for its large arrays (the kernel's compaction cost ~13 ms of
    system CPU a photo while a fresh process's heap grows); afterwards the setting is back."""
    from physical import heap

    before = heap.numpy_hugepages(True)
    assert before is not None   # numpy has the switch
    try:
        with heap.freed_memory_kept():
            assert heap.numpy_hugepages(False) is False
        assert heap.numpy_hugepages(True) is True
    finally:
        heap.numpy_hugepages(before)

def test_ingest_json_is_readable_after_each_photo_and_indented_at_the_end(run_ws):
    from physical import records

    ws = run_ws
    simulate.simulate_run(ws, "g", preset="typical", seed=4, resolution=(1200, 900), force=True)

    class Stop(Exception):
        pass

    def stop(_):
        raise Stop

    with pytest.raises(Stop):   # interrupted after the first photo
        ingest.ingest_run(ws, "g", workers=1, force=True, progress=stop)
    text = ws.ingest_path("g").read_text()
    assert len(text.splitlines()) == 1   # the rewrites after each photo are one line (fast to write)
    assert len(records.read(records.INGEST, ws, "g").dump()["photos"]) == 1
    state = ingest.ingest_run(ws, "g", workers=1)   # goes on with the other photo
    assert len(state["photos"]) == 2
    assert len(ws.ingest_path("g").read_text().splitlines()) > 100   # the last write is indented



def test_small_markers_missed_by_the_fast_pass_are_found_without_the_tuned_detector(tmp_path):
    """A whole sheet from afar (markers ~13 px on a 2000 px photo, at the fast pass's smallest
    perimeter, so it misses some): the next pass also looks for smaller markers ("fast-small") and
    finds every marker the tuned detector finds, at a fraction of its cost; crops within a source
    pixel of the truth, as always."""
    ws = make_fake_run(tmp_path, run="g", ids=("a", "b", "c", "d"), size=SIZE)
    layout_mod.make_layout(ws, "g", image_mm=25, layout_id="5e11a11ae7c0ffee")   # 8 images, 5 mm markers; fixed ids
    sim = simulate.simulate_run(ws, "g", preset="typical", seed=0, resolution=(2000, 1500), photos_per_page=3)
    state = ingest.ingest_run(ws, "g", workers=1)
    visible, recovered, wrong, errors = _score(ws, "g", sim, state)
    assert visible == recovered and wrong == 0 and max(errors) < 1.0
    far = [p for p in state["photos"] if p["detect_pass"] == "fast-small"]
    assert far and all(p["status"] == "accepted" for p in far)
    layout = read_json(ws.layout_path("g"))
    for p in far:
        bgr, tag = ingest.read_photo((ws.captures("g") / p["file"]).read_bytes())
        dets, _, how = ingest.find_markers(bgr, tag, layout)
        grey = ingest._displayed_copy(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), tag, how["scale"])
        fast = ingest._fast_detect(grey, markers.layout_ids(layout))
        tuned = ingest._to_full(markers.detect(grey, markers.layout_ids(layout)), how["scale"])
        assert len(fast) < len(dets) == len(tuned)   # the fast pass alone missed markers
        assert sorted(d.id for d in dets) == [d.id for d in tuned]   # and found all the tuned detector finds


def test_harsh_fails_some_photos_honestly_and_never_wrongly(run_ws):
    ws = run_ws
    failures, wrong, crops = [], 0, 0
    for seed in range(3):
        sim = simulate.simulate_run(ws, "g", preset="harsh", seed=seed, resolution=(1000, 750), force=True)
        state = ingest.ingest_run(ws, "g", workers=1)
        _, _, w, _ = _score(ws, "g", sim, state)
        wrong += w
        crops += len(state["crops"])
        for p in state["photos"]:
            if p["status"] == "rejected":
                failures.append(p["reason"])
            failures += [s["reason"] for s in p.get("slots_rejected", [])]
    assert wrong == 0 and crops > 0
    assert failures and all(isinstance(r, str) and r for r in failures)
