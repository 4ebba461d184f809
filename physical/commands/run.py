"""`physical run`: the whole loop on your images, skipping stages already done."""
import click

from physical.commands.craft import _csv_list, _eps_list
from physical.commands.options import batch_size_option, device_option, model_option, run_option


@click.command(short_help="Run the whole loop on your images; skips stages already done.")
@click.option("--images", default="demo", show_default=True, metavar="DIR|demo", help="Folder of images, or 'demo'.")
@click.option("--labels", type=click.Path(dir_okay=False), default=None, help="CSV of 'file,label' rows.")
@run_option
@click.option("--attacks", default="fgsm,bim,ill,noise", show_default=True, callback=_csv_list,
              help="Comma list from fgsm, bim, ill, noise, gauss.")
@click.option("--eps", default="2,4,8,16", show_default=True, callback=_eps_list, help="Comma list of ε (0..255 levels).")
@click.option("--limit", default=None, type=int, help="Seeded random subset of N images.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of every random choice.")
@model_option
@batch_size_option
@device_option
@click.option("--paper", type=click.Choice(["a4", "letter"]), default="a4", show_default=True)
@click.option("--image-mm", default=40.0, show_default=True, type=float, help="Printed size of each image.")
@click.option("--photos", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="Your photos of the printed sheets [default: captures/RUN/photos].")
@click.option("--simulate", is_flag=True, help="No printer: photograph the PDF with the simulated phone.")
@click.option("--preset", type=click.Choice(["mild", "typical", "harsh"]), default="typical", show_default=True,
              help="Simulator preset (with --simulate).")
@click.option("--kinds", default="brightness,contrast,blur,noise,jpeg", show_default=True,
              help="Artificial transformations to study ('' for none).")
@click.option("--stop-after", type=click.Choice(["craft", "layout", "simulate", "ingest", "evaluate", "transforms"]),
              default=None, help="Stop after this stage (e.g. layout, to print the sheets).")
@click.option("--force", is_flag=True, help="Redo every stage, overwriting its outputs.")
@click.pass_context
def run(ctx, images, labels, run, attacks, eps, limit, seed, model, batch_size, device, paper, image_mm, photos,
        simulate, preset, kinds, stop_after, force):
    """Craft, lay out, ingest photos, evaluate, transform and report — every stage that is not
    done yet.

    \b
    With a printer:
      physical run --images DIR --run r1 --stop-after layout   # then print printouts/r1/r1.pdf
      # photograph every sheet, put the photos in captures/r1/photos/, then:
      physical run --images DIR --run r1
    Without one:
      physical run --images DIR --run r1 --simulate
    """
    from physical.craft import CraftOptions
    from physical.pipeline import PipelineOptions, closing_lines, run_pipeline

    ws = ctx.obj["workspace"]
    quiet = ctx.obj.get("quiet")
    craft = CraftOptions(images=images, labels=labels, attacks=tuple(attacks), eps=tuple(eps), model=model,
                         limit=limit, seed=seed, batch_size=batch_size, device=device, progress=not quiet)
    options = PipelineOptions(craft=craft, paper=paper, image_mm=image_mm, photos=photos, simulate=simulate,
                              preset=preset, kinds=tuple(k.strip() for k in kinds.split(",") if k.strip()),
                              stop_after=stop_after, force=force, progress=not quiet)
    run_pipeline(ws, run, options, echo=click.echo)
    if not stop_after:
        for line in closing_lines(ws, run):
            click.echo(line)
