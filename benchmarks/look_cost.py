"""What the phone look costs: the channel's forward + backward as % of the model's, typical vs PHONE
without the look vs PHONE vs phones, measured interleaved in one process (CPU seconds).

    python benchmarks/look_cost.py [--repeats 3] [--threads 1]

4 images × K = 8 samples in passes of 4 (as attacks.eot_gradient on CPU); random 224-px images.
Prints figures, asserts nothing.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
from eot_speed import med, rounds  # noqa: E402

from physical.channel import Channel, cat_theta, theta_rows  # noqa: E402
from physical.models import load_model  # noqa: E402
from physical.presets import PHONE  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model("default").to(memory_format=torch.channels_last)
    n, k, chunk = 4, 8, 4
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(n * k, 3, 224, 224, generator=g) * 255).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (n * k,), generator=g)
    nolook = Channel(PHONE)
    nolook.look = False
    chans = {"typical": Channel("typical"), "PHONE without look": nolook, "PHONE": Channel(PHONE),
             "phones": Channel("phones")}

    def fb(ch, th):
        def run():
            for a in range(0, n * k, chunk):
                v = x[a:a + chunk].detach().requires_grad_(True)
                out = ch(v, theta_rows(th, a, a + chunk))
                torch.autograd.grad(out, v, grad_outputs=torch.ones_like(out))
        return run

    def model_fb():
        for a in range(0, n * k, chunk):
            v = x[a:a + chunk].detach().requires_grad_(True)
            torch.autograd.grad(F.cross_entropy(model(v), y[a:a + chunk], reduction="sum"), v)

    fns = {"model": model_fb}
    for name, ch in chans.items():
        fns[name] = fb(ch, cat_theta([ch.sample(k, np.random.default_rng([0, i])) for i in range(n)]))
    r = rounds(fns, args.repeats)
    print(f"model forward + backward on {n * k}: {med(r['model'][1]):.2f} s CPU; channel forward + backward, % of it (CPU): "
          + ", ".join(f"{name} {100 * med([a / b for a, b in zip(r[name][1], r['model'][1])]):.1f}" for name in chans))


if __name__ == "__main__":
    main()
