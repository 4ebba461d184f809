"""Cost of one EOT step with K channel samples against K BIM steps on the same batch.

    python benchmarks/eot_speed.py [--batch 4] [--samples 8] [--repeats 3] [--channel typical]

One EOT step = θ drawn for N·K samples, T(x; θ), the model's forward and backward on all N·K at
once, the sign step. K BIM steps = K forward + backward passes of the model on the N images.
Also: the channel alone (forward + backward on N·K, θ drawing apart) against the model alone on
N·K, per stage. Target (issue 12): EOT step ≤ 1.15 × K BIM steps; channel ≤ 15 % of the model.
Best of --repeats; prints figures, asserts nothing.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from physical import attacks as atk
from physical.channel import STAGES, Channel, cat_theta
from physical.data import demo_items, load_image
from physical.models import load_model


def best(fn, repeats: int) -> float:
    fn()  # warm-up (first-call allocations, kornia's table caches)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--channel", default="typical")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    n, k = args.batch, args.samples
    model = load_model("default").to(memory_format=torch.channels_last)
    items = demo_items()
    x = torch.from_numpy(np.stack([load_image(items[i % len(items)].path, 224, 256) for i in range(n)])
                         ).permute(0, 3, 1, 2).float().contiguous(memory_format=torch.channels_last)
    y = torch.tensor([items[i % len(items)].label for i in range(n)])
    channel = Channel(args.channel)
    rngs = [np.random.default_rng([0, i]) for i in range(n)]

    t_bim = best(lambda: [atk.input_gradient(model, x, y) for _ in range(k)], args.repeats)
    t_eot = best(lambda: atk.eot_gradient(model, channel, x, y, k, rngs), args.repeats)
    print(f"batch {n} images, K = {k}, channel {args.channel}, {torch.get_num_threads()} threads")
    print(f"  K = {k} BIM steps: {t_bim:.2f} s | one EOT step with K samples: {t_eot:.2f} s | "
          f"ratio {t_eot / t_bim:.2f} (target ≤ 1.15)")

    xk = x.repeat_interleave(k, 0)
    yk = y.repeat_interleave(k)
    t_draw = best(lambda: cat_theta([channel.sample(k, r) for r in rngs]), args.repeats)
    theta = cat_theta([channel.sample(k, r) for r in rngs])

    def model_fb():
        v = xk.detach().requires_grad_(True)
        torch.autograd.grad(F.cross_entropy(model(v), yk, reduction="sum"), v)

    def channel_fb(ch):
        v = xk.detach().requires_grad_(True)
        out = ch(v, theta)
        torch.autograd.grad(out, v, grad_outputs=torch.ones_like(out))

    t_model = best(model_fb, args.repeats)
    t_chan = best(lambda: channel_fb(channel), args.repeats)
    print(f"  model forward+backward on {n * k}: {t_model:.2f} s | channel forward+backward: {t_chan:.2f} s = "
          f"{100 * t_chan / t_model:.1f} % of the model (target ≤ 15 %) | drawing θ: {t_draw * 1000:.0f} ms")
    parts = []
    for stage in STAGES:
        t = best(lambda: channel_fb(Channel(args.channel, stages=(stage,))), max(1, args.repeats - 1))
        parts.append(f"{stage} {100 * t / t_model:.1f} %")
    print("  per stage, % of the model's forward+backward: " + ", ".join(parts))


if __name__ == "__main__":
    main()
