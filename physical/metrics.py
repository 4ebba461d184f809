"""Metrics of Kurakin, Goodfellow & Bengio (2016) as pure functions on prediction tables.

A prediction table for N images is a pair of arrays: `top5` (N×5 class ids, most probable
first) and `prob5` (N×5 probabilities). Labels are an N-vector of true class ids. Nothing here
loads files or runs models (that is `physical.evaluate`); definitions: docs/metrics.md.

    C(X, y) = 1 when X is classified as y (top-1: first id; top-5: among the five), C̄ = 1 − C
    d = Σ C(X)·C̄(X_adv)·C(T(X_adv)) / Σ C(X)·C̄(X_adv)        (destruction rate of T)

Undefined rates (an empty denominator) are None, never 0.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Z95 = 1.959963984540054  # two-sided 95 % normal quantile


@dataclass(frozen=True)
class Preds:
    """Predictions for N images: top-5 ids (N×5, int) and their probabilities (N×5, float)."""

    top5: np.ndarray
    prob5: np.ndarray

    def __post_init__(self):
        top5 = np.asarray(self.top5, dtype=np.int64)
        prob5 = np.asarray(self.prob5, dtype=np.float64)
        if top5.size == 0:
            top5, prob5 = top5.reshape(0, 5), prob5.reshape(0, 5)
        if top5.ndim != 2 or top5.shape != prob5.shape:
            raise ValueError(f"top5 and prob5 must both be N×k, got {top5.shape} and {prob5.shape}")
        object.__setattr__(self, "top5", top5)
        object.__setattr__(self, "prob5", prob5)

    def __len__(self) -> int:
        return len(self.top5)

    def take(self, index) -> "Preds":
        return Preds(self.top5[index], self.prob5[index])

    @property
    def confidence(self) -> np.ndarray:
        """Top-1 probability per image."""
        return self.prob5[:, 0]


def correct(preds: Preds, labels, k: int = 1) -> np.ndarray:
    """C(X, y): boolean N-vector, True when the label is among the first k predictions."""
    if k < 1 or k > preds.top5.shape[1]:
        raise ValueError(f"k must be between 1 and {preds.top5.shape[1]}, got {k}")
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if len(labels) != len(preds):
        raise ValueError(f"{len(labels)} labels for {len(preds)} predictions")
    return (preds.top5[:, :k] == labels[:, None]).any(axis=1)


def rate(successes: int, n: int) -> float | None:
    """k / n, or None when n is 0."""
    return None if n == 0 else successes / n


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval for a proportion k/n (None when n is 0).

    centre = (p + z²/2n) / (1 + z²/n),  half = z/(1 + z²/n) · sqrt(p(1−p)/n + z²/4n²)
    """
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"need 0 ≤ successes ≤ n, got {successes} of {n}")
    if n == 0:
        return None
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass(frozen=True)
class Rate:
    """A fraction with its counts and its 95 % Wilson interval (value/ci None when n is 0)."""

    k: int
    n: int

    @property
    def value(self) -> float | None:
        return rate(self.k, self.n)

    @property
    def ci(self) -> tuple[float, float] | None:
        return wilson(self.k, self.n)


def fraction(mask) -> Rate:
    mask = np.asarray(mask, dtype=bool)
    return Rate(int(mask.sum()), int(mask.size))


def destruction(clean_ok, adv_ok, transformed_ok) -> Rate:
    """Destruction rate d of a transformation T (boolean N-vectors of C(X), C(X_adv), C(T(X_adv))).

    Numerator: images right clean, wrong adversarial, right after T; denominator: images right
    clean and wrong adversarial. `.value` is None when the denominator is 0.
    """
    clean_ok, adv_ok, transformed_ok = (np.asarray(a, dtype=bool) for a in (clean_ok, adv_ok, transformed_ok))
    if not clean_ok.shape == adv_ok.shape == transformed_ok.shape:
        raise ValueError("clean, adversarial and transformed tables must have the same length")
    base = clean_ok & ~adv_ok
    return Rate(int((base & transformed_ok).sum()), int(base.sum()))


def prefilter(labels, clean: Preds, adv: Preds, min_confidence: float = 0.8) -> np.ndarray:
    """The paper's prefiltered subset (boolean N-vector): clean top-1 right, adversarial wrong in
    top-1 and top-5, adversarial top-1 probability ≥ min_confidence (the edge is included)."""
    return correct(clean, labels, 1) & ~correct(adv, labels, 1) & ~correct(adv, labels, 5) \
        & (adv.confidence >= min_confidence)


@dataclass(frozen=True)
class Thresholded:
    """A classifier that answers only when its top-1 probability is > threshold."""

    accepted: Rate              # fraction of images accepted
    accepted_error: Rate        # top-1 error among accepted images
    error: Rate                 # top-1 error over all images (no threshold)

    @property
    def error_reduction(self) -> float | None:
        """Relative error reduction 1 − accepted_error / error (None when undefined)."""
        base, kept = self.error.value, self.accepted_error.value
        if base is None or kept is None or base == 0:
            return None
        return 1.0 - kept / base


def thresholded(labels, preds: Preds, threshold: float = 0.8) -> Thresholded:
    """Acceptance and error of the thresholded classifier (accept when confidence > threshold)."""
    check_threshold(threshold)
    wrong = ~correct(preds, labels, 1)
    accepted = preds.confidence > threshold
    return Thresholded(accepted=fraction(accepted), accepted_error=fraction(wrong[accepted]), error=fraction(wrong))


def check_threshold(threshold: float) -> float:
    if not (isinstance(threshold, (int, float)) and 0.0 < float(threshold) < 1.0):
        raise ValueError(f"threshold must be strictly between 0 and 1, got {threshold!r}")
    return float(threshold)


def _r(x: float | None) -> float | None:
    return None if x is None else round(float(x), 6)


def _ci(r: Rate):
    ci = r.ci
    return None if ci is None else [_r(ci[0]), _r(ci[1])]


def stage_metrics(labels, digital_clean: Preds, digital_adv: Preds, stage_adv: Preds,
                  stage_clean: Preds | None = None, clean_present=None, threshold: float = 0.8) -> dict:
    """All of a row's numbers for one set of images (see docs/metrics.md, "A row").

    `digital_clean`, `digital_adv`: the PNG predictions (C(X), C̄(X_adv) of the destruction rate);
    `stage_adv`: T(X_adv) at this stage; `stage_clean`: the clean version at this stage (defaults
    to `digital_clean`), counted only where `clean_present` is True (photo crops may be missing).
    """
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    n = len(labels)
    if stage_clean is None:
        stage_clean = digital_clean
    clean_present = np.ones(n, dtype=bool) if clean_present is None else np.asarray(clean_present, dtype=bool)
    row: dict = {"n": n, "clean_n": int(clean_present.sum())}
    rates: dict[str, Rate] = {}
    cl = labels[clean_present]
    sc = stage_clean.take(clean_present)
    for k in (1, 5):
        rates[f"clean_top{k}"] = fraction(correct(sc, cl, k))
        rates[f"adv_top{k}"] = fraction(correct(stage_adv, labels, k))
        rates[f"digital_clean_top{k}"] = fraction(correct(digital_clean, labels, k))
        rates[f"digital_adv_top{k}"] = fraction(correct(digital_adv, labels, k))
    row["adv_confidence"] = _r(stage_adv.confidence.mean()) if n else None
    for k in (1, 5):
        rates[f"destruction_top{k}"] = destruction(correct(digital_clean, labels, k), correct(digital_adv, labels, k),
                                                   correct(stage_adv, labels, k))
    row["destruction_n"] = rates["destruction_top1"].n
    row["destruction_n_top5"] = rates["destruction_top5"].n
    row["threshold"] = float(threshold)
    thr_clean = thresholded(cl, sc, threshold)
    thr_adv = thresholded(labels, stage_adv, threshold)
    for name, thr in (("clean", thr_clean), ("adv", thr_adv)):
        rates[f"{name}_accept_rate"] = thr.accepted
        rates[f"{name}_accepted_error"] = thr.accepted_error
        row[f"{name}_error_reduction"] = _r(thr.error_reduction)
    for name, r in rates.items():
        row[name] = _r(r.value)
        row[f"{name}_ci"] = _ci(r)
    return row


# ----------------------------------------------------------------------------- targeted attacks
TARGETED_KEYS = ["target", "targeted_success_digital", "targeted_success", "targeted_survival", "targeted_survival_n"]


def on_target(preds: Preds, target) -> np.ndarray:
    """Boolean N-vector: top-1 is the target class (`target`: one class id, or one per image)."""
    target = np.broadcast_to(np.asarray(target, dtype=np.int64), (len(preds),))
    return preds.top5[:, 0] == target


def survival(digital_on: np.ndarray, stage_on: np.ndarray) -> Rate:
    """The fraction of digitally successful targeted examples still on target at the stage:
    Σ on(X_adv)·on(T(X_adv)) / Σ on(X_adv)."""
    digital_on, stage_on = np.asarray(digital_on, dtype=bool), np.asarray(stage_on, dtype=bool)
    if digital_on.shape != stage_on.shape:
        raise ValueError("digital and stage tables must have the same length")
    return Rate(int((digital_on & stage_on).sum()), int(digital_on.sum()))


def targeted_metrics(target: int, digital_adv: Preds, stage_adv: Preds) -> dict:
    """A targeted variant's row numbers: success (top-1 = target) on the PNGs and at this stage,
    and survival from the one to the other, each with its 95 % Wilson interval."""
    d, s = on_target(digital_adv, target), on_target(stage_adv, target)
    rates = {"targeted_success_digital": fraction(d), "targeted_success": fraction(s),
             "targeted_survival": survival(d, s)}
    row: dict = {"target": int(target), "targeted_survival_n": rates["targeted_survival"].n}
    for name, r in rates.items():
        row[name], row[f"{name}_ci"] = _r(r.value), _ci(r)
    return row
