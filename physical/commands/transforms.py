"""`physical transforms`: the paper's artificial transformations (Section 4)."""
from __future__ import annotations

import click

from physical.commands.options import batch_size_option, device_option, run_option


@click.command(short_help="The paper's artificial transformations (blur, noise, JPEG, ...).")
@run_option
@click.option("--kinds", default="brightness,contrast,blur,noise,jpeg", show_default=True,
              help="Comma-separated transforms to apply.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the Gaussian noise transform.")
@click.option("--model", "models", multiple=True, metavar="SPEC",
              help="Evaluating model (repeatable). Default: the model that crafted the run.")
@click.option("--threshold", type=float, default=0.8, show_default=True,
              help="Thresholded classifier: accept a prediction only when its top-1 probability is above this.")
@click.option("--labels", type=click.Path(dir_okay=False), default=None,
              help="For a model without ImageNet's 1000 classes: one class per line (WordNet id or name).")
@batch_size_option
@device_option
@click.pass_context
def transforms(ctx, run, kinds, seed, models, threshold, labels, batch_size, device):
    """Apply brightness, contrast, Gaussian blur, Gaussian noise and JPEG over the grids of
    docs/metrics.md to every clean and adversarial PNG, and measure the destruction rate of each.
    The rows (stage `transform:<kind>:<value>`) are merged into reports/<run>/metrics.json:
    `physical evaluate`'s rows are kept, this command's earlier rows replaced.

    \b
    Example:
      physical transforms --run r1 --kinds blur,jpeg
    """
    from physical.errors import PhysicalError
    from physical import transforms as T

    if not 0.0 < threshold < 1.0:
        raise PhysicalError(f"--threshold must be strictly between 0 and 1, got {threshold:g}")
    try:
        kind_list = T.parse_kinds(kinds)
    except ValueError as exc:
        raise PhysicalError(str(exc)) from None
    from physical.evaluate import evaluate_transforms

    obj = ctx.obj or {}
    ws = obj["workspace"]
    quiet = obj.get("quiet", False)
    doc = evaluate_transforms(ws, run, kinds=kind_list, seed=seed, models=list(models) or None,
                              threshold=threshold, batch_size=batch_size, device=device, labels=labels,
                              progress=not quiet)
    if not quiet:
        click.echo(transforms_table(doc, kind_list))
        click.echo(f"wrote {ws.reports(run) / 'metrics.json'} ({sum(1 for r in doc['rows'] if r['stage'].startswith('transform:'))} transform rows)")


def transforms_table(doc: dict, kinds) -> str:
    """Destruction rate (top-1, average subset) per variant × transform value."""
    rows = [r for r in doc["rows"] if r.get("transform") in kinds and r["subset"] == "average"]
    lines = [f"{'model':<18} {'variant':<12} {'transform':<22} {'n':>4} {'adv@1':>6} {'d@1':>6} {'d@5':>6} {'d_n':>4}"]
    for r in rows:
        def pct(x):
            return "-" if x is None else f"{100 * x:.1f}"
        lines.append(f"{r['model'][:18]:<18} {r['variant'][:12]:<12} {r['stage'][10:][:22]:<22} {r['n']:>4} "
                     f"{pct(r['adv_top1']):>6} {pct(r['destruction_top1']):>6} {pct(r['destruction_top5']):>6} "
                     f"{r['destruction_n']:>4}")
    return "\n".join(lines)
