"""Do EOT examples survive print and photo? Untargeted and targeted EOT vs BIM at ε = 16 (issue 12).

    python benchmarks/eot_survival.py [--n 40] [--samples 8] [--steps N] [--target 924]
                                      [--channel typical|broad] [--threads 2] [--batch 8]
                                      [--presets typical,mild,harsh,unseen,pdfcam] [--photos-per-page 2]
                                      [--seed 1] [--pdfcam-set NAME=JSON ...] [--keep DIR]

Real photos (benchmarks/photoset.py; labels: the model's clean top-1, so every image starts
right) are crafted with the real `physical craft` code: bim,eot untargeted, then bim,eot
targeted to --target (images of that class skipped); laid out (A4, 40 mm), photographed by
`physical simulate` with each preset in turn, ingested and evaluated. `unseen` is a printer
and phone of the benchmark's own (benchmarks/unseen_camera.py: other ranges, then another
phone's processing — colour matrix, S-curve, chroma denoising, sharpening, JPEG again), standing
for the issue's checkers' simulator, which the channel never draws from. `pdfcam` does not call
simulate at all: benchmarks/pdf_camera.py, a printer and phone written blind to the channel and
simulator (its own halftones, inks, paper, desk, light, optics, raw noise, ISP and JPEG), prints
and photographs the run's PDF itself into ROOT/pdfcam-photos (--pdfcam-set pins one of its
RANGES, e.g. laser_p=1 for lasers only), which ingest then reads. Prints per preset:
digital success and photo destruction rate (untargeted), targeted success digital / photo and
survival, with 95 % intervals, and the perturbation's L∞, mean |δ| and L2 (levels). Asserts nothing.

n ≥ 40 distinct photos needs opencv-doc unpacked (benchmarks/photoset.py). With --keep, a second
call with other --presets photographs the same craft without crafting again.
"""
from __future__ import annotations

import argparse
import csv
import os
import shutil
import sys
import tempfile
import time

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(__file__))
import pdf_camera  # noqa: E402
import photoset  # noqa: E402
import unseen_camera  # noqa: E402

from physical import evaluate, ingest, simulate  # noqa: E402
from physical import layout as layout_mod  # noqa: E402
from physical.craft import CraftOptions, craft  # noqa: E402
from physical.presets import DEFAULT_CHANNEL  # noqa: E402
from physical.quantize import read_png  # noqa: E402
from physical.workspace import Workspace  # noqa: E402


def _pct(v) -> str:
    return "—" if v is None else f"{100 * v:.0f}%"


def _ci(ci) -> str:
    return "" if not ci else f"[95 % CI {100 * ci[0]:.0f}-{100 * ci[1]:.0f}] "


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--steps", type=int, default=None, help="EOT steps (default: physical.attacks.eot_steps)")
    ap.add_argument("--target", default="924")
    ap.add_argument("--presets", default="typical")
    ap.add_argument("--photos-per-page", type=int, default=2)
    ap.add_argument("--eps", type=float, default=16)
    ap.add_argument("--channel", default=DEFAULT_CHANNEL, help="the EOT channel's table (craft --channel)")
    ap.add_argument("--part", choices=("both", "untargeted", "targeted"), default="both",
                    help="craft only one half (two processes can then share a machine's cores)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the photos (simulate's, or pdf_camera's)")
    ap.add_argument("--pdfcam-set", action="append", default=[], metavar="NAME=JSON",
                    help="pdfcam: override one of benchmarks/pdf_camera.py's RANGES (repeatable)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--keep", default=None, help="workspace folder, kept; an existing one is resumed "
                    "(craft skips what it has, so other presets can be photographed without crafting again)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from physical.models import load_model

    ids, images, _ = photoset.photos(args.n)
    labels = photoset.label_by_model(load_model("default"), images)
    print(photoset.describe(ids) + "; labels: the model's clean top-1")
    root = args.keep or tempfile.mkdtemp(prefix="physical-eot-")
    folder = os.path.join(root, "source")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "labels.csv"), "w", newline="") as f:
        w = csv.writer(f)
        for i, img, lab in zip(ids, images, labels):
            Image.fromarray(img).save(os.path.join(folder, f"{i}.png"))
            w.writerow([f"{i}.png", int(lab)])
    ws = Workspace(os.path.join(root, "ws"))
    common = dict(images=folder, labels=os.path.join(folder, "labels.csv"), eps=(args.eps,), batch_size=args.batch,
                  eot_samples=args.samples, eot_steps=args.steps, channel=args.channel, progress=False)
    t, c = time.perf_counter(), time.process_time()
    if args.part != "targeted":
        manifest = craft(ws, "r", CraftOptions(attacks=("bim", "eot"), **common))
    t1, c1 = time.perf_counter(), time.process_time()
    if args.part != "untargeted":
        manifest = craft(ws, "r", CraftOptions(attacks=("bim", "eot"), target=args.target, **common))
    eot = next(v for k, v in manifest["attacks"].items() if k.startswith("eot"))   # eot or eot-to<class>
    print(f"craft (bim + eot, {args.threads} threads): untargeted {t1 - t:.0f} s ({c1 - c:.0f} s CPU), targeted "
          f"{time.perf_counter() - t1:.0f} s ({time.process_time() - c1:.0f} s CPU); resumed runs count only "
          f"what was left (K = {args.samples}, channel {args.channel}, EOT steps {eot['steps']})")

    # perturbation size per variant, from the saved PNGs
    run = ws.printouts("r")
    for v in [v for v in manifest["variants"] if v != "clean"]:
        d = [read_png(run / e["variants"][v]["file"]).astype(float) - read_png(run / e["variants"]["clean"]["file"])
             for e in manifest["images"] if v in e["variants"]]
        print(f"  {v:<16} n = {len(d):>2}: L∞ max {max(np.abs(x).max() for x in d):.0f}, mean |δ| "
              f"{np.mean([np.abs(x).mean() for x in d]):.2f}, L2 {np.mean([np.linalg.norm(x) for x in d]):.0f} levels")
    lay = layout_mod.make_layout(ws, "r", force=True).layout   # force: a --keep folder is laid out again
    for preset in args.presets.split(","):
        photos = None
        t_photo = time.perf_counter()
        if preset == pdf_camera.NAME:      # a printer + phone of the benchmark's own; simulate is not called
            photos = os.path.join(root, "pdfcam-photos")
            shutil.rmtree(photos, ignore_errors=True)
            pdf_camera.photograph_pdf(ws.pdf_path("r"), photos, photos_per_page=args.photos_per_page,
                                      seed=args.seed, ranges=pdf_camera.parse_set(args.pdfcam_set))
        else:
            if preset == unseen_camera.NAME:   # another printer + phone: its own ranges, then its own ISP
                unseen_camera.register()
            simulate.simulate_run(ws, "r", preset=preset, photos_per_page=args.photos_per_page, seed=args.seed,
                                  force=True)
            if preset == unseen_camera.NAME:
                photos = os.path.join(root, "unseen-photos")
                shutil.rmtree(photos, ignore_errors=True)
                unseen_camera.develop_folder(str(ws.captures("r") / "photos"), photos, seed=args.seed)
        t_photo = time.perf_counter() - t_photo
        state = ingest.ingest_run(ws, "r", photos, workers=2, force=True)
        doc = evaluate.evaluate(ws, "r", progress=False)
        label = "pdf_camera" if preset == pdf_camera.NAME else "simulate"
        print(f"{label} {preset} ({len(lay['pages'])} pages × {args.photos_per_page} photos in {t_photo:.0f} s, "
              f"seed {args.seed}; {state['summary']['recovered']} of {state['summary']['printed']} printed images "
              f"recovered):")
        rows = {(r["variant"], r["stage"]): r for r in doc["rows"] if r["subset"] == "average"}
        for v in [v for v in manifest["variants"] if v != "clean"]:
            png, photo = rows.get((v, "png")), rows.get((v, "photo"))
            if png is None or photo is None:
                continue
            if png.get("target") is None:
                print(f"  {v:<16} digital success {_pct(1 - png['adv_top1'])}, photo top-1 {_pct(photo['adv_top1'])} "
                      f"(clean {_pct(photo['clean_top1'])}, digital {_pct(photo.get('digital_clean_top1'))}), "
                      f"destruction {_pct(photo['destruction_top1'])} "
                      f"{_ci(photo.get('destruction_top1_ci'))}(n = {photo['destruction_n']})")
            else:
                print(f"  {v:<16} targeted success digital {_pct(png['targeted_success_digital'])}, photo "
                      f"{_pct(photo['targeted_success'])}, survival {_pct(photo['targeted_survival'])} "
                      f"{_ci(photo.get('targeted_survival_ci'))}"
                      f"(n = {photo['targeted_survival_n']}; clean photo top-1 {_pct(photo['clean_top1'])}, "
                      f"digital {_pct(photo.get('digital_clean_top1'))})")
    print(f"workspace: {root}")


if __name__ == "__main__":
    main()
