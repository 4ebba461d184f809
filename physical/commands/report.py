"""`physical report`: the run's static HTML report."""
from __future__ import annotations

import click

from physical.commands import options as o


@click.command("report", short_help="Write the HTML report for a run.")
@o.run_option
@click.option("--sample", type=click.IntRange(0, 10000), default=6, show_default=True,
              help="How many images the gallery shows (sampled with the run's seed).")
@o.threshold_option("Confidence threshold marked on the error-vs-acceptance curve.")
@click.option("--classify/--no-classify", default=True, show_default=True,
              help="Classify the gallery's photo crops with the crafting model when evaluate stored no "
                   "per-crop predictions (loads the model).")
@o.workspace_option
@click.pass_context
def report(ctx, run, sample, threshold, classify):
    """Write reports/RUN/index.html: the paper's table for this run, plots, galleries, ingest.

    Works on a partial run (e.g. only crafted) and says which stages are missing. The folder
    reports/RUN/ is self-contained (no network, relative links): zip it and send it.
    """
    from physical.report import build_report

    index = build_report(ctx.obj["workspace"], run, sample=sample, threshold=threshold, classify=classify)
    click.echo(str(index))
