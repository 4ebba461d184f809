"""Agreement (issue 13): a run photographed through a device vs simulated through the profile
fitted on that device's chart photos, against simulate's presets; and EOT through that profile
vs through `typical`, photographed by the device (issue 12's `--channel PROFILE`).

    python benchmarks/calibrate_agreement.py [--n 40] [--photos-per-page 2] [--resolution 4000x3000]
                                             [--light other,same] [--presets mild,typical,harsh]
                                             [--chart-photos 3] [--eot-n 12] [--eps 8] [--samples 8]
                                             [--target 924] [--keep DIR [--reuse]]

The "device" is a printer and phone unlike every preset *and* unlike simulate's model (`Device`):
its printer mixes the inks (a 3×3 cross-talk in linear light: a colour cast that no per-channel
curve makes), its tone curve is an S (toe and shoulder, not simulate's power law), its paper is
yellowish and its black ink bluish, its ink spreads more along the paper feed than across; its
camera defocuses, is noisier than typical, stores JPEG at quality 80, and applies a phone "look"
after exposure (saturation × 1.2, a highlight roll-off). Geometry and light are simulate's
(typical). Steps: chart → 3 device photos → `calibrate.fit`; real photos (benchmarks/photoset.py)
as a run of clean PNGs → layout (A4, 40 mm) → photos through (a) the device (seed 1), (b)
`simulate --profile`, (c) each preset → ingest; (b) and (c) twice: "other light" (seed 2: other
geometry and light draws, as two sessions with one device; the device itself again with seed 2
is the floor) and "same light" (seed 1: the device's own geometry and light draws, so only the
printer + camera differ). Per image, over all its crops:
mean colour (CIEDE2000 of (b) and (c) against (a); targets: profile ≤ 4 and ≤ half the nearest
preset) and the model's clean top-1 (target: profile within 10 points of the device; labels: the
model's top-1 on the clean PNG, and the true label where the photo has one). Beside each, the
mean ΔL* (light level) and the ΔE left once the source's mean RGB gain over the run is matched
to the device's ("level-matched": what one global light level does not explain). Under "other
light" every seed-2 source shares the seed-2 light draws, so the floor (the device against
itself) bounds any profile from below: the ratio a perfect profile gets is floor / nearest
preset, printed; more --photos-per-page average the draws and lower the floor. "profile vs
device again" is the profile under the seed-2 draws against the device under them (same light
again, other photos). Then EOT at --eps
on the first --eot-n images, crafted by `physical craft` through `--channel profile.json` and
through `--channel typical` (BIM beside them), each laid out and photographed by the device:
digital success, photo top-1, destruction rate (the paper's; survival = 1 − destruction); with
--target also targeted success and survival.
Asserts nothing.
"""
from __future__ import annotations

import argparse
import csv
import math
import os
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager

import cv2
import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(__file__))
import photoset  # noqa: E402
from channel_agreement import write_run  # noqa: E402

from physical import calibrate, chart, evaluate, ingest, records, simulate  # noqa: E402
from physical import layout as layout_mod  # noqa: E402
from physical.craft import CraftOptions, craft  # noqa: E402
from physical.workspace import Workspace  # noqa: E402


class Device:
    """A printer + phone outside simulate's model. RGB order unless said."""

    # ink cross-talk in linear light (rows: R, G, B out; each ink absorbs a little of the others)
    MIX = np.array([[0.86, 0.10, 0.04], [0.07, 0.83, 0.10], [0.03, 0.12, 0.85]])
    WHITE = np.array([0.91, 0.88, 0.79])      # yellowish paper
    BLACK = np.array([0.05, 0.05, 0.09])      # bluish black ink
    S_WEIGHT = np.array([0.55, 0.45, 0.6])    # how much S-curve (smoothstep) vs v^0.85, per channel
    INK_SIGMA_MM = (0.08, 0.16)               # along x, along y (the paper feed)
    CAMERA = {"defocus_px": 1.0, "motion_px": 0.0, "shot_noise": 0.6, "read_noise": 3.5, "jpeg_quality": 80}
    LOOK_SATURATION = 1.2
    LOOK_ROLLOFF = 1.1                        # v → 1 − (1 − v)^k: highlights compressed, shadows lifted

    @classmethod
    def tone(cls, v: np.ndarray) -> np.ndarray:
        s = v * v * (3 - 2 * v)
        t = (1 - cls.S_WEIGHT) * v ** 0.85 + cls.S_WEIGHT * s
        return cls.BLACK + (cls.WHITE - cls.BLACK) * t

    @classmethod
    def print_page(cls, page_bgr: np.ndarray, px_per_mm: float, printer: dict) -> np.ndarray:
        # a LUT over the page's distinct colours (pages hold few), as profiles.print_profiled does
        rgb = page_bgr[..., ::-1].reshape(-1, 3)
        packed = (rgb[:, 0].astype(np.uint32) << 16) | (rgb[:, 1].astype(np.uint32) << 8) | rgb[:, 2]
        uniq, inv = np.unique(packed, return_inverse=True)
        c = np.stack([(uniq >> 16) & 255, (uniq >> 8) & 255, uniq & 255], 1) / 255.0
        lin = (c ** 2.2) @ cls.MIX.T
        out = np.clip(np.rint(cls.tone(np.clip(lin, 0, 1) ** (1 / 2.2)) * 255), 0, 255).astype(np.uint8)[:, ::-1]
        printed = out[inv.ravel()].reshape(page_bgr.shape)
        sx, sy = (s * px_per_mm for s in cls.INK_SIGMA_MM)
        return cv2.GaussianBlur(printed, (0, 0), sigmaX=sx, sigmaY=sy)

    @classmethod
    def look(cls, img_bgr: np.ndarray) -> np.ndarray:
        x = img_bgr.astype(np.float32) / 255.0
        grey = cv2.cvtColor(x, cv2.COLOR_BGR2GRAY)[..., None]
        x = np.clip(grey + cls.LOOK_SATURATION * (x - grey), 0, 1)
        return np.clip(np.rint((1 - (1 - x) ** cls.LOOK_ROLLOFF) * 255), 0, 255).astype(np.uint8)

    @classmethod
    @contextmanager
    def installed(cls):
        """simulate's printer and camera replaced by this device (geometry and light still simulate's)."""
        real = simulate.print_page, simulate.photograph, simulate.draw_camera
        simulate.print_page = cls.print_page
        simulate.photograph = lambda *a, **k: cls.look(real[1](*a, **k))
        simulate.draw_camera = lambda rng, preset: {**real[2](rng, preset), **cls.CAMERA}
        try:
            yield
        finally:
            simulate.print_page, simulate.photograph, simulate.draw_camera = real


def _pct(v) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.0%}"


def crops_of(ws: Workspace, run: str) -> dict:
    """image id → list of clean crops (uint8 RGB), every photo's."""
    out: dict = {}
    for c in records.read(records.INGEST, ws, run).dump()["crops"]:
        if c["variant"] == "clean":
            out.setdefault(c["image_id"], []).append(np.asarray(Image.open(ws.captures(run) / c["file"]).convert("RGB")))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--photos-per-page", type=int, default=2)
    ap.add_argument("--resolution", default="4000x3000")
    ap.add_argument("--chart-photos", type=int, default=3)
    ap.add_argument("--eot-n", type=int, default=12)
    ap.add_argument("--eps", type=float, default=8)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--target", default=None, help="also targeted EOT/BIM to this class (e.g. 924)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--keep", default=None, help="workspace folder to keep (default: a temporary one)")
    ap.add_argument("--reuse", action="store_true", help="with --keep: reuse the profile and photos already there")
    ap.add_argument("--presets", default=",".join(simulate.PRESETS), help="presets to compare against")
    ap.add_argument("--light", default="other,same", help="other: sources photographed with other light draws "
                    "than the device's; same: with the same draws (only printer + camera differ)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    w, h = (int(v) for v in args.resolution.split("x"))
    from physical.models import load_model, predict

    root = args.keep or tempfile.mkdtemp(prefix="physical-calagree-")
    if not args.reuse:
        shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root, exist_ok=True)
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    try:
        prof_path = os.path.join(root, "profile.json")
        if not os.path.exists(prof_path):
            chart.write_chart(os.path.join(root, "chart"), "a4")
            with Device.installed():
                calibrate.simulate_chart_photos(os.path.join(root, "chart"), os.path.join(root, "chart-photos"),
                                                camera=Device.CAMERA, seed=0, n=args.chart_photos, resolution=(w, h),
                                                preset="typical")
            profile, lines = calibrate.fit(os.path.join(root, "chart-photos"))
            calibrate.write_profile(profile, prof_path)
        else:
            lines = calibrate.report_lines(calibrate.load_profile(prof_path).dump())
        print(f"device chart: {args.chart_photos} photos {w}x{h}; fit:")
        print("\n".join("  " + ln for ln in lines))

        model = load_model("default")
        ids, images, true = photoset.photos(args.n)
        by_model = photoset.label_by_model(model, images)
        print(photoset.describe(ids))
        if os.path.exists(os.path.join(root, "base", "printouts", "a", "layout.json")):
            base = Workspace(os.path.join(root, "base"))
            lay = records.read(records.LAYOUT, base, "a").dump()
        else:
            base = write_run(os.path.join(root, "base"), ids, images, "a")
            lay = layout_mod.make_layout(base, "a").layout

        def shoot(name, **kw):
            ws = Workspace(os.path.join(root, name))
            if not (args.reuse and ws.ingest_path("a").exists()):
                shutil.rmtree(ws.root, ignore_errors=True)
                shutil.copytree(base.printouts("a"), ws.printouts("a"))
                simulate.simulate_run(ws, "a", photos_per_page=args.photos_per_page, resolution=(w, h), **kw)
                ingest.ingest_run(ws, "a", workers=args.workers)
            return crops_of(ws, "a")

        # seed 1: the device's own photos. "same light": every source photographed with seed 1 too, so
        # geometry and light are drawn alike and only the printer + camera differ; "other light": seed 2,
        # and the device photographed again with seed 2 is the floor (one device, other photos).
        with Device.installed():
            dev = shoot("device", preset="typical", seed=1)
            again = shoot("device-again", preset="typical", seed=2) if "other" in args.light else None
        index = {i: k for k, i in enumerate(ids)}

        def accuracy(got, labels):
            per = []
            for i, crops in got.items():
                lab = labels[index[i]]
                if lab >= 0:
                    top = predict(model, np.stack(crops))[0][:, 0].numpy()
                    per.append(float(np.mean(top == lab)))
            return float(np.mean(per)), len(per)

        dacc, dtrue = accuracy(dev, by_model), accuracy(dev, true)
        print(f"run: {len(ids)} images on {len(lay['pages'])} pages, {len(lay['pages']) * args.photos_per_page} "
              f"photos {w}x{h} per source; clean top-1 on the device's crops: {dacc[0]:.1%} vs the model's clean "
              f"top-1 (n = {dacc[1]} images), {dtrue[0]:.1%} vs true labels (n = {dtrue[1]})")
        for light in args.light.split(","):
            seed, suffix = (1, "-same") if light == "same" else (2, "")
            shots = {"profile": shoot("profile" + suffix, preset="typical", seed=seed, profile=prof_path)}
            for preset in args.presets.split(","):
                shots[preset] = shoot(preset + suffix, preset=preset, seed=seed)
            if light == "other":
                shots["device again"] = again
            print(f"{light} light (seed {seed} vs the device's seed 1):")
            results = {}
            for name, got in shots.items():
                common = [i for i in ids if i in got and i in dev]
                if not common:
                    print(f"  {name}: no image recovered from its photos")
                    continue
                a = np.array([np.mean([c.reshape(-1, 3).mean(0) for c in got[i]], 0) for i in common])
                b = np.array([np.mean([c.reshape(-1, 3).mean(0) for c in dev[i]], 0) for i in common])
                de = calibrate.delta_e(a, b)
                results[name] = de
                d_l = float((calibrate.to_lab(a)[:, 0] - calibrate.to_lab(b)[:, 0]).mean())
                matched = calibrate.delta_e(np.clip(a * (b.mean(0) / a.mean(0)), 0, 255), b).mean()
                acc, acc_true = accuracy(got, by_model), accuracy(got, true)
                print(f"  {name:12s}: per-image mean colour CIEDE2000 vs the device: mean {de.mean():.2f}, "
                      f"p90 {np.percentile(de, 90):.2f} ({len(common)} images; ΔL* {d_l:+.2f}, level-matched "
                      f"{matched:.2f}); clean top-1 {acc[0]:.1%} ({100 * (acc[0] - dacc[0]):+.1f} points), true "
                      f"labels {acc_true[0]:.1%} ({100 * (acc_true[0] - dtrue[0]):+.1f})")
                if name == "profile":
                    prof_acc = acc[0]
            nearest = min((de.mean(), k) for k, de in results.items() if k in simulate.PRESETS)
            prof = results["profile"].mean()
            print(f"  profile {prof:.2f} vs nearest preset ({nearest[1]}) {nearest[0]:.2f}: ratio "
                  f"{prof / nearest[0]:.2f}; top-1 difference {100 * (prof_acc - dacc[0]):+.1f} points "
                  "(targets: ≤ 4, ≤ 0.5, within 10 points)")
            if "device again" in results:
                floor = results["device again"].mean()
                both = [i for i in ids if i in shots["profile"] and i in again]
                pa = np.array([np.mean([c.reshape(-1, 3).mean(0) for c in shots["profile"][i]], 0) for i in both])
                da = np.array([np.mean([c.reshape(-1, 3).mean(0) for c in again[i]], 0) for i in both])
                print(f"  floor (the device against itself) {floor:.2f}: a perfect profile's ratio here "
                      f"{floor / nearest[0]:.2f}; profile vs device again (both seed 2's light) "
                      f"{calibrate.delta_e(pa, da).mean():.2f}")
        print(f"({time.perf_counter() - t0:.0f} s so far)")

        if args.eot_n:
            eot_survival(root, ids[:args.eot_n], images[:args.eot_n], by_model[:args.eot_n], prof_path, args, (w, h))
    finally:
        print(f"total {time.perf_counter() - t0:.0f} s wall, {time.process_time() - cpu0:.0f} s CPU (this process); "
              f"workspace: {root if args.keep else '(removed)'}")
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


def eot_survival(root, ids, images, labels, prof_path, args, resolution) -> None:
    folder = os.path.join(root, "eot-source")
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    with open(os.path.join(folder, "labels.csv"), "w", newline="") as f:
        wr = csv.writer(f)
        for i, img, lab in zip(ids, images, labels):
            Image.fromarray(img).save(os.path.join(folder, f"{i}.png"))
            wr.writerow([f"{i}.png", int(lab)])
    common = dict(images=folder, labels=os.path.join(folder, "labels.csv"), eps=(args.eps,), batch_size=4,
                  eot_samples=args.samples, progress=False)
    print(f"EOT at ε = {args.eps:g}, K = {args.samples}, on {len(ids)} images (labels: the model's clean top-1), "
          f"photographed by the device ({args.photos_per_page} photos per page):")
    runs = [("profile", str(prof_path), ("eot",)), ("typical", "typical", ("bim", "eot"))]
    for target in [None] + ([args.target] if args.target else []):
        if target is not None:
            print(f"targeted to {target} (images of that class skipped):")
        for name, channel, attacks in runs:
            ws = Workspace(os.path.join(root, f"eot-{name}" + (f"-to{target}" if target else "")))
            t = time.process_time()
            if args.reuse and ws.metrics_path("r").exists():
                doc, dt = records.read(records.METRICS, ws, "r").dump(), float("nan")
            else:
                shutil.rmtree(ws.root, ignore_errors=True)
                craft(ws, "r", CraftOptions(attacks=attacks, channel=channel, target=target, **common))
                dt = time.process_time() - t
                layout_mod.make_layout(ws, "r")
                with Device.installed():
                    simulate.simulate_run(ws, "r", preset="typical", photos_per_page=args.photos_per_page, seed=3,
                                          resolution=resolution)
                ingest.ingest_run(ws, "r", workers=args.workers)
                doc = evaluate.evaluate(ws, "r", progress=False)
            rows = {(r["variant"], r["stage"]): r for r in doc["rows"] if r["subset"] == "average"}
            for attack in attacks:
                key = next((k for k in rows if k[1] == "png" and k[0].startswith(f"{attack}-eps{args.eps:g}")), None)
                png, photo = (rows[key], rows.get((key[0], "photo"))) if key else (None, None)
                label = f"{attack} through {name}" if attack == "eot" else "bim"
                if photo is None:
                    print(f"  {label:<20} no photo rows")
                    continue
                if target is None:
                    d = photo["destruction_top1"]
                    print(f"  {label:<20} digital success {_pct(1 - png['adv_top1'])}, photo top-1 "
                          f"{_pct(photo['adv_top1'])} (clean {_pct(photo['clean_top1'])}), destruction "
                          f"{_pct(d)} (n = {photo['destruction_n']}); craft {dt:.0f} s CPU")
                else:
                    print(f"  {label:<20} targeted success digital {_pct(png['targeted_success_digital'])}, photo "
                          f"{_pct(photo['targeted_success'])}, survival {_pct(photo['targeted_survival'])} "
                          f"(n = {photo['targeted_survival_n']}); craft {dt:.0f} s CPU")

if __name__ == "__main__":
    main()
