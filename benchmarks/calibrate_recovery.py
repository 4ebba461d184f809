"""Recovery of printer + camera settings unlike any preset, on many seeds.

Per seed: a device drawn outside the presets' ranges (gamma 0.8–1.8, saturation 0.65–1.1, ink
black 0.0–0.15, paper white 0.8–0.98 per channel, ink spread 0.12–0.3 mm, shot noise 0.2–1.2,
read noise 2–6, JPEG 70–97, camera defocus 0–3 px of a 4000-px photo), 3 chart photos by
`calibrate.simulate_chart_photos`, then `calibrate.fit`. Printed: held-out CIEDE2000 (mean, p95),
blur σ against the truth (ink spread ⊕ defocus at the photo's scale), noise σ at the flats'
levels against the truth, JPEG quality. Targets: ΔE00 ≤ 2, blur within 20 %, noise within 25 %.

    python benchmarks/calibrate_recovery.py [--seeds 8] [--resolution 2000x1500]
"""
from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

import numpy as np


def device(rng):
    u = rng.uniform
    pr = {"gamma": u(0.8, 1.8), "saturation": u(0.65, 1.1), "black": u(0.0, 0.15),
          "paper_white_bgr": [u(0.8, 0.98) for _ in range(3)], "ink_blur_mm": u(0.12, 0.3)}
    cam = {"shot_noise": u(0.2, 1.2), "read_noise": u(2, 6), "jpeg_quality": int(rng.integers(70, 98)),
           "defocus_px": u(0, 3), "motion_px": 0.0, "exposure": u(0.9, 1.0)}
    return pr, cam


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--resolution", default="2000x1500")
    args = ap.parse_args()
    w, h = (int(v) for v in args.resolution.split("x"))
    from physical import calibrate, chart

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        chart.write_chart(tmp / "chart", "a4")
        for seed in range(args.seeds):
            pr, cam = device(np.random.default_rng(1000 + seed))
            photos = tmp / f"p{seed}"
            calibrate.simulate_chart_photos(tmp / "chart", photos, printer=pr, camera=cam, seed=seed, n=3,
                                            resolution=(w, h))
            try:
                prof, _ = calibrate.fit(photos)
            except Exception as exc:  # noqa: BLE001  (a benchmark reports, it does not stop)
                print(f"seed {seed}: fit failed: {exc}")
                continue
            scale = prof["blur"]["px_per_mm_seen"]
            cam_mm = cam["defocus_px"] * w / 4000 / scale
            true_blur = math.hypot(pr["ink_blur_mm"], cam_mm)
            blur_err = prof["blur"]["sigma_mm"] / true_blur - 1
            n = prof["noise"]
            errs = [math.sqrt(n["shot"] * v + n["read"] ** 2) / math.sqrt(cam["shot_noise"] * v + cam["read_noise"] ** 2) - 1
                    for row in n["levels"] for v in row["level_rgb"] if 10 < v < 245]
            worst = max(errs, key=abs) if errs else float("nan")
            rows.append((prof["heldout"]["mean_de00"], abs(blur_err), abs(worst)))
            print(f"seed {seed}: {prof['colour']['model']}{prof['colour'].get('degree') or ''} held-out ΔE00 mean "
                  f"{prof['heldout']['mean_de00']:.2f} p95 {prof['heldout']['p95_de00']:.2f} | blur {prof['blur']['sigma_mm']:.3f} "
                  f"vs {true_blur:.3f} mm ({blur_err:+.0%}) | noise worst {worst:+.0%} | JPEG {prof['jpeg']['quality']} "
                  f"vs {cam['jpeg_quality']} | clipped {prof['patches']['clipped_excluded']}")
    if rows:
        a = np.array(rows)
        print(f"{len(rows)} seeds: ΔE00 mean of means {a[:, 0].mean():.2f} (max {a[:, 0].max():.2f}, target ≤ 2); "
              f"blur |error| max {a[:, 1].max():.0%} (≤ 20 %); noise |error| max {a[:, 2].max():.0%} (≤ 25 %)")


if __name__ == "__main__":
    main()
