"""`physical evaluate`: accuracy, destruction rate, prefiltered and thresholded error per attack and ε."""
from __future__ import annotations

import click

from physical.commands.options import batch_size_option, device_option, run_option
from physical.commands.scale import procs_option, relaunched


@click.command(short_help="Accuracy, destruction rate and prefiltered error per attack and eps.")
@run_option
@click.option("--model", "models", multiple=True, metavar="SPEC",
              help="Evaluating model; repeat for a transfer matrix. Default: the model that crafted the run. "
                   "SPEC: default, efficientnet-lite1, efficientnet-lite2, timm:NAME, torchvision:NAME, FILE.pt")
@click.option("--threshold", type=float, default=0.8, show_default=True,
              help="Thresholded classifier: accept a prediction only when its top-1 probability is above this "
                   "(strictly between 0 and 1).")
@click.option("--labels", type=click.Path(dir_okay=False), default=None,
              help="For a model without ImageNet's 1000 classes: a text file, one class per line in the model's "
                   "output order (WordNet id or name).")
@batch_size_option
@device_option
@procs_option
@click.pass_context
def evaluate(ctx, run, models, threshold, labels, batch_size, device, procs):
    """Evaluate a run: the quantised PNGs, and the phone-photo crops when `physical ingest` made
    them. Writes reports/<run>/metrics.json and metrics.csv (schema: docs/metrics.md).

    \b
    Examples:
      physical evaluate --run r1
      physical evaluate --run r1 --model default --model efficientnet-lite1   # + transfer matrix
    """
    if relaunched(ctx, procs):  # N torchrun ranks, each predicting every N-th item
        return
    from physical.errors import PhysicalError

    if not 0.0 < threshold < 1.0:
        raise PhysicalError(f"--threshold must be strictly between 0 and 1, got {threshold:g}")
    from physical.evaluate import evaluate as run_evaluate, summary_table

    obj = ctx.obj or {}
    ws = obj["workspace"]
    quiet = obj.get("quiet", False)
    doc = run_evaluate(ws, run, models=list(models) or None, threshold=threshold, batch_size=batch_size,
                       device=device, labels=labels, progress=not quiet)
    if doc["photo"]["status"] == "missing":
        click.echo(f"photos: {doc['photo']['message']}", err=True)
    if not quiet:
        click.echo(summary_table(doc))
        if doc.get("transfer"):
            click.echo(transfer_table(doc["transfer"]))
        click.echo(f"wrote {ws.reports(run) / 'metrics.json'} ({len(doc['rows'])} rows) and metrics.csv")


def transfer_table(transfer: dict) -> str:
    models = transfer["models"]
    lines = [f"transfer: top-1 error (%) of images crafted on {transfer['crafted_by']}",
             f"{'stage':<6} {'variant':<12} " + " ".join(f"{m[:18]:>18}" for m in models)]
    for e in transfer["entries"]:
        cells = []
        for m in models:
            v = e["error"].get(m)
            cells.append(f"{'-' if v is None else f'{100 * v:.1f}':>18}")
        lines.append(f"{e['stage']:<6} {e['variant'][:12]:<12} " + " ".join(cells))
    return "\n".join(lines)
