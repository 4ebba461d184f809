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
