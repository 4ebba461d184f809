"""The report's plots: records → matplotlib `Figure` (Agg, never pyplot's global state).

Each function returns a Figure, or None when there is nothing to draw; `save` writes one as PNG.
Every text of a figure stays inside it (tests/test_report.py checks the bounding boxes).
"""
from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np

from physical.report.inputs import Manifest, Row
from physical.report.tables import (acceptance_groups, attack_colour, attack_key, attack_label, index_rows,
                                    threshold_index, transform_rows)
from physical.workspace import atomic_write_bytes


def _figure(w: float, h: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h), dpi=110, layout="constrained")


def _style_axes(ax):
    ax.grid(True, color="#e5e5e5", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def save(fig, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    atomic_write_bytes(path, buf.getvalue())


def _yerr(values, cis):
    lo = [max(0.0, v - c[0]) * 100 if (v is not None and c) else 0 for v, c in zip(values, cis)]
    hi = [max(0.0, c[1] - v) * 100 if (v is not None and c) else 0 for v, c in zip(values, cis)]
    return [lo, hi]


def _stage_name(stage: str) -> str:
    return "digital (PNG)" if stage in ("png", "digital") else "photographed"


def accuracy_vs_eps(rows: list[Row], model: str):
    """Adversarial accuracy vs ε per attack: columns digital (PNG) / photographed, rows top-1 /
    top-5; shaded: 95 % intervals; grey: clean accuracy of the same images."""
    rows = [r for r in rows if r.model == model and r.subset == "average" and r.stage in ("png", "photo")
            and r.eps is not None]
    if not rows:
        return None
    stages = [s for s in ("png", "photo") if any(r.stage == s for r in rows)]
    attacks = sorted({r.attack for r in rows}, key=attack_key)
    all_eps = sorted({r.eps for r in rows})
    fig = _figure(4.3 * len(stages) + 1.9, 6.2)
    axes = fig.subplots(2, len(stages), sharex=True, sharey=True, squeeze=False)
    handles = {}
    for col, stage in enumerate(stages):
        srows = [r for r in rows if r.stage == stage]
        for row_i, k in enumerate(("top1", "top5")):
            ax = axes[row_i][col]
            clean = [v for r in srows if (v := r.v(f"clean_{k}")) is not None]
            if clean:
                h = ax.axhline(100 * float(np.mean(clean)), color="#777777", linestyle=":", linewidth=1.5)
                handles.setdefault("clean", h)
            for attack in attacks:
                pts = [(r.eps, r.v(f"adv_{k}"), r.ci(f"adv_{k}"))
                       for r in sorted((r for r in srows if r.attack == attack), key=lambda r: r.eps)]
                pts = [p for p in pts if p[1] is not None]
                if not pts:
                    continue
                colour = attack_colour(attack, attacks)
                (line,) = ax.plot([p[0] for p in pts], [100 * p[1] for p in pts], color=colour, marker="o",
                                  markersize=5, linewidth=2, linestyle="--" if attack in ("noise", "gauss") else "-")
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
            ax.set_title(f"{_stage_name(stage)} · top-{k[-1]}", fontsize=10)
            _style_axes(ax)
            if col == 0:
                ax.set_ylabel(f"top-{k[-1]} accuracy (%)")
            if row_i == 1:
                ax.set_xlabel("ε (levels of 255)")
    fig.legend(list(handles.values()), list(handles.keys()), loc="outside right center", fontsize=9, frameon=False)
    return fig


def destruction(rows: list[Row], model: str):
    """Photo destruction rate per attack (bars) and ε (groups) with 95 % intervals; columns:
    average / prefiltered, rows: top-1 / top-5. 'n/a' marks an empty denominator (null rate)."""
    rows = [r for r in rows if r.model == model and r.stage == "photo" and r.attack != "clean"]
    all_eps = sorted({r.eps for r in rows if r.eps is not None})
    if not all_eps:
        return None
    from matplotlib.patches import Patch

    idx = index_rows(rows)
    attacks = sorted({r.attack for r in rows}, key=attack_key)
    fig = _figure(10.5, 6.0)
    axes = fig.subplots(2, 2, sharex=True, sharey=True)
    x = np.arange(len(all_eps))
    width = 0.8 / len(attacks)
    for row_i, k in enumerate(("top1", "top5")):
        for col, subset in enumerate(("average", "prefiltered")):
            ax = axes[row_i][col]
            for a_i, attack in enumerate(attacks):
                offset = (a_i - (len(attacks) - 1) / 2) * width
                found = [idx.get((model, attack, eps, "photo", subset)) for eps in all_eps]
                vals = [r.v(f"destruction_{k}") if r else None for r in found]
                cis = [r.ci(f"destruction_{k}") if r else None for r in found]
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
    return fig


def acceptance(manifest: Manifest, curves: dict[str, dict], threshold: float = 0.8):
    """The prefilter curve: one panel per attack, error among accepted vs share accepted as the
    threshold t sweeps 0 → 0.99; the clean curve in every panel; dots at `threshold`."""
    if not curves:
        return None
    by_attack = acceptance_groups(manifest, curves)
    attacks = list(by_attack) or ["clean"]
    ncol = min(4, len(attacks))
    nrow = math.ceil(len(attacks) / ncol)
    fig = _figure(3.0 * ncol + 0.6, 3.1 * nrow + 0.5)
    axes = np.atleast_1d(fig.subplots(nrow, ncol, sharex=True, sharey=True, squeeze=False)).ravel()
    ti = threshold_index(curves, threshold)

    def draw(ax, variant, colour, alpha, label):
        c = curves[variant]
        pts = [(a, e) for a, e in zip(c["accepted"], c["error"]) if e is not None]
        if not pts:
            return
        xs, ys = zip(*pts)
        ax.plot([100 * x for x in xs], [100 * y for y in ys], color=colour, alpha=alpha, linewidth=1.8, label=label)
        a, e = c["accepted"][ti], c["error"][ti]
        if e is not None:
            ax.plot([100 * a], [100 * e], marker="o", markersize=7, color=colour, alpha=alpha,
                    markeredgecolor="black", markeredgewidth=0.8, linestyle="none")

    for ax, attack in zip(axes, attacks):
        if "clean" in curves:
            draw(ax, "clean", "#000000", 1.0, "clean")
        variants = by_attack.get(attack, [])
        for i, (eps, v) in enumerate(variants):
            draw(ax, v, attack_colour(attack, attacks), 0.35 + 0.65 * (i + 1) / len(variants), f"ε={eps:g}")
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
    # One panel is 3.6 inches wide: the title wraps to the figure instead of running off its edges
    # (no-break spaces keep "● t = 0.8" on one line).
    fig.suptitle(f"Error among accepted predictions as the confidence threshold t rises from 0 (right end) "
                 f"to 0.99 (left); ●\u00a0t\u00a0=\u00a0{threshold:g}", fontsize=10, wrap=True)
    return fig


TRANSFORM_ORDER = ["brightness", "contrast", "blur", "noise", "jpeg"]
TRANSFORM_UNITS = {"brightness": "shift (levels)", "contrast": "factor", "blur": "σ (pixels)",
                   "noise": "σ (levels)", "jpeg": "quality"}


def transforms(rows: list[Row], model: str):
    """Destruction rate (top-1) vs transform strength, one panel per kind, one line per attack at
    the run's largest ε (the paper's Section 4 uses ε = 16)."""
    by_kind = transform_rows(rows, model)
    if not by_kind:
        return None
    kinds = sorted(by_kind, key=lambda k: (TRANSFORM_ORDER.index(k) if k in TRANSFORM_ORDER else len(TRANSFORM_ORDER), k))
    ncol = min(3, len(kinds))
    nrow = math.ceil(len(kinds) / ncol)
    fig = _figure(3.6 * ncol + 1.8, 3.1 * nrow + 0.3)
    axes = np.atleast_1d(fig.subplots(nrow, ncol, sharey=True, squeeze=False)).ravel()
    attacks_all = sorted({r.attack for rs in by_kind.values() for r, _ in rs}, key=attack_key)
    eps_shown = max((r.eps for rs in by_kind.values() for r, _ in rs if r.eps is not None), default=None)
    handles = {}
    for ax, kind in zip(axes, kinds):
        series: dict[str, list[tuple[float, Row]]] = {}
        for r, value in by_kind[kind]:
            if r.attack != "clean" and r.eps == eps_shown:
                series.setdefault(r.attack, []).append((value, r))
        for attack in sorted(series, key=attack_key):
            pts = sorted(series[attack], key=lambda p: p[0])
            xs = [p[0] for p in pts]
            ys = [p[1].v("destruction_top1") for p in pts]
            cis = [p[1].ci("destruction_top1") for p in pts]
            xy = [(x, 100 * y) for x, y in zip(xs, ys) if y is not None]
            if not xy:
                continue
            colour = attack_colour(attack, attacks_all)
            (line,) = ax.plot(*zip(*xy), color=colour, marker="o", markersize=4, linewidth=1.8)
            band = [(x, 100 * c[0], 100 * c[1]) for x, c in zip(xs, cis) if c]
            if len(band) > 1:
                bx, lo, hi = zip(*band)
                ax.fill_between(bx, lo, hi, color=colour, alpha=0.06, linewidth=0)
            handles.setdefault(attack_label(attack), line)
        ax.set_title(kind)
        ax.set_xlabel(TRANSFORM_UNITS.get(kind, "strength"))
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
    return fig


def transfer(matrix: dict | None):
    """One heat map per stage: evaluating models (rows) × variants crafted on one model (columns)."""
    if matrix is None or len(matrix["models"]) < 2:
        return None
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
        ax.set_title(f"{_stage_name(b['stage'])} · crafted on {matrix['crafted_by']}", fontsize=10)
        for i in range(vals.shape[0]):
            for j in range(vals.shape[1]):
                v = vals[i, j]
                ax.text(j, i, "—" if np.isnan(v) else f"{v:.0f}", ha="center", va="center", fontsize=8,
                        color="white" if (not np.isnan(v) and v > 55) else "black")
        ax.set_ylabel("evaluated by", fontsize=9)
    if im is not None:
        fig.colorbar(im, ax=list(axes), label=matrix["title"], shrink=0.9)
    return fig
