"""Adversarial attacks of Kurakin, Goodfellow & Bengio (2016), as pure functions.

Every function takes float images N×3×H×W on the [0, 255] scale and integer labels, and returns
float images on the same scale; ε and α are in intensity levels (ε = 16 means 16/255). Inputs
outside [0, 255] raise ValueError (`check_input`), and so does ε outside [0, 255] (`check_eps`
says why ε > 255 is refused rather than read as 255). The model
is a `physical.models.Classifier` (or any module taking [0, 255] images): its normalisation is
inside it, so gradients are taken through it, never on normalised tensors.

    FGSM  X_adv = clip_[0,255]( X + ε·sign(∇_X J(X, y_true)) )
    BIM   X_0 = X,  X_{N+1} = Clip_{X,ε}{ X_N + α·sign(∇_X J(X_N, y_true)) }
    ILL   y_LL = argmin_y p(y|X) (clean image, fixed);  X_{N+1} = Clip_{X,ε}{ X_N − α·sign(∇_X J(X_N, y_LL)) }
    Clip_{X,ε}{X'} = min{ 255, X + ε, max{ 0, X − ε, X' } }

Number of iterations: the paper gives min(ε + 4, 1.25ε) without saying how to round; we truncate
(`int`), as torchattacks' BIM does: ε = 2, 4, 8, 16 → 2, 5, 10, 20 steps. Override with `steps`.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

ATTACKS = ("fgsm", "bim", "ill", "noise", "gauss", "eot")  # eot: `eot` below, crafted via physical/robust.py
ITERATIVE = ("bim", "ill")


def variant_name(attack: str, eps: float, target: int | None = None) -> str:
    """'fgsm-eps16', 'bim-eps2', 'noise-eps0.5'; targeted: 'bim-eps16-to924' (class index)."""
    name = f"{attack}-eps{eps:g}"
    return name if target is None else f"{name}-to{int(target)}"


def parse_variant(variant: str) -> tuple[str, float | None]:
    """(attack, ε) of a variant name; a targeted variant's '-to<class>' is left to `variant_target`."""
    if variant == "clean":
        return "clean", None
    attack, _, eps = variant.partition("-eps")
    return attack, float(eps.partition("-to")[0])


def variant_target(variant: str) -> int | None:
    """The target class index of a targeted variant ('bim-eps16-to924' → 924), else None."""
    _, sep, target = variant.partition("-eps")[2].partition("-to")
    return int(target) if sep and target.isdigit() else None


def paper_steps(eps: float) -> int:
    """min(ε + 4, 1.25ε), truncated to an integer (at least 1; ε = 0 leaves the input as it is)."""
    return max(1, int(min(eps + 4, 1.25 * eps)))


EPS_MAX = 255.0


def check_eps(eps: float, positive: bool = False) -> float:
    """ε in intensity levels: [0, 255] for the attack functions (ε = 0 returns the input);
    `positive`: (0, 255], the rule of every command that crafts (ε = 0 would be the clean image).
    ε > 255 (and ±inf, nan) is refused, not read as 255: FGSM, the projection and the sign
    baseline would be those of ε = 255, but the paper's step count (`paper_steps`) and the
    Gaussian baseline's L2 norm grow with ε, so "400" would silently be a different attack from
    "255" in some places and the same in others."""
    ok = isinstance(eps, (int, float)) and math.isfinite(eps) and (eps > 0 if positive else eps >= 0) and eps <= EPS_MAX
    if not ok:
        raise ValueError(f"ε must be in {'(' if positive else '['}0, {EPS_MAX:g}] intensity levels "
                         f"(at most the whole pixel range), got {eps!r}")
    return float(eps)


def check_input(x: torch.Tensor, name: str = "x") -> torch.Tensor:
    """The shared input check of every public attack: a floating tensor whose values all lie in
    [0, 255] (nan fails). Normalised inputs (negative values) are the commonest misuse of attack
    libraries (torchattacks #11, #68): here they raise instead of being clipped. (An image on
    the [0, 1] scale lies inside [0, 255] and cannot be told apart by its values.)"""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise ValueError(f"{name} must be a float tensor of images in [0, 255], got "
                         f"{type(x).__name__ if not isinstance(x, torch.Tensor) else x.dtype}")
    if x.numel():
        lo, hi = torch.aminmax(x.detach())
        if not (lo >= 0 and hi <= 255):
            raise ValueError(f"{name} must lie in the range [0, 255] (intensity levels), got values in "
                             f"[{float(lo):g}, {float(hi):g}]")
    return x


def input_gradient(model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """∇_X J(X, y) for the cross-entropy J, summed over the batch so each image's gradient is its own."""
    x = x.detach().requires_grad_(True)
    loss = F.cross_entropy(model(x), y, reduction="sum")
    (grad,) = torch.autograd.grad(loss, x)
    return grad


def clip_eps(x_adv: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    """Clip_{X,ε}: the ε-ball around X intersected with [0, 255], exactly as the paper writes it.
    X must lie in [0, 255] (X' may lie anywhere: it is what gets projected)."""
    check_input(x)
    return torch.minimum(torch.clamp(x + eps, max=255.0), torch.maximum(torch.clamp(x - eps, min=0.0), x_adv))


def fgsm(model, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """Fast gradient sign method (Goodfellow et al. 2015), clipped to [0, 255]."""
    return fgsm_sweep(model, x, y, [eps])[0]


def fgsm_sweep(model, x: torch.Tensor, y: torch.Tensor, eps_list: Sequence[float]) -> list[torch.Tensor]:
    """FGSM at several ε from ONE gradient (the sign does not depend on ε)."""
    check_input(x)
    eps_list = [check_eps(e) for e in eps_list]
    step = input_gradient(model, x, y).sign()
    return [torch.clamp(x + eps * step, 0.0, 255.0).detach() for eps in eps_list]


def least_likely(model, x: torch.Tensor) -> torch.Tensor:
    """y_LL = argmin_y p(y | X), vectorised, without gradients."""
    with torch.no_grad():
        return model(x).argmin(dim=1)


def _iterate(model, x, target, eps, alpha, steps, direction):
    x_adv = x.clone()
    for _ in range(steps):
        grad = input_gradient(model, x_adv, target)
        x_adv = clip_eps(x_adv + direction * alpha * grad.sign(), x, eps).detach()
    return x_adv


def _check_iter(eps, alpha, steps):
    eps = check_eps(eps)
    if not alpha > 0:
        raise ValueError(f"α must be positive, got {alpha!r}")
    steps = paper_steps(eps) if steps is None else steps
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    return eps, float(alpha), int(steps)


def bim(model, x: torch.Tensor, y: torch.Tensor, eps: float, alpha: float = 1.0,
        steps: int | None = None) -> torch.Tensor:
    """Basic iterative method: FGSM steps of α, projected onto Clip_{X,ε} after every step."""
    check_input(x)
    eps, alpha, steps = _check_iter(eps, alpha, steps)
    return _iterate(model, x, y, eps, alpha, steps, +1.0)


def ill(model, x: torch.Tensor, eps: float, alpha: float = 1.0, steps: int | None = None,
        target: torch.Tensor | None = None) -> torch.Tensor:
    """Iterative least-likely class method: descend the loss of y_LL chosen once on the clean image."""
    check_input(x)
    eps, alpha, steps = _check_iter(eps, alpha, steps)
    target = least_likely(model, x) if target is None else target
    return _iterate(model, x, target, eps, alpha, steps, -1.0)


def iterative_sweep(model, x: torch.Tensor, target: torch.Tensor | None, eps_list: Sequence[float],
                    alpha: float = 1.0, steps: dict | None = None, direction: float = +1.0,
                    max_batch: int | None = None) -> list[torch.Tensor]:
    """BIM (direction +1, target = true labels) or ILL (−1, target = y_LL, or None: y_LL of the
    clean X from the first step's forward pass) at several ε, from one shared trajectory;
    returns what `bim`/`ill` return for each ε, in `eps_list`'s order.

    The trajectory of the largest ε is also that of a smaller ε for as long as Clip_{X,ε} would not
    change a value, i.e. at least the first ⌊ε/α⌋ steps (k·α ≤ ε), and the gradient of the step
    where they part is taken on the shared image. So each smaller ε rides the shared trajectory
    and branches off at the first step where its own clip differs anywhere in the batch (tested
    by comparing the two clips, so exact for any α, not only integer ones), then takes its own
    remaining steps. The paper's ε 2, 4, 8, 16 (2, 5, 10, 20 steps, α = 1): 21 gradients, not 37.
    `steps` maps ε → iterations (default: the paper's). See `iterative_sweeps` for `max_batch`."""
    return iterative_sweeps(model, x, [(target, direction)], eps_list, alpha, steps, max_batch)[0]


def iterative_sweeps(model, x: torch.Tensor, attacks: Sequence[tuple], eps_list: Sequence[float],
                     alpha: float = 1.0, steps: dict | None = None,
                     max_batch: int | None = None) -> list[list[torch.Tensor]]:
    """`iterative_sweep` for several attacks of the same images at once, `attacks` being
    (target, direction) pairs, e.g. [(y, +1), (None, −1)] for BIM and ILL: one list per attack.

    Every trajectory's step (each attack's shared one and the branches of smaller ε) goes into
    one forward + backward pass of all their images (in chunks of at most `max_batch` images):
    fewer, larger passes cost less per image on a CPU than one pass per trajectory. The first
    step, where every attack is at the clean X, takes one forward pass and one backward pass per
    attack (its y_LL read off that forward pass when the target is None). Each image's gradient
    is its own (the loss is a sum), so the results are those of `bim`/`ill` wherever the
    convolution kernels give an image the same values whatever batch it is in (bit-identical on
    CPU for the default model; tests/test_sweep.py)."""
    steps = steps or {}
    plan = {}
    for e in eps_list:
        e, _, n = _check_iter(e, alpha, steps.get(e))
        plan[e] = n
    check_input(x)
    alpha = float(alpha)
    top = max(plan)
    mains = [_Track(x.clone(), target, float(direction), top, {e: n for e, n in plan.items() if e != top})
             for target, direction in attacks]
    branches: list[_Track] = []
    k = 0
    while True:
        for t in mains:
            for e in [e for e, n in t.riders.items() if n == k]:  # finished without ever parting
                t.done[e] = t.x_adv
                del t.riders[e]
            if k == plan[top]:
                t.done[top] = t.x_adv
        moving = [t for t in mains if k < plan[top] or t.riders] + [b for b in branches if b.left]
        if not moving:
            break
        grads = _first_gradients(model, x, mains, max_batch) if k == 0 else _gradients(model, moving, max_batch)
        for t, grad in zip(moving, grads):
            moved = t.x_adv + t.direction * alpha * grad.sign()
            t.x_adv = clip_eps(moved, x, t.eps).detach()
            if t.left is not None:                      # a smaller ε's own steps after parting
                t.left -= 1
                if not t.left:
                    t.owner.done[t.eps] = t.x_adv
                continue
            for e in list(t.riders):
                own = clip_eps(moved, x, e).detach()
                if not torch.equal(own, t.x_adv):
                    del t.riders[e]
                    if plan[e] == k + 1:
                        t.done[e] = own
                    else:
                        branches.append(_Track(own, t.target, t.direction, e, {}, left=plan[e] - k - 1, owner=t))
        k += 1
    return [[t.done[check_eps(e)] for e in eps_list] for t in mains]


class _Track:
    """One trajectory of `iterative_sweeps`: an attack's shared one (`riders`: the smaller ε still
    on it, ε → steps; `done`: ε → result) or a smaller ε's branch (`left` steps, results to `owner`)."""

    def __init__(self, x_adv, target, direction, eps, riders, left=None, owner=None):
        self.x_adv, self.target, self.direction, self.eps = x_adv, target, direction, eps
        self.riders, self.left, self.owner, self.done = riders, left, owner, {}


def _chunks(n: int, max_batch: int | None):
    size = n if not max_batch else max(1, int(max_batch))
    return [slice(i, min(n, i + size)) for i in range(0, n, size)]


def _gradients(model, tracks, max_batch):
    """`input_gradient` of every track's images, all in one batch (or chunks of `max_batch`)."""
    if len(tracks) == 1 and (not max_batch or len(tracks[0].x_adv) <= max_batch):
        return [input_gradient(model, tracks[0].x_adv, tracks[0].target)]
    x_all = torch.cat([t.x_adv for t in tracks])
    y_all = torch.cat([t.target for t in tracks])
    grad = torch.cat([input_gradient(model, x_all[s], y_all[s]) for s in _chunks(len(x_all), max_batch)])
    return list(grad.split([len(t.x_adv) for t in tracks]))


def _first_gradients(model, x, mains, max_batch):
    """The first step of every attack, all at the clean X: one forward pass (per chunk), one
    backward pass per attack; a target of None becomes y_LL = argmin of that pass's logits."""
    per_chunk = []
    for s in _chunks(len(x), max_batch):
        xs = x[s].detach().requires_grad_(True)
        logits = model(xs)
        low = logits.detach().argmin(dim=1)
        grads = []
        for i, t in enumerate(mains):
            goal = low if t.target is None else t.target[s]
            loss = F.cross_entropy(logits, goal, reduction="sum")
            grads.append((torch.autograd.grad(loss, xs, retain_graph=i < len(mains) - 1)[0], goal))
        per_chunk.append(grads)
    out = []
    for i, t in enumerate(mains):
        if t.target is None:
            t.target = torch.cat([c[i][1] for c in per_chunk])
        out.append(torch.cat([c[i][0] for c in per_chunk]) if len(per_chunk) > 1 else per_chunk[0][i][0])
    return out


def sign_noise(x: torch.Tensor, eps: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Baseline of the same L∞ size: each value moved by ±ε at random, clipped to [0, 255]."""
    check_input(x)
    eps = check_eps(eps)
    signs = torch.randint(0, 2, x.shape, generator=generator, device="cpu").to(x) * 2 - 1
    return torch.clamp(x + eps * signs, 0.0, 255.0)


def gaussian_noise(x: torch.Tensor, eps: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Gaussian baseline of matched L2: per image, noise scaled to L2 norm ε·√d — the norm of a
    full ±ε sign perturbation (FGSM's, before clipping) — then clipped to [0, 255]."""
    check_input(x)
    eps = check_eps(eps)
    noise = torch.randn(x.shape, generator=generator, device="cpu").to(x)
    d = x[0].numel()
    norms = noise.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
    return torch.clamp(x + noise * (eps * math.sqrt(d) / norms), 0.0, 255.0)


def run_attack(name: str, model, x: torch.Tensor, y: torch.Tensor, eps_list: Sequence[float],
               alpha: float = 1.0, steps: dict | None = None,
               generator: torch.Generator | None = None) -> list[torch.Tensor]:
    """One attack over an ε sweep: a list of adversarial batches, one per ε.
    FGSM costs one gradient for the whole sweep; `steps` maps ε → iterations (default: paper's)."""
    if name not in ATTACKS or name == "eot":
        raise ValueError(f"unknown attack {name!r} (eot needs a channel: call `eot`): "
                         f"choose from {', '.join(a for a in ATTACKS if a != 'eot')}")
    steps = steps or {}
    if name == "fgsm":
        return fgsm_sweep(model, x, y, eps_list)
    if name in ITERATIVE:
        # Several ε: one shared trajectory (exact, see iterative_sweep); one ε: the plain attack.
        if len(eps_list) > 1:
            return run_attacks([name], model, x, y, eps_list, alpha, steps)[name]
        if name == "bim":
            return [bim(model, x, y, e, alpha, steps.get(e)) for e in eps_list]
        return [ill(model, x, e, alpha, steps.get(e)) for e in eps_list]
    if name == "noise":
        return [sign_noise(x, e, generator) for e in eps_list]
    return [gaussian_noise(x, e, generator) for e in eps_list]


# Images per forward + backward pass of the iterative attacks on CPU. glibc maps every block over
# its mmap threshold (at most 32 MiB) afresh and the kernel zeroes it page by page: at 8 images of
# 224 px, EfficientNet-Lite0's widest activations (96 × 112² floats per image) pass that, so each
# pass page-faults ~1 M times; at 4 they stay in malloc's heap. Measured at idle, BIM + ILL at ε 2,
# 4, 8, 16 on 8 images, interleaved in one process: passes of 4: 10.2 s, of 8: 11.1 s, BIM + ILL
# together in passes of 8: 12.3 s (torchattacks: 25.7 s); `benchmarks/craft_speed.py --sweep
# --batch 8` then printed 2.71x against torchattacks. The results do not depend on it (a pass's
# images are independent: tests/test_sweep.py).
CPU_PASS_IMAGES = 4


def run_attacks(names: Sequence[str], model, x: torch.Tensor, y: torch.Tensor, eps_list: Sequence[float],
                alpha: float = 1.0, steps: dict | None = None, generator: torch.Generator | None = None,
                max_batch: int | None = None) -> dict[str, list[torch.Tensor]]:
    """`run_attack` for several attacks of the same batch: name → its list, one batch per ε. BIM
    and ILL over several ε share their passes (`iterative_sweeps`: both trajectories in one
    batch, `max_batch` images at most per pass, one forward pass at the clean X for both)."""
    together = [n for n in dict.fromkeys(names) if n in ITERATIVE] if len(eps_list) > 1 else []
    out = {}
    if together:
        jobs = [(y, +1.0) if n == "bim" else (None, -1.0) for n in together]
        out.update(zip(together, iterative_sweeps(model, x, jobs, eps_list, alpha, steps, max_batch)))
    for n in names:
        if n not in out:
            out[n] = run_attack(n, model, x, y, eps_list, alpha, steps, generator)
    return out


# --------------------------------------------------------------------------------------------
# Targeted attacks and expectation over transformation (EOT)
#
#   targeted FGSM  X_adv = clip_[0,255]( X − ε·sign(∇_X J(X, y_t)) )     (Kurakin's "step l.l." with a chosen class)
#   targeted BIM   X_{N+1} = Clip_{X,ε}{ X_N − α·sign(∇_X J(X_N, y_t)) }  (ILL's iteration with y_t for y_LL)
#   EOT            X_{N+1} = Clip_{X,ε}{ X_N ± α·sign(∇_X E_θ J(T(X_N; θ), y)) },  + for y_true, − for y_t;
#                  E_θ is the mean over K channel samples θ drawn afresh every step, all K·N samples
#                  of a batch in one forward and one backward pass (Athalye et al. 2018).

EOT_SAMPLES = 8      # K; the measurements behind the defaults: docs/robust.md, "Survival"
EOT_ALPHA = 1.0
EOT_TARGETED_STEPS = 8   # targeted EOT runs this many times BIM's iterations (160 at ε = 16)


def eot_steps(eps: float, targeted: bool = False) -> int:
    """Default EOT iterations: BIM's (20 at ε = 16), eight times that when targeted. Measured
    (benchmarks/eot_survival.py, ε = 16, α = 1, K = 8, the phone channel, 40 distinct real photos;
    docs/robust.md, "Survival"): untargeted at 20 steps 100 % digital success and 0 % destruction
    through simulate (typical) and through an unseen printer + phone; targeted (to 924) at 40 steps
    90 % digital success, 97 % survival through typical but 69 % through unseen, at 80 steps 95 %,
    100 % and 81 %; with the shadow plug, at 80 steps 92 % digital and 57 / 70 % through a printer
    + phone written blind (benchmarks/pdf_camera.py, two seeds), at 160 steps 98 % and 69 / 77 %
    (typical 97 %, unseen 89 %). Moving a prediction onto one chosen class under every draw of the
    channel takes more steps than moving it off its own class."""
    return paper_steps(eps) * (EOT_TARGETED_STEPS if targeted else 1)


def fgsm_targeted(model, x: torch.Tensor, target: torch.Tensor, eps: float) -> torch.Tensor:
    """One step of ε towards class `target`, clipped to [0, 255]."""
    return fgsm_targeted_sweep(model, x, target, [eps])[0]


def fgsm_targeted_sweep(model, x, target, eps_list: Sequence[float]) -> list[torch.Tensor]:
    eps_list = [check_eps(e) for e in eps_list]
    step = input_gradient(model, x, target).sign()
    return [torch.clamp(x - eps * step, 0.0, 255.0).detach() for eps in eps_list]


def bim_targeted(model, x: torch.Tensor, target: torch.Tensor, eps: float, alpha: float = 1.0,
                 steps: int | None = None) -> torch.Tensor:
    """BIM towards class `target`: descend J(X, y_t), projected onto Clip_{X,ε} after every step."""
    eps, alpha, steps = _check_iter(eps, alpha, steps)
    return _iterate(model, x, target, eps, alpha, steps, -1.0)


# Samples per forward + backward pass on CPU. There a batch of N·K images is slower per image than
# small ones: the activations of 32 images at 224 px (~50 MB a tensor for the first layers) fall out of
# the caches and every such tensor is a fresh allocation the OS has to zero (glibc's 32 MiB mmap cap;
# see CPU_PASS_IMAGES, the same size for the same reason). Measured at idle,
# `benchmarks/eot_speed.py --batch 4 --samples 8 --repeats 3`: one EOT step 1.13 s in passes of 4
# against 1.58 s in passes of 8 (the model's forward + backward on 32 samples: 0.84 vs 1.42 s).
# On CUDA all N·K samples go in one batch.
# A chunk never holds samples of two images unless it holds all of both, so an image's gradient does
# not depend on its batch, and a fixed size (not a timed one) keeps results reproducible.
EOT_CPU_CHUNK = CPU_PASS_IMAGES


def eot_chunks(n: int, samples: int, size: int) -> list[tuple[int, int]]:
    """(start, stop) ranges of the n·samples samples (image 0's first), about `size` samples each:
    whole images when samples ≤ size, else each image's samples in near-equal parts."""
    if samples <= size:
        per = size // samples * samples
        return [(a, min(a + per, n * samples)) for a in range(0, n * samples, per)]
    parts = -(-samples // size)
    cuts = [round(j * samples / parts) for j in range(parts + 1)]
    return [(i * samples + a, i * samples + b) for i in range(n) for a, b in zip(cuts, cuts[1:])]


def eot_gradient(model, channel, x: torch.Tensor, y: torch.Tensor, samples: int, rngs,
                 chunk: int | None = None) -> torch.Tensor:
    """∇_X of (1/K) Σ_k J(T(X; θ_k), y) per image, θ_k drawn with each image's own numpy generator
    (so an image's result does not depend on its batch). All N·K samples are batched tensors: one
    forward + backward on CUDA, on CPU passes of `chunk` samples (default EOT_CPU_CHUNK) whose
    gradients are summed."""
    from physical.channel import cat_theta, theta_rows

    thetas = [channel.sample(samples, rng, device=x.device) for rng in rngs]
    n = len(x)
    size = (EOT_CPU_CHUNK if x.device.type == "cpu" else n * samples) if chunk is None else int(chunk)
    ranges = eot_chunks(n, samples, max(1, size))
    if len(ranges) == 1:
        x = x.detach().requires_grad_(True)
        logits = model(channel(x.repeat_interleave(samples, dim=0), cat_theta(thetas)))
        loss = F.cross_entropy(logits, y.repeat_interleave(samples), reduction="sum") / samples
        (grad,) = torch.autograd.grad(loss, x)
        return grad
    grad = torch.zeros_like(x)
    owner = torch.arange(n, device=x.device).repeat_interleave(samples)
    for a, b in ranges:
        rows = owner[a:b]
        xs = x.detach()[rows].requires_grad_(True)
        # the chunk's θ from its own images' draws: what theta_rows(cat_theta(thetas), a, b) gives,
        # without concatenating every sample's noise field first (a third of drawing θ's cost)
        i, j = a // samples, (b - 1) // samples
        theta = (theta_rows(thetas[i], a - i * samples, b - i * samples) if i == j else
                 theta_rows(cat_theta(thetas[i:j + 1]), 0, b - a))
        loss = F.cross_entropy(model(channel(xs, theta)), y[rows], reduction="sum") / samples
        (g,) = torch.autograd.grad(loss, xs)
        grad.index_add_(0, rows, g)
    return grad


def eot(model, x: torch.Tensor, y: torch.Tensor, eps: float, channel, samples: int = EOT_SAMPLES,
        alpha: float = EOT_ALPHA, steps: int | None = None, targeted: bool = False,
        seeds: Sequence | int = 0) -> torch.Tensor:
    """Expectation over transformation through `channel` (a `physical.channel.Channel`).

    Untargeted (y = true labels) ascends the expected loss; targeted (y = target classes)
    descends it. Sign steps of α inside Clip_{X,ε}, exactly BIM's projection. `seeds`: one per
    image (anything `np.random.default_rng` takes), or an int s → image i uses [s, i]."""
    import numpy as np

    eps, alpha, _ = _check_iter(eps, alpha, 1)
    steps = eot_steps(eps, targeted) if steps is None else steps
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if int(samples) != samples or samples < 1:
        raise ValueError(f"samples must be a positive integer, got {samples!r}")
    if isinstance(seeds, int):
        seeds = [[seeds, i] for i in range(len(x))]
    if len(seeds) != len(x):
        raise ValueError(f"{len(seeds)} seeds for {len(x)} images")
    rngs = [np.random.default_rng(s) for s in seeds]
    direction = -1.0 if targeted else 1.0
    x_adv = x.clone()
    for _ in range(int(steps)):
        grad = eot_gradient(model, channel, x_adv, y, int(samples), rngs)
        x_adv = clip_eps(x_adv + direction * alpha * grad.sign(), x, eps).detach()
    return x_adv
