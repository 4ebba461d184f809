"""Evaluation: classify a run's PNGs, ingest's crops and the paper's transformed PNGs, and
write the paper's numbers. Definitions and schema: docs/metrics.md.

The stage reads in one direction — manifest → PNGs → ingest's crops — through
physical.records, and is split by concern:

* `inputs`: the run and the photos, every file checked against its recorded sha256;
* `prediction`: the evaluating models and batched inference (the crafting model's PNG
  predictions are read from the manifest, never recomputed);
* `rows`: the metric rows, the transfer matrix, the terminal table (pure functions);
* `storage`: metrics.json (evaluate), transforms.json (transforms), predictions.csv.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from functools import lru_cache
from typing import Sequence

import numpy as np

from physical.errors import PhysicalError
from physical.evaluate.inputs import Photos, RunData, _num, load_photos, load_run
from physical.evaluate.prediction import EvalModel, png_predictions, predict_items, prepare_models, _scatter
from physical.evaluate.rows import (CI_KEYS, PREFILTER_CONFIDENCE, ROW_KEYS, rows_csv, stage_rows,
                                    summary_table, transfer_matrix)
from physical.evaluate.storage import (merge_transforms, prediction_rows, write_metrics, write_predictions,
                                       write_transforms)
from physical.metrics import check_threshold, correct, fraction
from physical.workspace import SCHEMA_VERSION, Workspace, package_versions, run_locked

__all__ = ["evaluate", "evaluate_transforms", "summary_table", "rows_csv", "ROW_KEYS", "CI_KEYS",
           "PREFILTER_CONFIDENCE", "RunData", "Photos", "EvalModel"]
log = logging.getLogger(__name__)


def _check(threshold: float, batch_size: int) -> float:
    try:
        threshold = check_threshold(threshold)
    except ValueError:
        raise PhysicalError(f"--threshold must be strictly between 0 and 1, got {threshold}") from None
    if batch_size < 1:
        raise PhysicalError(f"--batch-size must be at least 1, got {batch_size}")
    return threshold


def _labels(em: EvalModel) -> np.ndarray:
    return np.where(em.valid, em.labels, -1)


def _png_prediction_rows(em: EvalModel, data: RunData, digital: dict) -> list[list]:
    keys = sorted(data.files, key=lambda k: (k[0], k[1]))
    top5 = [digital[v].top5[i] for i, v in keys]
    prob5 = [digital[v].prob5[i] for i, v in keys]
    return prediction_rows(em.spec, "png", data.ids, _labels(em), keys, top5, prob5)


@run_locked("evaluate")
def evaluate(ws: Workspace, run: str, models: Sequence[str] | None = None, threshold: float = 0.8,
             batch_size: int = 32, device: str = "auto", labels: str | None = None,
             progress: bool = True) -> dict:
    """Evaluate run `run`: PNG stage always, photo stage when ingest's crops exist. Writes
    reports/<run>/metrics.json + metrics.csv + predictions.csv; returns the metrics document."""
    threshold = _check(threshold, batch_size)
    data = load_run(ws, run)
    photos = load_photos(ws, data)
    if photos.status == "missing":
        log.info(photos.message)
    ems = prepare_models(data, models, device, labels, need_model=photos.status == "ok")
    rows, clean_rates, crop_predictions, per_image = [], {}, [], []
    for em in ems:
        digital = png_predictions(em, data, batch_size, progress)
        per_image += _png_prediction_rows(em, data, digital)
        rows += stage_rows(em, data, "png", digital, digital, data.present, threshold)
        ok = em.valid & data.present["clean"]
        clean_rates[(em.spec, "png")] = fraction(correct(digital["clean"].take(np.flatnonzero(ok)), em.labels[ok], 1))
        if photos.status == "ok":
            keys = sorted(photos.files)
            preds = predict_items(em.get(), keys, photos.read, batch_size,
                                  desc=f"{em.spec}: photo crops", progress=progress)
            per_image += prediction_rows(em.spec, "photo", data.ids, _labels(em), keys, preds.top5, preds.prob5)
            # Every crop's prediction, so the report's gallery never has to load a model.
            crop_predictions += [{"model": em.spec, "image_id": data.ids[i], "variant": variant, "stage": "photo",
                                  "top5": [int(c) for c in preds.top5[j]],
                                  "prob5": [round(float(q), 6) for q in preds.prob5[j]]}
                                 for j, (i, variant) in enumerate(keys)]
            scattered = _scatter(keys, preds, len(data.ids), data.manifest_preds)
            sp = {name: p for name, (p, _) in scattered.items()}
            present = {name: m for name, (_, m) in scattered.items()}
            rows += stage_rows(em, data, "photo", digital, sp, present, threshold)
            m = em.valid & present["clean"]
            clean_rates[(em.spec, "photo")] = fraction(correct(sp["clean"].take(np.flatnonzero(m)), em.labels[m], 1))
    doc = {
        "schema": SCHEMA_VERSION,
        "run": run_block(data, ems, threshold),
        "photo": photos.block(),
        "rows": rows,
        "transfer": transfer_matrix(data, ems, rows, clean_rates),
        "predictions": crop_predictions,
    }
    write_metrics(ws, run, doc)
    write_predictions(ws, run, per_image, data.manifest_sha256, owner="evaluate")
    return doc


@run_locked("transforms")
def evaluate_transforms(ws: Workspace, run: str, kinds: Sequence[str] | None = None, seed: int = 0,
                        models: Sequence[str] | None = None, threshold: float = 0.8, batch_size: int = 32,
                        device: str = "auto", labels: str | None = None, progress: bool = True,
                        grid: dict | None = None, eps: Sequence[float] | None = None) -> dict:
    """Paper Section 4: every PNG (clean and adversarial) under each transform of the grid,
    classified; rows `transform:<kind>:<value>` written to reports/<run>/transforms.json.
    `eps`: only the adversarial variants at these ε (the paper used ε = 16 alone); None: all."""
    from physical import transforms as T

    threshold = _check(threshold, batch_size)
    if seed < 0:
        raise PhysicalError(f"--seed must be non-negative, got {seed}")
    kinds = list(kinds or T.KINDS)
    for k in kinds:
        if k not in T.KINDS:
            raise PhysicalError(f"unknown transform {k!r}: use {', '.join(T.KINDS)}")
    grid = {k: list((grid or T.GRID)[k]) for k in kinds}
    data = load_run(ws, run)
    keep_eps = None if eps is None else {float(e) for e in eps}
    if keep_eps is not None and not any(v["eps"] is not None and float(v["eps"]) in keep_eps for v in data.variants):
        crafted = sorted({float(v["eps"]) for v in data.variants if v["eps"] is not None})
        raise PhysicalError(f"run {run!r} has no variant at ε = {', '.join(f'{e:g}' for e in sorted(keep_eps))} "
                            f"(crafted: {', '.join(f'{e:g}' for e in crafted)})")
    ems = prepare_models(data, models, device, labels, need_model=True)  # after the cheap checks: loading takes seconds
    eps_of = {v["name"]: v["eps"] for v in data.variants}
    # only the variants transformed get rows (no empty n = 0 rows for the ε left out)
    kept = [v for v in data.variants if keep_eps is None or float(v["eps"] or -1) in keep_eps]
    keys = sorted(k for k in data.files
                  if keep_eps is None or k[1] == "clean" or float(eps_of.get(k[1]) or -1) in keep_eps)
    items = [(key, kind, value) for key in keys for kind in kinds for value in grid[kind]]

    @lru_cache(maxsize=128)             # items come grouped by PNG: each is decoded (and hash-checked) once
    def decoded(key):
        return data.read_png(key)

    @lru_cache(maxsize=128)
    def noise_field(key):
        return T.noise_field(decoded(key).shape, seed, data.ids[key[0]])

    def load(item):
        key, kind, value = item
        if kind == "noise":
            return T.noise(decoded(key), value, field=noise_field(key))
        return T.apply(kind, decoded(key), value)

    rows, per_image = [], []
    for em in ems:
        digital = png_predictions(em, data, batch_size, progress)
        preds = predict_items(em.get(), items, load, batch_size, desc=f"{em.spec}: transforms", progress=progress)
        for kind in kinds:
            for value in grid[kind]:
                sel = [j for j, it in enumerate(items) if it[1] == kind and it[2] == value]
                sel_keys = [items[j][0] for j in sel]
                stage = T.stage_name(kind, value)
                per_image += prediction_rows(em.spec, stage, data.ids, _labels(em), sel_keys,
                                             preds.top5[sel], preds.prob5[sel])
                scattered = _scatter(sel_keys, preds.take(sel), len(data.ids), data.manifest_preds)
                sp = {name: p for name, (p, _) in scattered.items()}
                present = {name: m for name, (_, m) in scattered.items()}
                rows += stage_rows(em, data, stage, digital, sp, present, threshold,
                                   transform=kind, transform_value=_num(value), variants=kept)
    block = {"seed": int(seed), "kinds": kinds, "grid": {k: [_num(v) for v in vs] for k, vs in grid.items()},
             "eps": None if keep_eps is None else sorted(keep_eps),
             "ops": {k: T.OPS[k] for k in kinds}, "threshold": threshold, "models": [em.spec for em in ems],
             "manifest_sha256": data.manifest_sha256,
             "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    doc = {"schema": SCHEMA_VERSION, "run": run_block(data, ems, threshold), "rows": rows, "transforms": block}
    doc = merge_transforms(ws, run, doc)
    write_transforms(ws, run, doc)
    write_predictions(ws, run, per_image, data.manifest_sha256, owner="transforms", models=[em.spec for em in ems])
    return doc


def run_block(data: RunData, ems: list[EvalModel], threshold: float) -> dict:
    m = data.manifest
    return {"name": data.name, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "manifest_sha256": data.manifest_sha256, "model": m.model.dump(), "seed": m.seed,
            "versions": package_versions(), "craft_versions": m.versions,
            "threshold": threshold, "prefilter_confidence": PREFILTER_CONFIDENCE,
            "models": [em.info() for em in ems]}
