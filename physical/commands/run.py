"""`physical run`: the whole loop on your images, skipping stages already done."""
import click

from physical.commands import options as o

STAGES = ["craft", "layout", "simulate", "ingest", "evaluate", "transforms"]  # physical.pipeline.STAGES less report


@click.command(short_help="Run the whole loop on your images; skips stages already done.")
@o.images_option("Folder of images, or 'demo'.")
@o.labels_file_option("CSV of 'file,label' rows.")
@o.run_option
@o.attacks_option("Comma list from fgsm, bim, ill, noise, gauss.")
@o.eps_option()
@o.limit_option()
@o.seed_option()
@o.model_option
@o.batch_size_option
@o.device_option
@click.option("--paper", type=click.Choice(["a4", "letter"]), default="a4", show_default=True)
@o.image_mm_option()
@o.photos_option("Your photos of the printed sheets [default: captures/RUN/photos].")
@click.option("--simulate", is_flag=True, help="No printer: photograph the PDF with the simulated phone.")
@o.preset_option("Simulator preset (with --simulate).")
@o.kinds_option(allow_empty=True, help="Artificial transformations to study.")
@click.option("--stop-after", type=click.Choice(STAGES),
              default=None, help="Stop after this stage (e.g. layout, to print the sheets).")
@click.option("--force", is_flag=True, help="Redo every stage, overwriting its outputs.")
@o.workspace_option
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
                              preset=preset, kinds=_kinds(kinds),
                              stop_after=stop_after, force=force, progress=not quiet)
    run_pipeline(ws, run, options, echo=click.echo)
    if not stop_after:
        for line in closing_lines(ws, run):
            click.echo(line)


def _kinds(kinds):
    """None (not given) → every kind; () ('' given) → none."""
    from physical.transforms import KINDS

    return KINDS if kinds is None else tuple(k for k in KINDS if k in kinds)  # in KINDS order
