"""`physical serve`: upload photos from a phone and see, as you shoot, which images are in."""
import click

from physical.commands import options as o
from physical.commands.options import run_option


@click.command(short_help="Take the photos with a phone: upload page with live ingest feedback.")
@run_option
@click.option("--host", default="0.0.0.0", show_default=True,
              help="Address to listen on (0.0.0.0: every network interface, so a phone on the same "
                   "Wi-Fi can connect; 127.0.0.1: this computer only).")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="TCP port (0: any free port).")
@click.option("--max-upload-mb", type=o.FiniteFloat(0.1, 100000), default=40, show_default=True,
              help="Largest upload (one request: a photo from the page) accepted.")
@click.option("--max-megapixels", type=o.FiniteFloat(1, 10000), default=200, show_default=True,
              help="Ingest refuses larger images undecoded (decompression bombs).")
@o.workspace_option
@click.pass_context
def serve(ctx, run, host, port, max_upload_mb, max_megapixels):
    """Serve a page for a phone: it takes photos of the printed sheets of RUN and uploads them;
    each is stored in captures/RUN/photos/ (named by its content hash; original bytes), ingested
    in the background, and the page shows at once whether it was usable and what to do if not
    ("move closer", "markers of image 5 of page 1 cut off", ...), and, per printed page, which
    images are in and which are still missing. When every printed image is in, the page offers
    to run `physical evaluate` and `physical report`.

    The URL printed (and shown as a QR code, also saved as captures/RUN/serve-qr.png) holds a
    random token: anyone with the URL can upload to this run until you stop the server (Ctrl-C).

    \b
    Examples:
      physical serve --run r1                 # phone and computer on the same Wi-Fi
      physical serve --run r1 --port 9000
    """
    from physical.serve import serve as run_server

    run_server(ctx.obj["workspace"], run, host=host, port=port, max_upload_mb=max_upload_mb,
               max_pixels=int(max_megapixels * 1e6), echo=click.echo)
