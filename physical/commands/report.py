"""`physical report`: the run's static HTML report."""
from __future__ import annotations

import click

from physical.commands import options as o


def _classify_gone(ctx, param, value):
    # The report used to classify photo crops itself; evaluate now stores their predictions.
    # Accepted (hidden) so that existing scripts keep working, with a note.
    if value is not None:
        click.echo("note: --classify/--no-classify no longer does anything: the gallery shows the "
                   "crop predictions `physical evaluate` stored", err=True)
    return value


@click.command("report", short_help="Write the HTML report for a run.")
@o.run_option
@click.option("--sample", type=click.IntRange(0, 10000), default=6, show_default=True,
              help="How many images the gallery shows (sampled with the run's seed).")
@o.threshold_option("Confidence threshold marked on the error-vs-acceptance curve.")
@click.option("--classify/--no-classify", default=None, hidden=True, expose_value=False,
              callback=_classify_gone)
@click.option("--profile", "profile", type=click.Path(dir_okay=False), default=None,
              help="A `physical calibrate fit` profile: the report shows it and, per variant, the fraction of "
                   "pixels outside its printable gamut (default: the profile the run was simulated or crafted through).")
@o.workspace_option
@click.pass_context
def report(ctx, run, sample, threshold, profile):
    """Write reports/RUN/index.html: the paper's table for this run, plots, galleries, ingest.

    Works on a partial run (e.g. only crafted) and says which stages are missing. The folder
    reports/RUN/ is self-contained (no network, relative links): zip it and send it. It loads
    no model: the photo crops' predictions are those `physical evaluate` stored.
    """
    from physical.report import build_report

    index = build_report(ctx.obj["workspace"], run, sample=sample, threshold=threshold, profile=profile)
    click.echo(str(index))
