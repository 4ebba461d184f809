"""Goodfellow et al. (2015): FGSM against linear and non-linear models as ε grows.

x' = clip(x + ε·sign ∇ₓ J(f(x), y), 0, 1) on [0, 1] pixels, over the whole test set. One gradient
per model serves every ε (the sign does not depend on ε). Per ε: the error rate (prediction ≠
y) and the mean confidence on misclassified examples (the softmax probability of the wrong class
the model chose, Goodfellow's "average confidence"). ε90 is the smallest ε where the error
reaches 90 %, linearly interpolated between grid points (None when the grid never gets there).
"""
from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from physical.lab.small_models import one_thread, train_all

DEFAULT_EPS = tuple(round(0.01 * i, 2) for i in range(0, 51))


def fgsm_sweep(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, eps_grid) -> dict:
    x_t = torch.as_tensor(np.asarray(x, dtype=np.float32)).requires_grad_(True)
    loss = F.cross_entropy(model(x_t), torch.as_tensor(y, dtype=torch.long), reduction="sum")
    (g,) = torch.autograd.grad(loss, x_t)
    step = g.sign()
    x_t = x_t.detach()
    y_t = torch.as_tensor(y, dtype=torch.long)
    errors, confs = [], []
    with torch.no_grad():
        for eps in eps_grid:
            p = model((x_t + eps * step).clamp(0, 1)).softmax(1)
            conf, pred = p.max(1)
            wrong = pred != y_t
            errors.append(round(float(wrong.float().mean()), 6))
            confs.append(round(float(conf[wrong].mean()), 6) if wrong.any() else None)
    return {"eps": [float(e) for e in eps_grid], "error": errors, "wrong_confidence": confs}


def eps_at(eps, error, level: float = 0.9):
    """Smallest ε where the error reaches `level`, linearly interpolated; None if never."""
    for i, e in enumerate(error):
        if e >= level:
            if i == 0:
                return float(eps[0])
            e0, e1 = error[i - 1], e
            return float(eps[i - 1] + (level - e0) / (e1 - e0) * (eps[i] - eps[i - 1]))
    return None


def _r(v):
    return None if v is None else round(v, 6)


def at(sweep: dict, eps: float):
    """(error, confidence) at the grid point nearest to ε."""
    i = int(np.argmin(np.abs(np.asarray(sweep["eps"]) - eps)))
    return sweep["error"][i], sweep["wrong_confidence"][i]


def _run(data, seed: int = 0, eps_grid=DEFAULT_EPS, steps: int | None = None, progress=None) -> dict:
    t0 = time.perf_counter()
    trained = train_all(data, seed=seed, steps=steps, progress=progress)
    rows = []
    for t in trained:
        sweep = fgsm_sweep(t.model, data.x_test, data.y_test, eps_grid)
        e25, c25 = at(sweep, 0.25)
        e10, c10 = at(sweep, 0.1)
        rows.append({"model": t.model.name, "linear": t.model.spec.linear, **sweep,
                     "eps_90": _r(eps_at(sweep["eps"], sweep["error"], 0.9)),
                     "at_0.1": {"error": e10, "wrong_confidence": c10},
                     "at_0.25": {"error": e25, "wrong_confidence": c25}})
    return {"experiment": "linearity", "seed": seed, "data": data.info(),
            "models": [t.record() for t in trained],
            "fgsm": {"rule": "x' = clip(x + ε·sign ∇ₓ CE(f(x), y), 0, 1), whole test set, pixels on [0, 1]",
                     "confidence": "mean softmax probability of the predicted (wrong) class over misclassified examples"},
            "sweeps": rows, "seconds": round(time.perf_counter() - t0, 1)}


def run(*args, **kwargs) -> dict:
    """See `_run`; single-threaded torch for the tiny models (restored afterwards)."""
    with one_thread():
        return _run(*args, **kwargs)
