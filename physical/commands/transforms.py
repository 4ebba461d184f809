"""`physical transforms`: the paper's artificial transformations (Section 4)."""
from __future__ import annotations

import click

from physical.commands import options as o
from physical.commands.scale import procs_option, relaunched


@click.command(short_help="The paper's artificial transformations (blur, noise, JPEG, ...).")
@o.run_option
@o.kinds_option()
@o.seed_option("Seed of the Gaussian noise transform.")
@o.eps_option(None, "Only the adversarial variants at these ε, e.g. 16 (the paper's Section 4). Default: all.")
@o.models_option
@o.threshold_option()
@o.labels_file_option("For a model without ImageNet's 1000 classes: one class per line (WordNet id or name).")
@o.batch_size_option
@o.device_option
@o.workspace_option
@o.service_options
@procs_option
@click.pass_context
def transforms(ctx, run, kinds, seed, eps, models, threshold, labels, batch_size, device, service, procs):
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
    from physical.evaluate import evaluate_transforms
    from physical.transforms import KINDS

    kind_list = [k for k in KINDS if kinds is None or k in kinds]
    eps_list = list(eps) if eps else None

    obj = ctx.obj or {}
    ws = obj["workspace"]
    quiet = obj.get("quiet", False)
    from physical.service import session

    with session(list(models) or None, service) as specs:   # oip: specs, credentials kept out of them
        doc = evaluate_transforms(ws, run, kinds=kind_list, seed=seed, models=specs,
                                  threshold=threshold, batch_size=batch_size, device=device, labels=labels,
                                  progress=not quiet, eps=eps_list)
    if not quiet:
        click.echo(transforms_table(doc, kind_list))
        click.echo(f"wrote {ws.reports(run) / 'metrics.json'} ({sum(1 for r in doc['rows'] if r['stage'].startswith('transform:'))} transform rows)")


def transforms_table(doc: dict, kinds) -> str:
    """Top-1 destruction rate (%, average subset) per model × variant at each kind's strongest
    setting of the grid (the value farthest from the identity); every value is in metrics.json."""
    from physical.service import display_name
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
        lines.append(f"{display_name(model)[:18]:<18} {variant[:12]:<12} " + " ".join(row))
    return "\n".join(lines)
