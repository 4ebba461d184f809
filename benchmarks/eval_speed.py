"""Evaluation throughput vs the bare model's forward throughput, side by side, one process.

    python benchmarks/eval_speed.py [--images 48] [--batch-size 16] [--device auto] [--repeat 3]

"bare": `model(x)` under `torch.inference_mode` on batches already in memory (float, N×3×H×W,
channels-last as `physical.models.predict` hands them), nothing else.
"evaluate": `physical.evaluate.evaluate()` on a run of the same images (clean + one adversarial
variant per image, as PNGs on disk) with a model that did not craft them, so every PNG is
decoded and classified: PNG decoding (prefetched in a thread), softmax/top-5, metric rows,
metrics.json/csv. Model loading is excluded from both. Target: evaluate ≥ 0.9 × bare.
"""
from __future__ import annotations

import argparse
import io
import tempfile
import time

import numpy as np
import torch
from PIL import Image

import physical.models as pm
from physical.evaluate import evaluate
from physical.workspace import Workspace, atomic_write_bytes, atomic_write_json, sha256_bytes


def fake_run(root, n_images: int, size: int) -> Workspace:
    """A craft-shaped run (clean + fgsm-eps16 per image) made by a model called 'bench'."""
    ws = Workspace(root)
    out = ws.printouts("bench")
    rng = np.random.default_rng(0)
    images = []
    for i in range(n_images):
        small = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
        clean = np.asarray(Image.fromarray(small).resize((size, size), Image.BICUBIC))
        adv = np.clip(clean.astype(int) + rng.choice([-16, 16], size=clean.shape), 0, 255).astype(np.uint8)
        entry = {"id": f"im{i}", "label": {"index": int(rng.integers(1000)), "wnid": "", "name": ""}, "variants": {}}
        for name, arr in (("clean", clean), ("fgsm-eps16", adv)):
            buf = io.BytesIO()
            Image.fromarray(arr).save(buf, format="PNG")
            rel = f"images/im{i}/{name}.png"
            atomic_write_bytes(out / rel, buf.getvalue())
            rec = {"file": rel, "sha256": sha256_bytes(buf.getvalue()),
                   "pred": {"top5": [0, 1, 2, 3, 4], "prob5": [0.2] * 5}}
            if name != "clean":
                rec.update({"attack": "fgsm", "eps": 16})
            entry["variants"][name] = rec
        images.append(entry)
    atomic_write_json(out / "manifest.json", {
        "schema": 1, "run": "bench", "model": {"spec": "bench", "weights_sha256": "0" * 64}, "seed": 0,
        "versions": {}, "variants": ["clean", "fgsm-eps16"], "images": images})
    return ws


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=48, help="images (each has a clean and an adversarial PNG)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeat", type=int, default=3, help="timed repetitions of each (best is reported)")
    args = ap.parse_args()

    model = pm.load_model("default", device=args.device)
    device = next(model.parameters()).device
    size = model.input_size
    pm.load_model = lambda *a, **k: model   # evaluate() must not reload it
    with tempfile.TemporaryDirectory() as tmp:
        ws = fake_run(tmp, args.images, size)
        n = 2 * args.images
        x = torch.stack([torch.from_numpy(np.array(Image.open(p))).permute(2, 0, 1).float()
                         for p in sorted(ws.printouts("bench").glob("images/*/*.png"))])
        batches = [x[i:i + args.batch_size].to(device).contiguous(memory_format=torch.channels_last)
                   for i in range(0, n, args.batch_size)]

        def sync():
            if device.type == "cuda":
                torch.cuda.synchronize()

        def bare():
            with torch.inference_mode():
                for b in batches:
                    model(b)
            sync()

        def full():
            evaluate(ws, "bench", models=["default"], batch_size=args.batch_size, device=args.device,
                     progress=False)
            sync()

        bare(), full()  # warm-up (allocator, cudnn autotune, file cache)
        times = {"bare": [], "evaluate": []}
        for _ in range(args.repeat):  # interleaved, so load changes hit both alike
            for name, fn in (("bare", bare), ("evaluate", full)):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    tb, te = min(times["bare"]), min(times["evaluate"])
    print(f"device {device}, torch threads {torch.get_num_threads()}, {n} images of {size}px, "
          f"batch {args.batch_size}, best of {args.repeat}")
    print(f"bare forward : {n / tb:8.1f} img/s  ({tb:.3f} s)")
    print(f"evaluate     : {n / te:8.1f} img/s  ({te:.3f} s)")
    pairs = sorted(b / e for b, e in zip(times["bare"], times["evaluate"]))
    print(f"ratio        : {tb / te:8.3f}  best/best; median of interleaved pairs {pairs[len(pairs) // 2]:.3f} "
          f"(target ≥ 0.9)")


if __name__ == "__main__":
    main()
