"""Is the light counted once through a profile? Same-light agreement over several chart sessions.

    python benchmarks/calibrate_sessions.py [--sessions 10] [--n 15] [--photos-per-page 4]
                                            [--chart-photos 3] [--resolution 2000x1500] [--keep DIR]

The device of benchmarks/calibrate_agreement.py (a printer + phone outside simulate's model)
photographs the chart in session s (typical's light drawn with seed s: exposure, white balance,
fall-off) → `calibrate.fit` → a run of --n real photos (benchmarks/photoset.py) simulated
through that profile with seed 1, against the device's own seed-1 photos of it (the same light
draws, so only the profile's printer + camera and the light it carries differ). Per session: the
chart photos' mean exposure (truth) over typical's mean, the per-image mean colour ΔL* and
CIEDE2000 against the device. Light counted once: ΔL* follows the session's exposure and is ≈ 0
where that exposure is typical's mean (a line fit over the sessions, printed: a few sessions'
mean exposure is itself a noisy draw); counted twice (the chart's light in the colour and
typical's drawn on top), it is below 0 there by about the chart's light (typical's mean
exposure 0.975 × the page's fall-off). Run it with the code before and after a change to compare. Asserts nothing.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import photoset  # noqa: E402
from calibrate_agreement import Device, crops_of  # noqa: E402
from channel_agreement import write_run  # noqa: E402

from physical import calibrate, chart, ingest, simulate  # noqa: E402
from physical import layout as layout_mod  # noqa: E402
from physical.presets import PRESETS  # noqa: E402
from physical.workspace import Workspace  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=10)
    ap.add_argument("--n", type=int, default=15)
    ap.add_argument("--photos-per-page", type=int, default=4)
    ap.add_argument("--chart-photos", type=int, default=3)
    ap.add_argument("--resolution", default="2000x1500")
    ap.add_argument("--keep", default=None, help="workspace folder to keep (default: a temporary one)")
    args = ap.parse_args()
    w, h = (int(v) for v in args.resolution.split("x"))
    root = args.keep or tempfile.mkdtemp(prefix="physical-calsessions-")
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    t0, cpu0 = time.perf_counter(), time.process_time()
    mean_exposure = sum(PRESETS["typical"]["exposure"]) / 2
    try:
        ids, images, _ = photoset.photos(args.n)
        base = write_run(os.path.join(root, "base"), ids, images, "a")
        layout_mod.make_layout(base, "a")
        chart.write_chart(os.path.join(root, "chart"), "a4")

        def shoot(name, **kw):
            ws = Workspace(os.path.join(root, name))
            shutil.copytree(base.printouts("a"), ws.printouts("a"))
            simulate.simulate_run(ws, "a", photos_per_page=args.photos_per_page, resolution=(w, h), seed=1,
                                  preset="typical", **kw)
            ingest.ingest_run(ws, "a", workers=2)
            got = crops_of(ws, "a")
            return {i: np.mean([c.reshape(-1, 3).mean(0) for c in v], 0) for i, v in got.items()}

        with Device.installed():
            dev = shoot("device")
        print(f"{len(ids)} images, {args.photos_per_page} photos per page {w}x{h}; chart: {args.chart_photos} "
              f"photos per session; physical from {os.path.dirname(calibrate.__file__)}")
        rows = []
        for s in range(args.sessions):
            photos = os.path.join(root, f"chart-{s}")
            with Device.installed():
                truth = calibrate.simulate_chart_photos(os.path.join(root, "chart"), photos, camera=Device.CAMERA,
                                                        seed=s, n=args.chart_photos, resolution=(w, h),
                                                        preset="typical")
            profile, _ = calibrate.fit(photos)
            path = calibrate.write_profile(profile, os.path.join(root, f"profile-{s}.json"))
            got = shoot(f"profile-{s}", profile=str(path))
            common = [i for i in ids if i in got and i in dev]
            a, b = np.array([got[i] for i in common]), np.array([dev[i] for i in common])
            d_l = float((calibrate.to_lab(a)[:, 0] - calibrate.to_lab(b)[:, 0]).mean())
            de = float(calibrate.delta_e(a, b).mean())
            exp = float(np.mean([c["exposure"] for c in truth["cameras"]])) / mean_exposure
            rows.append((exp, d_l, de))
            print(f"  session {s}: chart exposure / typical's mean {exp:.3f}; per-image mean colour vs the device: "
                  f"ΔL* {d_l:+.2f}, CIEDE2000 {de:.2f} ({len(common)} images)")
        exp, d_l, de = (np.array(c) for c in zip(*rows))
        # the sessions' exposures are few draws: read the bias at the chart's exposure = typical's mean
        slope, at_mean = np.polyfit(exp - 1, d_l, 1)
        print(f"over {len(rows)} sessions: ΔL* mean {d_l.mean():+.2f} (sd {d_l.std(ddof=1):.2f}), CIEDE2000 mean "
              f"{de.mean():.2f}, max {de.max():.2f}; ΔL* against the chart's exposure: {at_mean:+.2f} where it is "
              f"typical's mean (line fit, slope {slope / 100:+.2f} per 1 % of exposure); chart exposure / mean "
              f"over the sessions {exp.mean():.3f}")
    finally:
        print(f"total {time.perf_counter() - t0:.0f} s wall, {time.process_time() - cpu0:.0f} s CPU (this process)")
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
