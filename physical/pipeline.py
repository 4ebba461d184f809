"""The whole loop: craft → layout → simulate → ingest → evaluate → transforms → report.

`physical run` and `physical demo` call `run_pipeline`. A stage is skipped when its outputs are
already there and newer than its inputs (make's rule), so a user can stop after `layout`, print,
photograph, drop the photos into captures/<run>/photos/ and run the same command again; `--force`
redoes every stage. The printed layout is never redone behind the user's back: once a PDF exists,
only `--force` replaces it, since sheets may already be on paper.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from physical.craft import CraftOptions
from physical.errors import PhysicalError
from physical import records
from physical.transforms import KINDS
from physical.workspace import Workspace, check_run_name, run_locked, sha256_file

STAGES = ("craft", "layout", "simulate", "ingest", "evaluate", "transforms", "report")


@dataclass
class PipelineOptions:
    craft: CraftOptions = field(default_factory=CraftOptions)
    paper: str = "a4"
    dpi: int = 600
    image_mm: float = 40.0
    variants: list[str] | None = None
    simulate: bool = False          # no paper: photograph the PDF in software
    preset: str = "typical"
    photos_per_page: int = 1
    resolution: tuple[int, int] = (4000, 3000)
    photos: str | None = None       # folder of real photos (default captures/<run>/photos)
    kinds: tuple = KINDS
    transform_grid: dict | None = None
    threshold: float = 0.8
    stop_after: str | None = None
    force: bool = False
    progress: bool = True


def _mtime(path: Path) -> float:
    return path.stat().st_mtime if path.exists() else 0.0


def _newer(outputs: list[Path], inputs: list[Path]) -> bool:
    """All outputs exist and none is older than any existing input."""
    if not all(p.exists() for p in outputs):
        return False
    return min(_mtime(p) for p in outputs) >= max([_mtime(p) for p in inputs if p.exists()] or [0.0])


def _new_photos(ws: Workspace, run: str, folder: Path) -> bool:
    """Whether the folder holds a photo ingest has not seen (ingest.json records each photo's sha256)."""
    state = records.read_optional(records.INGEST, ws, run)
    if state is None:
        return True
    seen = {p.sha256 for p in state.photos}
    return any(sha256_file(p) not in seen for p in ws.list_photos(run, folder))


def _transforms_current(ws: Workspace, run: str) -> bool:
    """transforms.json holds rows made from this manifest. They depend on the PNGs only, so new
    photos (a re-evaluation) leave them valid."""
    doc = records.read_optional(records.TRANSFORMS, ws, run)
    return (doc is not None and doc.transforms.get("manifest_sha256") == sha256_file(ws.manifest_path(run))
            and bool(doc.rows))


@run_locked("run")
def run_pipeline(ws: Workspace, run: str, options: PipelineOptions,
                 echo: Callable[[str], None] = print) -> dict:
    """Run every stage that is not done yet; returns {stage: seconds} for the stages that ran."""
    check_run_name(run)
    if options.stop_after and options.stop_after not in STAGES:
        raise PhysicalError(f"--stop-after must be one of {', '.join(STAGES)}")
    from physical import craft, evaluate, ingest, layout, report, simulate

    manifest = ws.manifest_path(run)
    pdf, layout_json = ws.pdf_path(run), ws.layout_path(run)
    photo_dir = Path(options.photos) if options.photos else ws.photos_dir(run)
    ingest_json = ws.ingest_path(run)
    metrics = ws.metrics_path(run)
    index = ws.report_path(run)
    timings: dict[str, float] = {}
    force = options.force

    def stage(number: int, name: str, why_skip: str | None, work: Callable[[], str | None]) -> None:
        label = f"[{number}/{len(STAGES)}] {name:<10}"
        if why_skip:
            echo(f"{label} skipped: {why_skip}")
            return
        start = time.perf_counter()
        summary = work()
        timings[name] = time.perf_counter() - start
        lines = (summary or "").strip().splitlines() or ["done"]
        echo(f"{label} {lines[0]}  ({timings[name]:.0f} s)")
        for line in lines[1:]:
            echo(f"{'':<16} {line}")

    def stop(name: str) -> bool:
        if options.stop_after == name:
            echo(f"stopped after {name} (--stop-after)")
            return True
        return False

    def do_craft():
        m = craft.craft(ws, run, CraftOptions(**{**options.craft.__dict__, "force": force}))
        return craft.summary_line(m, ws.printouts(run))

    stage(1, "craft", None, do_craft)
    if stop("craft"):
        return timings

    layout_skip = None
    if pdf.exists() and layout_json.exists() and not force:
        layout_skip = f"{pdf.name} exists (it may be printed already; --force redoes it)"
        if records.read(records.LAYOUT, ws, run).manifest_sha256 != sha256_file(manifest):
            layout_skip += "; note: the run was crafted again since, the PDF shows the earlier manifest"
    stage(2, "layout", layout_skip, lambda: layout.make_layout(
        ws, run, paper=options.paper, dpi=options.dpi, image_mm=options.image_mm,
        variants=options.variants, force=True).summary)
    if stop("layout"):
        return timings

    have_photos = bool(ws.list_photos(run, photo_dir))
    if not options.simulate:
        sim_skip = "real photos expected (use --simulate to photograph the PDF in software)"
    elif options.photos:
        sim_skip = "--photos given"
    elif ws.simulated_path(run).exists() and have_photos and _newer([ws.simulated_path(run)], [pdf]) \
            and not force:
        sim_skip = "simulated photos already there"
    else:
        sim_skip = None
    stage(3, "simulate", sim_skip, lambda: simulate.summary_line(simulate.simulate_run(
        ws, run, preset=options.preset, photos_per_page=options.photos_per_page, seed=options.craft.seed,
        resolution=options.resolution, force=True)))
    if stop("simulate"):
        return timings

    if not ws.list_photos(run, photo_dir):
        ingest_skip = (f"no photos in {photo_dir} yet: print {pdf}, photograph every sheet, put the photos "
                       f"there and run this command again")
    elif not force and sim_skip is not None and not _new_photos(ws, run, photo_dir):
        ingest_skip = f"every photo in {photo_dir} is ingested already"
    else:
        ingest_skip = None

    def do_ingest():
        state = ingest.ingest_run(ws, run, options.photos, force=force or sim_skip is None)
        if state["summary"]["accepted"] == 0:
            raise PhysicalError(f"no usable photo of run {run!r}: see {ingest_json}")
        return ingest.summary_line(state)

    stage(4, "ingest", ingest_skip, do_ingest)
    if stop("ingest"):
        return timings

    eval_skip = "metrics.json is up to date" if not force and _newer([metrics], [manifest, ingest_json]) else None

    def do_evaluate():
        doc = evaluate.evaluate(ws, run, threshold=options.threshold, batch_size=options.craft.batch_size,
                                device=options.craft.device, progress=options.progress)
        return f"{len(doc['rows'])} rows → {metrics}"

    stage(5, "evaluate", eval_skip, do_evaluate)
    if stop("evaluate"):
        return timings

    tr_skip = None
    if not options.kinds:
        tr_skip = "no transforms asked for"
    elif not force and _transforms_current(ws, run):
        tr_skip = "transform rows of this craft already in transforms.json"

    def do_transforms():
        doc = evaluate.evaluate_transforms(ws, run, kinds=list(options.kinds), seed=options.craft.seed,
                                           threshold=options.threshold, batch_size=options.craft.batch_size,
                                           device=options.craft.device, progress=options.progress,
                                           grid=options.transform_grid, eps=[max(options.craft.eps)])
        n = sum(1 for r in doc["rows"] if r["stage"].startswith("transform:"))
        return f"{n} transform rows ({', '.join(options.kinds)}; ε = {max(options.craft.eps):g} as in the paper)"

    stage(6, "transforms", tr_skip, do_transforms)
    if stop("transforms"):
        return timings

    report_skip = "index.html is up to date" if not force and _newer([index], [manifest, ingest_json, metrics, ws.transforms_path(run)]) else None
    stage(7, "report", report_skip, lambda: f"{report.build_report(ws, run)}")
    return timings


def closing_lines(ws: Workspace, run: str) -> list[str]:
    """The headline numbers (from metrics.json, however old) and the report's path."""
    lines = []
    metrics = records.read_optional(records.METRICS, ws, run)
    if metrics is not None:
        lines += ["headline, each attack at its largest ε:"] + ["  " + line for line in headline(metrics.dump()).splitlines()]
    index = ws.report_path(run)
    if index.exists():
        lines.append(f"report: {index}")
    return lines


def _pct(v) -> str:
    return "—" if v is None else f"{100 * v:.0f}%"


def headline(doc: dict) -> str:
    """Clean vs adversarial top-1 and the destruction rate per attack at its largest ε."""
    rows = [r for r in doc["rows"] if (r.get("crafted_by", r["model"]) == r["model"] or "crafted_by" not in r)
            and r.get("target") is None]   # targeted variants: targeted_lines
    avg = [r for r in rows if r["subset"] == "average" and r["stage"] in ("png", "photo")]
    if not avg:
        return "no rows"
    largest = {}
    for r in avg:
        largest[r["attack"]] = max(largest.get(r["attack"], 0), r["eps"] or 0)
    lines = []
    for stage_name in ("png", "photo"):
        sel = [r for r in avg if r["stage"] == stage_name and r["eps"] == largest[r["attack"]]]
        if not sel:
            continue
        clean = sel[0]["clean_top1"]
        parts = [f"{r['variant']} {_pct(r['adv_top1'])}" for r in sel]
        lines.append(f"{'digital' if stage_name == 'png' else 'photo':<7} top-1: clean {_pct(clean)} | "
                     + " ".join(parts))
        if stage_name == "photo":
            pre = {r["variant"]: r for r in rows if r["subset"] == "prefiltered" and r["stage"] == "photo"}
            parts = []
            for r in sel:
                p = pre.get(r["variant"], {})
                parts.append(f"{r['attack']} {_pct(r['destruction_top1'])} "
                             f"(n={r['destruction_n']}; prefiltered {_pct(p.get('destruction_top1'))}, n={p.get('n', 0)})")
            lines.append("destruction by the photo, top-1: " + "; ".join(parts))
    return "\n".join(lines)


DEMO_TARGET = ("chelsea", "guacamole")   # the lecture's tabby cat → guacamole (Athalye et al. 2018)
# The demo's targeted EOT steps: half craft's default (160 at ε = 16), which survives printers and phones
# the channel never drew from better (docs/robust.md) but takes ~65 s for this one image on 2 cores; the
# demo photographs with simulate, through which 80 steps survive as well (100 % of 38, typical), and keeps
# `physical demo` within its 2 minutes.
DEMO_EOT_STEPS = 80


def targeted_demo(ws: Workspace, run: str, base: PipelineOptions, quick: bool = False,
                  echo: Callable[[str], None] = print) -> None:
    """`physical demo`'s first part: chelsea (tabby) → guacamole by targeted EOT and targeted BIM at
    ε = 16, printed and photographed like the rest; prints what the model saw at each stage."""
    image, target = DEMO_TARGET
    craft = CraftOptions(**{**base.craft.__dict__, "images": f"demo:{image}", "attacks": ("bim", "eot"),
                            "eps": (16.0,), "target": target, "eot_samples": 8, "eot_steps": DEMO_EOT_STEPS})
    options = PipelineOptions(**{**base.__dict__, "craft": craft, "kinds": (), "photos_per_page": 1})
    echo(f"physical demo, part 1: {image} → {target} (targeted BIM and EOT through the {craft.channel} channel, ε = 16)")
    run_pipeline(ws, run, options, echo=echo)
    for line in targeted_lines(ws, run):
        echo(line)


def targeted_lines(ws: Workspace, run: str) -> list[str]:
    """Per targeted variant: its target's confidence on the PNG and in the photo (crafting model)."""
    metrics = records.read_optional(records.METRICS, ws, run)
    if metrics is None:
        return []
    doc = metrics.dump()
    manifest = ws.load_manifest(run).dump()
    spec = manifest.get("model", {}).get("spec")
    crops = {(c["image_id"], c["variant"]): c for c in doc.get("predictions") or [] if c.get("model") == spec}
    from physical.report.inputs import ClassNames, manifest_view
    from physical.report.page import upper_bound

    class_name = ClassNames(manifest_view(manifest))
    lines = []
    for img in manifest["images"]:
        for name, rec in img["variants"].items():
            if rec.get("target") is None:
                continue
            t = rec["target"]
            d = rec["pred"]
            photo = crops.get((img["id"], name))

            def conf(pred):   # p(target); outside the stored top-5 only its bound is known
                p = dict(zip(pred["top5"], pred["prob5"])).get(t)
                return f"p = {p:.2f}" if p is not None else f"p < {upper_bound(pred['prob5'][-1])}"

            def seen_as(pred):
                return "" if pred["top5"][0] == t else f" → {class_name(pred['top5'][0])}"
            seen = "not photographed" if photo is None else (
                f"photo: {'ON TARGET' if photo['top5'][0] == t else 'lost'}{seen_as(photo)} ({conf(photo)})")
            lines.append(f"  {img['id']} {name}: digital {'on target' if d['top5'][0] == t else 'missed'}"
                         f"{seen_as(d)} ({conf(d)}) | {seen}")
    index = ws.reports(run) / "index.html"
    if index.exists():
        lines.append(f"  report: {index}")
    return lines
