"""Speed of `physical simulate` and `physical ingest` on 12 MP phone photos, and (--model) the
mild-preset check: how often the crop of a clean image gets the clean PNG's top-1 class.

A real-ish run: the bundled demo photos (scikit-image / scikit-learn) plus a few more
scikit-image photos, centre-cropped to 224 px, each with a random ±16 "noise-eps16" variant so
sheets hold pairs like a craft run (no model needed to build it); the default layout (40 mm
images, 600 dpi); simulated photos; ingest with a process pool.

    python benchmarks/ingest_speed.py                      # 12 MP, typical, 2 workers
    python benchmarks/ingest_speed.py --photos-per-page 4 --workers 1
    python benchmarks/ingest_speed.py --model --preset mild --photos-per-page 2

Prints figures; asserts nothing.
"""
from __future__ import annotations

import argparse
import io
import os
import shutil
import tempfile
import time

import numpy as np
from PIL import Image

from physical import ingest
from physical.workspace import Workspace, atomic_write_bytes, atomic_write_json, sha256_bytes

# Pool workers run this script's top level again (multiprocessing imports __main__ in each), so
# it imports no more than `physical ingest`'s own script would (physical.cli: click): simulate,
# layout and data (pydantic, skimage) are imported where used, as the stages' commands do.

EXTRA = [("astronaut", "astronaut.png"), ("horse_riders", "horse.png"), ("retina", "retina.jpg"),
         ("hubble", "hubble_deep_field.jpg"), ("ihc", "immunohistochemistry.png")]


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def build_run(root: str, run: str = "bench", size: int = 224, seed: int = 0) -> Workspace:
    """A craft-shaped run of real photos (clean + noise-eps16), written without a model."""
    import skimage.data

    from physical import data

    ws = Workspace(root)
    out = ws.printouts(run)
    rng = np.random.default_rng(seed)
    sources = [(it.id, it.path, it.label) for it in data.demo_items()]
    folder = os.path.dirname(skimage.data.__file__)
    sources += [(i, os.path.join(folder, f), -1) for i, f in EXTRA if os.path.exists(os.path.join(folder, f))]
    images = []
    for image_id, path, label in sources:
        clean = data.load_image(path, size)
        noisy = np.clip(clean.astype(int) + rng.choice([-16, 16], size=clean.shape), 0, 255).astype(np.uint8)
        entry = {"id": image_id, "source": path, "source_sha256": sha256_bytes(clean.tobytes()),
                 "label": {"index": int(label), "wnid": None, "name": None}, "variants": {}}
        for variant, arr in (("clean", clean), ("noise-eps16", noisy)):
            blob = _png(arr)
            rel = f"images/{image_id}/{variant}.png"
            atomic_write_bytes(out / rel, blob)
            entry["variants"][variant] = {"file": rel, "sha256": sha256_bytes(blob),
                                          "pred": {"top5": [], "prob5": []}}
        images.append(entry)
    atomic_write_json(out / "manifest.json", {
        "schema": 1, "run": run, "created": "2026-01-01T00:00:00+00:00",
        "model": {"spec": "default", "input_size": size}, "attacks": {}, "seed": seed, "versions": {},
        "source": {"images": "benchmark"}, "variants": ["clean", "noise-eps16"], "images": images,
        "skipped": [], "summary": {"images": len(images)}})
    return ws


def score(state: dict, sim: dict, lay: dict) -> dict:
    """Ingest against the simulator's truth: fully visible images recovered, crops assigned to the
    wrong printed image, and the crop corners' error in source-PNG pixels."""
    truth = {p["file"]: p for p in sim["photos"]}
    rects = {(p["page"], s["slot"]): (s["rect_mm"], s["size_px"][0]) for p in lay["pages"] for s in p["slots"]}
    vis = rec = wrong = 0
    errs = []
    for photo in state["photos"]:
        tr = truth[photo["file"]]
        crops = {c["slot"]: c for c in state["crops"] if c["photo"] == photo["file"]}
        for s in tr["slots"]:
            vis += s["fully_visible"]
            rec += s["fully_visible"] and s["slot"] in crops
        for c in crops.values():
            ts = next(s for s in tr["slots"] if s["slot"] == c["slot"])
            wrong += (ts["image_id"], ts["variant"]) != (c["image_id"], c["variant"])
            (x0, y0, x1, y1), px = rects[(c["page"], c["slot"])]
            mm = ingest._transform(np.linalg.inv(np.asarray(c["homography_mm_to_px"])), np.asarray(ts["corners_px"]))
            errs.extend(np.linalg.norm(mm - [[x0, y0], [x1, y0], [x1, y1], [x0, y1]], axis=1) * px / (x1 - x0))
    return {"visible": vis, "recovered": rec, "wrong": wrong, "crops": len(state["crops"]),
            "err_mean": float(np.mean(errs)) if errs else float("nan"),
            "err_max": float(np.max(errs)) if errs else float("nan")}


def pool_cpu_seconds() -> float:
    """CPU seconds of the forkserver plus every worker it forked and reaped (Linux: its own and
    its waited-for children's times in /proc/<pid>/stat); 0 without a forkserver."""
    from multiprocessing import forkserver

    pid = getattr(forkserver._forkserver, "_forkserver_pid", None)
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except (OSError, TypeError):
        return 0.0
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")   # utime stime cutime cstime


def main() -> None:
    from physical import layout as layout_mod
    from physical import simulate

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="typical", choices=list(simulate.PRESETS))
    ap.add_argument("--photos-per-page", type=int, default=4)
    ap.add_argument("--resolution", default="4000x3000")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", action="store_true", help="classify clean PNGs and their used crops")
    ap.add_argument("--keep", default=None, help="workspace folder to keep (default: a temporary one)")
    args = ap.parse_args()

    root = args.keep or tempfile.mkdtemp(prefix="physical-bench-")
    if args.keep:
        shutil.rmtree(root, ignore_errors=True)
    ws = build_run(root)
    lay = layout_mod.make_layout(ws, "bench").layout
    n_slots = sum(len(p["slots"]) for p in lay["pages"])
    print(f"run: {len(ws.load_manifest('bench').images)} photos x 2 variants = {n_slots} printed images, "
          f"{len(lay['pages'])} pages, {lay['image_mm']:.1f} mm each, markers {lay['markers']['size_mm']:.1f} mm")

    res = simulate.parse_resolution(args.resolution)
    t, c = time.perf_counter(), time.process_time()
    sim = simulate.simulate_run(ws, "bench", preset=args.preset, photos_per_page=args.photos_per_page,
                                seed=args.seed, resolution=res)
    dt, dc = time.perf_counter() - t, time.process_time() - c
    n = len(sim["photos"])
    size_mb = sum((ws.captures("bench") / p["file"]).stat().st_size for p in sim["photos"]) / n / 1e6
    print(f"simulate: {n} photos {res[0]}x{res[1]} ({args.preset}) in {dt:.1f} s = {n / dt:.2f} photos/s "
          f"(1 process, {dc / n:.2f} s CPU per photo), {size_mb:.1f} MB JPEG each")

    t, c, pc = time.perf_counter(), time.process_time(), pool_cpu_seconds()
    state = ingest.ingest_run(ws, "bench", workers=args.workers)
    dt, dc = time.perf_counter() - t, time.process_time() - c
    time.sleep(0.5)   # the forkserver reaps the pool's workers
    total = dc + pool_cpu_seconds() - pc
    per = [p["seconds"] for p in state["photos"]]
    cpu = [p["cpu_seconds"] for p in state["photos"]]
    load = os.getloadavg()[0]
    print(f"ingest: {n} photos in {dt:.2f} s = {n / dt:.2f} photos/s with {args.workers} worker(s), decode "
          f"included (per photo in a worker: median {np.median(per):.3f} s wall, {np.median(cpu):.3f} s CPU; "
          f"max {max(per):.3f} s wall); load average {load:.1f} on {os.cpu_count()} cores")
    print(f"  CPU-bound rate on {args.workers} idle core(s): {args.workers / np.mean(cpu):.2f} photos/s "
          f"(mean CPU {np.mean(cpu):.3f} s per photo, pool start-up and file reads not included)")
    print(f"  all processes (this one, forkserver, workers): {total:.2f} s CPU = {total / n:.3f} s per photo "
          f"(this process {dc:.2f} s); their CPU-bound rate {args.workers * n / total:.2f} photos/s, "
          f"wall / CPU-bound {dt / (total / args.workers):.2f}")
    print("  " + ingest.summary_line(state))

    r = score(state, sim, lay)
    print(f"  recovered {r['recovered']} of {r['visible']} fully visible images ({r['recovered'] / max(r['visible'], 1):.1%}), "
          f"wrong assignments {r['wrong']}, corner error vs truth: mean {r['err_mean']:.3f}, max {r['err_max']:.3f} source px")

    if args.model:
        import torch

        from physical.models import load_model, predict

        torch.set_num_threads(2)
        model = load_model("default")
        man = ws.load_manifest("bench").dump()
        used = {c["image_id"]: c for c in state["crops"] if c["used"] and c["variant"] == "clean"}
        ids = [im["id"] for im in man["images"] if im["id"] in used]
        pngs = np.stack([np.asarray(Image.open(ws.printouts("bench") / im["variants"]["clean"]["file"]).convert("RGB"))
                         for im in man["images"] if im["id"] in used])
        crops = np.stack([np.asarray(Image.open(ws.captures("bench") / used[i]["file"]).convert("RGB")) for i in ids])
        top_png, prob_png = predict(model, pngs)
        top_crop, _ = predict(model, crops)
        same = (top_png[:, 0] == top_crop[:, 0]).numpy()
        in5 = np.array([(int(a) in b.tolist()) for a, b in zip(top_png[:, 0], top_crop)])
        labels = {im["id"]: im["label"]["index"] for im in man["images"]}
        right = np.array([int(top_png[k, 0]) == labels[i] for k, i in enumerate(ids)])
        print(f"model ({args.preset}): crop of a clean image has the clean PNG's top-1 class for "
              f"{same.sum()} of {len(ids)} ({same.mean():.0%}); in its top-5 for {in5.sum()} of {len(ids)}")
        print(f"  among images whose clean PNG the model classifies right (labelled demo photos): "
              f"{same[right].sum()} of {right.sum()}")
        for k, (i, ok) in enumerate(zip(ids, same)):
            if not ok:
                print(f"  differs: {i} (PNG: {model.class_names[int(top_png[k, 0])]} p={float(prob_png[k, 0]):.2f}, "
                      f"crop: {model.class_names[int(top_crop[k, 0])]})")
    print(f"workspace: {root}")


if __name__ == "__main__":
    main()
