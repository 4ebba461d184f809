"""The page: inputs → sections (tables, plots, gallery) → templates/report.html → index.html.

Adding a section: a function in tables.py (records → rows), a line in `sections`, a block in
the template. Adding a plot: a function in plots.py (records → Figure) and an entry in `plots`.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import math
from pathlib import Path
from typing import Callable

from physical.errors import PhysicalError
from physical.report import calibration, gallery, plots as P, robust, tables
from physical.report.inputs import ClassNames, RunInputs, num, read_run
from physical.workspace import Workspace, atomic_write_text, package_versions, run_locked

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def upper_bound(p: float) -> str:
    """`p` rounded *up* to two significant digits: "< 0.0035" must stay true of what it bounds."""
    if p <= 0:
        return "0"
    e = math.floor(math.log10(p)) - 1
    v = math.ceil(round(p / 10 ** e, 9)) * 10 ** e
    return f"{v:.{max(0, -e)}f}"


def environment():
    """The jinja2 environment: autoescape on (everything from the run is data), the number filters."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["pct"] = lambda v, digits=1: "—" if num(v) is None else f"{100 * num(v):.{digits}f}"
    env.filters["ci"] = lambda c: "" if not c else f"{100 * c[0]:.0f}–{100 * c[1]:.0f}"
    env.filters["prob"] = lambda p: f"{p:.2f}" if p >= 0.01 else f"{p:.1g}"
    env.filters["bound"] = upper_bound
    env.filters["short"] = lambda s, n=12: (str(s)[:n] + "…") if s and len(str(s)) > n else (s or "—")
    return env


def plots(inp: RunInputs, primary: str, threshold: float, curves: dict, matrix: dict | None
          ) -> list[tuple[str, str, str, Callable]]:
    """(file name, title, caption, figure builder) of every plot, in page order."""
    rows = tables.untargeted(inp.metrics.rows) if inp.metrics else []   # targeted ones: the robust section
    return [
        ("accuracy_vs_eps.png", "Accuracy vs ε",
         f"Adversarial accuracy of {primary} per attack; left: the digital PNGs, right: photographed. "
         "Dotted: clean accuracy; dashed: the random-noise baselines; shaded: 95 % Wilson intervals.",
         lambda: P.accuracy_vs_eps(rows, primary)),
        ("destruction.png", "Destruction rate of the photo",
         "Among adversarial images that fooled the model digitally (on images it got right), the "
         "fraction the print-and-photograph path turned back into correct predictions. "
         "Bars: 95 % Wilson intervals; n/a: no image in the denominator (nothing to destroy).",
         lambda: P.destruction(rows, primary)),
        ("acceptance.png", "Error vs acceptance (the prefilter curve)",
         "Each curve sweeps the confidence threshold t from 0 (accept all, right end) to 0.99 (left): "
         f"top-1 error among accepted PNG predictions against the share accepted. Dots mark t = {threshold:g}.",
         lambda: P.acceptance(inp.manifest, curves, threshold)),
        ("transforms.png", "Destruction rate vs transform strength (paper Section 4)",
         "Artificial transformations applied to the adversarial PNGs at the run's largest ε (the paper "
         "uses 16): top-1 destruction rate per attack, shaded: 95 % intervals. All ε: metrics.csv.",
         lambda: P.transforms(rows, primary)),
        ("transfer.png", "Transfer matrix",
         f"Adversarial top-1 error when the images crafted on {matrix['crafted_by'] if matrix else '?'} "
         "(columns: each variant) are classified by each model (rows); noise columns: the baseline of the same size.",
         lambda: P.transfer(matrix)),
    ]


def sections(inp: RunInputs, assets: gallery.Assets, *, sample: int, threshold: float) -> dict:
    """Every section's data for the template."""
    m, metrics = inp.manifest, inp.metrics
    names = ClassNames(m)
    paper = tables.paper_tables(metrics, m)
    thresholds = tables.threshold_table(metrics)
    curves = tables.acceptance_curves(m)
    if set(curves) <= {"clean"} and robust.applies(m):   # only targeted attacks: a clean-only curve says nothing
        curves = {}
    matrix = tables.transfer_matrix(metrics)
    primary = paper[0]["model"] if paper else str(m.model.spec)
    figures = []
    for name, title, caption, build in plots(inp, primary, threshold, curves, matrix):
        fig = build()
        if fig is not None:
            P.save(fig, assets.plot_path(name))
            figures.append({"src": gallery.href(f"plots/{name}"), "title": title, "caption": caption})
    stages = tables.stage_list(inp)
    ingest = None
    if inp.ingest is not None:
        ingest = {**tables.ingest_summary(inp.ingest, m), "photos": gallery.photo_views(inp, assets)}
    return {
        "stages": stages, "missing": [s for s in stages if not s["done"]],
        "attacks": tables.attack_list(m), "eps_all": tables.eps_all(m),
        "models": metrics.models if metrics else [],
        "services": tables.services(metrics),
        "tables": paper, "headline": tables.headline(paper),
        "thresholds": thresholds,
        "threshold_used": next((f"{r['threshold']:g}" for t in thresholds for r in t["rows"]
                                if r["threshold"] is not None), f"{threshold:g}"),
        "acceptance": tables.acceptance_table(m, curves, threshold),
        "plots": figures, "matrix": matrix,
        "gallery": gallery.galleries(inp, names, assets, sample),
        "ingest": ingest,
        "robust": robust.section(inp, names, assets),
        "calibration": calibration.section(inp, names, assets),
    }


@run_locked("report")
def build_report(ws: Workspace, run: str, *, sample: int = 6, threshold: float = 0.8,
                 now: _dt.datetime | None = None, profile: str | Path | None = None) -> Path:
    """Write reports/<run>/index.html (+ plots/, images/, thumbs/) and return its path.

    `sample`: images in the gallery; `threshold`: the confidence marked on the acceptance curve;
    `profile`: a calibration profile for the calibration section (default: the one the run was
    simulated or crafted through, if any). Loads no model: every prediction shown is one that
    craft or evaluate stored."""
    if sample < 0:
        raise PhysicalError(f"--sample must be ≥ 0, got {sample}")
    inp = read_run(ws, run)  # no run → PhysicalError, one line
    if profile is not None:
        from physical.profiles import load_profile

        inp = dataclasses.replace(inp, profile=load_profile(profile).dump(),
                                  profile_origin=f"given to the report (--profile {Path(profile).name})")
    inp.out.mkdir(parents=True, exist_ok=True)
    assets = gallery.Assets(inp.out)
    m, metrics = inp.manifest, inp.metrics
    versions = dict(m.versions)
    for k, v in (metrics.versions if metrics else {}).items():
        versions.setdefault(k, v)
    now = now or _dt.datetime.now(_dt.timezone.utc)
    context = {
        "run": run, "created": m.created, "generated": now.replace(microsecond=0).isoformat(),
        "physical_version": package_versions().get("physical", "?"),
        "model": m.model, "n_images": len(m.images), "n_skipped": m.n_skipped,
        "source": m.source, "seed": m.seed, "summary": m.summary, "versions": sorted(versions.items()),
        "problems": inp.problems, "threshold": threshold, "sample": sample,
        "photo_message": metrics.photo_message if metrics else None,
        "has_metrics": metrics is not None, "has_metrics_csv": inp.has_metrics_csv,
        **sections(inp, assets, sample=sample, threshold=threshold),
    }
    index = inp.out / "index.html"
    atomic_write_text(index, environment().get_template("report.html").render(**context))
    assets.prune()
    return index
