"""Agreement: a run photographed through a device vs simulated through the profile fitted on
that device's chart photos, against simulate's presets.

The "device" is simulate's printer and camera with settings unlike any preset (below); its
geometry and light are drawn from the typical preset. Steps: chart → 3 device photos → fit;
a run of 12 colourful textured images → layout → photos through (a) the device (seed 1), (b) the
profile (seed 2), (c) each preset (seed 2) → ingest → per-image mean colour of the crops
(averaged over photos) → CIEDE2000 of (b) and (c) against (a). Target: profile ≤ 4 and at most
half of the nearest preset. (Clean top-1 agreement needs a model and real photos: not here.)

    python benchmarks/calibrate_agreement.py [--resolution 2000x1500] [--photos-per-page 2]
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

PRINTER = {"gamma": 1.55, "paper_white_bgr": [0.84, 0.9, 0.95], "black": 0.02, "saturation": 0.7, "ink_blur_mm": 0.15}
CAMERA = {"shot_noise": 0.6, "read_noise": 4.0, "jpeg_quality": 78, "defocus_px": 0.0, "motion_px": 0.0}


def mean_colours(ws, run) -> dict:
    from physical import records

    ing = records.read(records.INGEST, ws, run).dump()
    acc: dict = {}
    for c in ing["crops"]:
        if c.get("used"):
            img = np.asarray(Image.open(ws.captures(run) / c["file"]).convert("RGB"), np.float64)
            acc.setdefault((c["image_id"], c["variant"]), []).append(img.reshape(-1, 3).mean(0))
    return {k: np.mean(v, 0) for k, v in acc.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--resolution", default="2000x1500")
    ap.add_argument("--photos-per-page", type=int, default=2)
    args = ap.parse_args()
    w, h = (int(v) for v in args.resolution.split("x"))
    from conftest import make_fake_run

    from physical import calibrate, chart, ingest, simulate
    from physical import layout as layout_mod
    from physical.workspace import Workspace

    tmp = Path(tempfile.mkdtemp())
    try:
        chart.write_chart(tmp / "chart", "a4")
        calibrate.simulate_chart_photos(tmp / "chart", tmp / "chart-photos", printer=PRINTER, camera=CAMERA,
                                        seed=0, n=3, resolution=(w, h), preset="typical")
        profile, lines = calibrate.fit(tmp / "chart-photos")
        calibrate.write_profile(profile, tmp / "profile.json")
        print("\n".join(lines))
        base = make_fake_run(tmp / "base", run="a", ids=tuple(f"i{k}" for k in range(12)), variants=("clean",), size=64)
        layout_mod.make_layout(base, "a", image_mm=30)

        def shoot(name, **kw):
            root = tmp / name
            shutil.copytree(base.root / "printouts", root / "printouts")
            ws = Workspace(root)
            simulate.simulate_run(ws, "a", photos_per_page=args.photos_per_page, resolution=(w, h), **kw)
            ingest.ingest_run(ws, "a")
            return mean_colours(ws, "a")

        real_draw_p, real_draw_c = simulate.draw_printer, simulate.draw_camera
        simulate.draw_printer = lambda rng, preset: {**real_draw_p(rng, preset), **PRINTER}
        simulate.draw_camera = lambda rng, preset: {**real_draw_c(rng, preset), **CAMERA}
        try:
            device = shoot("device", preset="typical", seed=1)
        finally:
            simulate.draw_printer, simulate.draw_camera = real_draw_p, real_draw_c
        results = {"profile": shoot("profile", preset="typical", seed=2, profile=tmp / "profile.json")}
        for preset in simulate.PRESETS:
            results[preset] = shoot(preset, preset=preset, seed=2)
        keys = sorted(device)
        out = {}
        for name, got in results.items():
            common = [k for k in keys if k in got]
            de = calibrate.delta_e(np.array([got[k] for k in common]), np.array([device[k] for k in common]))
            out[name] = (float(de.mean()), float(np.percentile(de, 90)), len(common))
        for name, (mean, p90, n) in out.items():
            print(f"{name:8s}: per-image mean colour CIEDE2000 vs the device: mean {mean:.2f}, p90 {p90:.2f} ({n} images)")
        nearest = min((v[0], k) for k, v in out.items() if k != "profile")
        prof = out["profile"][0]
        print(f"profile {prof:.2f} vs nearest preset {nearest[1]} {nearest[0]:.2f}: ratio {prof / nearest[0]:.2f} "
              f"(targets: ≤ 4 and ≤ 0.5)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
