"""Szegedy et al. (2014): the minimal targeted perturbation by box-constrained L-BFGS.

    minimise  c·‖r‖₂² + loss_f(x + r, l)   subject to  x + r ∈ [0, 1]^m

solved by SciPy's L-BFGS-B (`scipy.optimize.minimize(method="L-BFGS-B", bounds=...)`, the box
as bounds on x' = x + r), with a line search over c.

**Which c.** c weighs the size of r against the loss of the target label. A *larger* c
penalises distortion more, so the minimiser moves less; a smaller c lets the loss win and
reaches the target with a bigger r. The paper's wording ("the minimum c > 0 for which the
minimiser satisfies f(x + r) = l") reads the wrong way round for this formulation (it is right for
Carlini & Wagner's ‖r‖ + c·loss): the minimum-distortion example is the one at the **largest c
whose minimiser still reaches l**. The search here brackets that c per example by bisection in
log c between a c that reaches the target and one that does not, and keeps the smallest
distortion among the minimisers that reached it (success is nearly but not exactly monotone in c).

**Norm.** The squared L2 norm keeps the objective smooth at r = 0 (where L-BFGS starts); any
increasing function of ‖r‖₂ traces the same trade-off between distortion and loss as c varies.

**Distortion** is Szegedy's measure: sqrt(Σ rᵢ² / m), i.e. the RMS change per pixel on [0, 1]
(so Gaussian noise of standard deviation σ has distortion ≈ σ).

**Batching.** Examples are independent and the objective is a sum over them, so all examples of
one call are solved as one L-BFGS-B problem (each with its own c and target): the minimiser of a
separable sum is the tuple of the separate minimisers, and one call costs one batched forward
and backward per iteration instead of one per example.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import minimize


def distortion(x_adv: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Szegedy's per-example distortion sqrt(mean((x' − x)²)) for N×m arrays on [0, 1]."""
    diff = np.asarray(x_adv, dtype=np.float64) - np.asarray(x, dtype=np.float64)
    return np.sqrt((diff.reshape(len(diff), -1) ** 2).mean(axis=1))


def predict(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.as_tensor(np.asarray(x, dtype=np.float32))).argmax(1).numpy()


def minimise(model: torch.nn.Module, x: np.ndarray, target: np.ndarray, c: np.ndarray,
             maxiter: int = 500) -> np.ndarray:
    """argmin over x' ∈ [0,1]^m of c·‖x' − x‖² + CE(f(x'), target), per example (N×m in, N×m out),
    by one L-BFGS-B call on the separable sum. Starts at x' = x."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"expected N×m inputs, got shape {x.shape}")
    n, m = x.shape
    c = np.array(np.broadcast_to(np.asarray(c, dtype=np.float64), (n,)))
    if np.any(c < 0):
        raise ValueError("c must be ≥ 0")
    tgt = torch.as_tensor(np.asarray(target), dtype=torch.long)
    x_t = torch.as_tensor(x)
    c_t = torch.as_tensor(c).unsqueeze(1)

    def fun(flat):
        z = torch.as_tensor(flat.reshape(n, m)).requires_grad_(True)
        logits = model(z.float()).double()
        loss = (c_t * (z - x_t) ** 2).sum() + F.cross_entropy(logits, tgt, reduction="sum")
        (grad,) = torch.autograd.grad(loss, z)
        return loss.item(), grad.numpy().ravel()

    res = minimize(fun, x.ravel(), jac=True, method="L-BFGS-B", bounds=[(0.0, 1.0)] * (n * m),
                   options={"maxiter": maxiter, "ftol": 1e-12, "gtol": 1e-7, "maxcor": 20})
    return np.clip(res.x.reshape(n, m), 0.0, 1.0)


@dataclass
class LbfgsResult:
    x_adv: np.ndarray        # N×m: the minimum-distortion example reaching the target, else the
                             # minimiser at the smallest c tried (the strongest attempt)
    success: np.ndarray      # N bool: target label reached
    distortion: np.ndarray   # N: Szegedy distortion of x_adv
    c: np.ndarray            # N: the c that gave x_adv
    calls: int

    def average_min_distortion(self) -> float | None:
        """Mean distortion over the examples that reached their target (None if none did)."""
        return float(self.distortion[self.success].mean()) if self.success.any() else None


def search(model: torch.nn.Module, x: np.ndarray, target: np.ndarray, log10_c_range=(-3.0, 3.0),
           bisections: int = 10, maxiter: int = 500) -> LbfgsResult:
    """Line search over c (see the module docstring): first the smallest c of the range (the
    loss dominates, the strongest attempt); examples that miss their target there are failures.
    Then bisect log10 c between the largest c known to reach the target and the smallest known
    to miss it, keeping the smallest-distortion success."""
    from physical.lab.small_models import one_thread

    with one_thread():
        return _search(model, np.asarray(x, dtype=np.float64), np.asarray(target), log10_c_range, bisections, maxiter)


def _search(model, x, target, log10_c_range, bisections, maxiter) -> LbfgsResult:
    n = len(x)
    lo = np.full(n, float(log10_c_range[0]))
    hi = np.full(n, float(log10_c_range[1]))
    z = minimise(model, x, target, 10.0 ** lo, maxiter)
    ok = predict(model, z) == target
    best_x, best_c = z.copy(), 10.0 ** lo
    best_d = np.where(ok, distortion(z, x), np.inf)
    calls = 1
    for _ in range(bisections):
        if not ok.any():
            break
        mid = (lo + hi) / 2
        z = minimise(model, x, target, 10.0 ** mid, maxiter)
        calls += 1
        reached = (predict(model, z) == target) & ok   # failures stay failures
        d = distortion(z, x)
        better = reached & (d < best_d)
        best_x[better], best_d[better], best_c[better] = z[better], d[better], 10.0 ** mid[better]
        lo = np.where(reached, mid, lo)
        hi = np.where(reached | ~ok, hi, mid)
    return LbfgsResult(best_x, ok, distortion(best_x, x), best_c, calls)


def fgsm_targeted_min(model: torch.nn.Module, x: np.ndarray, target: np.ndarray, eps_grid) -> tuple[np.ndarray, np.ndarray]:
    """Targeted FGSM x' = clip(x − ε·sign ∇ₓ CE(f(x), l), 0, 1) over an ε grid; per example the
    smallest ε whose x' is classified l (NaN when none) and that x' (x itself when none)."""
    x_t = torch.as_tensor(np.asarray(x, dtype=np.float32)).requires_grad_(True)
    loss = F.cross_entropy(model(x_t), torch.as_tensor(np.asarray(target), dtype=torch.long), reduction="sum")
    (g,) = torch.autograd.grad(loss, x_t)
    step = g.sign().numpy()
    x = np.asarray(x, dtype=np.float32)
    eps_found = np.full(len(x), np.nan)
    x_found = x.copy()
    for eps in sorted(eps_grid):
        cand = np.clip(x - eps * step, 0.0, 1.0)
        hit = (predict(model, cand) == target) & np.isnan(eps_found)
        eps_found[hit] = eps
        x_found[hit] = cand[hit]
    return eps_found, x_found
