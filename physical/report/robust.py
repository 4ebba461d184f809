"""The "standard vs robust" section (issue 12): BIM against EOT through the print-and-photo path.

    perturbation_sizes   per variant: mean |δ|, L2 and L∞ of (adversarial − clean), from the PNGs
    untargeted_table     per ε: BIM vs EOT digital and photographed accuracy, destruction rate
    targeted_table       per target and ε: targeted success digitally / photographed, survival
    targeted_gallery     the targeted images: clean / BIM / EOT, PNG and photo crop, top-1 and p(target)

Numbers come from evaluate's rows (docs/metrics.md) of the crafting model, average subset; like
Table 1 the digital numbers are over the photo row's images when there is one. The report runs no
model: a target outside a stored top-5 is shown as "< p5" (the fifth probability bounds it).
"""
from __future__ import annotations

import numpy as np

from physical.report import gallery as G
from physical.report.inputs import ClassNames, Manifest, Metrics, Pred, Row, RunInputs, inside
from physical.report.tables import attack_key, attack_label, fmt_eps, index_rows, variant_title
from physical.workspace import read_verified

STANDARD, ROBUST = "bim", "eot"
TARGETED_GALLERY = 3        # targeted images shown (the demo has one)


def perturbation_sizes(inp: RunInputs) -> dict[str, dict]:
    """variant → {n, mean_abs, l2, linf}: per image δ = PNG − clean PNG in levels (0..255);
    mean |δ| over pixels and channels, L2 = ‖δ‖₂ over the whole H×W×3 image; `mean_abs` and `l2`
    are averaged over the images, `linf` is the largest. Every PNG is checked against its sha256."""
    sums: dict[str, list] = {}
    for image in inp.manifest.images:
        clean = image.variants.get("clean")
        path = inside(inp.printouts, clean.file) if clean else None
        if path is None:
            continue
        base = G.load_rgb(read_verified(path, clean.sha256, "physical craft"))
        if base is None:
            continue
        base = base.astype(np.int32)
        for name, rec in image.variants.items():
            src = inside(inp.printouts, rec.file) if name != "clean" else None
            adv = G.load_rgb(read_verified(src, rec.sha256, "physical craft")) if src is not None else None
            if adv is None or adv.shape != base.shape:
                continue
            d = adv.astype(np.int32) - base
            sums.setdefault(name, []).append((float(np.abs(d).mean()), float(np.sqrt((d.astype(np.float64) ** 2).sum())),
                                              int(np.abs(d).max())))
    return {name: {"n": len(v), "mean_abs": float(np.mean([x[0] for x in v])), "l2": float(np.mean([x[1] for x in v])),
                   "linf": max(x[2] for x in v)} for name, v in sums.items()}


def _targets(manifest: Manifest) -> dict[str, int]:
    """variant → target class, for the targeted variants of the run."""
    return {n: v.target for im in manifest.images for n, v in im.variants.items() if v.target is not None}


def applies(manifest: Manifest) -> bool:
    """The section is shown when the run has an EOT or a targeted variant."""
    return bool(_targets(manifest)) or any(v.attack == ROBUST for im in manifest.images for v in im.variants.values())


def _rate(row: Row | None, key: str) -> dict:
    return {"v": row.v(key) if row else None, "ci": row.ci(key) if row else None}


def _size(sizes: dict, variant: str) -> dict:
    return sizes.get(variant) or {"n": 0, "mean_abs": None, "l2": None, "linf": None}


def _rows_by_variant(metrics: Metrics | None, model: str) -> dict[tuple[str, str], Row]:
    """(variant, stage) → the crafting model's average row."""
    out: dict[tuple[str, str], Row] = {}
    for r in metrics.rows if metrics else []:
        if r.model == model and r.subset == "average" and r.stage in ("png", "photo") and r.variant:
            out.setdefault((r.variant, r.stage), r)
    return out


def untargeted_table(metrics: Metrics | None, manifest: Manifest, sizes: dict) -> list[dict]:
    """Per ε at which the run has untargeted EOT: one line per attack (BIM, then EOT) with the
    digital and photographed adversarial top-1 accuracy, the photo's destruction rate and its
    denominator, and the perturbation's size."""
    model = str(manifest.model.spec)
    rows = [r for r in (metrics.rows if metrics else []) if r.target is None and r.model == model]
    idx = index_rows(rows)
    eps_eot = sorted({r.eps for r in rows if r.attack == ROBUST and r.eps is not None})
    out = []
    for eps in eps_eot:
        lines = []
        for attack in (STANDARD, ROBUST):
            png, photo = idx.get((model, attack, eps, "png", "average")), idx.get((model, attack, eps, "photo", "average"))
            if png is None and photo is None:
                continue
            variant = (png or photo).variant or f"{attack}-eps{fmt_eps(eps)}"
            digital = _rate(photo, "digital_adv_top1") if photo and photo.v("digital_adv_top1") is not None \
                else _rate(png, "adv_top1")
            lines.append({"attack": attack, "label": attack_label(attack), "variant": variant,
                          "n": photo.n if photo else (png.n if png else None),
                          "clean": _rate(photo, "digital_clean_top1") if photo else _rate(png, "clean_top1"),
                          "digital": digital, "photo": _rate(photo, "adv_top1"),
                          "destruction": _rate(photo, "destruction_top1"),
                          "destruction_n": photo.count("destruction_n") if photo else None,
                          "size": _size(sizes, variant)})
        if lines:
            out.append({"eps": fmt_eps(eps), "lines": lines})
    return out


def targeted_table(metrics: Metrics | None, manifest: Manifest, sizes: dict, names: ClassNames) -> list[dict]:
    """Per target class and ε: one line per targeted attack (FGSM, BIM, EOT) with targeted
    success on the PNGs and in the photos, survival (digitally successful examples still on target
    in the photo) with its denominator, and the perturbation's size."""
    model = str(manifest.model.spec)
    by = _rows_by_variant(metrics, model)
    targets = _targets(manifest)
    groups: dict[tuple[int, float], list[tuple[str, str]]] = {}
    for variant, target in targets.items():
        attack, eps = manifest.variant_parts(variant)
        groups.setdefault((target, eps if eps is not None else -1.0), []).append((attack, variant))
    out = []
    for (target, eps), members in sorted(groups.items()):
        lines = []
        for attack, variant in sorted(members, key=lambda m: attack_key(m[0])):
            png, photo = by.get((variant, "png")), by.get((variant, "photo"))
            digital = _rate(photo, "targeted_success_digital") if photo and photo.v("targeted_success_digital") is not None \
                else _rate(png, "targeted_success_digital")
            lines.append({"attack": attack, "label": attack_label(attack), "variant": variant,
                          "n": photo.n if photo else (png.n if png else None),
                          "n_png": png.n if png else None,
                          "digital": digital, "photo": _rate(photo, "targeted_success"),
                          "survival": _rate(photo, "targeted_survival"),
                          "survival_n": photo.count("targeted_survival_n") if photo else None,
                          "size": _size(sizes, variant)})
        out.append({"target": target, "target_name": names(target), "eps": fmt_eps(eps if eps >= 0 else None),
                    "lines": lines, "has_photo": any(li["photo"]["v"] is not None for li in lines)})
    return out


def target_prob(pred: Pred | None, target: int | None) -> dict | None:
    """p(target) from a stored top-5: exact when the target is in it, else bounded by the fifth."""
    if pred is None or target is None:
        return None
    for c, p in zip(pred.top5, pred.prob5):
        if c == target and p is not None:
            return {"p": p, "exact": True}
    last = pred.prob5[-1] if pred.prob5 else None
    return {"p": last, "exact": False} if last is not None else None


def _pred_cell(pred: Pred | None, label: int | None, target: int | None, names: ClassNames) -> dict | None:
    view = G.pred_view(pred, label, names)
    if view is not None:
        view["on_target"] = target is not None and pred.top1 == target
        view["target"] = target_prob(pred, target)
    return view


def targeted_gallery(inp: RunInputs, names: ClassNames, assets: G.Assets, limit: int = TARGETED_GALLERY) -> list[dict]:
    """The images with targeted variants (photographed ones first, then manifest order, at most
    `limit`): clean, then each targeted variant (FGSM, BIM, EOT), each as its PNG and its photo
    crop with the stored top-1 (name, confidence) and the target's probability."""
    manifest = inp.manifest
    crops = G.used_crops(inp)
    crop_preds = inp.metrics.crop_predictions if inp.metrics else {}
    spec = str(manifest.model.spec)
    chosen = [i for i, im in enumerate(manifest.images) if any(v.target is not None for v in im.variants.values())]
    chosen.sort(key=lambda i: (not any((manifest.images[i].id, v) in crops for v in manifest.images[i].variants), i))
    out = []
    for i in chosen[:limit]:
        image = manifest.images[i]
        folder = f"targeted/{i:04d}-{G.slug(image.id)}"
        targeted = sorted((v for v in image.variants.values() if v.target is not None),
                          key=lambda v: (v.target, attack_key(v.attack), v.eps or 0))
        target = targeted[0].target
        cells = []
        for rec in ([image.variants["clean"]] if "clean" in image.variants else []) + targeted:
            t = rec.target if rec.target is not None else target
            cell = {"variant": rec.name, "attack": rec.attack,
                    "title": variant_title(rec.name, rec.attack, rec.eps, names(rec.target) if rec.target is not None else None),
                    "png": None, "photo": None,
                    "pred": _pred_cell(rec.pred, image.label_index, t, names), "photo_pred": None}
            src = inside(inp.printouts, rec.file)
            if src is not None:
                data = read_verified(src, rec.sha256, "physical craft")
                vslug = G.slug(rec.name)
                cell["png"] = {"full": assets.copy(data, f"images/{folder}/{vslug}.png"),
                               "thumb": assets.thumb(data, f"thumbs/{folder}/{vslug}.jpg", edge=2 * G.THUMB)}
            crop = crops.get((image.id, rec.name))
            if crop is not None:
                vslug = G.slug(rec.name)
                cell["photo"] = {"full": assets.copy(crop, f"images/{folder}/{vslug}-photo.png"),
                                 "thumb": assets.thumb(crop, f"thumbs/{folder}/{vslug}-photo.jpg", edge=2 * G.THUMB)}
                cell["photo_pred"] = _pred_cell(crop_preds.get((spec, image.id, rec.name)), image.label_index, t, names)
            cells.append(cell)
        out.append({"id": image.id, "label": image.label_name or names(image.label_index),
                    "target": target, "target_name": names(target), "cells": cells,
                    "has_photo": any(c["photo"] for c in cells), "ingested": inp.ingest is not None})
    return out


def section(inp: RunInputs, names: ClassNames, assets: G.Assets) -> dict | None:
    """The section's data for the template; None when the run has neither EOT nor a targeted variant."""
    if not applies(inp.manifest):
        return None
    sizes = perturbation_sizes(inp)
    return {"untargeted": untargeted_table(inp.metrics, inp.manifest, sizes),
            "targeted": targeted_table(inp.metrics, inp.manifest, sizes, names),
            "gallery": targeted_gallery(inp, names, assets),
            "model": str(inp.manifest.model.spec)}
