"""Prediction: the evaluating models (loaded lazily, labels mapped into their class space) and
batched inference over PNGs, crops and transformed images."""
from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from physical.errors import PhysicalError
from physical.evaluate.inputs import RunData
from physical.metrics import Preds

log = logging.getLogger(__name__)


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
        if self.model is None and self.spec.startswith("oip:"):  # a model behind a service
            from physical.service import connect

            self.model = connect(self.spec)
        if self.model is None:
            from physical.models import load_model

            self.model = load_model(self.spec, device=self.device, arch=self.arch)
        return self.model

    def info(self) -> dict:
        if self.model is not None:
            m = self.model
            out = {"spec": m.spec, "arch": m.arch, "weights_sha256": m.weights_sha256, "num_classes": m.num_classes}
            if getattr(m, "service", None):  # URL without credentials, model, version, platform
                out["service"] = m.service
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
    mm = data.manifest.model.dump()
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
    imagenet = np.array([lab.index for lab in data.labels], dtype=np.int64)
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
        idx = by_key.get((lab.wnid or "").lower(), by_key.get((lab.name or "").lower(), -1))
        mapped.append(idx)
    em.labels = np.array(mapped, dtype=np.int64)
    em.valid = em.labels >= 0
    em.labels_file = str(labels_file)
    if not em.valid.any():
        raise PhysicalError(f"none of run {data.name!r}'s labels is among the classes in {labels_file}")
    if not em.valid.all():
        log.warning("%d images have labels model %s does not know: left out of its rows",
                    int((~em.valid).sum()), em.spec)


def predict_items(model, items: Sequence, load: Callable[[object], np.ndarray], batch_size: int = 32,
                  desc: str = "evaluating", progress: bool = True, workers: int | None = None) -> Preds:
    """Top-5 predictions of `model` on `load(item)` for every item, batched under inference mode.
    While the model runs on one batch, the next one is decoded by `workers` threads (PNG decoding
    releases the GIL); `load` must be thread-safe. Under torchrun each rank predicts its share
    of the items and every rank gets all rows back (physical.distributed.shard_rows)."""
    from physical.distributed import shard_rows

    return shard_rows(list(items), lambda part: _predict_local(model, part, load, batch_size, desc, progress, workers))


def _predict_local(model, items, load, batch_size, desc, progress, workers) -> Preds:
    from tqdm import tqdm

    from physical.models import predict

    top5 = np.zeros((len(items), 5), dtype=np.int64)
    prob5 = np.zeros((len(items), 5))
    if not items:
        return Preds(top5, prob5)
    if workers is None:
        workers = max(1, min(8, (os.cpu_count() or 2) // 2))
    batch_size = max(batch_size, getattr(model, "batch_hint", 0))  # a service: enough for its concurrency
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
    preds = predict_items(em.get(), keys, data.read_png, batch_size,
                          desc=f"{em.spec}: PNGs", progress=progress)
    return {name: p for name, (p, _) in _scatter(keys, preds, len(data.ids), data.manifest_preds).items()}
