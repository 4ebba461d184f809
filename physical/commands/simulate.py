"""`physical simulate`: print + phone-camera simulator → captures/RUN/photos/*.jpg."""
import click

from physical.commands import options as o


@click.command(short_help="Simulate printing the PDF and photographing it with a phone.")
@o.run_option
@o.preset_option("Ranges the printer and camera parameters are drawn from (harsh: some photos fail).")
@click.option("--photos-per-page", default=1, show_default=True, type=click.IntRange(1, 100),
              help="Photos of every printed page (each with its own camera parameters).")
@o.seed_option("Seed of every random draw.")
@click.option("--resolution", default="4000x3000", show_default=True, metavar="WxH",
              help="Sensor size in pixels (4:3 phones: 4000x3000 = 12 MP); smaller is faster.")
@click.option("--force", is_flag=True, help="Replace earlier simulated photos (ingest then forgets their crops).")
@click.option("--profile", default=None, type=click.Path(dir_okay=False), metavar="PROFILE.json",
              help="A `physical calibrate fit` profile: its printer, colour, blur, noise and JPEG replace "
                   "the preset's (geometry and light still drawn from the preset).")
@o.workspace_option
@click.pass_context
def simulate(ctx, run, preset, photos_per_page, seed, resolution, force, profile):
    """Render printouts/RUN/RUN.pdf as a printer would print it, photograph every page with a
    simulated hand-held phone, and write captures/RUN/photos/sim-p<page>-<n>.jpg plus the ground
    truth captures/RUN/simulated.json. Then run `physical ingest --run RUN`.

    \b
    Examples:
      physical simulate --run r1
      physical simulate --run r1 --preset harsh --photos-per-page 3 --seed 7
      physical simulate --run r1 --resolution 1600x1200 --force
      physical simulate --run r1 --profile profile.json
    """
    from tqdm import tqdm

    from physical.simulate import parse_resolution, simulate_run, summary_line

    ws = ctx.obj["workspace"]
    size = parse_resolution(resolution)
    from physical import records

    layout = records.read_optional(records.LAYOUT, ws, run)
    n_pages = len(layout.pages) if layout is not None else None
    total = n_pages * photos_per_page if n_pages else None
    with tqdm(total=total, unit="photo", desc="simulate", disable=ctx.obj.get("quiet") or (total or 0) < 3,
              leave=False) as bar:
        result = simulate_run(ws, run, preset=preset, photos_per_page=photos_per_page, seed=seed,
                              resolution=size, force=force, progress=bar.update, profile=profile)
    click.echo(summary_line(result))
