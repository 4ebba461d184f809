"""`physical ingest`: phone photos → markers → homography → one crop per printed image."""
import click

from physical.commands import options as o


@click.command(short_help="Find markers in phone photos, undo perspective, crop each image.")
@o.run_option
@o.photos_option()
@click.option("--workers", type=click.IntRange(1, 256), default=None,
              help="Processes reading photos in parallel [default: CPU cores, at most 4].")
@click.option("--max-megapixels", type=o.FiniteFloat(1, 10000), default=200, show_default=True,
              help="Refuse larger images undecoded (decompression bombs).")
@click.option("--force", is_flag=True, help="Forget earlier ingests of this run (crops and ingest.json).")
@o.workspace_option
@click.pass_context
def ingest(ctx, run, photos, workers, max_megapixels, force):
    """Read every photo in DIR, find the sheet's markers, and write one crop per printed image
    to captures/RUN/crops/<image id>/<variant>.png (further photos of the same image:
    <variant>-2.png, …) and the record captures/RUN/ingest.json: for every photo whether it
    was used and why not. Photos already ingested (same content) are skipped, so adding photos
    and running again adds their crops. The sharpest crop of each image is the one evaluated.

    Exits non-zero only when no photo could be used.

    \b
    Examples:
      physical ingest --run r1                       # captures/r1/photos
      physical ingest --run r1 --photos ~/DCIM/sheets
    """
    from tqdm import tqdm

    from physical.ingest import ingest_run, summary_line

    ws = ctx.obj["workspace"]
    bar = tqdm(unit="photo", desc="ingest", disable=ctx.obj.get("quiet"), leave=False, delay=2)

    def set_total(n):
        bar.total = n
        bar.refresh()

    try:
        state = ingest_run(ws, run, photos, workers=workers, max_pixels=int(max_megapixels * 1e6), force=force,
                           progress=bar.update, total=set_total)
    finally:
        bar.close()
    click.echo(summary_line(state))
    if state["summary"]["accepted"] == 0:
        raise click.ClickException(f"no usable photo of run {run!r}: see {ws.captures(run) / 'ingest.json'}")
