"""Options shared by several commands, declared once (rasterio's rio/options.py)."""
import click

run_option = click.option("--run", "run", required=True, metavar="NAME",
                          help="Run name: a folder under printouts/, captures/ and reports/.")
model_option = click.option("--model", default="default", show_default=True, metavar="SPEC",
                            help="default (EfficientNet-Lite0), efficientnet-lite1/2, timm:NAME, "
                                 "torchvision:NAME (weights from the local cache), or a .pt/.pth file.")
batch_size_option = click.option("--batch-size", default=16, show_default=True, type=click.IntRange(min=1),
                                 help="Images per forward/backward pass.")
device_option = click.option("--device", default="auto", show_default=True,
                             type=click.Choice(["auto", "cpu", "cuda"]), help="Where the model runs.")
force_option = click.option("--force", is_flag=True, help="Redo and overwrite this stage's existing outputs.")


def service_options(f):
    """--service-* options for models behind an Open Inference Protocol service (physical/service.py);
    the command gets them as one `service` argument (a ServiceOptions)."""
    import functools

    opts = [
        click.option("--service-scale", type=click.Choice(["0-1", "0-255"]), default="0-1", show_default=True,
                     metavar="0-1|0-255",
                     help="oip: models with an FP32 input: the pixel range the service expects."),
        click.option("--service-classes", type=click.Path(dir_okay=False), default=None, metavar="FILE",
                     help="oip: models with another label set: one line per output class, in order, as an "
                          "ImageNet index, WordNet id or class name (`-`: none), mapping it to ImageNet."),
        click.option("--service-batch", type=click.IntRange(min=1), default=8, show_default=True, metavar="N",
                     help="oip: images per request."),
        click.option("--service-concurrency", type=click.IntRange(min=1), default=4, show_default=True, metavar="N",
                     help="oip: requests in flight at once."),
        click.option("--service-timeout", type=click.FloatRange(min=0, min_open=True), default=30.0,
                     show_default=True, metavar="SECONDS", help="oip: seconds to wait for one request."),
        click.option("--service-retries", type=click.IntRange(min=0), default=3, show_default=True, metavar="N",
                     help="oip: retries (with backoff) after a connection error, timeout, 429 or 5xx. "
                          "The token, if any, is read from PHYSICAL_OIP_TOKEN only."),
    ]

    @functools.wraps(f)
    def wrapper(*args, service_scale, service_classes, service_batch, service_concurrency, service_timeout,
                service_retries, **kwargs):
        from physical.service import ServiceOptions

        kwargs["service"] = ServiceOptions(scale=255.0 if service_scale == "0-255" else 1.0, classes=service_classes,
                                           batch=service_batch, concurrency=service_concurrency,
                                           timeout=service_timeout, retries=service_retries)
        return f(*args, **kwargs)

    for opt in reversed(opts):
        wrapper = opt(wrapper)
    return wrapper
