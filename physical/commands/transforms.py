"""`physical transforms`: the paper's artificial transformations (Section 4)."""
from __future__ import annotations

import click

from physical.commands.options import batch_size_option, device_option, run_option
from physical.commands.scale import procs_option, relaunched


@click.command(short_help="The paper's artificial transformations (blur, noise, JPEG, ...).")
@run_option
@click.option("--kinds", default="brightness,contrast,blur,noise,jpeg", show_default=True,
              help="Comma-separated transforms to apply.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the Gaussian noise transform.")
@click.option("--eps", "eps", default=None, metavar="LIST",
              help="Only the adversarial variants at these ε, e.g. 16 (the paper's Section 4). Default: all.")
@click.option("--model", "models", multiple=True, metavar="SPEC",
              help="Evaluating model (repeatable). Default: the model that crafted the run.")
@click.option("--threshold", type=float, default=0.8, show_default=True,
              help="Thresholded classifier: accept a prediction only when its top-1 probability is above this.")
@click.option("--labels", type=click.Path(dir_okay=False), default=None,
              help="For a model without ImageNet's 1000 classes: one class per line (WordNet id or name).")
@batch_size_option
@device_option
@procs_option
@click.pass_context
def transforms(ctx, run, kinds, seed, eps, models, threshold, labels, batch_size, device, procs):
    """Apply brightness, contrast, Gaussian blur, Gaussian noise and JPEG over the grids of
    docs/metrics.md to every clean and adversarial PNG, and measure the destruction rate of each.
    The rows (stage `transform:<kind>:<value>`) are merged into reports/<run>/metrics.json:
    `physical evaluate`'s rows are kept, this command's earlier rows replaced.

    \b
    Example:
      physical transforms --run r1 --kinds blur,jpeg
    """
    if relaunched(ctx, procs):  # N torchrun ranks, each predicting every N-th item
        return
    from physical.errors import PhysicalError
    from physical import transforms as T

    if not 0.0 < threshold < 1.0:
        raise PhysicalError(f"--threshold must be strictly between 0 and 1, got {threshold:g}")
    try:
        kind_list = T.parse_kinds(kinds)
    except ValueError as exc:
        raise PhysicalError(str(exc)) from None
    from physical.evaluate import evaluate_transforms

    eps_list = None
    if eps:
        try:
            eps_list = [float(e) for e in eps.split(",") if e.strip()]
        except ValueError:
            raise PhysicalError(f"--eps must be a comma list of numbers, got {eps!r}") from None

    obj = ctx.obj or {}
    ws = obj["workspace"]
    quiet = obj.get("quiet", False)
    doc = evaluate_transforms(ws, run, kinds=kind_list, seed=seed, models=list(models) or None,
                              threshold=threshold, batch_size=batch_size, device=device, labels=labels,
                              progress=not quiet, eps=eps_list)
    if not quiet:
        click.echo(transforms_table(doc, kind_list))
        click.echo(f"wrote {ws.reports(run) / 'metrics.json'} ({sum(1 for r in doc['rows'] if r['stage'].startswith('transform:'))} transform rows)")


def transforms_table(doc: dict, kinds) -> str:
    """Top-1 destruction rate (%, average subset) per model × variant at each kind's strongest
    setting of the grid (the value farthest from the identity); every value is in metrics.json."""
    from physical.transforms import IDENTITY

    grid = (doc.get("transforms") or {}).get("grid", {})
    strongest = {}
    for kind in kinds:
        values = grid.get(kind) or []
        if values:
            ident = IDENTITY[kind] if IDENTITY[kind] is not None else 101
            strongest[kind] = max(values, key=lambda v: (abs(v - ident), v))
    cells = {(r["model"], r["variant"], r["transform"]): r for r in doc["rows"]
             if r["subset"] == "average" and r.get("transform") in strongest
             and r.get("transform_value") == strongest[r["transform"]]}
    pairs = list(dict.fromkeys((m, v) for m, v, _ in cells))
    heads = [f"{k}:{strongest[k]:g}" for k in strongest]
    lines = ["destruction rate top-1 (%) at the strongest setting (all settings: metrics.json)",
             f"{'model':<18} {'variant':<12} " + " ".join(f"{h:>15}" for h in heads)]
    for model, variant in pairs:
        row = []
        for kind in strongest:
            d = cells.get((model, variant, kind), {}).get("destruction_top1")
            row.append(f"{'-' if d is None else f'{100 * d:.1f}':>15}")
        lines.append(f"{model[:18]:<18} {variant[:12]:<12} " + " ".join(row))
    return "\n".join(lines)
