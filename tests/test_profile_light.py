"""Light is counted once through a calibration profile: the chart photos' light stays in the
fitted colour only as the level at the frame centre (their fall-off over the page is divided
out), and `simulate --profile` draws exposure relative to the preset's mean, so a run simulated
through the profile agrees with the device's own photos under the same light draws. Before this,
the chart photos' exposure × fall-off was in the colour and typical's light was drawn again on
top: simulated crops came out darker by that light (≈ 0.975 × the page's vignetting)."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import crop_centre_colours, make_fake_run, replace_png
from physical import calibrate, chart, ingest, simulate
from physical import layout as layout_mod
from physical.errors import PhysicalError
from physical.presets import PRESETS
from physical.profiles import parse_profile, relative_exposure
from physical.workspace import read_json

# A device unlike every preset (simulate's printer model at fixed settings) and its camera's
# fixed part; light comes from typical's ranges.
PRINTER = {"gamma": 1.3, "paper_white_bgr": [0.82, 0.9, 0.93], "black": 0.06, "saturation": 0.8, "ink_blur_mm": 0.1}
CAMERA = {"shot_noise": 0.4, "read_noise": 2.5, "jpeg_quality": 90, "defocus_px": 0.0, "motion_px": 0.0,
          "white_balance_bgr": [1.0, 1.0, 1.0]}
MEAN_EXPOSURE = sum(PRESETS["typical"]["exposure"]) / 2
FLATS = [(128, 128, 128), (200, 60, 50), (60, 160, 80), (50, 70, 180), (40, 40, 40), (235, 225, 205)]
RES = (1600, 1200)


def _fit(root, name, **camera):
    """Two chart photos of the device (typical's geometry), with `camera` light values fixed."""
    calibrate.simulate_chart_photos(root / "chart", root / name, printer=PRINTER, camera={**CAMERA, **camera},
                                    seed=5, n=2, resolution=RES, preset="typical")
    profile, _ = calibrate.fit(root / name)
    return profile


@pytest.fixture(scope="module")
def profiles(tmp_path_factory):
    root = tmp_path_factory.mktemp("light")
    chart.write_chart(root / "chart", "a4")
    # the chart in the sheets' light on average (typical's mean exposure), once with a strong
    # fall-off over the page (harsh's vignetting and gradient: a lamp to one side), once evenly lit
    uneven = _fit(root, "uneven", exposure=MEAN_EXPOSURE, vignetting=0.35, gradient=0.3)
    even = _fit(root, "even", exposure=MEAN_EXPOSURE, vignetting=0.0, gradient=0.0)
    path = calibrate.write_profile(uneven, root / "uneven.json")
    return {"uneven": uneven, "even": even, "path": path}


def test_the_pages_fall_off_is_not_in_the_colour(profiles):
    """Vignetting and a light gradient over the chart change no fitted colour: the profile is at
    the frame centre's light (where simulate's fall-off is 1), not at the page's average."""
    a = calibrate.ColourModel.from_dict(profiles["uneven"]["colour"])
    b = calibrate.ColourModel.from_dict(profiles["even"]["colour"])
    grey = np.array([[255.0, 255, 255], [180, 180, 180], [200, 60, 50], [60, 160, 80]])
    np.testing.assert_allclose(a(grey) / b(grey), 1.0, atol=0.012)
    li = profiles["uneven"]["light"]
    assert li["falloff_max"] > 0.08 and profiles["even"]["light"]["falloff_max"] < 0.03   # it was seen
    # the level recorded is the device's paper white at the chart's exposure
    want = np.array(PRINTER["paper_white_bgr"][::-1]) * 255 * MEAN_EXPOSURE
    np.testing.assert_allclose(li["centre_rgb"], want, rtol=0.02)


def test_simulate_through_the_profile_agrees_with_the_device_under_the_same_light(profiles, tmp_path, monkeypatch):
    """Flat patches photographed by the device and simulated through its profile with the same
    seed (so the same typical light draws: exposure, white balance, fall-off): the mean colours
    agree. Counting the chart's light again on top makes the profile's crops ~5 % darker."""
    ids = tuple(f"f{i}" for i in range(len(FLATS)))
    crops = {}
    real_printer, real_camera = simulate.draw_printer, simulate.draw_camera
    for name in ("device", "profile"):
        ws = make_fake_run(tmp_path / name, run="f", ids=ids, variants=("clean",), size=64)
        for image_id, colour in zip(ids, FLATS):
            replace_png(ws, "f", image_id, "clean", np.full((64, 64, 3), colour, np.uint8))
        layout_mod.make_layout(ws, "f", image_mm=30)
        if name == "device":   # the device's printer and camera, drawing the rng as simulate does
            monkeypatch.setattr(simulate, "draw_printer", lambda rng, p: {**real_printer(rng, p), **PRINTER})
            fixed = {k: v for k, v in CAMERA.items() if k != "white_balance_bgr"}     # light: typical's draws
            monkeypatch.setattr(simulate, "draw_camera", lambda rng, p: {**real_camera(rng, p), **fixed})
            simulate.simulate_run(ws, "f", photos_per_page=4, resolution=RES, seed=11)
            monkeypatch.undo()
        else:
            sim = simulate.simulate_run(ws, "f", photos_per_page=4, resolution=RES, seed=11, profile=profiles["path"])
            drawn = [p["camera"]["exposure"] * MEAN_EXPOSURE for p in sim["photos"]]
        ingest.ingest_run(ws, "f")
        got = crop_centre_colours(ws, "f")
        assert all(len(got[i]) == 4 for i in ids)
        crops[name] = np.array([np.mean(got[i], 0) for i in ids])
    de = calibrate.delta_e(crops["profile"], crops["device"])
    level = crops["profile"].sum(1) / crops["device"].sum(1)
    assert np.abs(level - 1).max() < 0.02, level
    assert de.mean() < 1.2 and de.max() < 2.0, de
    assert min(drawn) >= 0.85 - 1e-9 and max(drawn) <= 1.1 + 1e-9     # typical's exposure, relative to its mean


def test_relative_exposure_and_old_profiles(profiles):
    for preset in PRESETS.values():
        lo, hi = relative_exposure(preset)
        assert (lo + hi) / 2 == pytest.approx(1.0)
        assert hi / lo == pytest.approx(preset["exposure"][1] / preset["exposure"][0])
    doc = read_json(profiles["path"])
    assert doc["schema"] == calibrate.PROFILE_SCHEMA == 2
    old = {**doc, "schema": 1, "light": {k: v for k, v in doc["light"].items() if not k.startswith("centre")}}
    parse_profile(old)                                   # schema 1 is still read (the report of an old run)
    with pytest.raises(PhysicalError, match="profile schema 3; this physical reads 1 and 2"):
        parse_profile({**doc, "schema": 3})
    assert any("frame centre" in line for line in calibrate.report_lines(doc))
    assert not any("frame centre" in line for line in calibrate.report_lines(old))


def test_the_channel_draws_the_light_as_simulate_does(profiles):
    """The profile channel's table and simulate --profile's camera give one draw the same light."""
    from physical.profile_channel import profile_table
    from physical.profiles import profiled_camera

    prof = profiles["uneven"]
    for seed in range(5):
        ours = simulate.draw_camera(np.random.default_rng(seed), profile_table(prof))
        theirs = profiled_camera(simulate.draw_camera(np.random.default_rng(seed), "typical"), prof, PRESETS["typical"])
        for key in ("exposure", "white_balance_bgr", "gradient", "vignetting", "shot_noise", "read_noise",
                    "jpeg_quality", "defocus_px"):
            assert ours[key] == pytest.approx(theirs[key]), key
