"""Results JSON + a self-contained HTML page per lab experiment (jinja2, autoescape on; plots
are matplotlib PNGs written to plots/ and embedded as data URIs, so the page needs no network
and no neighbouring files)."""
from __future__ import annotations

import base64
import io
import math
from pathlib import Path

import numpy as np

from physical.workspace import atomic_write_bytes, atomic_write_json, atomic_write_text

CSS = """
body{max-width:1140px;margin:0 auto;padding:1em 1.5em 2em;background:#fff}
h1{font-size:1.6em} h2{font-size:1.25em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em} th,td{border:1px solid #ccc;padding:.25em .55em;text-align:right}
th{background:#f3f3f3} td.l,th.l{text-align:left} .diag{font-weight:bold;background:#fff3d6}
.note{color:#555;font-size:.92em} img.plot{max-width:100%;border:1px solid #eee}
code{background:#f5f5f5;padding:0 .2em}
"""

BASE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title><style>{{ css|safe }}</style></head>
<body><h1>{{ title }}</h1>
<p class="note">Command: <code>{{ command }}</code> · seed {{ r.seed }}{% if r.data is defined %} · data: {{ r.data.name }}
({{ r.data.source }}; {{ r.data.train }} train / {{ r.data.test }} test, {{ r.data.image_shape[0] }}×{{ r.data.image_shape[1] }}){% endif %}
{% if r.seconds is defined %} · {{ r.seconds }} s{% endif %}</p>
{% block body %}{% endblock %}
<p class="note">Results: <code>results.json</code> next to this page.</p>
</body></html>"""

MODELS = """{% macro models_table(models, extra=None) %}
<table><tr><th class="l">Model</th><th class="l">Description</th><th>Training error</th><th>Test error</th>
{% if extra %}<th>{{ extra.title }}</th>{% endif %}</tr>
{% for m in models %}<tr><td class="l">{{ m.name }}</td><td class="l">{{ m.description }}</td>
<td>{{ pct(m.train_error) }}</td><td>{{ pct(m.test_error) }}</td>
{% if extra %}<td>{{ extra.cells[loop.index0] }}</td>{% endif %}</tr>{% endfor %}</table>
{% endmacro %}"""

SZEGEDY = MODELS + """
{% block body %}
<p>Szegedy et al. (2014): for each model, the smallest perturbation r with x + r ∈ [0,1]<sup>m</sup> that
makes the model output a chosen target label, found by box-constrained L-BFGS on
<code>{{ r.lbfgs.objective }}</code>; c is searched for the <em>largest</em> value whose minimiser still
reaches the target (a larger c weighs distortion more, so that is the minimum-distortion example).
Distortion: {{ r.lbfgs.distortion }}. Points: {{ r.points.count }} ({{ r.points.rule }}).</p>
<h2>Models and average minimum distortion</h2>
{{ models_table(r.models, {"title": "Av. min. distortion", "cells": dist_cells}) }}
<table><tr><th class="l">Model</th><th>Target reached</th><th>Median c</th><th>L-BFGS calls</th><th>Seconds</th>
<th>Paper (MNIST): training error</th><th>test error</th><th>av. min. distortion</th></tr>
{% for a in r.attacks %}{% set p = r.paper_mnist.get(a.model) %}<tr><td class="l">{{ a.model }}</td><td>{{ pct(a.success_rate) }}</td>
<td>{{ "%.3g"|format(a.median_c) if a.median_c is not none else "–" }}</td><td>{{ a.lbfgs_calls }}</td><td>{{ a.seconds }}</td>
{% if p %}<td>{{ pct(p.train_error) }}</td><td>{{ pct(p.test_error) }}</td><td>{{ "%.3f"|format(p.avg_min_distortion) }}</td>{% else %}<td></td><td></td><td></td>{% endif %}</tr>{% endfor %}</table>
<p class="note">The paper's figures are on 28×28 MNIST (the seed lecture's table); on {{ r.data.name }} the images are
{{ r.data.image_shape[0] }}×{{ r.data.image_shape[1] }}, so fewer pixels must each move further: compare orderings, not values.</p>
<h2>Transfer: error rate of each column's model on the row's images</h2>
<p class="note">{{ r.transfer.entry }}. Rows: L-BFGS examples made on a model, then Gaussian noise
scaled per image to exactly the stated distortion (after clipping to the box). Diagonal: the model's own success rate.</p>
<table><tr><th class="l"></th>{% for c in r.transfer.columns %}<th>{{ c }}</th>{% endfor %}<th>Av. distortion</th></tr>
{% for row in r.transfer.matrix %}{% set i = loop.index0 %}<tr><td class="l">{{ r.transfer.rows[i] }}</td>
{% for v in row %}<td class="{{ 'diag' if loop.index0 == i else '' }}">{{ pct(v) }}</td>{% endfor %}
<td>{{ "%.3f"|format(r.transfer.distortion[i]) if r.transfer.distortion[i] is not none else "–" }}</td></tr>{% endfor %}</table>
<img class="plot" alt="transfer heat map" src="{{ plots.transfer }}">
{% for n in r.noise_skipped %}<p class="note">Left out: {{ n.label }} — {{ n.reason }}.</p>{% endfor %}
<h2>Examples</h2>
<p class="note">First column: the clean test image (true label → target). Then the minimum-distortion example made on each model, and the perturbation (grey = 0).</p>
<img class="plot" alt="adversarial examples" src="{{ plots.examples }}">
{% endblock %}"""

LINEARITY = MODELS + """
{% block body %}
<p>Goodfellow et al. (2015): FGSM, <code>{{ r.fgsm.rule }}</code>. Confidence: {{ r.fgsm.confidence }}.
Linear models (softmax) and non-linear ones (sigmoid MLPs, autoencoder features) side by side.</p>
<h2>Where the error reaches 90 %</h2>
<table><tr><th class="l">Model</th><th class="l">Kind</th><th>ε at 90 % error</th><th>Error ε=0.1</th><th>Confidence ε=0.1</th>
<th>Error ε=0.25</th><th>Confidence ε=0.25</th></tr>
{% for s in r.sweeps %}<tr><td class="l">{{ s.model }}</td><td class="l">{{ "linear" if s.linear else "non-linear" }}</td>
<td>{{ "%.3f"|format(s.eps_90) if s.eps_90 is not none else "not reached (ε ≤ %g)"|format(s.eps[-1]) }}</td>
<td>{{ pct(s["at_0.1"].error) }}</td><td>{{ pct(s["at_0.1"].wrong_confidence) }}</td>
<td>{{ pct(s["at_0.25"].error) }}</td><td>{{ pct(s["at_0.25"].wrong_confidence) }}</td></tr>{% endfor %}</table>
<img class="plot" alt="error and confidence vs epsilon" src="{{ plots.curves }}">
<h2>Models</h2>
{{ models_table(r.models) }}
{% endblock %}"""

DIRECTIONS = """
{% block body %}
<p>Szegedy et al. (2014): the {{ r.top }} images of {{ r.images }} that maximise a single unit
⟨φ(x), e<sub>i</sub>⟩ (left) and a random direction ⟨φ(x), v⟩ (right) of layer
<code>{{ r.layer }}</code> ({{ r.dim }} dimensions; convolutional maps averaged over space) of
model <code>{{ r.model.spec }}</code> ({{ r.model.arch }}). Units and directions are seeded.
If the rows on the right look as coherent as those on the left, single units are no more
"semantic" than random directions.</p>
<div style="display:flex;gap:1em;flex-wrap:wrap">
<div style="flex:1;min-width:420px"><h2>Units e<sub>i</sub></h2><img class="plot" alt="top images per unit" src="{{ plots.units }}"></div>
<div style="flex:1;min-width:420px"><h2>Random directions v</h2><img class="plot" alt="top images per direction" src="{{ plots.directions }}"></div>
</div>
<h2>Top images</h2>
<table><tr><th class="l">Row</th><th class="l">Images (best first) and scores</th></tr>
{% for u in r.units %}<tr><td class="l">unit {{ u.unit }}</td><td class="l">{% for f in u.top %}{{ f }} ({{ "%.3g"|format(u.score[loop.index0]) }}){% if not loop.last %}, {% endif %}{% endfor %}</td></tr>{% endfor %}
{% for d in r.directions %}<tr><td class="l">direction {{ d.direction }}</td><td class="l">{% for f in d.top %}{{ f }} ({{ "%.3g"|format(d.score[loop.index0]) }}){% if not loop.last %}, {% endif %}{% endfor %}</td></tr>{% endfor %}
</table>
{% if r.skipped is defined and r.skipped %}<h2>Skipped files</h2><ul>{% for s in r.skipped %}<li>{{ s.source }}: {{ s.reason }}</li>{% endfor %}</ul>{% endif %}
{% endblock %}"""

TEMPLATES = {"szegedy": SZEGEDY, "linearity": LINEARITY, "directions": DIRECTIONS}
TITLES = {"szegedy": "Minimal perturbations, transfer and noise (Szegedy et al. 2014)",
          "linearity": "FGSM and linearity (Goodfellow et al. 2015)",
          "directions": "Units vs random directions (Szegedy et al. 2014)"}


def page_css() -> str:
    """The report's stylesheet (physical/templates/report.css: one look across pages) when it is
    there, then this page's own rules on top."""
    shared = Path(__file__).resolve().parent.parent / "templates" / "report.css"
    try:
        base = shared.read_text(encoding="utf-8")
    except OSError:
        base = ""
    return base + "\n/* physical lab */\n" + CSS


def pct(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{100 * v:.1f} %"


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _plt().close(fig)
    return buf.getvalue()


def transfer_plot(t: dict) -> bytes:
    plt = _plt()
    m = np.asarray(t["matrix"]) * 100
    fig, ax = plt.subplots(figsize=(1.3 * len(t["columns"]) + 3, 0.45 * len(t["rows"]) + 1.5))
    im = ax.imshow(m, cmap="viridis", vmin=0, vmax=100, aspect="auto")
    ax.set_xticks(range(len(t["columns"])), t["columns"], rotation=30, ha="right")
    ax.set_yticks(range(len(t["rows"])), [f"{r} ({d:.3f})" if d is not None else r for r, d in zip(t["rows"], t["distortion"])])
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(j, i, f"{m[i, j]:.0f}", ha="center", va="center", color="white" if m[i, j] < 60 else "black", fontsize=8)
    ax.axhline(len(t["columns"]) - 0.5, color="white", lw=2)
    fig.colorbar(im, ax=ax, label="error rate (%)")
    ax.set_xlabel("evaluated on")
    ax.set_title("Cross-model error of L-BFGS examples and noise (row: made on / noise)")
    return _png(fig)


def examples_plot(ex: dict, n: int = 5) -> bytes:
    plt = _plt()
    h, w = ex["shape"]
    names = ex["names"]
    n = min(n, len(ex["x"]))
    cols = 1 + 2 * len(names)
    fig, axes = plt.subplots(n, cols, figsize=(cols * 0.95, n * 1.05), squeeze=False)
    for i in range(n):
        axes[i, 0].imshow(ex["x"][i].reshape(h, w), cmap="gray", vmin=0, vmax=1)
        axes[i, 0].set_title(f"{ex['y'][i]}→{ex['target'][i]}", fontsize=7)
        for k, name in enumerate(names):
            adv = ex["adv"][k][i]
            axes[i, 1 + 2 * k].imshow(adv.reshape(h, w), cmap="gray", vmin=0, vmax=1)
            axes[i, 2 + 2 * k].imshow((adv - ex["x"][i]).reshape(h, w), cmap="gray", vmin=-0.5, vmax=0.5)
            if i == 0:
                axes[i, 1 + 2 * k].set_title(name, fontsize=6)
                axes[i, 2 + 2 * k].set_title("r", fontsize=6)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    return _png(fig)


def curves_plot(sweeps: list[dict]) -> bytes:
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    for s in sweeps:
        style = "-" if s["linear"] else "--"
        a1.plot(s["eps"], [100 * e for e in s["error"]], style, label=s["model"])
        conf = [np.nan if c is None else 100 * c for c in s["wrong_confidence"]]
        a2.plot(s["eps"], conf, style, label=s["model"])
    a1.axhline(90, color="grey", lw=0.8, ls=":")
    a1.set_xlabel("ε (pixels on [0, 1])")
    a1.set_ylabel("FGSM error rate (%)")
    a2.set_xlabel("ε (pixels on [0, 1])")
    a2.set_ylabel("mean confidence of the wrong class (%)")
    a1.legend(fontsize=8)
    a1.set_title("error vs ε (solid: linear, dashed: non-linear)")
    a2.set_title("confidence on misclassified examples")
    return _png(fig)


def grid_plot(images: np.ndarray, rows: list[dict], key: str, title: str) -> bytes:
    plt = _plt()
    k = max(len(r["top_index"]) for r in rows)
    fig, axes = plt.subplots(len(rows), k, figsize=(k * 1.05, len(rows) * 1.2), squeeze=False)
    for i, r in enumerate(rows):
        for j in range(k):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j < len(r["top_index"]):
                ax.imshow(images[r["top_index"][j]])
            if j == 0:
                ax.set_ylabel(f"{key} {r[key]}", fontsize=8)
    fig.suptitle(title, fontsize=9)
    return _png(fig)


def public(results: dict) -> dict:
    """The JSON-able part of a results dict (keys starting with '_' hold arrays for the plots)."""
    return {k: v for k, v in results.items() if not k.startswith("_")}


def write(out: str | Path, results: dict, command: str, images: np.ndarray | None = None) -> Path:
    """Write results.json, plots/*.png and index.html into `out`; returns the page's path."""
    import jinja2

    out = Path(out)
    exp = results["experiment"]
    plots: dict[str, bytes] = {}
    if exp == "szegedy":
        plots["transfer"] = transfer_plot(results["transfer"])
        plots["examples"] = examples_plot(results["_examples"])
    elif exp == "linearity":
        plots["curves"] = curves_plot(results["sweeps"])
    elif exp == "directions":
        plots["units"] = grid_plot(images, results["units"], "unit", "top images per unit ⟨φ(x), e$_i$⟩")
        plots["directions"] = grid_plot(images, results["directions"], "direction", "top images per random direction ⟨φ(x), v⟩")
    uris = {name: "data:image/png;base64," + base64.b64encode(data).decode("ascii") for name, data in plots.items()}
    pub = public(results)
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    env.globals["pct"] = pct
    env.loader = jinja2.DictLoader({"base.html": BASE})
    tmpl = env.from_string('{% extends "base.html" %}' + TEMPLATES[exp])
    extra = {}
    if exp == "szegedy":
        extra["dist_cells"] = ["%.3f" % a["avg_min_distortion"] if a["avg_min_distortion"] is not None else "–"
                               for a in pub["attacks"]]
    html = tmpl.render(title=TITLES[exp], css=page_css(), command=command, r=pub, plots=uris, **extra)
    # Rendered first, written after: a template error leaves no half-finished results behind.
    for name, data in plots.items():
        atomic_write_bytes(out / "plots" / f"{name}.png", data)
    atomic_write_json(out / "results.json", pub)
    page = out / "index.html"
    atomic_write_text(page, html)
    return page
