"""Pure functions: the records of physical.report.inputs → the tables and numbers the page shows.

No file access, no plotting: each function takes records and returns plain lists/dicts that
the template renders. A new section of the report is one function here (plus a block in
templates/report.html and a line in `page.sections`).
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from physical.report.inputs import Ingest, Manifest, Metrics, Row, RunInputs, num

ATTACK_ORDER = ["fgsm", "bim", "ill", "eot", "noise", "gauss"]
ATTACK_NAMES = {"fgsm": "FGSM (fast)", "bim": "BIM (iterative)", "ill": "ILL (least-likely)",
                "eot": "EOT (robust)",
                "noise": "random ±ε noise", "gauss": "Gaussian noise", "clean": "clean"}
# One colour per attack (colour-blind-safe Okabe–Ito palette), reused by every plot.
ATTACK_COLOURS = {"fgsm": "#0072B2", "bim": "#D55E00", "ill": "#009E73", "eot": "#E69F00", "noise": "#999999",
                  "gauss": "#CC79A7", "clean": "#000000"}
EXTRA_COLOURS = ["#56B4E9", "#F0E442", "#882255", "#44AA99", "#332288"]


def attack_label(attack: str) -> str:
    return ATTACK_NAMES.get(attack, attack)


def attack_colour(attack: str, others: list[str]) -> str:
    if attack in ATTACK_COLOURS:
        return ATTACK_COLOURS[attack]
    return EXTRA_COLOURS[others.index(attack) % len(EXTRA_COLOURS)] if attack in others else "#333333"


def attack_key(attack: str):
    """Sort key: the paper's attacks in its order, then the rest by name."""
    return (ATTACK_ORDER.index(attack) if attack in ATTACK_ORDER else len(ATTACK_ORDER), attack)


def fmt_eps(eps: float | None) -> str:
    return "—" if eps is None else f"{eps:g}"


def variant_title(name: str, attack: str, eps: float | None, target: str | None = None) -> str:
    """`FGSM ε=16` for an attack variant (`BIM ε=16 → guacamole` for a targeted one), the name
    itself otherwise (`clean`)."""
    title = name if eps is None else f"{attack.upper()} ε={eps:g}"
    return f"{title} → {target}" if target and eps is not None else title


def untargeted(rows: Iterable[Row]) -> list[Row]:
    """The rows of untargeted variants: the paper's tables and plots key rows by attack and ε, and
    a targeted variant (`bim-eps16-to924`) shares both with its untargeted twin. Targeted rows
    have their own table (report/robust.py)."""
    return [r for r in rows if r.target is None]


# --------------------------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------------------------

def channel_text(channel) -> str | None:
    """How an EOT attack's channel was drawn, from its manifest block: the preset table, or the
    calibration profile it was fitted through (chart id, sha256)."""
    if not isinstance(channel, dict):
        return None
    prof = channel.get("profile")
    if isinstance(prof, dict):
        chart = prof.get("chart") if isinstance(prof.get("chart"), dict) else {}
        sha = str(prof.get("sha256") or "")[:12]
        return (f"calibration profile {chart.get('id') or ''} {f'(sha256 {sha}…)' if sha else ''}".replace("  ", " ").strip()
                + (f", light and geometry from {channel['preset']}" if channel.get("preset") else ""))
    return f"{channel['table']} preset" if channel.get("table") else None


def attack_list(manifest: Manifest) -> list[dict]:
    """The run facts' attack chips: name, label, ε list, the other parameters; a targeted entry
    (`bim-to924`) is labelled with its attack and target, an EOT one with its channel."""
    out = []
    for a in manifest.attacks:
        base = str(a.params.get("attack") or a.name)
        target = a.params.get("target") if isinstance(a.params.get("target"), dict) else None
        to = f" → {target.get('name') or target.get('index')}" if target else ""
        out.append({"name": base, "label": attack_label(base) + to, "title": base.upper() + to,
                    "eps": ", ".join(fmt_eps(e) for e in a.eps) or "—", "params": a.params,
                    "channel": channel_text(a.params.get("channel"))})
    return out


def eps_all(manifest: Manifest) -> str:
    return ", ".join(f"{e:g}" for e in sorted({e for a in manifest.attacks for e in a.eps}))


def stage_list(inp: RunInputs) -> list[dict]:
    """Which stages of the loop this run has, with the command that makes each missing one."""
    run, m = inp.run, inp.manifest
    rows = inp.metrics.rows if inp.metrics else []
    counts = {"png": sum(r.stage == "png" for r in rows), "photo": sum(r.stage == "photo" for r in rows),
              "transform": sum(r.stage.startswith("transform:") for r in rows)}

    def rows_detail(key):
        return f"{counts[key]} rows" if counts[key] else None

    return [
        {"name": "craft", "done": True, "detail": f"{len(m.images)} images × {len(m.variants)} variants", "hint": None},
        {"name": "layout", "done": inp.has_layout and inp.pdf_name is not None, "detail": inp.pdf_name,
         "hint": f"physical layout --run {run}"},
        {"name": "photos", "done": bool(inp.photos),
         "detail": f"{len(inp.photos)} photos" + (" (simulated)" if inp.simulated else "") if inp.photos else None,
         "hint": f"print {run}.pdf and photograph it, or: physical simulate --run {run}"},
        {"name": "ingest", "done": inp.ingest is not None,
         "detail": f"{sum(c.used for c in inp.ingest.crops)} crops used" if inp.ingest is not None else None,
         "hint": f"physical ingest --run {run} --photos DIR"},
        {"name": "evaluate (PNG)", "done": bool(counts["png"]), "detail": rows_detail("png"),
         "hint": f"physical evaluate --run {run}"},
        {"name": "evaluate (photo)", "done": bool(counts["photo"]), "detail": rows_detail("photo"),
         "hint": f"physical evaluate --run {run} (after ingest)"},
        {"name": "transforms", "done": bool(counts["transform"]), "detail": rows_detail("transform"),
         "hint": f"physical transforms --run {run}"},
    ]


# --------------------------------------------------------------------------------------------
# the paper's table
# --------------------------------------------------------------------------------------------

RATE_PAIRS = {  # column → (top-1 field, top-5 field) in a metrics row
    "clean": ("clean_top1", "clean_top5"),
    "adv": ("adv_top1", "adv_top5"),
    "destruction": ("destruction_top1", "destruction_top5"),
}


def _cell(row: Row | None, f1: str, f5: str) -> dict:
    """A table cell: top-1 / top-5 in %, each with its interval; None where there is no number."""
    if row is None:
        return {"top1": None, "top5": None, "ci1": None, "ci5": None}
    return {"top1": row.v(f1), "top5": row.v(f5), "ci1": row.ci(f1), "ci5": row.ci(f5)}


def _rate_cell(row: Row | None, pair: str) -> dict:
    return _cell(row, *RATE_PAIRS[pair])


def _digital_cell(photo: Row | None, png: Row | None, pair: str) -> dict:
    """The digital (PNG) accuracy: over the photo row's images when there is one (its
    `digital_*` fields, so a row of the table is about one set of images, as in the paper),
    else the png row's own."""
    if photo is not None and photo.v(f"digital_{pair}_top1") is not None:
        return _cell(photo, f"digital_{pair}_top1", f"digital_{pair}_top5")
    return _rate_cell(png, pair)


def index_rows(rows: Iterable[Row]) -> dict[tuple, Row]:
    """(model, attack, ε, stage, subset) → the first such row."""
    idx: dict[tuple, Row] = {}
    for r in rows:
        idx.setdefault((r.model, r.attack, r.eps, r.stage, r.subset), r)
    return idx


def paper_tables(metrics: Metrics | None, manifest: Manifest) -> list[dict]:
    """One table per evaluating model (the crafting model first), one row per attack × ε."""
    rows = untargeted(metrics.rows) if metrics else []
    if not rows:
        return []
    idx = index_rows(rows)
    crafting = str(manifest.model.spec)
    tables = []
    for model in sorted({r.model for r in rows}, key=lambda m: (m != crafting, m)):
        keys = sorted({(r.attack, r.eps) for r in rows
                       if r.model == model and r.stage in ("png", "photo") and r.attack != "clean"},
                      key=lambda k: (attack_key(k[0]), k[1] if k[1] is not None else -1))
        table_rows = []
        for attack, eps in keys:
            png, photo = idx.get((model, attack, eps, "png", "average")), idx.get((model, attack, eps, "photo", "average"))
            photo_pre = idx.get((model, attack, eps, "photo", "prefiltered"))
            table_rows.append({
                "attack": attack, "attack_label": attack_label(attack), "eps": fmt_eps(eps),
                "key": f"{attack}-eps{fmt_eps(eps)}",
                "n_png": png.n if png else None, "n_photo": photo.n if photo else None,
                "photo_clean": _rate_cell(photo, "clean"), "photo_adv": _rate_cell(photo, "adv"),
                "png_clean": _digital_cell(photo, png, "clean"), "png_adv": _digital_cell(photo, png, "adv"),
                "all_clean": _rate_cell(png, "clean"), "all_adv": _rate_cell(png, "adv"),
                "d_avg": _rate_cell(photo, "destruction"),
                "d_avg_n": photo.count("destruction_n") if photo else None,
                "d_pre": _rate_cell(photo_pre, "destruction"),
                "d_pre_n": photo_pre.count("destruction_n") if photo_pre else None,
                "has_photo": photo is not None,
            })
        if table_rows:
            tables.append({"model": model, "crafting": model == crafting, "rows": table_rows,
                           "has_photo": any(r["has_photo"] for r in table_rows)})
    return tables


def headline(tables: list[dict]) -> list[dict]:
    """Big numbers for the top of the page: per attack, at its largest ε, the adversarial top-1
    accuracy digitally and photographed, and the photo's destruction rate (crafting model)."""
    if not tables:
        return []
    best: dict[str, dict] = {}
    for r in tables[0]["rows"]:
        eps = num(r["eps"])
        if r["attack"] not in best or (eps or 0) > (num(best[r["attack"]]["eps"]) or 0):
            best[r["attack"]] = r
    return [{"attack": attack, "label": attack_label(attack), "eps": r["eps"],
             "clean": r["all_clean"]["top1"], "digital": r["all_adv"]["top1"], "n": r["n_png"],
             "photo": r["photo_adv"]["top1"], "n_photo": r["n_photo"],
             "destruction": r["d_avg"]["top1"], "destruction_n": r["d_avg_n"]}
            for attack, r in best.items()]


def threshold_table(metrics: Metrics | None) -> list[dict]:
    """The thresholded-classifier reading from evaluate's rows, one table per model × stage
    (average subset). The clean columns become one "clean" row when every row agrees on them
    (digital PNGs: always the same images)."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in untargeted(metrics.rows) if metrics else []:
        if r.subset != "average" or r.stage not in ("png", "photo"):
            continue
        if r.v("adv_accept_rate") is None and r.v("clean_accept_rate") is None:
            continue
        err = lambda v: None if v is None else 1 - v  # noqa: E731
        clean_n = r.count("clean_n")
        view = {"attack": r.attack, "attack_label": attack_label(r.attack), "eps": fmt_eps(r.eps), "n": r.n,
                "threshold": r.v("threshold"),
                "clean": {"n": clean_n if clean_n is not None else r.n, "error": err(r.v("clean_top1")),
                          "accepted": r.v("clean_accept_rate"), "accepted_error": r.v("clean_accepted_error"),
                          "reduction": r.v("clean_error_reduction")},
                "adv": {"n": r.n, "error": err(r.v("adv_top1")),
                        "accepted": r.v("adv_accept_rate"), "accepted_error": r.v("adv_accepted_error"),
                        "reduction": r.v("adv_error_reduction")}}
        groups.setdefault((r.model, r.stage), []).append(view)
    out = []
    for (model, stage), views in groups.items():
        shared = all(v["clean"] == views[0]["clean"] for v in views)
        out.append({"model": model, "stage": stage, "stage_label": "digital (PNG)" if stage == "png" else "photographed",
                    "clean": views[0]["clean"] if shared else None, "rows": views})
    out.sort(key=lambda t: (t["model"], t["stage"] != "png"))
    return out


def transfer_matrix(metrics: Metrics | None) -> dict | None:
    """evaluate's `transfer` block (docs/metrics.md) as Szegedy's table: per stage (digital,
    photo) one row per evaluating model and one column per variant (crafted on `crafted_by`),
    cells = adversarial top-1 error (the `clean` column: each model's clean error)."""
    t = metrics.transfer if metrics else None
    if t is None:
        return None
    models = list(t.models)
    stages: dict[str, dict] = {}
    for e in t.entries:
        models += [m for m in e.error if m not in models]
        title = "clean" if e.attack == "clean" else f"{e.attack.upper()} ε={fmt_eps(e.eps)}" + (
            f" →{e.target}" if e.target is not None else "")
        block = stages.setdefault(e.stage, {"cols": [], "attacks": [], "cells": {}})
        if title not in block["cols"]:
            block["cols"].append(title)
            block["attacks"].append(e.attack)
        for m, v in e.error.items():
            block["cells"][(m, title)] = v
    if not stages or not models:
        return None
    out = [{"stage": stage, "cols": b["cols"], "attacks": b["attacks"], "rows": models,
            "values": [[b["cells"].get((m, c)) for c in b["cols"]] for m in models]}
           for stage, b in ((s, stages[s]) for s in ("digital", "photo") if s in stages)]
    return {"crafted_by": t.crafted_by, "models": models, "stages": out, "title": "adversarial top-1 error (%)"}


# --------------------------------------------------------------------------------------------
# the prefilter curve (from the manifest's PNG predictions)
# --------------------------------------------------------------------------------------------

def acceptance_curves(manifest: Manifest) -> dict[str, dict]:
    """Error among accepted vs fraction accepted as the confidence threshold t varies, per
    variant, from the manifest's PNG predictions (a prediction is accepted when its top-1
    probability is > t, evaluate's thresholded classifier; t = 0 accepts everything).
    Returns variant → {thresholds, accepted, error, n}."""
    thresholds = np.round(np.linspace(0.0, 0.99, 100), 2)
    out = {}
    targeted = {n for im in manifest.images for n, v in im.variants.items() if v.target is not None}
    for variant in manifest.variants:
        if variant in targeted:   # error against the true label is not what a targeted attack aims at
            continue
        conf, wrong = [], []
        for image in manifest.images:
            rec = image.variants.get(variant)
            if rec is None or rec.pred is None or rec.pred.conf is None or image.label_index is None:
                continue
            conf.append(rec.pred.conf)
            wrong.append(rec.pred.top1 != image.label_index)
        if not conf:
            continue
        conf_a, wrong_a = np.array(conf), np.array(wrong)
        acc, err = [], []
        for t in thresholds:
            keep = conf_a > t if t > 0 else np.ones_like(conf_a, dtype=bool)
            acc.append(float(keep.mean()))
            err.append(float(wrong_a[keep].mean()) if keep.any() else None)
        out[variant] = {"thresholds": thresholds.tolist(), "accepted": acc, "error": err, "n": len(conf)}
    return out


def acceptance_groups(manifest: Manifest, curves: dict[str, dict]) -> dict[str, list[tuple[float, str]]]:
    """attack → its variants with a curve, as (ε, variant) sorted by ε; clean is not an attack."""
    by_attack: dict[str, list[tuple[float, str]]] = {}
    for v in curves:
        if v != "clean":
            attack, eps = manifest.variant_parts(v)
            by_attack.setdefault(attack, []).append((eps if eps is not None else 0, v))
    return {a: sorted(by_attack[a]) for a in sorted(by_attack, key=attack_key)}


def threshold_index(curves: dict[str, dict], threshold: float) -> int:
    """The index of the sampled threshold nearest `threshold`."""
    return int(np.argmin(np.abs(np.array(next(iter(curves.values()))["thresholds"]) - threshold)))


def acceptance_table(manifest: Manifest, curves: dict[str, dict], threshold: float) -> list[dict]:
    """Per variant (clean first, then by attack and ε): n, error of all, share accepted and the
    error among accepted at the sampled threshold nearest `threshold` (the curve's dots)."""
    if not curves:
        return []
    ti = threshold_index(curves, threshold)
    order = (["clean"] if "clean" in curves else []) + [v for vs in acceptance_groups(manifest, curves).values()
                                                        for _, v in vs]
    out = []
    for v in order:
        c = curves[v]
        if all(e is None for e in c["error"]):
            continue
        attack, eps = manifest.variant_parts(v)
        out.append({"variant": v, "title": variant_title(v, attack, eps), "n": c["n"], "accepted": c["accepted"][ti],
                    "error_accepted": c["error"][ti], "error_all": c["error"][0]})
    return out


# --------------------------------------------------------------------------------------------
# transform rows (paper Section 4)
# --------------------------------------------------------------------------------------------

def transform_rows(rows: list[Row], model: str) -> dict[str, list[tuple[Row, float]]]:
    """kind → (row, transform value) for `model`'s average rows of stage `transform:<kind>:<value>`."""
    by_kind: dict[str, list[tuple[Row, float]]] = {}
    for r in rows:
        parts = r.stage.split(":", 2)
        if parts[0] != "transform" or r.model != model or r.subset != "average" or len(parts) != 3:
            continue
        if (value := num(parts[2])) is not None:
            by_kind.setdefault(parts[1], []).append((r, value))
    return by_kind


# --------------------------------------------------------------------------------------------
# ingest
# --------------------------------------------------------------------------------------------

def ingest_summary(ingest: Ingest, manifest: Manifest) -> dict:
    """Counts for the photos section: photos accepted / rejected and why, crops per variant,
    reprojection error of the crops used."""
    used = [c for c in ingest.crops if c.used]
    per_variant: dict[str, int] = {}
    for c in used:
        per_variant[c.variant] = per_variant.get(c.variant, 0) + 1
    reasons: dict[str, int] = {}
    for p in ingest.photos:
        if p.status != "accepted":
            reasons[p.reason or "no reason given"] = reasons.get(p.reason or "no reason given", 0) + 1
    reproj = [c.reprojection_error_px for c in used if c.reprojection_error_px is not None]
    return {
        "accepted": sum(p.status == "accepted" for p in ingest.photos),
        "rejected": sum(p.status != "accepted" for p in ingest.photos),
        "reasons": sorted(reasons.items(), key=lambda kv: -kv[1]),
        "crops_used": len(used), "crops_total": len(ingest.crops),
        "crops_expected": sum(len(im.variants) for im in manifest.images),
        "per_variant": [(v, per_variant.get(v, 0), len(manifest.images)) for v in manifest.variants],
        "reproj_median": float(np.median(reproj)) if reproj else None,
        "reproj_max": max(reproj) if reproj else None,
    }


def services(metrics) -> list[dict]:
    """The evaluating models behind an Open Inference Protocol service, as evaluate recorded them
    (URL without credentials, model, version, platform, server): the report names what it judged."""
    out = []
    for m in (metrics.run.get("models") or []) if metrics else []:
        s = m.get("service") if isinstance(m, dict) else None
        if isinstance(s, dict):
            server = s.get("server") if isinstance(s.get("server"), dict) else {}
            out.append({"spec": m.get("spec"), "url": s.get("url"), "model": s.get("model"),
                        "version": s.get("version"), "platform": s.get("platform"),
                        "server": " ".join(str(v) for v in (server.get("name"), server.get("version")) if v),
                        "input": (s.get("input") or {}).get("datatype")})
    return out
