"""Evaluation: read a run's PNGs (and ingest's crops), classify them, build metric rows, write
reports/<run>/metrics.json and metrics.csv atomically. Definitions and schema: docs/metrics.md.

The crafting model's PNG predictions are already in the manifest (`pred` of every variant): they
are read, not recomputed. Every other model pass is batched under `torch.inference_mode`
(`physical.models.predict`), with the next batch decoded in a background thread.
"""
from __future__ import annotations

import csv
import io
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from physical.errors import PhysicalError
from physical.metrics import (TARGETED_KEYS, Preds, check_threshold, correct, fraction, prefilter, stage_metrics,
                              targeted_metrics)
from physical.quantize import read_png
from physical.workspace import (SCHEMA_VERSION, Workspace, atomic_write_json, atomic_write_text,
                                package_versions, read_json, sha256_file)

log = logging.getLogger(__name__)
PREFILTER_CONFIDENCE = 0.8
ROW_KEYS = ["model", "crafted_by", "attack", "eps", "variant", "stage", "transform", "transform_value",
            "subset", "n", "clean_n", "clean_top1", "clean_top5", "adv_top1", "adv_top5",
            "digital_clean_top1", "digital_clean_top5", "digital_adv_top1", "digital_adv_top5",
            "adv_confidence", "destruction_top1", "destruction_top5", "destruction_n", "destruction_n_top5",
            "threshold", "clean_accept_rate", "clean_accepted_error", "clean_error_reduction",
            "adv_accept_rate", "adv_accepted_error", "adv_error_reduction", *TARGETED_KEYS]
CI_KEYS = ["clean_top1", "clean_top5", "adv_top1", "adv_top5", "digital_clean_top1", "digital_clean_top5",
           "digital_adv_top1", "digital_adv_top5", "destruction_top1", "destruction_top5",
           "clean_accept_rate", "adv_accept_rate", "clean_accepted_error", "adv_accepted_error",
           "targeted_success_digital", "targeted_success", "targeted_survival"]


# ----------------------------------------------------------------------------- the run
@dataclass
class RunData:
    """A crafted run: images in manifest order, adversarial variants, true labels."""

    name: str
    manifest: dict
    manifest_sha256: str
    root: Path                                  # printouts/<run>/
    ids: list[str]
    labels: list[dict]                          # manifest label blocks
    variants: list[dict]                        # adversarial variants: {"name", "attack", "eps"}
    files: dict[tuple[int, str], Path]          # (image index, variant) → PNG path
    manifest_preds: dict[str, Preds]            # variant → crafting model's PNG predictions
    present: dict[str, np.ndarray]              # variant → image has it
    preds_complete: bool = True                 # every PNG has its crafting-model `pred` in the manifest

    @property
    def crafted_by(self) -> str:
        return str(self.manifest.get("model", {}).get("spec", "unknown"))


def load_run(ws: Workspace, run: str) -> RunData:
    manifest = ws.load_manifest(run)
    images = manifest.get("images") or []
    if not images:
        raise PhysicalError(f"run {run!r} has no images in its manifest (did `physical craft` skip them all?)")
    root = ws.printouts(run)
    names = list(manifest.get("variants") or [])
    if "clean" not in names:
        names.insert(0, "clean")
    variants, files, preds, present = [], {}, {}, {}
    complete = True
    for name in names:
        top5 = np.full((len(images), 5), -1, dtype=np.int64)
        prob5 = np.zeros((len(images), 5))
        mask = np.zeros(len(images), dtype=bool)
        info = None
        for i, img in enumerate(images):
            rec = (img.get("variants") or {}).get(name)
            if rec is None:
                continue
            mask[i] = True
            files[(i, name)] = root / rec["file"]
            pred = rec.get("pred") or {}
            if pred.get("top5"):
                k = min(5, len(pred["top5"]))
                top5[i, :k] = pred["top5"][:k]
                prob5[i, :k] = pred["prob5"][:k]
            else:
                complete = False
            if name != "clean" and info is None:
                info = {"name": name, "attack": rec.get("attack", name.split("-eps")[0]),
                        "eps": _num(rec.get("eps", name.split("-eps")[-1].split("-to")[0])),
                        "target": rec.get("target")}
        preds[name], present[name] = Preds(top5, prob5), mask
        if info is not None:
            variants.append(info)
    return RunData(name=run, manifest=manifest, manifest_sha256=sha256_file(ws.manifest_path(run)), root=root,
                   ids=[str(img["id"]) for img in images], labels=[img.get("label") or {} for img in images],
                   variants=variants, files=files, manifest_preds=preds, present=present, preds_complete=complete)


def _read_png(path: Path) -> np.ndarray:
    """A crafted PNG or a photo crop as uint8 H×W×3; a missing or broken file is a PhysicalError."""
    try:
        return read_png(path)
    except OSError as exc:
        raise PhysicalError(f"cannot read {path} ({exc.strerror or exc}): re-run the stage that wrote it "
                            "(`physical craft` for PNGs, `physical ingest --force` for crops)") from None


def _num(x):
    x = float(x)
    return int(x) if x.is_integer() else x


# ----------------------------------------------------------------------------- photos
@dataclass
class Photos:
    status: str                                  # "ok" | "missing"
    message: str | None = None
    files: dict[tuple[int, str], Path] = field(default_factory=dict)   # (image index, variant) → crop
    accepted: int = 0
    rejected: int = 0
    layout_sha256: str | None = None

    def block(self) -> dict:
        return {"status": self.status, "message": self.message, "crops": len(self.files),
                "photos_accepted": self.accepted, "photos_rejected": self.rejected,
                "layout_sha256": self.layout_sha256}


def load_photos(ws: Workspace, data: RunData) -> Photos:
    """The crops ingest marked `used`; status "missing" (not an error) when there are none.
    PhysicalError when the crops come from an ingest made with another layout."""
    run = data.name
    cap = ws.captures(run)
    ingest_path = cap / "ingest.json"
    if not ingest_path.exists():
        return Photos("missing", f"no photos ingested for run {run!r} yet: evaluated the PNG stage only "
                                 f"(run `physical ingest --run {run} --photos DIR` to add the photo stage)")
    ingest = read_json(ingest_path)
    layout_sha = ingest.get("layout_sha256")
    layout_path = ws.layout_path(run)
    if layout_path.exists():
        current = sha256_file(layout_path)
        if layout_sha and layout_sha != current:
            raise PhysicalError(
                f"the crops in {cap} come from an ingest made with another layout "
                f"(ingest.json layout_sha256 {layout_sha[:12]}…, {layout_path} is {current[:12]}…): "
                f"re-run `physical ingest --run {run} --photos DIR`")
    else:
        log.warning("%s is missing: cannot check that the crops match the printed layout", layout_path)
    index = {image_id: i for i, image_id in enumerate(data.ids)}
    files, unknown, missing = {}, 0, 0
    for crop in ingest.get("crops") or []:
        if not crop.get("used", False):
            continue
        i = index.get(str(crop.get("image_id")))
        variant = crop.get("variant")
        if i is None or (i, variant) not in data.files:
            unknown += 1
            continue
        path = cap / crop["file"]
        if not path.exists():
            missing += 1
            continue
        files[(i, variant)] = path
    if unknown:
        log.warning("%d crops name images or variants this run's manifest does not have: ignored", unknown)
    if missing:
        log.warning("%d crop files listed in ingest.json are missing: ignored", missing)
    photos = ingest.get("photos") or []
    acc = sum(1 for p in photos if p.get("status") == "accepted")
    rej = sum(1 for p in photos if p.get("status") == "rejected")
    if not files:
        return Photos("missing", f"ingest of run {run!r} produced no usable crops "
                                 f"({acc} photos accepted, {rej} rejected): evaluated the PNG stage only",
                      accepted=acc, rejected=rej, layout_sha256=layout_sha)
    return Photos("ok", None, files, acc, rej, layout_sha)


# ----------------------------------------------------------------------------- models
@dataclass
class EvalModel:
    """An evaluating model: loaded lazily; `labels` maps the run's images to its class ids."""

    spec: str
    crafting: bool                              # same spec as the manifest's model
    device: str = "cpu"
    arch: str | None = None
    model: object | None = None
    labels: np.ndarray | None = None            # per image, class id in this model's space
    valid: np.ndarray | None = None             # per image: label maps into this model
    png_source: str = "computed"
    labels_file: str | None = None
    manifest_model: dict = field(default_factory=dict)   # the crafting model's manifest block

    def get(self):
        if self.model is None:
            from physical.models import load_model

            self.model = load_model(self.spec, device=self.device, arch=self.arch)
        return self.model

    def info(self) -> dict:
        if self.model is not None:
            m = self.model
            out = {"spec": m.spec, "arch": m.arch, "weights_sha256": m.weights_sha256, "num_classes": m.num_classes}
        else:
            mm = self.manifest_model if self.crafting else {}
            out = {"spec": self.spec, "arch": mm.get("arch", self.arch), "weights_sha256": mm.get("weights_sha256"),
                   "num_classes": mm.get("num_classes", 1000)}
        out.update({"png_predictions": self.png_source, "labels": self.labels_file})
        return out


def prepare_models(data: RunData, specs: Sequence[str] | None, device: str, labels_file: str | None,
                   need_model: bool) -> list[EvalModel]:
    """EvalModels for --model specs (default: the crafting model). Loads a model when
    `need_model` (photos/transforms) or when it is not the crafting model; checks class counts."""
    mm = data.manifest.get("model") or {}
    specs = list(dict.fromkeys(specs or [mm.get("spec", "default")]))
    out = []
    for spec in specs:
        em = EvalModel(spec=spec, crafting=(spec == mm.get("spec")), device=device,
                       arch=mm.get("arch") if spec == mm.get("spec") else None, manifest_model=mm)
        if em.crafting and not data.preds_complete:
            log.warning("the manifest of run %s lacks predictions for some PNGs: they are recomputed", data.name)
        if need_model or not em.crafting or not data.preds_complete:
            model = em.get()
            if not data.preds_complete:
                em.crafting = False
            elif mm.get("weights_sha256") and model.weights_sha256 == mm.get("weights_sha256"):
                em.crafting = True
            elif em.crafting:
                log.warning("model %s now has other weights than the ones that crafted run %s: "
                            "its PNG predictions are recomputed", spec, data.name)
                em.crafting = False
        em.png_source = "manifest" if em.crafting else "computed"
        _map_labels(em, data, labels_file)
        out.append(em)
    return out


def _map_labels(em: EvalModel, data: RunData, labels_file: str | None) -> None:
    n_classes = em.model.num_classes if em.model is not None else 1000
    imagenet = np.array([int(lab.get("index", -1)) for lab in data.labels], dtype=np.int64)
    if n_classes == 1000:
        em.labels, em.valid = imagenet, imagenet >= 0
        return
    if not labels_file:
        raise PhysicalError(f"model {em.spec} has {n_classes} classes, not ImageNet's 1000: give --labels FILE "
                            "(one class per line in the model's output order, as a WordNet id or a name)")
    try:
        lines = [ln.strip() for ln in Path(labels_file).read_text(encoding="utf-8").splitlines()]
    except OSError as exc:
        raise PhysicalError(f"cannot read labels file {labels_file}: {exc.strerror}") from None
    lines = [ln for ln in lines if ln]
    if len(lines) != n_classes:
        raise PhysicalError(f"labels file {labels_file} has {len(lines)} classes, model {em.spec} has {n_classes}")
    by_key = {}
    for i, ln in enumerate(lines):
        by_key.setdefault(ln.lower(), i)
    mapped = []
    for lab in data.labels:
        idx = by_key.get(str(lab.get("wnid", "")).lower(), by_key.get(str(lab.get("name", "")).lower(), -1))
        mapped.append(idx)
    em.labels = np.array(mapped, dtype=np.int64)
    em.valid = em.labels >= 0
    em.labels_file = str(labels_file)
    if not em.valid.any():
        raise PhysicalError(f"none of run {data.name!r}'s labels is among the classes in {labels_file}")
    if not em.valid.all():
        log.warning("%d images have labels model %s does not know: left out of its rows",
                    int((~em.valid).sum()), em.spec)


# ----------------------------------------------------------------------------- prediction
def predict_items(model, items: Sequence, load: Callable[[object], np.ndarray], batch_size: int = 32,
                  desc: str = "evaluating", progress: bool = True, workers: int | None = None) -> Preds:
    """Top-5 predictions of `model` on `load(item)` for every item, batched under inference mode.
    While the model runs on one batch, the next one is decoded by `workers` threads (PNG decoding
    releases the GIL); `load` must be thread-safe."""
    from tqdm import tqdm

    from physical.models import predict

    top5 = np.zeros((len(items), 5), dtype=np.int64)
    prob5 = np.zeros((len(items), 5))
    if not items:
        return Preds(top5, prob5)
    if workers is None:
        workers = max(1, min(8, (os.cpu_count() or 2) // 2))
    starts = list(range(0, len(items), batch_size))
    bar = tqdm(total=len(items), desc=desc, unit="img", disable=None if progress else True, leave=False)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        def submit(start):
            return [pool.submit(load, it) for it in items[start:start + batch_size]]

        futures = submit(starts[0])
        for j, start in enumerate(starts):
            arrays = [f.result() for f in futures]
            if j + 1 < len(starts):
                futures = submit(starts[j + 1])
            for group in _by_shape(arrays):
                t, p = predict(model, np.stack([arrays[g] for g in group]), batch_size=len(group))
                rows = [start + g for g in group]
                top5[rows], prob5[rows] = t.numpy(), p.numpy()
            bar.update(len(arrays))
    bar.close()
    return Preds(top5, prob5)


def _by_shape(arrays: list[np.ndarray]):
    groups: dict[tuple, list[int]] = {}
    for i, a in enumerate(arrays):
        groups.setdefault(a.shape, []).append(i)
    return list(groups.values())


def _scatter(keys: Sequence[tuple[int, str]], preds: Preds, n_images: int, names: Iterable[str]):
    """(image, variant)-keyed predictions → variant → (Preds over all images, present mask)."""
    out = {name: (np.full((n_images, 5), -1, dtype=np.int64), np.zeros((n_images, 5)), np.zeros(n_images, bool))
           for name in names}
    for row, (i, name) in enumerate(keys):
        t, p, m = out[name]
        t[i], p[i], m[i] = preds.top5[row], preds.prob5[row], True
    return {name: (Preds(t, p), m) for name, (t, p, m) in out.items()}


def png_predictions(em: EvalModel, data: RunData, batch_size: int = 32, progress: bool = True) -> dict[str, Preds]:
    """variant ('clean' included) → this model's predictions of the PNGs (from the manifest for
    the crafting model, never recomputed)."""
    if em.crafting:
        return dict(data.manifest_preds)
    keys = sorted(data.files)
    preds = predict_items(em.get(), keys, lambda k: _read_png(data.files[k]), batch_size,
                          desc=f"{em.spec}: PNGs", progress=progress)
    return {name: p for name, (p, _) in _scatter(keys, preds, len(data.ids), data.manifest_preds).items()}


# ----------------------------------------------------------------------------- rows
def stage_rows(em: EvalModel, data: RunData, stage: str, digital: dict[str, Preds],
               stage_preds: dict[str, Preds], stage_present: dict[str, np.ndarray], threshold: float,
               transform: str | None = None, transform_value=None, variants: list[dict] | None = None) -> list[dict]:
    """Average and prefiltered rows for every adversarial variant (of `variants`, default all) at one stage."""
    labels = em.labels
    rows = []
    base_all = em.valid & data.present["clean"]
    clean_digital = digital["clean"]
    clean_stage = stage_preds.get("clean", clean_digital)
    clean_present = stage_present.get("clean", data.present["clean"])
    for v in data.variants if variants is None else variants:
        name = v["name"]
        base = base_all & data.present[name] & stage_present[name]
        pre = base & prefilter(labels, clean_digital, digital[name], PREFILTER_CONFIDENCE)
        for subset, mask in (("average", base), ("prefiltered", pre)):
            idx = np.flatnonzero(mask)
            numbers = stage_metrics(labels[idx], clean_digital.take(idx), digital[name].take(idx),
                                    stage_preds[name].take(idx), clean_stage.take(idx), clean_present[idx],
                                    threshold=threshold)
            row = {"model": em.spec, "crafted_by": data.crafted_by, "attack": v["attack"], "eps": v["eps"],
                   "variant": name, "stage": stage, "transform": transform, "transform_value": transform_value,
                   "subset": subset}
            row.update(numbers)
            if v.get("target") is not None:  # targeted variant: success on the PNGs / at this stage, survival
                row.update(targeted_metrics(v["target"], digital[name].take(idx), stage_preds[name].take(idx)))
            rows.append(_ordered(row))
    return rows


def _ordered(row: dict) -> dict:
    out = {}
    for k in ROW_KEYS:
        out[k] = row.get(k)
        if k in CI_KEYS:
            out[f"{k}_ci"] = row.get(f"{k}_ci")
    return out


def transfer_matrix(data: RunData, models: list[EvalModel], rows: list[dict],
                    clean_rates: dict[tuple[str, str], object]) -> dict | None:
    """Crafting model × evaluating models → adversarial top-1 error (average subset), with a
    clean row and the noise baselines as rows of their own."""
    if len(models) < 2:
        return None
    specs = [m.spec for m in models]
    by_key = {(r["model"], r["stage"], r["variant"]): r for r in rows if r["subset"] == "average"}
    stages = [s for s in ("png", "photo") if any(r["stage"] == s for r in rows)]
    entries = []
    for stage in stages:
        e = {"stage": stage, "attack": "clean", "eps": 0, "variant": "clean", "n": {}, "error": {}, "error_ci": {}}
        for spec in specs:
            r = clean_rates.get((spec, stage))
            if r is None:
                continue
            err = type(r)(r.n - r.k, r.n)
            e["n"][spec] = r.n
            e["error"][spec] = None if err.value is None else round(err.value, 6)
            e["error_ci"][spec] = None if err.ci is None else [round(err.ci[0], 6), round(err.ci[1], 6)]
        entries.append(e)
        for v in data.variants:
            e = {"stage": stage, "attack": v["attack"], "eps": v["eps"], "variant": v["name"],
                 "n": {}, "error": {}, "error_ci": {}}
            for spec in specs:
                r = by_key.get((spec, stage, v["name"]))
                if r is None:
                    continue
                e["n"][spec] = r["n"]
                e["error"][spec] = None if r["adv_top1"] is None else round(1 - r["adv_top1"], 6)
                ci = r["adv_top1_ci"]
                e["error_ci"][spec] = None if ci is None else [round(1 - ci[1], 6), round(1 - ci[0], 6)]
            entries.append(e)
    attacks = {v["attack"] for v in data.variants}
    missing = [a for a in ("noise", "gauss") if a not in attacks]
    note = None if not missing else (f"run {data.name!r} has no {' / '.join(missing)} baseline: craft them too "
                                     "for the noise rows of the table")
    return {"crafted_by": data.crafted_by, "models": specs, "metric": "adv_error_top1", "entries": entries,
            "note": note}


# ----------------------------------------------------------------------------- evaluate
def evaluate(ws: Workspace, run: str, models: Sequence[str] | None = None, threshold: float = 0.8,
             batch_size: int = 32, device: str = "auto", labels: str | None = None,
             progress: bool = True) -> dict:
    """Evaluate run `run`: PNG stage always, photo stage when ingest's crops exist. Writes
    reports/<run>/metrics.json + metrics.csv and returns the metrics document."""
    try:
        threshold = check_threshold(threshold)
    except ValueError:
        raise PhysicalError(f"--threshold must be strictly between 0 and 1, got {threshold}") from None
    if batch_size < 1:
        raise PhysicalError(f"--batch-size must be at least 1, got {batch_size}")
    data = load_run(ws, run)
    photos = load_photos(ws, data)
    if photos.status == "missing":
        log.info(photos.message)
    ems = prepare_models(data, models, device, labels, need_model=photos.status == "ok")
    rows, clean_rates, crop_predictions = [], {}, []
    for em in ems:
        digital = png_predictions(em, data, batch_size, progress)
        rows += stage_rows(em, data, "png", digital, digital, data.present, threshold)
        clean_rates[(em.spec, "png")] = fraction(correct(digital["clean"].take(np.flatnonzero(em.valid & data.present["clean"])),
                                                         em.labels[em.valid & data.present["clean"]], 1))
        if photos.status == "ok":
            keys = sorted(photos.files)
            preds = predict_items(em.get(), keys, lambda k: _read_png(photos.files[k]), batch_size,
                                  desc=f"{em.spec}: photo crops", progress=progress)
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
        "transforms": None,
        "predictions": crop_predictions,
    }
    doc = merge_with_existing(ws, run, doc, keep="transforms")
    write_metrics(ws, run, doc)
    return doc


def evaluate_transforms(ws: Workspace, run: str, kinds: Sequence[str] | None = None, seed: int = 0,
                        models: Sequence[str] | None = None, threshold: float = 0.8, batch_size: int = 32,
                        device: str = "auto", labels: str | None = None, progress: bool = True,
                        grid: dict | None = None, eps: Sequence[float] | None = None) -> dict:
    """Paper Section 4: every PNG (clean and adversarial) under each transform of the grid,
    classified; rows `transform:<kind>:<value>` merged into reports/<run>/metrics.json.
    `eps`: only the adversarial variants at these ε (the paper used ε = 16 alone); None: all."""
    from physical import transforms as T

    try:
        threshold = check_threshold(threshold)
    except ValueError:
        raise PhysicalError(f"--threshold must be strictly between 0 and 1, got {threshold}") from None
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
    @lru_cache(maxsize=128)             # items come grouped by PNG: each is decoded once (thread-safe)
    def decoded(key):
        return _read_png(data.files[key])

    @lru_cache(maxsize=128)
    def field(key):
        return T.noise_field(decoded(key).shape, seed, data.ids[key[0]])

    def load(item):
        key, kind, value = item
        if kind == "noise":
            return T.noise(decoded(key), value, field=field(key))
        return T.apply(kind, decoded(key), value)

    rows = []
    for em in ems:
        digital = png_predictions(em, data, batch_size, progress)
        preds = predict_items(em.get(), items, load, batch_size, desc=f"{em.spec}: transforms", progress=progress)
        for kind in kinds:
            for value in grid[kind]:
                sel = [j for j, it in enumerate(items) if it[1] == kind and it[2] == value]
                scattered = _scatter([items[j][0] for j in sel], preds.take(sel), len(data.ids), data.manifest_preds)
                sp = {name: p for name, (p, _) in scattered.items()}
                present = {name: m for name, (_, m) in scattered.items()}
                rows += stage_rows(em, data, T.stage_name(kind, value), digital, sp, present, threshold,
                                   transform=kind, transform_value=_num(value), variants=kept)
    block = {"seed": int(seed), "kinds": kinds, "grid": {k: [_num(v) for v in vs] for k, vs in grid.items()},
             "eps": None if keep_eps is None else sorted(keep_eps),
             "ops": {k: T.OPS[k] for k in kinds}, "threshold": threshold, "models": [em.spec for em in ems],
             "manifest_sha256": data.manifest_sha256,
             "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    doc = {"schema": SCHEMA_VERSION, "run": run_block(data, ems, threshold), "photo": None, "rows": rows,
           "transfer": None, "transforms": block}
    doc = merge_with_existing(ws, run, doc, keep="evaluate")
    write_metrics(ws, run, doc)
    return doc


def run_block(data: RunData, ems: list[EvalModel], threshold: float) -> dict:
    m = data.manifest
    return {"name": data.name, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "manifest_sha256": data.manifest_sha256, "model": m.get("model"), "seed": m.get("seed"),
            "versions": package_versions(), "craft_versions": m.get("versions"),
            "threshold": threshold, "prefilter_confidence": PREFILTER_CONFIDENCE,
            "models": [em.info() for em in ems]}


def is_transform_row(row: dict) -> bool:
    return str(row.get("stage", "")).startswith("transform:")


def merge_with_existing(ws: Workspace, run: str, doc: dict, keep: str) -> dict:
    """Keep the other command's rows from an existing metrics.json.

    keep="transforms" (evaluate writing): keep transform rows + block if made from this manifest.
    keep="evaluate" (transforms writing): keep everything but this command's models' transform rows.
    """
    path = ws.reports(run) / "metrics.json"
    if not path.exists():
        return doc
    try:
        old = read_json(path)
    except PhysicalError as exc:
        log.warning("%s; it is replaced", exc)
        return doc
    if keep == "transforms":
        block = old.get("transforms")
        if not block:
            return doc
        if block.get("manifest_sha256") != doc["run"]["manifest_sha256"]:
            log.warning("dropping the transform rows of %s: they were made from another craft of run %s "
                        "(re-run `physical transforms --run %s`)", path, run, run)
            return doc
        doc["rows"] = doc["rows"] + [r for r in old.get("rows", []) if is_transform_row(r)]
        doc["transforms"] = block
        return doc
    # keep == "evaluate": doc holds the new transform rows and block
    if old.get("run", {}).get("manifest_sha256") != doc["run"]["manifest_sha256"]:
        log.warning("%s was made from another craft of run %s: only the new transform rows are kept "
                    "(re-run `physical evaluate --run %s`)", path, run, run)
        return doc
    mine = set(doc["transforms"]["models"])
    kept = [r for r in old.get("rows", []) if not (is_transform_row(r) and r.get("model") in mine)]
    old_block = old.get("transforms") or {}
    if old_block.get("manifest_sha256") == doc["run"]["manifest_sha256"]:
        others = [m for m in old_block.get("models", []) if m not in mine]
    else:
        others = []
        kept = [r for r in kept if not is_transform_row(r)]
    merged = dict(old)
    merged["rows"] = kept + doc["rows"]
    block = dict(doc["transforms"])
    block["models"] = others + list(block["models"])
    merged["transforms"] = block
    return merged


def sort_rows(rows: list[dict], model_order: Sequence[str], variant_order: Sequence[str]) -> list[dict]:
    from physical.transforms import KINDS

    def key(r):
        st = r["stage"]
        if st == "png":
            s = (0, 0, 0.0)
        elif st == "photo":
            s = (1, 0, 0.0)
        else:
            kind = r.get("transform") or ""
            s = (2, KINDS.index(kind) if kind in KINDS else len(KINDS), float(r.get("transform_value") or 0))
        m = model_order.index(r["model"]) if r["model"] in model_order else len(model_order)
        v = variant_order.index(r["variant"]) if r["variant"] in variant_order else len(variant_order)
        return (m, s, v, 0 if r["subset"] == "average" else 1)

    return sorted(rows, key=key)


def write_metrics(ws: Workspace, run: str, doc: dict) -> Path:
    """metrics.json and metrics.csv, each written atomically."""
    models = [m["spec"] for m in doc["run"].get("models", [])]
    if doc.get("transforms"):
        models += [m for m in doc["transforms"].get("models", []) if m not in models]
    variants = list(dict.fromkeys(r["variant"] for r in doc["rows"]))
    doc["rows"] = sort_rows(doc["rows"], models, variants)
    out = ws.reports(run)
    atomic_write_json(out / "metrics.json", doc)
    atomic_write_text(out / "metrics.csv", rows_csv(doc["rows"]))
    return out / "metrics.json"


def rows_csv(rows: list[dict]) -> str:
    header = []
    for k in ROW_KEYS:
        header.append(k)
        if k in CI_KEYS:
            header += [f"{k}_ci_lo", f"{k}_ci_hi"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for r in rows:
        line = []
        for k in ROW_KEYS:
            line.append("" if r.get(k) is None else r[k])
            if k in CI_KEYS:
                ci = r.get(f"{k}_ci")
                line += ["", ""] if ci is None else ci
        w.writerow(line)
    return buf.getvalue()


# ----------------------------------------------------------------------------- terminal
def _pct(x) -> str:
    return "   -" if x is None else f"{100 * x:5.1f}"


def summary_table(doc: dict, stages: Sequence[str] = ("png", "photo")) -> str:
    """A short plain-text table: average subset, png and photo stages (top-1/top-5 in %)."""
    lines = [f"{'model':<18} {'variant':<12} {'stage':<6} {'n':>4} {'clean@1':>7} {'adv@1':>6} {'adv@5':>6} "
             f"{'d@1':>6} {'d@5':>6} {'d_n':>4} {'pref.n':>6} {'pref.d@1':>8}"]
    pre = {(r["model"], r["stage"], r["variant"]): r for r in doc["rows"] if r["subset"] == "prefiltered"}
    for r in doc["rows"]:
        if r["subset"] != "average" or r["stage"] not in stages:
            continue
        p = pre.get((r["model"], r["stage"], r["variant"]), {})
        lines.append(f"{r['model'][:18]:<18} {r['variant'][:12]:<12} {r['stage']:<6} {r['n']:>4} "
                     f"{_pct(r['clean_top1']):>7} {_pct(r['adv_top1']):>6} {_pct(r['adv_top5']):>6} "
                     f"{_pct(r['destruction_top1']):>6} {_pct(r['destruction_top5']):>6} {r['destruction_n']:>4} "
                     f"{p.get('n', 0):>6} {_pct(p.get('destruction_top1')):>8}")
    return "\n".join(lines)
