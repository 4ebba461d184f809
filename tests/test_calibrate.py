"""Calibration: the chart (ids no sheet uses, patches where chart.json says), the fit recovering
printer and camera settings unlike any preset from simulated photos, simulate --profile, the
printable gamut, and bad input as one line."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import make_fake_run
from physical import calibrate, chart, markers, simulate
from physical import layout as layout_mod
from physical.cli import main
from physical.errors import PhysicalError
from physical.workspace import read_json

# Two devices unlike every preset: gamma below all of them, less saturation, darker paper, a
# blacker black than mild/typical, more ink spread than harsh, noisier than typical.
DEVICES = {
    0: ({"gamma": 0.9, "paper_white_bgr": [0.93, 0.88, 0.86], "black": 0.12, "saturation": 0.75, "ink_blur_mm": 0.18},
        {"shot_noise": 0.8, "read_noise": 3.5, "jpeg_quality": 80, "defocus_px": 0.0, "motion_px": 0.0}),
    1: ({"gamma": 1.6, "paper_white_bgr": [0.84, 0.9, 0.95], "black": 0.02, "saturation": 1.05, "ink_blur_mm": 0.26},
        {"shot_noise": 0.3, "read_noise": 5.0, "jpeg_quality": 90, "defocus_px": 0.0, "motion_px": 0.0}),
}


@pytest.fixture(scope="module")
def chart_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("chart")
    chart.write_chart(d, "a4")
    return d


@pytest.fixture(scope="module")
def fitted(chart_dir, tmp_path_factory):
    """seed → (truth, profile, report lines); seed 0 through the CLI."""
    out = {}
    for seed, (pr, cam) in DEVICES.items():
        photos = tmp_path_factory.mktemp(f"photos{seed}")
        truth = calibrate.simulate_chart_photos(chart_dir, photos, printer=pr, camera=cam, seed=seed, n=2,
                                                resolution=(1600, 1200))
        prof_path = photos.parent / f"profile{seed}.json"
        if seed == 0:
            res = CliRunner().invoke(main, ["calibrate", "fit", "--photos", str(photos), "--out", str(prof_path)])
            assert res.exit_code == 0, res.output
            lines = res.output.splitlines()
        else:
            profile, lines = calibrate.fit(photos)
            calibrate.write_profile(profile, prof_path)
        out[seed] = (truth, read_json(prof_path), lines, prof_path, photos)
    return out


def test_chart_ids_are_never_printed_on_a_sheet():
    ids_a4, ids_letter = set(chart._ids("a4")), set(chart._ids("letter"))
    assert len(ids_a4) == len(ids_letter) == 18 and not ids_a4 & ids_letter
    assert chart.chart_ids() == ids_a4 | ids_letter
    assert all(markers.split_id(i) is None for i in chart.chart_ids())
    for run in ("r1", "demo", "x" * 40):
        for n in range(0, markers.MAX_SLOTS, 7):
            assert not set(markers.slot_ids(n, run)) & chart.chart_ids()


def test_chart_contents_and_pdf(chart_dir):
    doc = read_json(chart_dir / "chart.json")
    kinds = {}
    for p in doc["patches"]:
        kinds[p["kind"]] = kinds.get(p["kind"], 0) + 1
    assert kinds["cube"] == 216 and kinds["grey"] == 24 and kinds["primary"] >= 6
    assert kinds["cube"] + kinds["grey"] + kinds["primary"] >= 200
    assert kinds["white"] >= 20 and kinds["flat"] >= 4 and len(doc["edges"]) >= 4
    assert doc["chart_id"] == chart.chart_spec("a4")["chart_id"] != chart.chart_spec("letter")["chart_id"]
    # whites spread over the patch area (which spans most of the page)
    wc = calibrate._centres([p for p in doc["patches"] if p["kind"] == "white"])
    assert np.ptp(wc[:, 0]) > 120 and np.ptp(wc[:, 1]) > 140
    # rendered: every marker where chart.json says, every patch its digital colour
    import pypdfium2

    pdf = pypdfium2.PdfDocument(str(chart_dir / "chart.pdf"))
    img, (sx, sy) = simulate.render_pdf_page(pdf, 0, 100)
    pdf.close()
    dets = {d.id: d for d in markers.detect(img)}
    for m in doc["markers"]["list"]:
        assert m["id"] in dets
        np.testing.assert_allclose(dets[m["id"]].corners_px, np.asarray(m["corners_mm"]) * [sx, sy], atol=1.5)
    rgb = img[..., ::-1]
    for p in doc["patches"]:
        x0, y0, x1, y1 = p["rect_mm"]
        v = rgb[int((y0 + y1) / 2 * sy), int((x0 + x1) / 2 * sx)]
        np.testing.assert_allclose(v, p["rgb"], atol=1)


@pytest.mark.parametrize("seed", sorted(DEVICES))
def test_fit_recovers_a_device_unlike_any_preset(fitted, seed):
    truth, prof, lines, _, _ = fitted[seed]
    pr, cam = DEVICES[seed]
    assert prof["heldout"]["n"] >= 40
    assert prof["heldout"]["mean_de00"] <= 2.0, prof["heldout"]
    assert any("held-out" in line and "CIEDE2000" in line for line in lines)
    assert prof["blur"]["sigma_mm"] == pytest.approx(pr["ink_blur_mm"], rel=0.2)
    n = prof["noise"]
    for row in n["levels"]:
        for v, s in zip(row["level_rgb"], row["sigma"]):
            if 10 < v < 245:
                true = np.sqrt(cam["shot_noise"] * v + cam["read_noise"] ** 2)
                fitted_sigma = np.sqrt(n["shot"] * v + n["read"] ** 2)
                assert fitted_sigma == pytest.approx(true, rel=0.25), (v, s, true)
    assert prof["jpeg"]["quality"] == cam["jpeg_quality"]
    assert prof["chart"]["version"] == chart.CHART_VERSION and prof["chart"]["id"] == chart.chart_spec("a4")["chart_id"]
    # nothing out of frame; device 1's darkest patches (black 0.02, γ 1.6) clip at 0 and are excluded
    assert prof["patches"]["missing"] == 0
    assert prof["patches"]["present"] >= prof["patches"]["colour"] - prof["patches"]["clipped_patches"]
    calibrate.load_profile(fitted[seed][3])          # valid record


def test_paper_white_and_tone_follow_the_printer(fitted):
    """Tone at 255 is the paper white, at 0 the ink black, both as captured (within the light)."""
    _, prof, _, _, _ = fitted[1]
    cm = calibrate.ColourModel.from_dict(prof["colour"])
    white, black = cm(np.array([[255.0, 255, 255], [0, 0, 0]]))
    ratio = white / white.max()
    pr = DEVICES[1][0]
    expected = np.array(pr["paper_white_bgr"][::-1]) / max(pr["paper_white_bgr"])
    assert np.allclose(ratio, expected, atol=0.03)      # light's white balance is mild
    assert black.max() < 0.1 * white.max()


def test_chart_photo_is_not_a_sheet_and_a_sheet_is_not_a_chart(fitted, tmp_path):
    from physical import ingest

    ws = make_fake_run(tmp_path, run="s", ids=("a", "b"), size=64)
    layout_mod.make_layout(ws, "s", image_mm=60)
    layout = read_json(ws.layout_path("s"))
    _, _, _, _, photos = fitted[0]
    img, _ = calibrate.read_photo(photos / "chart-1.jpg")
    ident = markers.identify(markers.detect(img[..., ::-1].copy()), layout)
    assert ident.status != markers.STATUS_OK
    res = ingest.ingest_run(ws, "s", photos)
    assert all(p["status"] == "rejected" for p in res["photos"]) and not [c for c in res["crops"] if c.get("used")]
    # the other way: a photo of the run's sheet given to fit
    simulate.simulate_run(ws, "s", preset="mild", resolution=(1200, 900))
    with pytest.raises(PhysicalError, match="no photo .* shows the calibration chart") as e:
        calibrate.fit(ws.captures("s") / "photos")
    assert "\n" not in str(e.value)


def test_partly_out_of_frame_and_clipped(chart_dir, tmp_path):
    pr, cam = DEVICES[1]                    # ink black 0.02, γ 1.6: under-exposed, the darks clip at 0
    cam = {**cam, "fill": 0.7, "position": [0.5, -0.5], "tilt_deg": 0.0, "roll_deg": 0.0, "portrait": True,
           "exif_orientation": 1, "exposure": 0.8}
    calibrate.simulate_chart_photos(chart_dir, tmp_path, printer=pr, camera=cam, seed=3, n=1, resolution=(1600, 1200))
    profile, lines = calibrate.fit(tmp_path)
    text = "\n".join(lines)
    assert "partly out of frame" in text and "patches present" in text
    assert profile["patches"]["missing"] > 0 and profile["patches"]["present"] < profile["patches"]["colour"]
    assert "clipped" in text and profile["patches"]["clipped_excluded"] > 0
    assert profile["photos"][0]["patches_clipped"] == profile["patches"]["clipped_excluded"]
    # over-exposed: paper white clipped everywhere → the photo is skipped, and saying why is one line
    over = tmp_path / "over"
    calibrate.simulate_chart_photos(chart_dir, over, printer=pr, camera={**cam, "exposure": 1.4, "fill": 0.8},
                                    seed=4, n=1, resolution=(1200, 900))
    with pytest.raises(PhysicalError, match="no usable chart photo .*over-exposed") as e:
        calibrate.fit(over)
    assert "\n" not in str(e.value)


def test_bad_input_is_one_line(tmp_path, fitted):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PhysicalError, match="no photos"):
        calibrate.fit(empty)
    (tmp_path / "noise.jpg").write_bytes(b"")
    blank = tmp_path / "blank"
    blank.mkdir()
    from PIL import Image

    Image.fromarray(np.full((300, 400, 3), 200, np.uint8)).save(blank / "x.jpg")
    with pytest.raises(PhysicalError, match="shows the calibration chart"):
        calibrate.fit(blank)
    not_profile = tmp_path / "np.json"
    not_profile.write_text(json.dumps({"schema": 1, "run": "r"}))
    with pytest.raises(PhysicalError, match="not a calibration profile"):
        calibrate.load_profile(not_profile)
    prof = read_json(fitted[0][3])
    prof["chart"]["version"] = 99
    other = tmp_path / "other.json"
    other.write_text(json.dumps(prof))
    with pytest.raises(PhysicalError, match="chart version 99"):
        calibrate.load_profile(other)
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(PhysicalError):
        calibrate.load_profile(broken)
    for bad in (not_profile, other, broken):
        res = CliRunner().invoke(main, ["-w", str(tmp_path), "simulate", "--run", "nope", "--profile", str(bad)])
        assert res.exit_code != 0 and "Traceback" not in res.output


def test_simulate_with_a_profile(fitted, tmp_path):
    _, prof, _, prof_path, _ = fitted[0]
    ws = make_fake_run(tmp_path, run="p", ids=("a",), size=64)
    layout_mod.make_layout(ws, "p", image_mm=60)
    res = CliRunner().invoke(main, ["-w", str(tmp_path), "simulate", "--run", "p", "--profile", str(prof_path),
                                    "--resolution", "1000x750"])
    assert res.exit_code == 0, res.output
    sim = read_json(ws.simulated_path("p"))
    assert sim["pages"][0]["printer"]["model"] == "profile"
    cam = sim["photos"][0]["camera"]
    assert cam["jpeg_quality"] == prof["jpeg"]["quality"] and cam["shot_noise"] == prof["noise"]["shot"]
    assert cam["defocus_px"] == 0 and sim["profile"]["chart"]["id"] == prof["chart"]["id"]
    # the printer applies the profile's colour transform to every colour of the page
    page = np.zeros((40, 40, 3), np.uint8)
    page[:20] = (30, 160, 220)                       # BGR
    out = simulate.print_page(page, 1.0, calibrate.printer_overrides(prof))
    want = calibrate.ColourModel.from_dict(prof["colour"])(np.array([[220.0, 160, 30], [0, 0, 0]]))
    np.testing.assert_allclose(out[5, 5, ::-1], want[0], atol=1)
    np.testing.assert_allclose(out[35, 35, ::-1], want[1], atol=1)


def test_outside_gamut(fitted, tmp_path):
    prof = fitted[0][1]                    # saturation 0.75: a small gamut
    grey = np.full((16, 16, 3), 128, np.uint8)
    assert calibrate.outside_gamut(grey, prof) == 0.0
    img = grey.copy()
    img[:4] = (0, 0, 255)                 # saturated sRGB blue: beyond a desaturating printer
    frac = calibrate.outside_gamut(img, prof)
    assert frac == pytest.approx(0.25)
    from PIL import Image

    Image.fromarray(img).save(tmp_path / "x.png")
    assert calibrate.outside_gamut(tmp_path / "x.png", fitted[0][3]) == pytest.approx(0.25)


def test_chart_cli(tmp_path):
    res = CliRunner().invoke(main, ["calibrate", "chart", "--paper", "letter", "--out", str(tmp_path / "c")])
    assert res.exit_code == 0, res.output
    assert "colour patches" in res.output
    doc = read_json(tmp_path / "c" / "chart.json")
    assert doc["paper"]["name"] == "letter" and (tmp_path / "c" / "chart.pdf").stat().st_size > 1000
    assert max(p["rect_mm"][3] for p in doc["patches"]) < 279.4 - 12


@pytest.mark.parametrize("model", ["root-polynomial", "lut"])
def test_colour_model_round_trips_through_the_profile(model):
    """What simulate applies (`from_dict` of the stored block) is what was fitted."""
    rng = np.random.default_rng(0)
    digital = rng.integers(0, 256, (150, 3)).astype(np.float64)
    digital[:24] = np.repeat(np.linspace(0, 255, 24)[:, None], 3, 1)
    captured = 20 + 0.8 * digital ** 1.1 / 255 ** 0.1 * [0.95, 0.9, 1.0]
    neutral = slice(0, 24)
    tone = calibrate.Tone.fit(digital[neutral, 0], captured[neutral])
    m = calibrate.ColourModel.fit(model, digital, captured, tone, 2)
    back = calibrate.ColourModel.from_dict(json.loads(json.dumps(m.as_dict())))
    x = rng.integers(0, 256, (50, 3)).astype(np.float64)
    np.testing.assert_allclose(back(x), m(x), atol=0.02)
    assert np.abs(m(digital) - captured).mean() < 2.0


def test_torch_colour_matches_the_profile_and_has_gradients(fitted):
    import torch

    rng = np.random.default_rng(1)
    x = rng.uniform(0, 255, (2, 3, 5, 7))
    for seed in sorted(fitted):
        prof = fitted[seed][1]
        for colour in (prof["colour"], None):
            if colour is None:          # the LUT form too, whichever model CV chose
                digital = np.array([p["rgb"] for p in chart.chart_spec("a4")["patches"]], np.float64)
                cm = calibrate.ColourModel.from_dict(prof["colour"])
                lut = calibrate.ColourModel.fit("lut", digital, cm(digital), cm.tone)
                colour = lut.as_dict()
            p = {**prof, "colour": colour}
            want = calibrate.ColourModel.from_dict(colour)(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
            xt = torch.tensor(x, dtype=torch.float32, requires_grad=True)
            got = calibrate.torch_colour(p)(xt)
            np.testing.assert_allclose(got.detach().numpy(), want, atol=0.05)
            got.sum().backward()
            assert torch.isfinite(xt.grad).all() and xt.grad.abs().sum() > 0
