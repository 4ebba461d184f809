"""`physical demo`: the whole experiment on bundled photos, with simulated paper and phone."""
import click

from physical.commands import options as o


@click.command(short_help="Run the whole loop on bundled photos with a simulated printer and camera.")
@click.option("--run", "run", default="demo", show_default=True, type=o.RunName(), help="Run name.")
@o.preset_option()
@click.option("--quick", is_flag=True,
              help="ε = 4 and 16 only, a coarse transform grid and 8 MP photos: about half the time.")
@o.device_option
@click.option("--force", is_flag=True, help="Start over instead of reusing an earlier demo run.")
@o.workspace_option
@click.pass_context
def demo(ctx, run, preset, quick, device, force):
    """Craft adversarial examples for the bundled photos (coffee, a cat, a rocket, …), lay them
    out as a printable PDF, print and photograph it in software, ingest the photos, evaluate,
    study the artificial transformations and write the HTML report. The paper's settings:
    ε = 2, 4, 8, 16, its transformation grids at ε = 16, 12 MP photos. Offline; about two
    minutes on 2 CPU cores. Prints the report's path and the headline numbers.
    """
    from physical.craft import CraftOptions
    from physical.data import DEMO_IMAGES
    from physical.pipeline import PipelineOptions, closing_lines, run_pipeline

    ws = ctx.obj["workspace"]
    quiet = ctx.obj.get("quiet")
    eps = (4.0, 16.0) if quick else (2.0, 4.0, 8.0, 16.0)
    craft = CraftOptions(images="demo", attacks=("fgsm", "bim", "ill", "noise"), eps=eps, device=device,
                         batch_size=8, progress=not quiet)
    # The quick demo uses every transform kind on a coarser grid and 8 MP photos.
    grid = None if not quick else {"brightness": (-30, 30), "contrast": (0.7, 1.3), "blur": (0.7, 1.5),
                              "noise": (10, 20), "jpeg": (30, 70)}
    options = PipelineOptions(craft=craft, simulate=True, preset=preset, transform_grid=grid,
                              resolution=(3264, 2448) if quick else (4000, 3000), force=force, progress=not quiet)
    click.echo(f"physical demo: {len(DEMO_IMAGES)} bundled photos, "
               f"attacks fgsm/bim/ill/noise at ε = {', '.join(f'{e:g}' for e in eps)}, simulated print + phone "
               f"({preset}); workspace {ws.root}")
    # First the robust, targeted example: the tabby cat made guacamole by EOT, beside targeted BIM.
    from physical.pipeline import targeted_demo

    targeted_demo(ws, f"{run}-target", options, quick=quick, echo=click.echo)
    run_pipeline(ws, run, options, echo=click.echo)
    for line in closing_lines(ws, run):
        click.echo(line)
