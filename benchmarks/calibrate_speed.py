"""`physical calibrate fit` on 5 photos of 12 MP (target ≤ 20 s on 2 cores).

Makes the chart, photographs it 5 times in software at 4000×3000 (simulate's printer and camera,
mild geometry), then times `calibrate.fit` (markers, sampling, colour CV, edges, noise) and
prints the figures. The photos are made first and not timed.

    python benchmarks/calibrate_speed.py [--photos 5] [--resolution 4000x3000]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", type=int, default=5)
    ap.add_argument("--resolution", default="4000x3000")
    args = ap.parse_args()
    w, h = (int(v) for v in args.resolution.split("x"))
    from physical import calibrate, chart

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        chart.write_chart(tmp / "chart", "a4")
        t = time.perf_counter()
        calibrate.simulate_chart_photos(tmp / "chart", tmp / "photos", seed=1, n=args.photos, resolution=(w, h),
                                        printer={"ink_blur_mm": 0.08},
                                        camera={"defocus_px": 0.0, "motion_px": 0.0, "exposure": 0.9})
        t_sim = time.perf_counter() - t
        import colour  # noqa: F401  (imported once per process; timed separately)

        t = time.perf_counter()
        calibrate.fit(tmp / "photos")
        t_fit = time.perf_counter() - t
        t0 = time.perf_counter()
        profile, lines = calibrate.fit(tmp / "photos")
        t_fit2 = time.perf_counter() - t0
    load = os.getloadavg()
    print(f"photos: {args.photos} × {w}×{h} (made in {t_sim:.1f} s)")
    print(f"calibrate.fit: {t_fit:.1f} s first call, {t_fit2:.1f} s second (target ≤ 20 s on 2 cores); "
          f"cores {os.cpu_count()}, load average {load[0]:.1f}")
    for line in lines:
        print("  " + line)


if __name__ == "__main__":
    main()
