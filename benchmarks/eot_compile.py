"""Feasibility of torch.compile (inductor, CPU) for the EOT channel's forward + backward (issue 12, "Cost").

    python benchmarks/eot_compile.py [--part graphs,speed,numerics,shapes,recompiles,coldwarm] [--channel phone]
                                     [--threads 2] [--repeats 5] [--stages]

The channel's θ and passes are eot_speed's: 4 images × K = 8 samples (each image's own numpy stream),
in passes of `attacks.EOT_CPU_CHUNK` samples through `theta_rows`, at 224 px, model-size [0, 255] inputs.

  graphs    torch._dynamo.explain: graphs and graph breaks (with reasons) of Channel.forward
  speed     channel forward + backward, eager vs torch.compile(dynamic=False), on the same passes and θ,
            interleaved rounds, wall minima (and medians) as % of the model's forward + backward on the
            same passes (EfficientNet-Lite0, channels_last, as craft runs it); --stages adds each stage alone
  numerics  compiled vs eager: max |Δ| of outputs and input gradients (upstream gradient: ones, and a
            fixed random one), share of output pixels off by > 0.5 level; compiled twice → bitwise equal?
  shapes    the (batch, PSF size) pairs a craft's passes take (each a recompile with dynamic=False),
            for a few craft set-ups, from θ drawn as craft draws it (no channel run)
  recompiles  typical's passes of four PSF sizes and a short last chunk: graphs compiled, first-call and
            warm times, with dynamic=False and dynamic=None (automatic dynamic shapes)
  coldwarm  compile time of the first forward + backward in a fresh process with an empty
            TORCHINDUCTOR_CACHE_DIR (cold), then in a second fresh process reusing it (warm)

Runs inside `physical.heap.large_heap()` as craft does. Prints figures, asserts nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

from physical import attacks as atk
from physical import heap
from physical.channel import STAGES, Channel, cat_theta, theta_rows
from physical.presets import DEFAULT_CHANNEL


def passes(channel, n=4, k=8, seed=0, step=0):
    """eot_speed's passes: [(x, θ)] of EOT_CPU_CHUNK samples from n demo-sized random images."""
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand((n, 3, 224, 224), generator=g) * 255).contiguous()
    rngs = [np.random.default_rng([seed, i, step]) for i in range(n)]
    theta = cat_theta([channel.sample(k, r) for r in rngs])
    xk = x.repeat_interleave(k, 0)
    return [(xk[a:b], theta_rows(theta, a, b)) for a, b in atk.eot_chunks(n, k, atk.EOT_CPU_CHUNK)]


def fb(ch, parts, upstream=None):
    """Forward + backward of ch over the passes; (outputs, input gradients)."""
    outs, grads = [], []
    for i, (xs, th) in enumerate(parts):
        v = xs.detach().clone().requires_grad_(True)
        out = ch(v, th)
        (gx,) = torch.autograd.grad(out, v, grad_outputs=torch.ones_like(out) if upstream is None else upstream[i])
        outs.append(out.detach())
        grads.append(gx)
    return outs, grads


def rounds(fns: dict, repeats: int) -> dict:
    for fn in fns.values():     # warm-up (and, for compiled ones, compilation)
        fn()
    out = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            out[k].append(time.perf_counter() - t)
    return out


def compiled(channel, dynamic=False):
    return torch.compile(channel, dynamic=dynamic)


# "compiled, warp + blur eager": physical.channel's warp and blur behind torch.compiler.disable while
# KEEP_EAGER is on (dynamo guards on the flag, so each compiled channel keeps its own graphs); eager
# maths unchanged either way
KEEP_EAGER = {"on": False}


def _switchable(fn):
    off = torch.compiler.disable(fn)

    def call(*a):
        return off(*a) if KEEP_EAGER["on"] else fn(*a)
    return call


def install_switches():
    import physical.channel as pc
    if not getattr(pc, "_eot_compile_switches", False):
        pc.warp, pc.blur, pc._eot_compile_switches = _switchable(pc.warp), _switchable(pc.blur), True


def partly(fn):
    """fn run with warp and blur kept eager."""
    def run(*a):
        KEEP_EAGER["on"] = True
        try:
            return fn(*a)
        finally:
            KEEP_EAGER["on"] = False
    return run


def part_graphs(args):
    ch = Channel(args.channel)
    xs, th = passes(ch)[0]
    v = xs.clone().requires_grad_(True)
    e = torch._dynamo.explain(ch)(v, th)
    print(f"[graphs] {args.channel}: {e.graph_count} graphs, {e.graph_break_count} graph breaks, "
          f"{len(e.ops_per_graph and sum(e.ops_per_graph, []))} ops")
    for b in e.break_reasons:
        frame = b.user_stack[-1] if b.user_stack else None
        where = f"{os.path.basename(frame.filename)}:{frame.lineno}" if frame else "?"
        print(f"  break at {where}: {b.reason.splitlines()[0][:140]}")


def part_speed(args):
    from physical.models import load_model

    model = load_model("default").to(memory_format=torch.channels_last)
    ch = Channel(args.channel)
    parts = passes(ch)
    ys = torch.arange(len(parts[0][0])) % 1000
    cparts = [(xs.contiguous(memory_format=torch.channels_last), th) for xs, th in parts]

    def model_fb():
        for xs, _ in cparts:
            v = xs.detach().requires_grad_(True)
            torch.autograd.grad(F.cross_entropy(model(v), ys[:len(v)], reduction="sum"), v)

    install_switches()
    fns = {"model": model_fb, "eager": lambda: fb(ch, parts), "compiled": (lambda c: lambda: fb(c, parts))(compiled(ch)),
           "compiled, warp+blur eager": (lambda c: partly(lambda: fb(c, parts)))(compiled(ch))}
    if args.stages:
        for s in STAGES:
            sc = Channel(args.channel, stages=(s,))
            fns[f"{s} eager"] = (lambda c: lambda: fb(c, parts))(sc)
            fns[f"{s} compiled"] = (lambda c: lambda: fb(c, parts))(compiled(sc))
    t = time.perf_counter()
    r = rounds(fns, args.repeats)
    m = min(r["model"])
    print(f"[speed] {args.channel}, {torch.get_num_threads()} threads, {len(parts)} passes of {len(parts[0][0])}, "
          f"{args.repeats} rounds ({time.perf_counter() - t:.0f} s incl. compiling); wall min (median), % of the model's "
          f"f+b min {m:.3f} s ({np.median(r['model']):.3f})")
    for k in fns:
        if k != "model":
            print(f"  {k:22s} {min(r[k]):.4f} s ({np.median(r[k]):.4f}) = {100 * min(r[k]) / m:5.1f} %")


def part_numerics(args):
    ch = Channel(args.channel)
    parts = passes(ch, seed=1)
    g = torch.Generator().manual_seed(7)
    up = [torch.randn(xs.shape, generator=g) for xs, _ in parts]
    c = compiled(ch)
    e1, e2 = fb(ch, parts, up), fb(ch, parts, up)
    c1, c2 = fb(c, parts, up), fb(c, parts, up)
    ones_e, ones_c = fb(ch, parts), fb(c, parts)

    def mx(a, b):
        return max(float((u - w).abs().max()) for u, w in zip(a, b))
    off = np.mean([float(((u - w).abs() > 0.5).float().mean()) for u, w in zip(e1[0], c1[0])])
    gscale = max(float(u.abs().max()) for u in e1[1])
    rel = np.median([float((u - w).norm() / u.norm()) for u, w in zip(e1[1], c1[1])])
    print(f"[numerics] {args.channel} ({len(parts)} passes; outputs on [0, 255]): compiled vs eager max |Δ| output "
          f"{mx(e1[0], c1[0]):.4g}, {100 * off:.3f} % of pixels off by > 0.5 level; input gradient (random upstream) "
          f"max |Δ| {mx(e1[1], c1[1]):.3g} (max |grad| {gscale:.3g}), median relative L2 {rel:.2e}; "
          f"(ones upstream) max |Δ| {mx(ones_e[1], ones_c[1]):.3g}")
    agree = np.mean([float((torch.sign(u) == torch.sign(w)).float().mean()) for u, w in zip(e1[1], c1[1])])
    print(f"  sign(gradient) agreement (what a BIM/EOT step uses) {100 * agree:.3f} %; run to run: eager "
          f"{'bitwise equal' if mx(*[e1[0] + e1[1], e2[0] + e2[1]]) == 0 else 'DIFFERS'}, compiled "
          f"{'bitwise equal' if mx(*[c1[0] + c1[1], c2[0] + c2[1]]) == 0 else 'DIFFERS'}")


def part_shapes(args):
    """The (batch, kernel) shapes of the passes of a craft (steps × images × K draws): each distinct
    one is a compilation with dynamic=False; torch._dynamo recompiles a frame at most
    `torch._dynamo.config.recompile_limit` times, then runs it eager."""
    limit = getattr(torch._dynamo.config, "recompile_limit", getattr(torch._dynamo.config, "cache_size_limit", None))
    print(f"[shapes] recompile limit {limit}")
    for table, n, k, steps in ((args.channel, 8, 8, 10), ("typical", 8, 8, 10), ("typical", 5, 2, 5), (args.channel, 5, 6, 5)):
        ch = Channel(table)
        rngs = [np.random.default_rng([0, i]) for i in range(n)]
        seen = set()
        for _ in range(steps):
            thetas = [ch.sample(k, r) for r in rngs]
            for a, b in atk.eot_chunks(n, k, atk.EOT_CPU_CHUNK):
                i, j = a // k, (b - 1) // k
                th = (theta_rows(thetas[i], a - i * k, b - i * k) if i == j else theta_rows(cat_theta(thetas[i:j + 1]), 0, b - a))
                seen.add((b - a, th.kernel.shape[-1]))
        print(f"  {table}: {n} images, K = {k}, {steps} steps: {len(seen)} distinct (batch, PSF px) shapes "
              f"{sorted(seen)}")


def part_recompiles(args):
    """Typical's passes with PSFs of 11-17 px, then a last chunk of 2 samples: compilations and first-call
    seconds with dynamic=False and with dynamic=None (torch's default: a shape seen changing is made
    symbolic on the recompile), and each graph's warm f+b against eager."""
    from torch._dynamo.utils import counters

    ch = Channel("typical")
    by_k, seed = {}, 0
    while len(by_k) < 4 and seed < 40:
        for xs, th in passes(ch, seed=seed):
            by_k.setdefault(th.kernel.shape[-1], (xs, th))
        seed += 1
    ks = sorted(by_k)
    xs, th = by_k[ks[0]]
    shapes = [by_k[k] for k in ks] + [(xs[:2], theta_rows(th, 0, 2))]
    names = [f"4@{k}" for k in ks] + [f"2@{ks[0]}"]
    for dyn in (False, None):
        torch._dynamo.reset()
        counters.clear()
        c = compiled(ch, dynamic=dyn)
        first = []
        try:
            for p in shapes:
                t = time.perf_counter()
                fb(c, [p])
                first.append(time.perf_counter() - t)
        except Exception as e:   # what breaks is the finding
            print(f"[recompiles] typical, dynamic={dyn}: FAILS on shape {names[len(first)]} after "
                  f"{len(first)} shapes: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
            continue
        warm = {n: [] for n in names}
        eager = {n: [] for n in names}
        for _ in range(args.repeats):
            for n, p in zip(names, shapes):
                t = time.perf_counter()
                fb(c, [p])
                warm[n].append(time.perf_counter() - t)
                t = time.perf_counter()
                fb(ch, [p])
                eager[n].append(time.perf_counter() - t)
        print(f"[recompiles] typical, dynamic={dyn}: {counters['stats']['unique_graphs']} graphs compiled for "
              f"{len(shapes)} shapes (batch@PSF px); first call s: "
              + ", ".join(f"{n} {t:.1f}" for n, t in zip(names, first)))
        print("  warm f+b ms, compiled / eager (min): "
              + ", ".join(f"{n} {1000 * min(warm[n]):.1f} / {1000 * min(eager[n]):.1f}" for n in names))


CHILD = r"""
import json, sys, time, numpy as np, torch
sys.path.insert(0, {bench!r})
import eot_compile as ec
from physical.channel import Channel
torch.set_num_threads({threads})
ch = Channel({channel!r})
parts = ec.passes(ch)[:1]
c = ec.compiled(ch)
t = time.perf_counter(); ec.fb(c, parts); first = time.perf_counter() - t
t = time.perf_counter(); ec.fb(c, parts); second = time.perf_counter() - t
t = time.perf_counter(); ec.fb(ch, parts); eager = time.perf_counter() - t
print(json.dumps({{"first": first, "second": second, "eager": eager}}))
"""


def part_coldwarm(args):
    cache = tempfile.mkdtemp(prefix="inductor-cache-")
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
    code = CHILD.format(bench=os.path.dirname(os.path.abspath(__file__)), threads=args.threads, channel=args.channel)
    res = []
    for label in ("cold", "warm", "warm"):
        t = time.perf_counter()
        p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        if p.returncode:
            print(p.stderr[-2000:])
            return
        d = json.loads(p.stdout.strip().splitlines()[-1])
        res.append((label, d, time.perf_counter() - t))
    print(f"[coldwarm] {args.channel}, {args.threads} threads, cache {cache}: first compiled forward + backward "
          f"of one pass (compile included), then a second call, then eager")
    for label, d, total in res:
        print(f"  {label}: first {d['first']:.1f} s, second {1000 * d['second']:.0f} ms, eager {1000 * d['eager']:.0f} ms "
              f"(process {total:.0f} s)")
    shutil.rmtree(cache, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", default="graphs,speed,numerics,shapes,recompiles,coldwarm")
    ap.add_argument("--channel", default=DEFAULT_CHANNEL)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--stages", action="store_true", help="also each stage alone, eager and compiled")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, load {os.getloadavg()[0]:.2f}")
    with heap.large_heap():
        for p in args.part.split(","):
            globals()[f"part_{p}"](args)


if __name__ == "__main__":
    main()
