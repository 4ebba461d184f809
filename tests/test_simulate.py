"""The print + phone simulator: geometry exact against its own ground truth, EXIF as PIL reads
it, the real PDF rendered (markers where layout.json says), deterministic per seed."""
from __future__ import annotations

import io
import math

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageOps

from conftest import make_fake_run
from physical import layout as layout_mod
from physical import simulate
from physical.cli import main
from physical.errors import PhysicalError
from physical.workspace import read_json


@pytest.fixture(scope="module")
def sim_run(tmp_path_factory):
    ws = make_fake_run(tmp_path_factory.mktemp("sim"), run="s", ids=("a", "b"), size=64)
    layout_mod.make_layout(ws, "s", image_mm=60)
    return ws


def _cam(**kw):
    cam = simulate.draw_camera(np.random.default_rng(0), "typical")
    cam.update(tilt_deg=0.0, roll_deg=0.0, fill=0.8, position=[0.5, 0.5], k1=0.0, k2=0.0)
    cam.update(kw)
    return cam


def test_camera_fill_and_position():
    page = (210.0, 297.0)
    for tilt, roll, fill in [(0, 0, 0.8), (25, 30, 0.6), (30, 200, 0.5)]:
        cam = _cam(tilt_deg=tilt, roll_deg=roll, fill=fill, position=[0.0, 1.0])
        H = simulate.camera_homography(page, (1600, 1200), cam)
        box = simulate._project(H, [[0, 0], [210, 0], [210, 297], [0, 297]])
        span = max((box[:, 0].max() - box[:, 0].min()) / 1600, (box[:, 1].max() - box[:, 1].min()) / 1200)
        assert span == pytest.approx(fill, abs=0.01)
        assert box[:, 0].min() == pytest.approx(0, abs=1e-6)      # position 0: flush left
        assert box[:, 1].max() == pytest.approx(1200, abs=1e-6)   # position 1: flush bottom
    # no tilt, no roll: a pure scale + shift, same scale on both axes
    H = simulate.camera_homography(page, (1600, 1200), _cam())
    assert abs(H[2, 0]) < 1e-12 and abs(H[2, 1]) < 1e-12 and H[0, 0] == pytest.approx(H[1, 1])
    assert abs(H[0, 1]) < 1e-12


def test_distortion_round_trip():
    dist = simulate.distortion_of((1600, 1200), {"k1": 0.05, "k2": -0.01})
    pts = np.random.default_rng(1).uniform([0, 0], [1600, 1200], size=(200, 2))
    np.testing.assert_allclose(simulate.undistort(simulate.distort(pts, dist), dist), pts, atol=1e-6)
    assert np.linalg.norm(simulate.distort(pts, dist) - pts, axis=1).max() > 5  # it does distort


def test_warp_map_matches_exact_mapping():
    """The coarse-grid map is the exact photo → page mapping to 0.02 px wherever the page is
    (frame borders included); far off the page, towards the horizon, it may bend."""
    frame, s = (1000, 750), (5.0, 5.0)
    cam = _cam(tilt_deg=28, tilt_azimuth_deg=40, roll_deg=5, k1=0.05, fill=1.4)  # page overflows the frame
    H = simulate.camera_homography((210, 297), frame, cam)
    dist = simulate.distortion_of(frame, cam)
    mx, my = simulate._warp_maps(H, dist, frame, s)
    ys, xs = np.mgrid[0:750:7, 0:1000:7]
    ys = np.concatenate([ys.ravel(), [0, 749, 0, 749]])
    xs = np.concatenate([xs.ravel(), [0, 0, 999, 999]])
    mm = simulate._project(np.linalg.inv(H), simulate.undistort(np.column_stack([xs + 0.5, ys + 0.5]), dist))
    on = (mm[:, 0] > -5) & (mm[:, 0] < 215) & (mm[:, 1] > -5) & (mm[:, 1] < 302)
    assert on.sum() > 5000 and on[(ys == 0) | (ys == 749)].sum() > 50  # frame edges on the page too
    assert np.abs(mx[ys, xs] - (mm[:, 0] * 5 - 0.5))[on].max() < 0.02
    assert np.abs(my[ys, xs] - (mm[:, 1] * 5 - 0.5))[on].max() < 0.02


@pytest.mark.parametrize("tag", [1, 3, 6, 8])
def test_exif_orientation_is_what_pil_displays(tag):
    img = np.zeros((60, 80, 3), np.uint8)
    img[:20, :20] = (0, 0, 255)   # red block at the displayed top-left (BGR)
    data = simulate.encode_jpeg(img, 95, tag)
    im = Image.open(io.BytesIO(data))
    assert im.getexif().get(0x0112) == tag
    stored = np.asarray(im)
    assert stored.shape[:2] == ((60, 80) if tag in (1, 3) else (80, 60))
    shown = np.asarray(ImageOps.exif_transpose(im))
    assert shown.shape[:2] == (60, 80)
    assert shown[:20, :20, 0].mean() > 200 and shown[40:, 60:, 0].mean() < 30


def test_simulated_photo_shows_the_pdf_where_truth_says(sim_run):
    """Markers (black) and the image (the PNG's colours) appear where page_to_photo puts them."""
    ws = sim_run
    result = simulate.simulate_run(ws, "s", preset="mild", seed=3, resolution=(1200, 900), force=True)
    lay = read_json(ws.layout_path("s"))
    assert len(result["photos"]) == len(lay["pages"])
    assert result["pages"][0]["render_dpi"] < 300   # just what 1200x900 needs, not 600 dpi
    photo = result["photos"][0]
    im = ImageOps.exif_transpose(Image.open(ws.captures("s") / photo["file"]))
    assert list(im.size) == photo["size"] and max(im.size) == 1200
    rgb = np.asarray(im.convert("RGB")).astype(float)
    slot = lay["pages"][0]["slots"][0]
    paper = rgb.reshape(-1, 3)[np.argsort(rgb.reshape(-1, 3).sum(1))[-1000:]].mean(0)
    for marker in slot["markers"]:
        # the marker's black border: 1/16 of its side in from the TL corner along the diagonal
        c = np.asarray(marker["corners_mm"])
        p = simulate.page_to_photo([c[0] + (c[2] - c[0]) / 16], photo)[0]
        assert rgb[int(p[1]), int(p[0])].mean() < 0.45 * paper.mean()
    # the printed image: compare the photo sampled at pixel centres of the PNG with the PNG
    x0, y0, x1, y1 = slot["rect_mm"]
    png = np.asarray(Image.open(ws.printouts("s") / slot["file"]).convert("RGB")).astype(float)
    jj, ii = np.mgrid[8:56:4, 8:56:4]
    mm = np.column_stack([x0 + (ii.ravel() + 0.5) * (x1 - x0) / 64, y0 + (jj.ravel() + 0.5) * (y1 - y0) / 64])
    px = simulate.page_to_photo(mm, photo)
    maps = (px - 0.5).astype(np.float32).reshape(-1, 1, 2)  # corner → index convention
    seen = cv2.remap(rgb.astype(np.float32), maps, None, cv2.INTER_LINEAR).reshape(-1, 3)
    ref = png[jj.ravel(), ii.ravel()]
    for k in range(3):
        assert np.corrcoef(seen[:, k], ref[:, k])[0, 1] > 0.9


def test_deterministic_and_force(sim_run):
    ws = sim_run
    a = simulate.simulate_run(ws, "s", preset="typical", seed=11, resolution=(640, 480), force=True)
    with pytest.raises(PhysicalError, match="--force"):
        simulate.simulate_run(ws, "s", preset="typical", seed=11, resolution=(640, 480))
    b = simulate.simulate_run(ws, "s", preset="typical", seed=11, resolution=(640, 480), force=True)
    c = simulate.simulate_run(ws, "s", preset="typical", seed=12, resolution=(640, 480), force=True)
    assert [p["sha256"] for p in a["photos"]] == [p["sha256"] for p in b["photos"]]
    assert [p["sha256"] for p in a["photos"]] != [p["sha256"] for p in c["photos"]]
    files = sorted(p.name for p in (ws.captures("s") / "photos").iterdir())
    assert files == sorted(p["file"].split("/")[1] for p in c["photos"])  # old photos replaced, not kept


def test_presets_differ_in_degradation():
    rng = np.random.default_rng(0)
    mild = [simulate.draw_camera(rng, "mild") for _ in range(200)]
    harsh = [simulate.draw_camera(rng, "harsh") for _ in range(200)]
    assert max(c["tilt_deg"] for c in mild) <= 12 and max(c["tilt_deg"] for c in harsh) > 30
    assert np.mean([c["defocus_px"] for c in harsh]) > 4 * np.mean([c["defocus_px"] for c in mild])
    assert any(c["exif_orientation"] != 1 for c in mild)      # sometimes a tag instead of rotated pixels
    rolls = np.array([c["roll_deg"] for c in mild])
    assert rolls.min() >= 0 and rolls.max() < 360 and np.histogram(rolls, 4, (0, 360))[0].min() > 20


def test_errors(tmp_path):
    ws = make_fake_run(tmp_path, run="x")
    with pytest.raises(PhysicalError, match="physical layout"):
        simulate.simulate_run(ws, "x")
    with pytest.raises(PhysicalError, match="unknown preset"):
        simulate.simulate_run(ws, "x", preset="extreme")
    with pytest.raises(PhysicalError, match="WIDTHxHEIGHT"):
        simulate.parse_resolution("big")
    assert simulate.parse_resolution("1200x1600") == (1600, 1200)


def test_cli(sim_run):
    ws = sim_run
    r = CliRunner().invoke(main, ["-w", str(ws.root), "simulate", "--run", "s", "--resolution", "640x480",
                                  "--photos-per-page", "2", "--seed", "1", "--force"])
    assert r.exit_code == 0, r.output
    n_pages = len(read_json(ws.layout_path("s"))["pages"])
    assert f"simulated {2 * n_pages} photo(s)" in r.output
    assert len(list((ws.captures("s") / "photos").glob("sim-p*.jpg"))) == 2 * n_pages
    r = CliRunner().invoke(main, ["-w", str(ws.root), "simulate", "--run", "s"])
    assert r.exit_code == 1 and "--force" in r.output and "Traceback" not in r.output
    assert math.isfinite(read_json(ws.captures("s") / "simulated.json")["photos"][0]["camera"]["tilt_deg"])


@pytest.mark.parametrize("length,angle", [(1.2, 0), (2.5, 37), (3.9, 111), (14, 170)])
def test_motion_blur_shifts_nothing(length, angle):
    """A blur kernel off-centre by half a pixel moved every simulated point (found the hard way:
    a 0.5 px bias in corner errors at 12 MP)."""
    k = simulate._line_kernel(length, angle)
    m = k.shape[0]
    assert m % 2 == 1 and k.sum() == pytest.approx(1)
    yy, xx = np.mgrid[0:m, 0:m]
    assert abs((k * xx).sum() - (m - 1) / 2) < 1e-6 and abs((k * yy).sum() - (m - 1) / 2) < 1e-6
    d = np.array([math.cos(math.radians(angle)), math.sin(math.radians(angle))])
    along = np.sqrt((k * ((xx - (m - 1) / 2) * d[0] + (yy - (m - 1) / 2) * d[1]) ** 2).sum())
    assert along == pytest.approx(length / math.sqrt(12), abs=0.25)
