"""`physical layout`: the printable PDF (with fiducial markers) of a crafted run."""
from __future__ import annotations

import click

from physical.commands import options as o


@click.command("layout", short_help="Lay clean/adversarial pairs out as a printable PDF with markers.")
@o.run_option
@click.option("--paper", type=click.Choice(["a4", "letter"], case_sensitive=False), default="a4",
              show_default=True, help="Paper size.")
@click.option("--dpi", type=click.IntRange(72, 4800), default=600, show_default=True,
              help="Printer resolution; each image pixel becomes a whole number of printer dots.")
@o.image_mm_option()
@click.option("--variants", default=None, metavar="LIST", type=o.CommaList(),
              help="Comma list of variants to print, e.g. clean,fgsm-eps16 (default: all crafted).")
@click.option("--force", is_flag=True,
              help="Make a new layout in place of the current one (which is kept in printouts/RUN/layouts/).")
@o.workspace_option
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
                         variants=list(variants) if variants else None, force=force)
    click.echo(result.summary)
