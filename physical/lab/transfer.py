"""Szegedy's cross-model table: L-BFGS examples made on each model, their error rate on every
model, and Gaussian-noise rows at stated distortions as the baseline.

Test points are a seeded sample of test images that **every** model classifies correctly, so an
entry measures what the perturbation did, not the model's clean test error. Each point gets one
seeded random target label l ≠ y, the same for every model. An entry M[i, j] is the fraction of
the examples made on model i (or of the noisy images of a noise row) that model j misclassifies
(prediction ≠ true label); the diagonal is therefore each model's own success rate. A point
whose target was never reached contributes its strongest attempt (smallest c).
"""
from __future__ import annotations

import time

import numpy as np

from physical.errors import PhysicalError
from physical.lab import lbfgs
from physical.lab.small_models import one_thread, train_all


# Szegedy et al. (2014) on MNIST, as the seed lecture quotes it: training error, test error,
# average minimum distortion, and the transfer table's rows (made on → error on each column).
PAPER_MNIST = {
    "FC10(1e-4)": {"train_error": 0.067, "test_error": 0.074, "avg_min_distortion": 0.062},
    "FC10(1e-2)": {"train_error": 0.10, "test_error": 0.094, "avg_min_distortion": 0.10},
    "FC10(1)": {"train_error": 0.212, "test_error": 0.20, "avg_min_distortion": 0.14},
    "FC100-100-10": {"train_error": 0.0, "test_error": 0.0164, "avg_min_distortion": 0.058},
    "FC200-200-10": {"train_error": 0.0, "test_error": 0.0154, "avg_min_distortion": 0.065},
    "AE400-10": {"train_error": 0.0057, "test_error": 0.019, "avg_min_distortion": 0.086},
}


def exact_distortion_noise(x: np.ndarray, d: float, rng: np.random.Generator, iters: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian noise clipped to the box, scaled per example so that its Szegedy distortion
    sqrt(mean((x' − x)²)) equals `d` (clipping at 0 and 1 shrinks plain σ·N(0, 1) noise, most on
    digit images that are mostly 0). Returns (x', the per-example σ used)."""
    x = np.asarray(x, dtype=np.float64)
    z = rng.standard_normal(x.shape)

    def dist(s):
        return lbfgs.distortion(np.clip(x + s[:, None] * z, 0.0, 1.0), x)

    top = dist(np.full(len(x), 1e6))
    if np.any(top < d):
        raise ValueError(f"distortion {d:.3f} is not reachable by clipped Gaussian noise on every image "
                         f"(at most {top.min():.3f})")
    lo, hi = np.zeros(len(x)), np.full(len(x), d)
    while np.any(dist(hi) < d):
        hi = np.where(dist(hi) < d, hi * 2, hi)
    for _ in range(iters):
        mid = (lo + hi) / 2
        below = dist(mid) < d
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    sigma = (lo + hi) / 2
    return np.clip(x + sigma[:, None] * z, 0.0, 1.0).astype(np.float32), sigma


def error_matrix(models, example_sets, y) -> np.ndarray:
    """M[i, j]: fraction of example set i misclassified (≠ y) by model j."""
    # reshape: no example set (every noise row skipped) still stacks under the models' rows
    return np.array([[float((lbfgs.predict(m, xs) != y).mean()) for m in models] for xs in example_sets],
                    dtype=float).reshape(-1, len(models))


def pick_points(models, x, y, n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of up to n test points every model classifies correctly (seeded sample, sorted)."""
    ok = np.ones(len(y), bool)
    for m in models:
        ok &= lbfgs.predict(m, x) == y
    idx = np.flatnonzero(ok)
    if len(idx) == 0:
        raise PhysicalError("no test point is classified correctly by every model")
    return np.sort(rng.choice(idx, size=min(n, len(idx)), replace=False))


def _run(data, seed: int = 0, points: int = 100, noise_levels=(0.1, 0.3), steps: int | None = None,
        bisections: int = 10, progress=None) -> dict:
    """The whole Szegedy experiment on a `Digits` set: train, attack, transfer, noise rows."""
    t0 = time.perf_counter()
    trained = train_all(data, seed=seed, steps=steps, progress=progress)
    models = [t.model for t in trained]
    names = [m.name for m in models]
    rng = np.random.default_rng(seed)
    idx = pick_points(models, data.x_test, data.y_test, points, rng)
    x, y = data.x_test[idx], data.y_test[idx]
    classes = int(max(data.y_train.max(), data.y_test.max())) + 1
    target = (y + rng.integers(1, classes, size=len(y))) % classes
    adv, rows = [], []
    for t in trained:
        if progress:
            progress(f"L-BFGS on {t.model.name} ({len(x)} points)")
        t1 = time.perf_counter()
        res = lbfgs.search(t.model, x, target, bisections=bisections)
        adv.append(res.x_adv.astype(np.float32))
        rows.append({"model": t.model.name, "success_rate": float(res.success.mean()),
                     "avg_min_distortion": res.average_min_distortion(),
                     "median_c": float(np.median(res.c[res.success])) if res.success.any() else None,
                     "lbfgs_calls": res.calls, "seconds": round(time.perf_counter() - t1, 2)})
    adv_matrix = error_matrix(models, adv, y)
    # Noise rows: each model's own average distortion, then the seed table's fixed levels.
    noise_specs = [(f"Gaussian noise, distortion of {r['model']}", r["avg_min_distortion"]) for r in rows
                   if r["avg_min_distortion"] is not None]
    noise_specs += [(f"Gaussian noise, distortion {d:g}", float(d)) for d in noise_levels]
    noise_rows, noise_sets, noise_skipped = [], [], []
    for label, d in noise_specs:
        try:
            xn, sigma = exact_distortion_noise(x, d, rng)
        except ValueError as exc:   # clipped noise saturates below d on some image
            noise_skipped.append({"label": label, "stated_distortion": d, "reason": str(exc)})
            continue
        noise_sets.append(xn)
        noise_rows.append({"label": label, "stated_distortion": d,
                           "measured_distortion": float(lbfgs.distortion(xn, x).mean()),
                           "mean_sigma": float(sigma.mean())})
    noise_matrix = error_matrix(models, noise_sets, y)
    for row, r in zip(rows, adv_matrix):
        row["error_on"] = dict(zip(names, map(float, r)))
    for row, r in zip(noise_rows, noise_matrix):
        row["error_on"] = dict(zip(names, map(float, r)))
    return {
        "experiment": "szegedy", "seed": seed, "data": data.info(),
        "models": [t.record() for t in trained],
        "points": {"count": int(len(idx)), "test_indices": idx.tolist(), "targets": target.tolist(),
                   "rule": "seeded sample of test points every model classifies correctly; "
                           "one seeded random target l ≠ y per point"},
        "lbfgs": {"objective": "c·‖r‖₂² + CE(f(x + r), l), x + r ∈ [0,1]^m, scipy L-BFGS-B",
                  "c_search": "largest c (log10 c ∈ [-3, 3], bisection) whose minimiser reaches l",
                  "bisections": bisections, "distortion": "sqrt(mean((x' − x)²)) on [0, 1]"},
        "attacks": rows,
        "paper_mnist": PAPER_MNIST,
        "transfer": {"columns": names, "rows": [r["model"] for r in rows] + [r["label"] for r in noise_rows],
                     "matrix": np.vstack([adv_matrix, noise_matrix]).round(6).tolist(),
                     "distortion": [r["avg_min_distortion"] for r in rows] + [r["measured_distortion"] for r in noise_rows],
                     "entry": "fraction of the row's images the column's model misclassifies"},
        "noise": noise_rows,
        "noise_skipped": noise_skipped,
        "seconds": round(time.perf_counter() - t0, 1),
        "_models": models,
        "_examples": {"x": x, "y": y, "target": target, "adv": adv, "shape": data.shape, "names": names},
    }


def run(*args, **kwargs) -> dict:
    """See `_run`; single-threaded torch for the tiny models (restored afterwards)."""
    with one_thread():
        return _run(*args, **kwargs)
