"""Cost of one EOT step with K channel samples against K BIM steps on the same batch.

    python benchmarks/eot_speed.py [--batch 4] [--samples 8] [--repeats 5] [--channel phone]
                                   [--threads 2] [--chunks 2,4,8,16,32] [--against DIR] [--plain-heap]
                                   [--arch resnet50]

One EOT step = `attacks.eot_gradient`: θ drawn for N·K samples, T(x; θ), the model's forward and
backward on all N·K (in passes of `attacks.EOT_CPU_CHUNK` samples on CPU). K BIM steps = K
forward + backward passes of the model on the N images. Also, in the same passes: the model
alone, the channel alone (forward + backward, θ drawing apart) and each stage alone, as % of the
model. Target (issue 12): EOT step ≤ 1.15 × K BIM steps; channel ≤ 15 % of the model.

Every figure: one warm-up call, then --repeats rounds in which the things compared run one after
the other (interleaved, so load that comes and goes hits them alike); medians. Wall seconds and
CPU seconds of this process (time.process_time: less sensitive to other processes; with several
threads it also counts their spinning). Ratios are medians of per-round ratios.
--chunks: the model's forward + backward per image at those batch sizes (what EOT_CPU_CHUNK rests on).
--arch NAME: another model's cost instead of the default model's (a timm architecture at random
weights: the cost of a pass does not depend on the weights, and nothing may be downloaded). The
channel's cost per sample is the same whatever the model; the ratio is not (docs/robust.md, "Cost").
Everything runs inside `physical.heap.large_heap()`, as craft crafts on CPU (without it, glibc maps
and zeroes the model's large activations afresh on every pass: BIM then pays ~70,000 page faults per
K steps and EOT, whose channel's tensors are smaller, far fewer, which flatters the ratio: 1.24 plain
against 1.36 as craft runs, phone channel, load 2); `--plain-heap` measures without it.
--against DIR: DIR holds channel.py, channel_ops.py (if that version has one) and attacks.py of another version
(`git show REV:physical/channel.py > DIR/channel.py`, ...); its EOT step and channel are timed in the same rounds
as this tree's, so before/after figures come from one process under the same load.
Prints figures, asserts nothing.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from physical import attacks as atk
from physical import heap
from physical.channel import STAGES, Channel, cat_theta, theta_rows
from physical.data import demo_items, load_image
from physical.models import load_model
from physical.presets import DEFAULT_CHANNEL


def rounds(fns: dict, repeats: int) -> dict:
    """{name: (wall list, cpu list)}: each fn warmed up once, then run once per round, interleaved."""
    for fn in fns.values():
        fn()
    out = {k: ([], []) for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            w, c = time.perf_counter(), time.process_time()
            fn()
            out[k][0].append(time.perf_counter() - w)
            out[k][1].append(time.process_time() - c)
    return out


def load_version(folder: str):
    """(channel module, attacks module) of another version's files, imported under private names; its
    channel.py's `from physical.channel_ops import ...` is pointed at the folder's channel_ops.py."""
    mods = {}
    for name in ("channel_ops", "channel", "attacks"):
        path = Path(folder) / f"{name}.py"
        if not path.is_file():
            continue
        src = path.read_text().replace("from physical.channel_ops import", "from eot_before_channel_ops import")
        spec = importlib.util.spec_from_loader(f"eot_before_{name}", loader=None)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod
        exec(compile(src, str(path), "exec"), mod.__dict__)
        mods[name] = mod
    return mods["channel"], mods["attacks"]


def random_model(arch: str):
    """A timm architecture with random weights, wrapped as physical wraps a model (BatchNorm folded,
    224 px): the same cost per pass as the trained model, which no test here may download."""
    import timm

    from physical.models import IMAGENET_MEAN, IMAGENET_STD, Classifier

    return Classifier(timm.create_model(arch, pretrained=False), spec=f"random:{arch}", arch=arch, input_size=224,
                      mean=IMAGENET_MEAN, std=IMAGENET_STD, crop_pct=0.875, interpolation="bilinear",
                      weights_sha256="")


def med(v) -> float:
    return float(np.median(v))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--channel", default=DEFAULT_CHANNEL, help="the channel's table (craft --channel; default craft's)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--arch", default="", help="time another model's cost instead of the default model's: a timm "
                    "architecture at random weights (timing only; the channel's cost does not depend on the model)")
    ap.add_argument("--chunks", default="", help="comma-separated batch sizes for the model's per-image cost")
    ap.add_argument("--against", default="", help="folder with another version's channel.py (+ channel_ops.py) and attacks.py")
    ap.add_argument("--plain-heap", action="store_true", help="glibc's default malloc thresholds, not craft's large_heap")
    args = ap.parse_args()
    with contextlib.nullcontext() if args.plain_heap else heap.large_heap():
        measure(args)


def measure(args) -> None:
    torch.set_num_threads(args.threads)
    n, k = args.batch, args.samples
    model = (load_model("default") if not args.arch else random_model(args.arch)
             ).to(memory_format=torch.channels_last)   # as craft runs it
    items = demo_items()
    x = torch.from_numpy(np.stack([load_image(items[i % len(items)].path, 224, 256) for i in range(n)])
                         ).permute(0, 3, 1, 2).float().contiguous(memory_format=torch.channels_last)
    y = torch.tensor([items[i % len(items)].label for i in range(n)])
    channel = Channel(args.channel)
    rngs = [np.random.default_rng([0, i]) for i in range(n)]
    chunk = atk.EOT_CPU_CHUNK
    print(f"model {model.arch}, batch {n} images, K = {k}, channel {args.channel}, {torch.get_num_threads()} threads, "
          f"EOT passes of {chunk} samples, {args.repeats} rounds, {'plain heap' if args.plain_heap else 'large_heap'}")

    before = load_version(args.against) if args.against else None
    fns = {"bim": lambda: [atk.input_gradient(model, x, y) for _ in range(k)],
           "eot": lambda: atk.eot_gradient(model, channel, x, y, k, rngs)}
    if before:
        old_channel = before[0].Channel(args.channel)
        fns["eot_before"] = lambda: before[1].eot_gradient(model, old_channel, x, y, k, rngs)
    r = rounds(fns, args.repeats)
    for name, label in (("eot", "this tree"), ("eot_before", f"--against {args.against}")):
        if name not in r:
            continue
        ratio = [e / b for e, b in zip(r[name][0], r["bim"][0])]
        ratio_cpu = [e / b for e, b in zip(r[name][1], r["bim"][1])]
        print(f"  [{label}] K = {k} BIM steps: {med(r['bim'][0]):.2f} s ({med(r['bim'][1]):.2f} s CPU) | one EOT step "
              f"with K samples: {med(r[name][0]):.2f} s ({med(r[name][1]):.2f} s CPU) | ratio {med(ratio):.2f} "
              f"(CPU {med(ratio_cpu):.2f}; target ≤ 1.15)")

    xk = x.repeat_interleave(k, 0)
    yk = y.repeat_interleave(k)
    theta = cat_theta([channel.sample(k, rng) for rng in rngs])
    ranges = atk.eot_chunks(n, k, chunk)
    parts = [(xk[a:b], yk[a:b], theta_rows(theta, a, b)) for a, b in ranges]

    def model_fb():
        for xs, ys, _ in parts:
            v = xs.detach().requires_grad_(True)
            torch.autograd.grad(F.cross_entropy(model(v), ys, reduction="sum"), v)

    def channel_fb(ch):
        def run():
            for xs, _, th in parts:
                v = xs.detach().requires_grad_(True)
                out = ch(v, th)
                torch.autograd.grad(out, v, grad_outputs=torch.ones_like(out))
        return run

    fns = {"model": model_fb, "channel": channel_fb(channel),
           "draw": lambda: cat_theta([channel.sample(k, rng) for rng in rngs])}
    fns.update({s: channel_fb(Channel(args.channel, stages=(s,))) for s in STAGES})
    if before:
        fns["channel_before"] = channel_fb(before[0].Channel(args.channel))
        fns.update({f"{s}_before": channel_fb(before[0].Channel(args.channel, stages=(s,))) for s in STAGES})
    r = rounds(fns, args.repeats)

    def share(name, cpu=0):
        return 100 * med([a / b for a, b in zip(r[name][cpu], r["model"][cpu])])
    print(f"  model forward+backward on {n * k}: {med(r['model'][0]):.2f} s ({med(r['model'][1]):.2f} s CPU) | "
          f"channel forward+backward: {med(r['channel'][0]):.3f} s = {share('channel'):.1f} % of the model "
          f"(CPU {share('channel', 1):.1f} %; target ≤ 15 %) | drawing θ: {1000 * med(r['draw'][0]):.0f} ms "
          f"= {share('draw'):.1f} %")
    print("  per stage, % of the model's forward+backward (wall / CPU): "
          + ", ".join(f"{s} {share(s):.1f} / {share(s, 1):.1f}" for s in STAGES))
    if before:
        print(f"  [--against {args.against}] channel forward+backward: {med(r['channel_before'][0]):.3f} s = "
              f"{share('channel_before'):.1f} % of the model (CPU {share('channel_before', 1):.1f} %); per stage: "
              + ", ".join(f"{s} {share(s + '_before'):.1f} / {share(s + '_before', 1):.1f}" for s in STAGES))

    if args.chunks:
        sizes = [int(s) for s in args.chunks.split(",")]
        xs32 = xk.repeat(-(-max(sizes) // len(xk)), 1, 1, 1)[:max(sizes)]
        ys32 = yk.repeat(-(-max(sizes) // len(yk)))[:max(sizes)]

        def fb(size):
            def run():
                for a in range(0, max(sizes), size):
                    v = xs32[a:a + size].detach().requires_grad_(True)
                    torch.autograd.grad(F.cross_entropy(model(v), ys32[a:a + size], reduction="sum"), v)
            return run
        r = rounds({s: fb(s) for s in sizes}, args.repeats)
        print(f"  model forward+backward per image, {max(sizes)} images in batches of: "
              + ", ".join(f"{s}: {1000 * med(r[s][0]) / max(sizes):.0f} ms ({1000 * med(r[s][1]) / max(sizes):.0f} CPU)"
                          for s in sizes))


if __name__ == "__main__":
    main()
