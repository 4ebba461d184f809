"""`physical evaluate`: accuracy, destruction rate, prefiltered and thresholded error per attack and ε."""
from __future__ import annotations

import click

from physical.commands import options as o
from physical.commands.scale import procs_option, relaunched


@click.command(short_help="Accuracy, destruction rate and prefiltered error per attack and eps.")
@o.run_option
@o.models_option
@o.threshold_option()
@o.labels_file_option("For a model without ImageNet's 1000 classes: a text file, one class per line in the model's "
                      "output order (WordNet id or name).")
@o.batch_size_option
@o.device_option
@o.workspace_option
@o.service_options
@procs_option
@click.pass_context
def evaluate(ctx, run, models, threshold, labels, batch_size, device, service, procs):
    """Evaluate a run: the quantised PNGs, and the phone-photo crops when `physical ingest` made
    them. Writes reports/<run>/metrics.json and metrics.csv (schema: docs/metrics.md).

    \b
    Examples:
      physical evaluate --run r1
      physical evaluate --run r1 --model default --model efficientnet-lite1   # + transfer matrix
      physical evaluate --run r1 --model default --model oip:http://localhost:8080/v2/models/resnet
    """
    if relaunched(ctx, procs):  # N torchrun ranks, each predicting every N-th item
        return
    from physical.evaluate import evaluate as run_evaluate, summary_table
    from physical.service import session

    obj = ctx.obj or {}
    ws = obj["workspace"]
    quiet = obj.get("quiet", False)
    with session(list(models) or None, service) as specs:   # oip: specs, credentials kept out of them
        doc = run_evaluate(ws, run, models=specs, threshold=threshold, batch_size=batch_size,
                           device=device, labels=labels, progress=not quiet)
    if doc["photo"]["status"] == "missing":
        click.echo(f"photos: {doc['photo']['message']}", err=True)
    if not quiet:
        click.echo(summary_table(doc))
        if doc.get("transfer"):
            click.echo(transfer_table(doc["transfer"]))
        click.echo(f"wrote {ws.reports(run) / 'metrics.json'} ({len(doc['rows'])} rows) and metrics.csv")


def transfer_table(transfer: dict) -> str:
    from physical.service import display_name

    models = transfer["models"]
    lines = [f"transfer: top-1 error (%) of images crafted on {transfer['crafted_by']}",
             f"{'stage':<6} {'variant':<12} " + " ".join(f"{display_name(m)[:18]:>18}" for m in models)]
    for e in transfer["entries"]:
        cells = []
        for m in models:
            v = e["error"].get(m)
            cells.append(f"{'-' if v is None else f'{100 * v:.1f}':>18}")
        lines.append(f"{e['stage']:<6} {e['variant'][:12]:<12} " + " ".join(cells))
    return "\n".join(lines)
