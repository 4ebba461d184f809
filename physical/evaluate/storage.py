"""Storage: what evaluation writes, each file through physical.records or atomically.

* reports/<run>/metrics.json + metrics.csv — `physical evaluate` only (PNG and photo stages);
* reports/<run>/transforms.json + transforms.csv — `physical transforms` only (Section 4);
* reports/<run>/predictions.csv — one row per model × stage × image × variant. Both commands
  contribute rows to this export; each rewrites only the rows of its own stages (evaluate:
  `png`, `photo`; transforms: `transform:*` of the models it ran) and keeps the other's rows
  while they were made from the same craft. Both run under the run's lock, so they never
  write it at the same time.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Iterable, Sequence

from physical import records
from physical.errors import PhysicalError
from physical.distributed import is_writer
from physical.evaluate.rows import rows_csv, sort_rows
from physical.workspace import Workspace, atomic_write_text

PREDICTION_COLUMNS = ["model", "stage", "image", "variant", "label", "top1", "top1_prob", "top5"]


def _model_order(doc: dict) -> list[str]:
    models = [m["spec"] for m in doc["run"].get("models", [])]
    return models + [m for m in (doc.get("transforms") or {}).get("models", []) if m not in models]


def _sorted(doc: dict) -> dict:
    variants = list(dict.fromkeys(r["variant"] for r in doc["rows"]))
    doc["rows"] = sort_rows(doc["rows"], _model_order(doc), variants)
    return doc


def write_metrics(ws: Workspace, run: str, doc: dict) -> Path:
    """metrics.json (validated as records.Metrics) and metrics.csv, each written atomically
    (under torchrun by rank 0 alone: every rank holds all rows, physical.distributed.shard_rows)."""
    if not is_writer():
        return ws.metrics_path(run)
    path = records.write(records.METRICS, ws, run, _sorted(doc))
    atomic_write_text(ws.metrics_csv_path(run), rows_csv(doc["rows"]))
    return path


def merge_transforms(ws: Workspace, run: str, doc: dict) -> dict:
    """Keep the transform rows of models this call did not run, when made from the same craft."""
    try:
        old = records.read_optional(records.TRANSFORMS, ws, run)
    except PhysicalError:  # a damaged earlier file is replaced, not merged
        return doc
    if old is None or old.transforms.get("manifest_sha256") != doc["transforms"]["manifest_sha256"]:
        return doc
    mine = set(doc["transforms"]["models"])
    kept = [r.dump() for r in old.rows if r.model not in mine]
    others = [m for m in old.transforms.get("models", []) if m not in mine]
    doc["rows"] = kept + doc["rows"]
    doc["transforms"]["models"] = others + list(doc["transforms"]["models"])
    return doc


def write_transforms(ws: Workspace, run: str, doc: dict) -> Path:
    """transforms.json (validated as records.Transforms) and transforms.csv (rank 0 under torchrun)."""
    if not is_writer():
        return ws.transforms_path(run)
    path = records.write(records.TRANSFORMS, ws, run, _sorted(doc))
    atomic_write_text(ws.reports(run) / "transforms.csv", rows_csv(doc["rows"]))
    return path


def prediction_rows(model: str, stage: str, image_ids: Sequence[str], labels: Sequence[int],
                    keys: Iterable[tuple[int, str]], top5, prob5) -> list[list]:
    """predictions.csv rows for `keys` (image index, variant) with their top-5 arrays (same order)."""
    out = []
    for j, (i, variant) in enumerate(keys):
        t = [int(c) for c in top5[j]]
        if t[0] < 0:            # no prediction (variant absent for this image)
            continue
        out.append([model, stage, image_ids[i], variant, int(labels[i]), t[0], round(float(prob5[j][0]), 6),
                    " ".join(str(c) for c in t if c >= 0)])
    return out


def _same_craft(kind: records.Kind, ws: Workspace, run: str, manifest_sha256: str) -> bool:
    try:
        rec = records.read_optional(kind, ws, run)
    except PhysicalError:   # a damaged file: its rows are not kept
        return False
    return rec is not None and rec.run.manifest_sha256 == manifest_sha256


def write_predictions(ws: Workspace, run: str, new_rows: list[list], manifest_sha256: str, *,
                      owner: str, models: Sequence[str] = ()) -> Path:
    """Rewrite predictions.csv: `new_rows` replace this command's earlier rows (owner "evaluate":
    every png/photo row; owner "transforms": the transform rows of `models`)."""
    path = ws.predictions_path(run)
    if not is_writer():
        return path
    kept = []
    if path.exists():
        other = records.TRANSFORMS if owner == "evaluate" else records.METRICS
        if _same_craft(other, ws, run, manifest_sha256):
            with open(path, newline="", encoding="utf-8") as f:
                reader = csv.reader(f)
                next(reader, None)
                for row in reader:
                    if len(row) != len(PREDICTION_COLUMNS):
                        continue
                    is_transform = row[1].startswith("transform:")
                    mine = (not is_transform) if owner == "evaluate" else (is_transform and row[0] in models)
                    if not mine:
                        kept.append(row)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(PREDICTION_COLUMNS)
    # evaluate's rows first (png, photo), then the transforms'
    ordered = (new_rows + kept) if owner == "evaluate" else (kept + new_rows)
    w.writerows(ordered)
    atomic_write_text(path, buf.getvalue())
    return path
