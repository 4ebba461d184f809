"""Does the differentiable channel stand for simulate → ingest? (issue 12's agreement target)

    python benchmarks/channel_agreement.py [--n 40] [--samples 8] [--photos-per-page 2] [--preset typical]

Real photos (benchmarks/photoset.py: 10 bundled photos × views) are saved as a craft-shaped run
of clean PNGs, laid out (A4, 40 mm, 600 dpi), photographed by `physical simulate` (12 MP) and
ingested. Every crop ingest made (used or not: each is one photo of the print) is classified,
and so are `--samples` channel samples T(x; θ) of every clean PNG with θ from the same preset.
Prints: top-1 accuracy (labels: the model's top-1 on the clean PNG, i.e. "still the same class";
and, for the photos with a demo-set ImageNet label, the true label) on crops vs channel samples;
per-image mean colour ΔE CIEDE2000 (colour-science) between the mean crop and the mean channel
sample; what ingest's homography leaves (corner error against simulate's truth, in crop px);
photo pixels per crop pixel seen in the photos vs drawn by the channel. Asserts nothing.
"""
from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import tempfile
import time

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(__file__))
import photoset  # noqa: E402

from physical import ingest, simulate  # noqa: E402
from physical import layout as layout_mod  # noqa: E402
from physical.channel import Channel, Geometry  # noqa: E402
from physical.workspace import Workspace, atomic_write_bytes, atomic_write_json, sha256_bytes  # noqa: E402


def write_run(root: str, ids, images, run: str = "agree") -> Workspace:
    ws = Workspace(root)
    out = ws.printouts(run)
    entries = []
    for image_id, arr in zip(ids, images):
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="PNG")
        blob = buf.getvalue()
        rel = f"images/{image_id}/clean.png"
        atomic_write_bytes(out / rel, blob)
        entries.append({"id": image_id, "source": image_id, "source_sha256": sha256_bytes(arr.tobytes()),
                        "label": {"index": -1, "wnid": None, "name": None},
                        "variants": {"clean": {"file": rel, "sha256": sha256_bytes(blob), "pred": {"top5": [], "prob5": []}}}})
    atomic_write_json(out / "manifest.json", {
        "schema": 1, "run": run, "created": "2026-01-01T00:00:00+00:00", "model": {"spec": "default", "input_size": 224},
        "attacks": {}, "seed": 0, "versions": {}, "source": {"images": "benchmark"}, "variants": ["clean"],
        "images": entries, "skipped": [], "summary": {"images": len(entries)}})
    return ws


def mean_lab(rgb_means: np.ndarray) -> np.ndarray:
    import colour

    return colour.XYZ_to_Lab(colour.sRGB_to_XYZ(rgb_means / 255.0))


def channel_samples(channel: Channel, images: np.ndarray, k: int, seed: int, batch: int = 32) -> np.ndarray:
    """uint8 (n·k)×H×W×3: k channel samples of every image (image 0's first), per-image seeded."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float()
    out = []
    with torch.no_grad():
        for i in range(len(images)):
            theta = channel.sample(k, np.random.default_rng([seed, i]))
            y = channel(x[i:i + 1].repeat(k, 1, 1, 1), theta)
            out.append(y.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy())
    return np.concatenate(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--samples", type=int, default=16, help="channel samples per image")
    ap.add_argument("--photos-per-page", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3, help="prints of the run (each page's printer drawn anew)")
    ap.add_argument("--preset", default="typical")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--keep", default=None, help="workspace folder to keep (default: a temporary one)")
    ap.add_argument("--reuse", action="store_true", help="reuse the photos and crops already in --keep")
    args = ap.parse_args()
    torch.set_num_threads(2)

    from physical.models import load_model, predict

    ids, images, true = photoset.photos(args.n)
    print(photoset.describe(ids))
    root = args.keep or tempfile.mkdtemp(prefix="physical-agree-")
    runs = [f"agree{r}" for r in range(args.rounds)]
    t = time.perf_counter()
    sims, states = [], []
    if args.reuse and args.keep and all(os.path.exists(os.path.join(root, "captures", r, "ingest.json")) for r in runs):
        from physical.workspace import read_json

        ws = Workspace(root)
        lay = read_json(ws.layout_path(runs[0]))
        for r in runs:
            sims.append(read_json(ws.captures(r) / "simulated.json"))
            states.append(read_json(ws.captures(r) / "ingest.json"))
    else:
        if args.keep:
            shutil.rmtree(root, ignore_errors=True)
        for k, r in enumerate(runs):  # one run per round: every round prints its pages again (new printer draws)
            ws = write_run(root, ids, images, r)
            lay = layout_mod.make_layout(ws, r).layout
            sims.append(simulate.simulate_run(ws, r, preset=args.preset, photos_per_page=args.photos_per_page,
                                              seed=args.seed + k))
            states.append(ingest.ingest_run(ws, r, workers=args.workers))
    n_photos = sum(len(s["photos"]) for s in sims)
    print(f"simulate ({args.preset}, {args.rounds} prints × {len(lay['pages'])} pages × {args.photos_per_page} photos "
          f"= {n_photos} photos, 12 MP) + ingest: {time.perf_counter() - t:.0f} s")

    model = load_model("default")
    by_model = photoset.label_by_model(model, images)
    index = {i: n for n, i in enumerate(ids)}
    crops = [dict(c, run=r, truth=sim) for r, state, sim in zip(runs, states, sims) for c in state["crops"]
             if c["variant"] == "clean"]
    crop_img = np.stack([np.asarray(Image.open(ws.captures(c["run"]) / c["file"]).convert("RGB")) for c in crops])
    crop_of = np.array([index[c["image_id"]] for c in crops])
    top_crop = predict(model, crop_img)[0][:, 0].numpy()

    geometry = Geometry(paper_mm=(lay["paper"]["width_mm"], lay["paper"]["height_mm"]), image_mm=lay["image_mm"])
    channel = Channel(args.preset, geometry)
    t = time.perf_counter()
    samples = channel_samples(channel, images, args.samples, args.seed)
    dt = time.perf_counter() - t
    sample_of = np.repeat(np.arange(len(ids)), args.samples)
    top_chan = predict(model, samples)[0][:, 0].numpy()

    def acc(top, of, labels):
        ok = labels[of] >= 0
        # per image first (images have different numbers of crops), then over images
        per = [np.mean(top[(of == i)] == labels[i]) for i in np.unique(of[ok])]
        return float(np.mean(per)), len(per)

    seen = np.unique(crop_of)
    keep = np.isin(sample_of, seen)
    print(f"images photographed: {len(seen)} of {len(ids)}, {len(crops)} crops; channel: {args.samples} samples "
          f"each ({dt / len(ids) / args.samples * 1000:.0f} ms per sample on CPU, no grad)")
    for name, labels in (("model's clean top-1", by_model), ("true label (demo-set photos)", true)):
        a_crop, n_crop = acc(top_crop, crop_of, labels)
        a_chan, _ = acc(top_chan[keep], sample_of[keep], labels)
        a_png = float(np.mean((by_model == labels)[labels >= 0]))
        print(f"top-1 vs {name}: clean PNG {a_png:.1%} | simulate→ingest crops {a_crop:.1%} | channel {a_chan:.1%} "
              f"| difference {100 * (a_chan - a_crop):+.1f} points (n = {n_crop} images)")

    import colour

    lab_crop = mean_lab(np.stack([crop_img[crop_of == i].reshape(-1, 3).mean(0) for i in seen]))
    lab_chan = mean_lab(np.stack([samples[sample_of == i].reshape(-1, 3).mean(0) for i in seen]))
    lab_png = mean_lab(np.stack([images[i].reshape(-1, 3).mean(0) for i in seen]))
    de = colour.delta_E(lab_crop, lab_chan, method="CIE 2000")
    de_png = colour.delta_E(lab_crop, lab_png, method="CIE 2000")
    print(f"per-image mean colour, CIEDE2000 crop vs channel: mean {de.mean():.2f}, median {np.median(de):.2f}, "
          f"max {de.max():.2f} ({ids[seen[int(de.argmax())]]}); crop vs clean PNG (no channel): mean {de_png.mean():.2f}")
    dL = lab_chan[:, 0] - lab_crop[:, 0]
    print(f"  lightness L* channel − crop: mean {dL.mean():+.2f}; a* {np.mean(lab_chan[:, 1] - lab_crop[:, 1]):+.2f}, "
          f"b* {np.mean(lab_chan[:, 2] - lab_crop[:, 2]):+.2f}")

    # sharpness: variance of the Laplacian, crops vs channel (blur agreement)
    def sharp(arr):
        return np.array([ingest.sharpness(a[..., ::-1].copy()) for a in arr])
    s_crop, s_chan = sharp(crop_img), sharp(samples[keep])
    print(f"sharpness (Laplacian variance, median): crops {np.median(s_crop):.0f}, channel {np.median(s_chan):.0f}, "
          f"clean PNGs {np.median(sharp(images)):.0f}")

    # what the homography leaves, and the scale the photos saw the print at
    rects = {(p["page"], s["slot"]): s["rect_mm"] for p in lay["pages"] for s in p["slots"]}
    errs, scales = [], []
    for c in crops:
        photo = next(p for p in c["truth"]["photos"] if p["file"] == c["photo"])
        ts = next(s for s in photo["slots"] if s["slot"] == c["slot"])
        x0, y0, x1, y1 = rects[(c["page"], c["slot"])]
        mm = ingest._transform(np.linalg.inv(np.asarray(c["homography_mm_to_px"])), np.asarray(ts["corners_px"]))
        errs.extend(np.linalg.norm(mm - [[x0, y0], [x1, y0], [x1, y1], [x0, y1]], axis=1) * 224 / (x1 - x0))
        cp = np.asarray(c["corners_px"])
        scales.append(np.mean([np.linalg.norm(cp[(j + 1) % 4] - cp[j]) for j in range(4)]) / 224)
    r = channel.sample(400, np.random.default_rng(1)).info["photo_px_per_crop_px"]
    print(f"ingest's corner error vs truth: mean {np.mean(errs):.3f}, 90th pct {np.percentile(errs, 90):.3f} crop px")
    print(f"photo px per crop px: photos median {np.median(scales):.2f} (5-95 %: {np.percentile(scales, 5):.2f}-"
          f"{np.percentile(scales, 95):.2f}); channel draws median {np.median(r):.2f} "
          f"({np.percentile(r, 5):.2f}-{np.percentile(r, 95):.2f})")
    print(f"workspace: {root}")


if __name__ == "__main__":
    main()
