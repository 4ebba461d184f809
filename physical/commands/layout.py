"""`physical layout`: the printable PDF (with fiducial markers) of a crafted run."""
from __future__ import annotations

import click

from physical.errors import PhysicalError


def _variants(value: str | None) -> list[str] | None:
    if value is None:
        return None
    names = list(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))
    if not names:
        raise PhysicalError("--variants is empty: give a comma list such as clean,fgsm-eps16")
    return names


@click.command("layout")
@click.option("--run", "run", required=True, help="Run to lay out (printouts/RUN/manifest.json).")
@click.option("--paper", type=click.Choice(["a4", "letter"], case_sensitive=False), default="a4",
              show_default=True, help="Paper size.")
@click.option("--dpi", type=click.IntRange(72, 4800), default=600, show_default=True,
              help="Printer resolution; each image pixel becomes a whole number of printer dots.")
@click.option("--image-mm", type=click.FloatRange(min=1, min_open=False), default=40.0, show_default=True,
              help="Printed size of an image's longer side, rounded to whole printer dots per pixel.")
@click.option("--variants", default=None, metavar="LIST",
              help="Comma list of variants to print, e.g. clean,fgsm-eps16 (default: all crafted).")
@click.option("--force", is_flag=True,
              help="Make a new layout in place of the current one (which is kept in printouts/RUN/layouts/).")
@click.pass_context
def layout(ctx, run, paper, dpi, image_mm, variants, force):
    """Lay a run's clean/adversarial pairs out as a printable PDF with fiducial markers.

    Writes printouts/RUN/RUN.pdf and printouts/RUN/layout.json (every image's and marker's
    position in page millimetres, read by `physical ingest`). Print the PDF at 100 % /
    "actual size" (no fit-to-page), in colour, on plain white paper; check the 50 mm bar.
    Every layout has its own id, printed in its markers: photos of a sheet of an earlier layout
    of the run are read against that layout, kept in printouts/RUN/layouts/ID/.
    """
    from physical.layout import make_layout

    result = make_layout(ctx.obj["workspace"], run, paper=paper.lower(), dpi=dpi, image_mm=image_mm,
                         variants=_variants(variants), force=force)
    click.echo(result.summary)
