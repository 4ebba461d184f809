"""`physical calibrate`: print a chart, photograph it, fit a profile of your printer + phone."""
from __future__ import annotations

import click


@click.group("calibrate", short_help="Fit a profile of your printer and phone from photos of a chart.")
def calibrate():
    """Measure your printer and phone: print the chart, photograph it 2–5 times in the light you
    use for the sheets, and fit a profile that `physical simulate --profile` uses.

    \b
    Examples:
      physical calibrate chart --out chart/
      physical calibrate fit --photos chart-photos/ --out profile.json
      physical simulate --run r1 --profile profile.json
    """


@calibrate.command("chart")
@click.option("--paper", type=click.Choice(["a4", "letter"], case_sensitive=False), default="a4",
              show_default=True, help="Paper size.")
@click.option("--out", "out", default="calibration", show_default=True, type=click.Path(file_okay=False),
              help="Folder for chart.pdf and chart.json.")
def chart(paper, out):
    """Write OUT/chart.pdf (print it at 100 %) and OUT/chart.json (every patch's digital value
    and position in page millimetres)."""
    from physical.chart import write_chart

    _, summary = write_chart(out, paper.lower())
    click.echo(summary)


@calibrate.command("fit")
@click.option("--photos", "photos", required=True, type=click.Path(file_okay=False),
              help="Folder of photos of the printed chart (.jpg as the phone saved them).")
@click.option("--out", "out", default="profile.json", show_default=True, type=click.Path(dir_okay=False),
              help="Where to write the profile.")
def fit(photos, out):
    """Fit the profile: colour transform and tone curves, blur, noise, JPEG quality, light
    fall-off; prints the held-out patches' CIEDE2000."""
    from physical.calibrate import fit as fit_profile
    from physical.calibrate import write_profile

    profile, lines = fit_profile(photos)
    write_profile(profile, out)
    for line in lines:
        click.echo(line)
    click.echo(f"wrote {out}")
