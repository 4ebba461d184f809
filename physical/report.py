"""The static HTML report of a run: `reports/<run>/index.html` (+ `plots/`, `images/`, `thumbs/`).

Reads whatever the earlier stages left (every input but the manifest is optional) and says on the
page which stages are missing:

    printouts/<run>/manifest.json   header, galleries (PNG predictions), the prefilter curve
    printouts/<run>/layout.json     (presence only)
    captures/<run>/ingest.json      ingest section, photo crops in the galleries
    reports/<run>/metrics.json      the paper's Table 1, accuracy/destruction/transform plots,
                                    the transfer matrix (schema: docs/metrics.md)

The folder is self-contained: every image the page shows is copied (or drawn) into it, every link
is relative, nothing is fetched from the network, and the CSS is inlined. It can be zipped and
sent. Text from the inputs (image ids, labels, file names, reasons) is data: the templates are
rendered with autoescape on.
"""
from __future__ import annotations

import datetime as _dt
import importlib.util
import io
import logging
import math
import random
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import quote

import numpy as np
from PIL import Image

from physical.errors import PhysicalError
from physical.workspace import (Workspace, atomic_write_bytes, atomic_write_text, package_versions,
                                read_json)

log = logging.getLogger(__name__)

THUMB = 176          # thumbnail edge in pixels (shown at 88 CSS px: sharp on 2× screens)
PHOTO_THUMB = 360    # thumbnail edge for phone photos
ATTACK_ORDER = ["fgsm", "bim", "ill", "noise", "gauss"]
ATTACK_NAMES = {"fgsm": "FGSM (fast)", "bim": "BIM (iterative)", "ill": "ILL (least-likely)",
                "noise": "random ±ε noise", "gauss": "Gaussian noise", "clean": "clean"}
# One colour per attack (colour-blind-safe Okabe–Ito palette), reused by every plot.
ATTACK_COLOURS = {"fgsm": "#0072B2", "bim": "#D55E00", "ill": "#009E73", "noise": "#999999",
                  "gauss": "#CC79A7", "clean": "#000000"}
EXTRA_COLOURS = ["#E69F00", "#56B4E9", "#F0E442", "#882255", "#44AA99"]
OWN_DIRS = ("plots", "images", "thumbs")   # sub-folders of reports/<run>/ this module rewrites


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------

def _slug(text: Any, limit: int = 40) -> str:
    """A file-name-safe version of an id or variant name (ids are data: never trust them as paths)."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("._") or "x"
    return s[:limit]


def _href(rel: str) -> str:
    """A relative path inside the report folder as a URL (each segment percent-encoded)."""
    return "/".join(quote(part) for part in rel.split("/"))


def _num(v) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _ci(row: dict, name: str) -> tuple[float, float] | None:
    v = row.get(f"{name}_ci") if row else None
    if isinstance(v, (list, tuple)) and len(v) == 2:
        lo, hi = _num(v[0]), _num(v[1])
        if lo is not None and hi is not None:
            return lo, hi
    return None


def _fmt_eps(eps) -> str:
    f = _num(eps)
    return "—" if f is None else f"{f:g}"


def attack_label(attack: str) -> str:
    return ATTACK_NAMES.get(attack, attack)


def attack_colour(attack: str, others: list[str]) -> str:
    if attack in ATTACK_COLOURS:
        return ATTACK_COLOURS[attack]
    return EXTRA_COLOURS[others.index(attack) % len(EXTRA_COLOURS)] if attack in others else "#333333"


def _attack_key(attack: str):
    return (ATTACK_ORDER.index(attack) if attack in ATTACK_ORDER else len(ATTACK_ORDER), attack)


def _inside(base: Path, rel: str | None) -> Path | None:
    """`base/rel` when it is an existing file inside `base` (manifest paths are data too)."""
    if not rel or not isinstance(rel, str):
        return None
    try:
        path = (base / rel).resolve()
        path.relative_to(base.resolve())
    except (ValueError, OSError):
        return None
    return path if path.is_file() else None


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def _variant_parts(name: str, rec: dict | None = None) -> tuple[str, float | None]:
    rec = rec or {}
    if rec.get("attack") is not None:
        return str(rec["attack"]), _num(rec.get("eps"))
    if "-eps" in name:
        attack, _, eps = name.partition("-eps")
        return attack, _num(eps)
    return name, None


def _variant_title(name: str, rec: dict | None = None) -> str:
    attack, eps = _variant_parts(name, rec)
    if eps is None:
        return "clean" if name == "clean" else name
    return f"{attack.upper()} ε={eps:g}"


# --------------------------------------------------------------------------------------------
# class names
# --------------------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def imagenet_names() -> list[str]:
    """The 1000 ImageNet-1k class names, as `physical.models.imagenet_classes()` gives them, read
    straight from timm's bundled tables: importing timm would import torch (seconds) just for a
    text file. Falls back to `imagenet_classes()`, then to no names (indices are shown)."""
    try:
        spec = importlib.util.find_spec("timm")
        info = Path(spec.origin).parent / "data" / "_info"
        wnids = (info / "imagenet_synsets.txt").read_text(encoding="utf-8").split()
        lemmas = dict(line.split("\t", 1) for line in
                      (info / "imagenet_synset_to_lemma.txt").read_text(encoding="utf-8").splitlines() if "\t" in line)
        names = [lemmas[w].split(",")[0].strip() for w in wnids]
        if len(names) == 1000:
            return names
    except (AttributeError, TypeError, OSError, KeyError, ValueError):
        pass
    try:
        from physical.models import imagenet_classes

        return list(imagenet_classes()[1])
    except Exception as exc:  # a report without torch/timm still works, with indices
        log.info("ImageNet class names unavailable (%s); showing class indices", exc)
        return []


class ClassNames:
    """index → human-readable name: ImageNet's when the model has 1000 classes, else whatever
    the manifest's labels say, else the index itself."""

    def __init__(self, manifest: dict):
        self.names: dict[int, str] = {}
        model = manifest.get("model") or {}
        if model.get("num_classes") in (1000, None):
            self.names.update(enumerate(imagenet_names()))
        for image in manifest.get("images") or []:
            label = image.get("label") or {}
            if isinstance(label.get("index"), int) and label.get("name"):
                self.names[label["index"]] = str(label["name"])

    def __call__(self, index) -> str:
        if isinstance(index, int) and index in self.names:
            return self.names[index]
        return f"class {index}"


# --------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------

def _read_optional(path: Path, problems: list[str]):
    if not path.exists():
        return None
    try:
        return read_json(path)
    except PhysicalError as exc:
        problems.append(str(exc))
        return None


def metric_rows(metrics: dict | None) -> list[dict]:
    rows = (metrics or {}).get("rows")
    return [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []


def stage_list(ws: Workspace, run: str, manifest: dict, ingest: dict | None, metrics: dict | None,
               photos: list[Path]) -> list[dict]:
    """Which stages of the loop this run has, with the command that makes each missing one."""
    rows = metric_rows(metrics)
    stages_in_rows = {str(r.get("stage")) for r in rows}
    n_images = len(manifest.get("images") or [])
    pdf = ws.pdf_path(run)
    out = [
        {"name": "craft", "done": True,
         "detail": f"{n_images} images × {len(manifest.get('variants') or [])} variants",
         "hint": None},
        {"name": "layout", "done": ws.layout_path(run).exists() and pdf.exists(),
         "detail": f"{pdf.name}" if pdf.exists() else None,
         "hint": f"physical layout --run {run}"},
        {"name": "photos", "done": bool(photos),
         "detail": (f"{len(photos)} photos" + (" (simulated)" if (ws.captures(run) / "simulated.json").exists() else ""))
         if photos else None,
         "hint": f"print {run}.pdf and photograph it, or: physical simulate --run {run}"},
        {"name": "ingest", "done": ingest is not None,
         "detail": (f"{sum(1 for c in ingest.get('crops') or [] if c.get('used'))} crops used"
                    if ingest is not None else None),
         "hint": f"physical ingest --run {run} --photos DIR"},
        {"name": "evaluate (PNG)", "done": "png" in stages_in_rows,
         "detail": f"{sum(1 for r in rows if r.get('stage') == 'png')} rows" if "png" in stages_in_rows else None,
         "hint": f"physical evaluate --run {run}"},
        {"name": "evaluate (photo)", "done": "photo" in stages_in_rows,
         "detail": f"{sum(1 for r in rows if r.get('stage') == 'photo')} rows" if "photo" in stages_in_rows else None,
         "hint": f"physical evaluate --run {run} (after ingest)"},
        {"name": "transforms", "done": any(s.startswith("transform:") for s in stages_in_rows),
         "detail": (f"{sum(1 for r in rows if str(r.get('stage')).startswith('transform:'))} rows"
                    if any(s.startswith("transform:") for s in stages_in_rows) else None),
         "hint": f"physical transforms --run {run}"},
    ]
    return out


# --------------------------------------------------------------------------------------------
# the paper's table
# --------------------------------------------------------------------------------------------

RATE_PAIRS = {  # column → (top-1 field, top-5 field) in a metrics row
    "clean": ("clean_top1", "clean_top5"),
    "adv": ("adv_top1", "adv_top5"),
    "destruction": ("destruction_top1", "destruction_top5"),
}


def _cell(row: dict | None, pair: str) -> dict:
    """A table cell: top-1 / top-5 in %, each with its interval; None where there is no number."""
    if row is None:
        return {"top1": None, "top5": None, "ci1": None, "ci5": None}
    f1, f5 = RATE_PAIRS[pair]
    return {"top1": _num(row.get(f1)), "top5": _num(row.get(f5)), "ci1": _ci(row, f1), "ci5": _ci(row, f5)}


def headline(tables: list[dict]) -> list[dict]:
    """Big numbers for the top of the page: per attack, at its largest ε, the adversarial top-1
    accuracy digitally and photographed, and the photo's destruction rate (crafting model)."""
    if not tables:
        return []
    best: dict[str, dict] = {}
    for r in tables[0]["rows"]:
        eps = _num(r["eps"])
        if r["attack"] not in best or (eps or 0) > (_num(best[r["attack"]]["eps"]) or 0):
            best[r["attack"]] = r
    cards = []
    for attack, r in best.items():
        cards.append({"attack": attack, "label": attack_label(attack), "eps": r["eps"],
                      "clean": r["all_clean"]["top1"], "digital": r["all_adv"]["top1"], "n": r["n_png"],
                      "photo": r["photo_adv"]["top1"], "n_photo": r["n_photo"],
                      "destruction": r["d_avg"]["top1"], "destruction_n": r["d_avg_n"]})
    return cards


def _digital_cell(photo: dict | None, png: dict | None, pair: str) -> dict:
    """The digital (PNG) accuracy: over the photo row's images when there is one (its
    `digital_*` fields, so a row of the table is about one set of images, as in the paper),
    else the png row's own."""
    if photo is not None and photo.get(f"digital_{pair}_top1") is not None:
        f1, f5 = f"digital_{pair}_top1", f"digital_{pair}_top5"
        return {"top1": _num(photo.get(f1)), "top5": _num(photo.get(f5)),
                "ci1": _ci(photo, f1), "ci5": _ci(photo, f5)}
    return _cell(png, pair)


def _index_rows(rows: Iterable[dict]) -> dict:
    idx = {}
    for r in rows:
        key = (str(r.get("model")), str(r.get("attack")), _num(r.get("eps")), str(r.get("stage")),
               str(r.get("subset") or "average"))
        idx.setdefault(key, r)
    return idx


def paper_tables(metrics: dict | None, manifest: dict) -> list[dict]:
    """One table per evaluating model (the crafting model first), one row per attack × ε."""
    rows = metric_rows(metrics)
    if not rows:
        return []
    idx = _index_rows(rows)
    crafting = str((manifest.get("model") or {}).get("spec"))
    models = sorted({str(r.get("model")) for r in rows}, key=lambda m: (m != crafting, m))
    tables = []
    for model in models:
        keys = sorted({(str(r.get("attack")), _num(r.get("eps"))) for r in rows
                       if str(r.get("model")) == model and r.get("stage") in ("png", "photo")
                       and r.get("attack") not in (None, "clean")},
                      key=lambda k: (_attack_key(k[0]), k[1] if k[1] is not None else -1))
        table_rows = []
        for attack, eps in keys:
            g = lambda stage, subset="average": idx.get((model, attack, eps, stage, subset))  # noqa: E731
            png, photo = g("png"), g("photo")
            photo_pre = g("photo", "prefiltered")
            table_rows.append({
                "attack": attack, "attack_label": attack_label(attack), "eps": _fmt_eps(eps),
                "key": f"{attack}-eps{_fmt_eps(eps)}",
                "n_png": (png or {}).get("n"), "n_photo": (photo or {}).get("n"),
                "photo_clean": _cell(photo, "clean"),
                "photo_adv": _cell(photo, "adv"),
                "png_clean": _digital_cell(photo, png, "clean"),
                "png_adv": _digital_cell(photo, png, "adv"),
                "all_clean": _cell(png, "clean"), "all_adv": _cell(png, "adv"),
                "d_avg": _cell(photo, "destruction"),
                "d_avg_n": (photo or {}).get("destruction_n"),
                "d_pre": _cell(photo_pre, "destruction"),
                "d_pre_n": (photo_pre or {}).get("destruction_n"),
                "has_photo": photo is not None,
            })
        if table_rows:
            tables.append({"model": model, "crafting": model == crafting, "rows": table_rows,
                           "has_photo": any(r["has_photo"] for r in table_rows)})
    return tables


def threshold_table(metrics: dict | None) -> list[dict]:
    """The thresholded-classifier reading from evaluate's rows, one table per model × stage
    (average subset). The clean columns become one "clean" row when every row agrees on them
    (digital PNGs: always the same images)."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in metric_rows(metrics):
        if r.get("subset", "average") != "average" or r.get("stage") not in ("png", "photo"):
            continue
        if r.get("adv_accept_rate") is None and r.get("clean_accept_rate") is None:
            continue
        err = lambda v: None if _num(v) is None else 1 - _num(v)  # noqa: E731
        view = {"attack": str(r.get("attack")), "attack_label": attack_label(str(r.get("attack"))),
                "eps": _fmt_eps(r.get("eps")), "n": r.get("n"), "threshold": _num(r.get("threshold")),
                "clean": {"n": r.get("clean_n", r.get("n")), "error": err(r.get("clean_top1")),
                          "accepted": _num(r.get("clean_accept_rate")),
                          "accepted_error": _num(r.get("clean_accepted_error")),
                          "reduction": _num(r.get("clean_error_reduction"))},
                "adv": {"n": r.get("n"), "error": err(r.get("adv_top1")),
                        "accepted": _num(r.get("adv_accept_rate")),
                        "accepted_error": _num(r.get("adv_accepted_error")),
                        "reduction": _num(r.get("adv_error_reduction"))}}
        groups.setdefault((str(r.get("model")), str(r.get("stage"))), []).append(view)
    out = []
    for (model, stage), views in groups.items():
        shared = all(v["clean"] == views[0]["clean"] for v in views)
        out.append({"model": model, "stage": stage, "stage_label": "digital (PNG)" if stage == "png" else "photographed",
                    "clean": views[0]["clean"] if shared else None, "rows": views})
    out.sort(key=lambda t: (t["model"], t["stage"] != "png"))
    return out


# --------------------------------------------------------------------------------------------
# plots (matplotlib, Agg: Figure objects, never pyplot's global state)
# --------------------------------------------------------------------------------------------

def _figure(w: float, h: float):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=110, layout="constrained")
    return fig


def _style_axes(ax):
    ax.grid(True, color="#e5e5e5", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _save(fig, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    atomic_write_bytes(path, buf.getvalue())


def _yerr(values, cis):
    lo = [max(0.0, v - c[0]) * 100 if (v is not None and c) else 0 for v, c in zip(values, cis)]
    hi = [max(0.0, c[1] - v) * 100 if (v is not None and c) else 0 for v, c in zip(values, cis)]
    return [lo, hi]


def plot_accuracy_vs_eps(rows: list[dict], model: str, path: Path) -> bool:
    """Adversarial accuracy vs ε per attack: columns digital (PNG) / photographed, rows top-1 /
    top-5; shaded: 95 % intervals; grey: clean accuracy of the same images."""
    rows = [r for r in rows if str(r.get("model")) == model and r.get("subset", "average") == "average"
            and r.get("stage") in ("png", "photo") and _num(r.get("eps")) is not None]
    if not rows:
        return False
    stages = [s for s in ("png", "photo") if any(r.get("stage") == s for r in rows)]
    attacks = sorted({str(r.get("attack")) for r in rows}, key=_attack_key)
    all_eps = sorted({_num(r.get("eps")) for r in rows})
    fig = _figure(4.3 * len(stages) + 1.9, 6.2)
    axes = fig.subplots(2, len(stages), sharex=True, sharey=True, squeeze=False)
    handles = {}
    for col, stage in enumerate(stages):
        srows = [r for r in rows if r.get("stage") == stage]
        for row_i, k in enumerate(("top1", "top5")):
            ax = axes[row_i][col]
            clean = [_num(r.get(f"clean_{k}")) for r in srows if _num(r.get(f"clean_{k}")) is not None]
            if clean:
                h = ax.axhline(100 * float(np.mean(clean)), color="#777777", linestyle=":", linewidth=1.5)
                handles.setdefault("clean", h)
            for attack in attacks:
                ar = sorted((r for r in srows if str(r.get("attack")) == attack), key=lambda r: _num(r.get("eps")))
                pts = [(_num(r.get("eps")), _num(r.get(f"adv_{k}")), _ci(r, f"adv_{k}")) for r in ar]
                pts = [p for p in pts if p[1] is not None]
                if not pts:
                    continue
                colour = attack_colour(attack, attacks)
                xs = [p[0] for p in pts]
                (line,) = ax.plot(xs, [100 * p[1] for p in pts], color=colour, marker="o", markersize=5,
                                  linewidth=2, linestyle="--" if attack in ("noise", "gauss") else "-")
                band = [(p[0], 100 * p[2][0], 100 * p[2][1]) for p in pts if p[2]]
                if len(band) > 1:
                    bx, lo, hi = zip(*band)
                    ax.fill_between(bx, lo, hi, color=colour, alpha=0.08, linewidth=0)
                handles.setdefault(attack_label(attack), line)
            ax.set_xscale("log", base=2)
            ax.set_xticks(all_eps)
            ax.set_xticklabels([f"{e:g}" for e in all_eps])
            ax.minorticks_off()
            ax.set_ylim(-3, 103)
            ax.set_title(f"{'digital (PNG)' if stage == 'png' else 'photographed'} · top-{k[-1]}", fontsize=10)
            _style_axes(ax)
            if col == 0:
                ax.set_ylabel(f"top-{k[-1]} accuracy (%)")
            if row_i == 1:
                ax.set_xlabel("ε (levels of 255)")
    fig.legend(list(handles.values()), list(handles.keys()), loc="outside right center", fontsize=9, frameon=False)
    _save(fig, path)
    return True


def plot_destruction(rows: list[dict], model: str, path: Path) -> bool:
    """Photo destruction rate per attack (bars) and ε (groups) with 95 % intervals; columns:
    average / prefiltered, rows: top-1 / top-5. 'n/a' marks an empty denominator (null rate)."""
    rows = [r for r in rows if str(r.get("model")) == model and r.get("stage") == "photo"
            and r.get("attack") not in (None, "clean")]
    if not rows:
        return False
    idx = _index_rows(rows)
    attacks = sorted({str(r.get("attack")) for r in rows}, key=_attack_key)
    all_eps = sorted({_num(r.get("eps")) for r in rows if _num(r.get("eps")) is not None})
    if not all_eps:
        return False
    fig = _figure(10.5, 6.0)
    axes = fig.subplots(2, 2, sharex=True, sharey=True)
    x = np.arange(len(all_eps))
    width = 0.8 / len(attacks)
    from matplotlib.patches import Patch

    for row_i, k in enumerate(("top1", "top5")):
        for col, subset in enumerate(("average", "prefiltered")):
            ax = axes[row_i][col]
            for a_i, attack in enumerate(attacks):
                offset = (a_i - (len(attacks) - 1) / 2) * width
                vals, cis = [], []
                for eps in all_eps:
                    r = idx.get((model, attack, eps, "photo", subset)) or {}
                    vals.append(_num(r.get(f"destruction_{k}")))
                    cis.append(_ci(r, f"destruction_{k}"))
                ax.bar(x + offset, [100 * v if v is not None else 0 for v in vals], width * 0.92,
                       yerr=_yerr(vals, cis), capsize=2, color=attack_colour(attack, attacks),
                       error_kw={"elinewidth": 0.8, "ecolor": "#444444", "alpha": 0.7})
                for xi, v in zip(x, vals):
                    if v is None:
                        ax.text(xi + offset, 1, "n/a", ha="center", va="bottom", fontsize=6.5, color="#888888",
                                rotation=90)
            ax.set_xticks(x, [f"ε={e:g}" for e in all_eps])
            ax.set_ylim(0, 105)
            ax.set_title(f"{subset} · top-{k[-1]}", fontsize=10)
            _style_axes(ax)
            if col == 0:
                ax.set_ylabel("destruction rate (%)")
    fig.legend([Patch(color=attack_colour(a, attacks)) for a in attacks], [attack_label(a) for a in attacks],
               loc="outside right center", fontsize=9, frameon=False)
    _save(fig, path)
    return True


def acceptance_curves(manifest: dict) -> dict[str, dict]:
    """Error among accepted vs fraction accepted as the confidence threshold t varies, per
    variant, from the manifest's PNG predictions (a prediction is accepted when its top-1
    probability is > t, evaluate's thresholded classifier; t = 0 accepts everything). Returns variant → {thresholds, accepted, error, n}."""
    images = manifest.get("images") or []
    thresholds = np.round(np.linspace(0.0, 0.99, 100), 2)
    out = {}
    for variant in manifest.get("variants") or []:
        conf, wrong = [], []
        for image in images:
            rec = (image.get("variants") or {}).get(variant) or {}
            pred = rec.get("pred") or {}
            top5, prob5 = pred.get("top5") or [], pred.get("prob5") or []
            label = (image.get("label") or {}).get("index")
            if not top5 or not prob5 or not isinstance(label, int):
                continue
            conf.append(float(prob5[0]))
            wrong.append(int(top5[0]) != label)
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


def plot_acceptance(manifest: dict, path: Path, threshold: float = 0.8) -> list[dict] | None:
    curves = acceptance_curves(manifest)
    if not curves:
        return None
    recs = (manifest.get("images") or [{}])[0].get("variants") or {}
    by_attack: dict[str, list[tuple[float, str]]] = {}
    for v in curves:
        if v == "clean":
            continue
        attack, eps = _variant_parts(v, recs.get(v))
        by_attack.setdefault(attack, []).append((eps if eps is not None else 0, v))
    attacks = sorted(by_attack, key=_attack_key) or ["clean"]
    ncol = min(4, len(attacks))
    nrow = math.ceil(len(attacks) / ncol)
    fig = _figure(3.0 * ncol + 0.6, 3.1 * nrow + 0.5)
    axes = np.atleast_1d(fig.subplots(nrow, ncol, sharex=True, sharey=True, squeeze=False)).ravel()
    ti = int(np.argmin(np.abs(np.array(curves[next(iter(curves))]["thresholds"]) - threshold)))
    summary = []

    def draw(ax, variant, colour, alpha, label):
        c = curves[variant]
        pts = [(a, e) for a, e in zip(c["accepted"], c["error"]) if e is not None]
        if not pts:
            return
        xs, ys = zip(*pts)
        ax.plot([100 * x for x in xs], [100 * y for y in ys], color=colour, alpha=alpha, linewidth=1.8,
                label=label)
        a, e = c["accepted"][ti], c["error"][ti]
        if e is not None:
            ax.plot([100 * a], [100 * e], marker="o", markersize=7, color=colour, alpha=alpha,
                    markeredgecolor="black", markeredgewidth=0.8, linestyle="none")
        summary.append({"variant": variant, "title": _variant_title(variant, recs.get(variant)),
                        "n": c["n"], "accepted": a, "error_accepted": e, "error_all": c["error"][0]})

    for ax, attack in zip(axes, attacks):
        if "clean" in curves:
            draw(ax, "clean", "#000000", 1.0, "clean")
        variants = sorted(by_attack.get(attack, []))
        for i, (eps, v) in enumerate(variants):
            alpha = 0.35 + 0.65 * (i + 1) / len(variants)
            draw(ax, v, attack_colour(attack, attacks), alpha, f"ε={eps:g}")
        ax.set_title(attack_label(attack))
        ax.set_xlim(-2, 102)   # t = 0 (everything accepted) at the right end
        ax.set_ylim(-2, 102)
        ax.legend(fontsize=8, frameon=False, loc="best")
        _style_axes(ax)
    for ax in axes[len(attacks):]:
        ax.set_visible(False)
    for ax in axes[::ncol]:
        ax.set_ylabel("top-1 error among accepted (%)")
    for ax in axes[-ncol:]:
        ax.set_xlabel("images accepted (%)")
    fig.suptitle(f"Error among accepted predictions as the confidence threshold t rises from 0 (right end) "
                 f"to 0.99 (left); ● t = {threshold:g}", fontsize=10)
    _save(fig, path)
    # Keep each variant once (clean is drawn in every panel).
    seen, uniq = set(), []
    for s in summary:
        if s["variant"] not in seen:
            seen.add(s["variant"])
            uniq.append(s)
    return uniq


def _transform_rows(rows: list[dict], model: str) -> dict[str, list[tuple[dict, float]]]:
    by_kind: dict[str, list[tuple[dict, float]]] = {}
    for r in rows:
        stage = str(r.get("stage"))
        if not stage.startswith("transform:") or str(r.get("model")) != model:
            continue
        if r.get("subset", "average") != "average":
            continue
        parts = stage.split(":", 2)
        if len(parts) != 3 or _num(parts[2]) is None:
            continue
        by_kind.setdefault(parts[1], []).append((r, _num(parts[2])))
    return by_kind


def plot_transforms(rows: list[dict], model: str, path: Path) -> bool:
    by_kind = _transform_rows(rows, model)
    if not by_kind:
        return False
    order = ["brightness", "contrast", "blur", "noise", "jpeg"]
    kinds = sorted(by_kind, key=lambda k: (order.index(k) if k in order else len(order), k))
    ncol = min(3, len(kinds))
    nrow = math.ceil(len(kinds) / ncol)
    fig = _figure(3.6 * ncol + 1.8, 3.1 * nrow + 0.3)
    axes = np.atleast_1d(fig.subplots(nrow, ncol, sharey=True, squeeze=False)).ravel()
    units = {"brightness": "shift (levels)", "contrast": "factor", "blur": "σ (pixels)",
             "noise": "σ (levels)", "jpeg": "quality"}
    attacks_all = sorted({str(r.get("attack")) for rs in by_kind.values() for r, _ in rs}, key=_attack_key)
    # The paper's Section 4 uses ε = 16: one line per attack at the largest ε of the run.
    eps_shown = max((_num(r.get("eps")) for rs in by_kind.values() for r, _ in rs if _num(r.get("eps")) is not None),
                    default=None)
    handles = {}
    for ax, kind in zip(axes, kinds):
        series: dict[tuple[str, float | None], list] = {}
        for r, value in by_kind[kind]:
            if r.get("attack") in (None, "clean") or _num(r.get("eps")) != eps_shown:
                continue
            series.setdefault((str(r.get("attack")), _num(r.get("eps"))), []).append((value, r))
        eps_values = sorted({e for _, e in series if e is not None})
        styles = ["-", "--", ":", "-."]
        for (attack, eps), pts in sorted(series.items(), key=lambda kv: (_attack_key(kv[0][0]), kv[0][1] or 0)):
            pts.sort(key=lambda p: p[0])
            xs = [p[0] for p in pts]
            ys = [_num(p[1].get("destruction_top1")) for p in pts]
            cis = [_ci(p[1], "destruction_top1") for p in pts]
            colour = attack_colour(attack, attacks_all)
            ls = styles[eps_values.index(eps) % len(styles)] if eps in eps_values else "-"
            xy = [(x, 100 * y) for x, y in zip(xs, ys) if y is not None]
            if not xy:
                continue
            label = attack_label(attack) + (f", ε={eps:g}" if len(eps_values) > 1 and eps is not None else "")
            (line,) = ax.plot(*zip(*xy), color=colour, linestyle=ls, marker="o", markersize=4, linewidth=1.8)
            band = [(x, 100 * c[0], 100 * c[1]) for x, c in zip(xs, cis) if c]
            if len(band) > 1:
                bx, lo, hi = zip(*band)
                ax.fill_between(bx, lo, hi, color=colour, alpha=0.06, linewidth=0)
            handles.setdefault(label, line)
        ax.set_title(kind)
        ax.set_xlabel(units.get(kind, "strength"))
        ax.set_ylim(-2, 102)
        _style_axes(ax)
    for ax in axes[len(kinds):]:
        ax.set_visible(False)
    for ax in axes[::ncol]:
        ax.set_ylabel("destruction rate, top-1 (%)")
    if eps_shown is not None:
        fig.suptitle(f"ε = {eps_shown:g}", fontsize=10)
    if handles:
        fig.legend(list(handles.values()), list(handles.keys()), loc="outside right center", fontsize=8,
                   frameon=False)
    _save(fig, path)
    return True


def transfer_matrix(metrics: dict | None) -> dict | None:
    """evaluate's `transfer` block (docs/metrics.md) as Szegedy's table: per stage (digital,
    photo) one row per evaluating model and one column per variant (crafted on `crafted_by`),
    cells = adversarial top-1 error (the `clean` column: each model's clean error)."""
    t = (metrics or {}).get("transfer")
    if not isinstance(t, dict) or not isinstance(t.get("entries"), list):
        return None
    models = [str(m) for m in t.get("models") or []]
    stages: dict[str, dict] = {}
    for e in t["entries"]:
        if not isinstance(e, dict) or not isinstance(e.get("error"), dict):
            continue
        for m in e["error"]:
            if str(m) not in models:
                models.append(str(m))
        stage = "photo" if e.get("stage") == "photo" else "digital"
        attack = str(e.get("attack"))
        title = "clean" if attack == "clean" else f"{attack.upper()} ε={_fmt_eps(e.get('eps'))}"
        block = stages.setdefault(stage, {"stage": stage, "cols": [], "attacks": [], "cells": {}})
        if title not in block["cols"]:
            block["cols"].append(title)
            block["attacks"].append(attack)
        for m, v in e["error"].items():
            block["cells"][(str(m), title)] = _num(v)
    if not stages or not models:
        return None
    out = []
    for stage in ("digital", "photo"):
        if stage in stages:
            b = stages[stage]
            out.append({"stage": stage, "cols": b["cols"], "attacks": b["attacks"], "rows": models,
                        "values": [[b["cells"].get((m, c)) for c in b["cols"]] for m in models]})
    return {"crafted_by": str(t.get("crafted_by") or "?"), "models": models, "stages": out,
            "title": "adversarial top-1 error (%)"}


def plot_transfer(matrix: dict, path: Path) -> bool:
    """One heat map per stage: evaluating models (rows) × variants crafted on one model (columns)."""
    if len(matrix["models"]) < 2:
        return False
    blocks = matrix["stages"]
    ncols = max(len(b["cols"]) for b in blocks)
    nrows = len(matrix["models"])
    fig = _figure(min(13.0, 2.6 + 0.62 * ncols), sum(1.1 + 0.42 * nrows for _ in blocks) + 0.6)
    axes = np.atleast_1d(fig.subplots(len(blocks), 1, squeeze=False)).ravel()
    im = None
    for ax, b in zip(axes, blocks):
        vals = np.array([[np.nan if v is None else 100 * v for v in row] for row in b["values"]], dtype=float)
        im = ax.imshow(vals, cmap="magma_r", vmin=0, vmax=100, aspect="auto")
        ax.set_xticks(range(len(b["cols"])), b["cols"], rotation=40, ha="right", fontsize=8)
        ax.set_yticks(range(len(b["rows"])), b["rows"], fontsize=9)
        ax.set_title(f"{'digital (PNG)' if b['stage'] == 'digital' else 'photographed'} · "
                     f"crafted on {matrix['crafted_by']}", fontsize=10)
        for i in range(vals.shape[0]):
            for j in range(vals.shape[1]):
                v = vals[i, j]
                ax.text(j, i, "—" if np.isnan(v) else f"{v:.0f}", ha="center", va="center", fontsize=8,
                        color="white" if (not np.isnan(v) and v > 55) else "black")
        ax.set_ylabel("evaluated by", fontsize=9)
    if im is not None:
        fig.colorbar(im, ax=list(axes), label=matrix["title"], shrink=0.9)
    _save(fig, path)
    return True


# --------------------------------------------------------------------------------------------
# images: copies, thumbnails, perturbations
# --------------------------------------------------------------------------------------------

class Assets:
    """Copies source files into the report folder and makes thumbnails; remembers what it wrote
    so stale files from an earlier report can be removed."""

    def __init__(self, out: Path):
        self.out = out
        self.written: set[Path] = set()

    def _write(self, rel: str, data: bytes) -> str:
        path = self.out / rel
        atomic_write_bytes(path, data)
        self.written.add(path.resolve())
        return _href(rel)

    def copy(self, src: Path, rel: str) -> str:
        return self._write(rel, src.read_bytes())

    def array(self, arr: np.ndarray, rel: str) -> str:
        return self._write(rel, _png(arr))

    def thumb(self, src: Path | np.ndarray, rel: str, edge: int = THUMB, jpeg: bool = True) -> str:
        """A small JPEG preview (adversarial noise makes PNG thumbnails ten times larger); the
        page links each to its lossless full-size file."""
        if isinstance(src, np.ndarray):
            img = Image.fromarray(src).convert("RGB")
        else:
            with Image.open(src) as im:  # closed here, not whenever the garbage collector runs
                img = im.convert("RGB")
        img.thumbnail((edge, edge), Image.LANCZOS)
        buf = io.BytesIO()
        if jpeg:
            img.save(buf, format="JPEG", quality=88)
        else:
            img.save(buf, format="PNG", compress_level=6)
        return self._write(rel, buf.getvalue())

    def plot_rel(self, name: str) -> Path:
        path = self.out / "plots" / name
        self.written.add(path.resolve())
        return path

    def prune(self) -> None:
        for sub in OWN_DIRS:
            d = self.out / sub
            if not d.is_dir():
                continue
            for p in sorted(d.rglob("*"), reverse=True):
                if p.is_file() and p.resolve() not in self.written:
                    p.unlink()
                elif p.is_dir() and not any(p.iterdir()):
                    p.rmdir()


def _load_rgb(path: Path) -> np.ndarray | None:
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except OSError:
        return None


def perturbation_image(clean: np.ndarray, adv: np.ndarray, gain: float) -> np.ndarray:
    """(adv − clean) × gain around mid-grey, clipped: what the attack added, made visible."""
    diff = adv.astype(np.float32) - clean.astype(np.float32)
    return np.clip(np.rint(128.0 + gain * diff), 0, 255).astype(np.uint8)


def default_gain(eps: float | None) -> int:
    """A gain that maps ±ε to about ±half the grey range (ε=16 → ×8, ε=2 → ×64)."""
    if not eps or eps <= 0:
        return 8
    return max(1, int(128 // eps))


def choose_sample(manifest: dict, k: int, prefer: set[str] | frozenset = frozenset()) -> list[int]:
    """A deterministic sample (the run's seed) of k image indices, in manifest order; images
    whose id is in `prefer` (those with photo crops) are drawn first."""
    images = manifest.get("images") or []
    n = len(images)
    if k >= n:
        return list(range(n))
    seed = manifest.get("seed")
    rng = random.Random(seed if isinstance(seed, int) else 0)
    first = [i for i in range(n) if str(images[i].get("id")) in prefer]
    rest = [i for i in range(n) if str(images[i].get("id")) not in prefer]
    chosen = rng.sample(first, min(k, len(first)))
    chosen += rng.sample(rest, k - len(chosen))
    return sorted(chosen)


def _pred_view(pred: dict | None, label: int | None, names: ClassNames) -> dict | None:
    if not pred or not pred.get("top5"):
        return None
    top, prob = pred["top5"][0], (pred.get("prob5") or [None])[0]
    top5 = list(pred["top5"])[:5]
    return {"name": names(top), "index": top, "conf": _num(prob),
            "correct": (top == label) if isinstance(label, int) else None,
            "in_top5": (label in top5) if isinstance(label, int) else None}


def _stored_crop_predictions(metrics: dict | None, out: Path, model: str | None = None
                             ) -> dict[tuple[str, str], dict]:
    """Per-crop predictions when evaluate stored them: a `predictions` list in metrics.json or
    reports/<run>/predictions.json, records {model, image_id, variant, stage: "photo", top5, prob5}.
    Only `model`'s (the crafting model's) when given: evaluate stores one record per model."""
    preds = (metrics or {}).get("predictions")
    if not isinstance(preds, list) and (out / "predictions.json").is_file():
        try:
            data = read_json(out / "predictions.json")
            preds = data.get("predictions") if isinstance(data, dict) else data
        except PhysicalError:
            preds = None
    result = {}
    if isinstance(preds, list):
        for p in preds:
            if isinstance(p, dict) and p.get("stage", "photo") == "photo" and p.get("top5") \
                    and (model is None or str(p.get("model", model)) == model):
                result.setdefault((str(p.get("image_id")), str(p.get("variant"))), p)
    return result


def classify_crops(manifest: dict, crops: dict[tuple[str, str], Path]) -> dict[tuple[str, str], dict]:
    """Top-5 of the crafting model on the gallery's photo crops (only the sample: a few dozen
    images). Used when evaluate stored no per-crop predictions; returns {} when the model cannot
    be loaded here or is not the one the manifest names (a report never shows another model's
    guesses as this run's)."""
    model_block = manifest.get("model") or {}
    if not crops or not model_block.get("spec"):
        return {}
    try:
        from physical.models import load_model, predict

        model = load_model(str(model_block["spec"]), device="cpu")
    except Exception as exc:  # no torch, unknown spec, missing weights: the gallery says "not classified"
        log.info("photo crops not classified: %s", exc)
        return {}
    if model_block.get("weights_sha256") and model.weights_sha256 != model_block["weights_sha256"]:
        log.warning("photo crops not classified: model %s has other weights than the manifest's", model.spec)
        return {}
    by_size: dict[tuple, list] = {}
    for key, path in crops.items():
        arr = _load_rgb(path)
        if arr is not None:
            by_size.setdefault(arr.shape, []).append((key, arr))
    out = {}
    for items in by_size.values():
        top5, prob5 = predict(model, np.stack([a for _, a in items]))
        for (key, _), t, p in zip(items, top5.tolist(), prob5.tolist()):
            out[key] = {"top5": t, "prob5": p}
    return out


def galleries(ws: Workspace, run: str, manifest: dict, ingest: dict | None, metrics: dict | None,
              names: ClassNames, assets: Assets, sample: int, classify: bool = True) -> list[dict]:
    src_base = ws.printouts(run)
    cap_base = ws.captures(run)
    used_crops: dict[tuple[str, str], Path] = {}
    for c in (ingest or {}).get("crops") or []:
        if c.get("used", True):
            path = _inside(cap_base, c.get("file"))
            if path is not None:
                used_crops.setdefault((str(c.get("image_id")), str(c.get("variant"))), path)
    variants = list(manifest.get("variants") or [])
    images = manifest.get("images") or []
    chosen = choose_sample(manifest, sample, {image_id for image_id, _ in used_crops})
    crop_preds = _stored_crop_predictions(metrics, assets.out, (manifest.get("model") or {}).get("spec"))
    if classify and not crop_preds:
        sample_ids = {str(images[i].get("id")) for i in chosen}
        crop_preds = classify_crops(manifest, {k: p for k, p in used_crops.items() if k[0] in sample_ids})
    out = []
    for i in chosen:
        image = images[i]
        image_id = str(image.get("id"))
        label = image.get("label") or {}
        label_index = label.get("index") if isinstance(label.get("index"), int) else None
        folder = f"{i:04d}-{_slug(image_id)}"
        recs = image.get("variants") or {}
        clean_path = _inside(src_base, (recs.get("clean") or {}).get("file"))
        clean_arr = _load_rgb(clean_path) if clean_path else None
        cells = []
        for v in variants:
            rec = recs.get(v)
            if not isinstance(rec, dict):
                continue
            vslug = _slug(v)
            attack, eps = _variant_parts(v, rec)
            cell = {"variant": v, "title": _variant_title(v, rec), "attack": attack,
                    "png": None, "photo": None, "pert": None,
                    "pred": _pred_view(rec.get("pred"), label_index, names), "photo_pred": None,
                    "flipped": bool(rec.get("quantization_flipped"))}
            src = _inside(src_base, rec.get("file"))
            if src is not None:
                cell["png"] = {"full": assets.copy(src, f"images/{folder}/{vslug}.png"),
                               "thumb": assets.thumb(src, f"thumbs/{folder}/{vslug}.jpg")}
                if v != "clean" and clean_arr is not None:
                    adv = _load_rgb(src)
                    if adv is not None and adv.shape == clean_arr.shape:
                        gain = default_gain(eps)
                        pert = perturbation_image(clean_arr, adv, gain)
                        cell["pert"] = {"full": assets.array(pert, f"images/{folder}/{vslug}-perturbation.png"),
                                        "thumb": assets.thumb(pert, f"thumbs/{folder}/{vslug}-perturbation.jpg"),
                                        "gain": gain,
                                        "linf": int(np.abs(adv.astype(int) - clean_arr.astype(int)).max())}
            crop = used_crops.get((image_id, v))
            if crop is not None:
                cell["photo"] = {"full": assets.copy(crop, f"images/{folder}/{vslug}-photo.png"),
                                 "thumb": assets.thumb(crop, f"thumbs/{folder}/{vslug}-photo.jpg")}
                cell["photo_pred"] = _pred_view(crop_preds.get((image_id, v)), label_index, names)
            cells.append(cell)
        out.append({"id": image_id, "label": label.get("name") or names(label_index),
                    "label_index": label_index, "wnid": label.get("wnid"), "cells": cells,
                    "has_photo": any(c["photo"] for c in cells), "ingested": ingest is not None,
                    "has_pert": any(c["pert"] for c in cells)})
    return out


def ingest_view(ws: Workspace, run: str, ingest: dict | None, manifest: dict, assets: Assets) -> dict | None:
    if ingest is None:
        return None
    cap_base = ws.captures(run)
    photos = []
    for n, p in enumerate(ingest.get("photos") or []):
        if not isinstance(p, dict):
            continue
        status = str(p.get("status") or ("accepted" if not p.get("reason") else "rejected"))
        view = {"file": str(p.get("file")), "status": status, "reason": p.get("reason"),
                "page": p.get("page"), "slots_found": p.get("slots_found"), "thumb": None, "full": None}
        if status != "accepted":
            src = _inside(cap_base, p.get("file"))
            if src is not None:
                name = f"{n:04d}-{_slug(Path(str(p.get('file'))).stem)}"
                try:
                    view["thumb"] = assets.thumb(src, f"thumbs/photos/{name}.jpg", edge=PHOTO_THUMB, jpeg=True)
                    view["full"] = assets.copy(src, f"images/photos/{name}.{_slug(src.suffix.lower()[1:] or 'jpg')}")
                except OSError as exc:
                    view["reason"] = f"{view['reason'] or 'rejected'} (unreadable: {exc})"
        photos.append(view)
    crops = [c for c in ingest.get("crops") or [] if isinstance(c, dict)]
    used = [c for c in crops if c.get("used", True)]
    expected = sum(len((im.get("variants") or {})) for im in manifest.get("images") or [])
    per_variant: dict[str, int] = {}
    for c in used:
        per_variant[str(c.get("variant"))] = per_variant.get(str(c.get("variant")), 0) + 1
    reasons: dict[str, int] = {}
    for p in photos:
        if p["status"] != "accepted":
            reasons[str(p["reason"] or "no reason given")] = reasons.get(str(p["reason"] or "no reason given"), 0) + 1
    reproj = [_num(c.get("reprojection_error_px")) for c in used if _num(c.get("reprojection_error_px")) is not None]
    n_images = len(manifest.get("images") or [])
    return {
        "photos": photos,
        "accepted": sum(1 for p in photos if p["status"] == "accepted"),
        "rejected": sum(1 for p in photos if p["status"] != "accepted"),
        "reasons": sorted(reasons.items(), key=lambda kv: -kv[1]),
        "crops_used": len(used), "crops_total": len(crops), "crops_expected": expected,
        "per_variant": [(v, per_variant.get(v, 0), n_images) for v in manifest.get("variants") or []],
        "reproj_median": float(np.median(reproj)) if reproj else None,
        "reproj_max": max(reproj) if reproj else None,
    }


# --------------------------------------------------------------------------------------------
# the page
# --------------------------------------------------------------------------------------------

def _environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")),
        autoescape=True, trim_blocks=True, lstrip_blocks=True,
        keep_trailing_newline=True)
    env.filters["pct"] = lambda v, digits=1: "—" if _num(v) is None else f"{100 * _num(v):.{digits}f}"
    env.filters["ci"] = lambda c: "" if not c else f"{100 * c[0]:.0f}–{100 * c[1]:.0f}"
    env.filters["short"] = lambda s, n=12: (str(s)[:n] + "…") if s and len(str(s)) > n else (s or "—")
    return env


def build_report(ws: Workspace, run: str, *, sample: int = 6, threshold: float = 0.8, classify: bool = True,
                 now: _dt.datetime | None = None) -> Path:
    """Write reports/<run>/index.html (+ plots/, images/, thumbs/) and return its path.

    `sample`: images in the gallery; `threshold`: the confidence marked on the acceptance curve;
    `classify`: classify the gallery's photo crops with the crafting model when evaluate stored
    no per-crop predictions (loads the model: a few seconds)."""
    if sample < 0:
        raise PhysicalError(f"--sample must be ≥ 0, got {sample}")
    manifest = ws.load_manifest(run).dump()  # no run → PhysicalError, one line
    out = ws.reports(run)
    out.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    ingest = _read_optional(ws.captures(run) / "ingest.json", problems)
    if ingest is not None and not isinstance(ingest, dict):
        problems.append(f"captures/{run}/ingest.json is not an object: the photo section is left out")
        ingest = None
    metrics = _read_optional(out / "metrics.json", problems)
    if metrics is not None and not isinstance(metrics.get("rows") if isinstance(metrics, dict) else None, list):
        problems.append("reports/{}/metrics.json has no `rows` list: the table and plots are left out".format(run))
        metrics = None
    transforms = _read_optional(ws.transforms_path(run), problems)
    if metrics is not None and isinstance(transforms, dict) and isinstance(transforms.get("rows"), list):
        # transform rows live in transforms.json (written by `physical transforms` only)
        metrics = {**metrics, "rows": list(metrics["rows"]) + transforms["rows"],
                   "transforms": transforms.get("transforms")}
    photo_dir = ws.captures(run) / "photos"
    # the files ingest reads (ingest.list_photos: hidden ones such as .DS_Store are not photos)
    photos = sorted(p for p in photo_dir.iterdir() if p.is_file() and not p.name.startswith(".")) \
        if photo_dir.is_dir() else []
    names = ClassNames(manifest)
    assets = Assets(out)
    rows = metric_rows(metrics)

    tables = paper_tables(metrics, manifest)
    crafting = str((manifest.get("model") or {}).get("spec"))
    primary = tables[0]["model"] if tables else crafting
    plots = []

    def add_plot(name, title, caption, ok):
        if ok:
            plots.append({"src": _href(f"plots/{name}"), "title": title, "caption": caption})

    add_plot("accuracy_vs_eps.png", "Accuracy vs ε",
             f"Adversarial accuracy of {primary} per attack; left: the digital PNGs, right: photographed. "
             "Dotted: clean accuracy; dashed: the random-noise baselines; shaded: 95 % Wilson intervals.",
             plot_accuracy_vs_eps(rows, primary, assets.plot_rel("accuracy_vs_eps.png")))
    add_plot("destruction.png", "Destruction rate of the photo",
             "Among adversarial images that fooled the model digitally (on images it got right), the "
             "fraction the print-and-photograph path turned back into correct predictions. "
             "Bars: 95 % Wilson intervals; n/a: no image in the denominator (nothing to destroy).",
             plot_destruction(rows, primary, assets.plot_rel("destruction.png")))
    acceptance = plot_acceptance(manifest, assets.plot_rel("acceptance.png"), threshold)
    add_plot("acceptance.png", "Error vs acceptance (the prefilter curve)",
             "Each curve sweeps the confidence threshold t from 0 (accept all, right end) to 0.99 (left): "
             "top-1 error among accepted PNG predictions against the share accepted. "
             f"Dots mark t = {threshold:g}.",
             acceptance is not None)
    add_plot("transforms.png", "Destruction rate vs transform strength (paper Section 4)",
             "Artificial transformations applied to the adversarial PNGs at the run's largest ε (the paper "
             "uses 16): top-1 destruction rate per attack, shaded: 95 % intervals. All ε: metrics.csv.",
             plot_transforms(rows, primary, assets.plot_rel("transforms.png")))
    matrix = transfer_matrix(metrics)
    if matrix is not None:
        add_plot("transfer.png", "Transfer matrix",
                 f"Adversarial top-1 error when the images crafted on {matrix['crafted_by']} (columns: "
                 "each variant) are classified by each model (rows); noise columns: the baseline of the same size.", plot_transfer(matrix, assets.plot_rel("transfer.png")))

    gallery = galleries(ws, run, manifest, ingest, metrics, names, assets, sample, classify)
    ingest_v = ingest_view(ws, run, ingest, manifest, assets)
    stages = stage_list(ws, run, manifest, ingest, metrics, photos)

    model = manifest.get("model") or {}
    attacks = []
    for name, params in (manifest.get("attacks") or {}).items():
        eps = (params or {}).get("eps") if isinstance(params, dict) else None
        attacks.append({"name": name, "label": attack_label(name),
                        "eps": ", ".join(_fmt_eps(e) for e in eps) if isinstance(eps, list) else "—",
                        "params": {k: v for k, v in (params or {}).items() if k != "eps"} if isinstance(params, dict) else {}})
    if not attacks:  # a manifest without an attacks block: read them off the variant names
        seen: dict[str, list] = {}
        for v in manifest.get("variants") or []:
            a, e = _variant_parts(v)
            if e is not None:
                seen.setdefault(a, []).append(e)
        attacks = [{"name": a, "label": attack_label(a), "eps": ", ".join(f"{e:g}" for e in sorted(es)), "params": {}}
                   for a, es in sorted(seen.items(), key=lambda kv: _attack_key(kv[0]))]
    versions = dict(manifest.get("versions") or {})
    for k, v in (((metrics or {}).get("run") or {}).get("versions") or {}).items():
        versions.setdefault(k, v)
    now = now or _dt.datetime.now(_dt.timezone.utc)
    evaluating_models = list(dict.fromkeys(str(r.get("model")) for r in rows))
    thresholds = threshold_table(metrics)
    context = {
        "run": run,
        "created": manifest.get("created"),
        "generated": now.replace(microsecond=0).isoformat(),
        "physical_version": package_versions().get("physical", "?"),
        "model": model, "models": evaluating_models,
        "n_images": len(manifest.get("images") or []),
        "n_skipped": len(manifest.get("skipped") or []),
        "source": manifest.get("source") or {},
        "seed": manifest.get("seed"),
        "attacks": attacks, "versions": sorted(versions.items()),
        "metrics_run": (metrics or {}).get("run") or {},
        "stages": stages, "missing": [s for s in stages if not s["done"]],
        "problems": problems,
        "tables": tables, "thresholds": thresholds, "headline": headline(tables),
        "eps_all": ", ".join(f"{e:g}" for e in sorted({_num(e) for a in (manifest.get("attacks") or {}).values()
                                                         if isinstance(a, dict) for e in (a.get("eps") or [])
                                                         if _num(e) is not None})),
        "threshold_used": next((f"{r['threshold']:g}" for t in thresholds for r in t["rows"]
                                if r["threshold"] is not None), f"{threshold:g}"),
        "photo_message": ((metrics or {}).get("photo") or {}).get("message"),
        "acceptance": acceptance or [], "threshold": threshold,
        "plots": plots, "matrix": matrix,
        "gallery": gallery, "sample": sample,
        "ingest": ingest_v,
        "has_metrics": metrics is not None,
        "has_metrics_csv": (out / "metrics.csv").exists(),
        "summary": manifest.get("summary") or {},
    }
    html = _environment().get_template("report.html").render(**context)
    index = out / "index.html"
    atomic_write_text(index, html)
    assets.prune()
    return index


__all__ = ["build_report", "acceptance_curves", "paper_tables", "transfer_matrix", "perturbation_image",
           "choose_sample", "stage_list"]
