"""Rows: the paper's numbers per model × variant × stage × subset (pure functions of
predictions), the transfer matrix, their order, and the plain-text and CSV forms."""
from __future__ import annotations

import csv
import io
from typing import Sequence

import numpy as np

from physical.evaluate.inputs import RunData
from physical.evaluate.prediction import EvalModel
from physical.metrics import TARGETED_KEYS, Preds, prefilter, stage_metrics, targeted_metrics

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



def _pct(x) -> str:
    return "   -" if x is None else f"{100 * x:5.1f}"


def summary_table(doc: dict, stages: Sequence[str] = ("png", "photo")) -> str:
    """A short plain-text table: average subset, png and photo stages (top-1/top-5 in %)."""
    from physical.service import display_name

    lines = [f"{'model':<18} {'variant':<12} {'stage':<6} {'n':>4} {'clean@1':>7} {'adv@1':>6} {'adv@5':>6} "
             f"{'d@1':>6} {'d@5':>6} {'d_n':>4} {'pref.n':>6} {'pref.d@1':>8}"]
    pre = {(r["model"], r["stage"], r["variant"]): r for r in doc["rows"] if r["subset"] == "prefiltered"}
    for r in doc["rows"]:
        if r["subset"] != "average" or r["stage"] not in stages:
            continue
        p = pre.get((r["model"], r["stage"], r["variant"]), {})
        lines.append(f"{display_name(r['model'])[:18]:<18} {r['variant'][:12]:<12} {r['stage']:<6} {r['n']:>4} "
                     f"{_pct(r['clean_top1']):>7} {_pct(r['adv_top1']):>6} {_pct(r['adv_top5']):>6} "
                     f"{_pct(r['destruction_top1']):>6} {_pct(r['destruction_top5']):>6} {r['destruction_n']:>4} "
                     f"{p.get('n', 0):>6} {_pct(p.get('destruction_top1')):>8}")
    return "\n".join(lines)
