"""Options and parameter types shared by the commands, declared once (rasterio's rio/options.py).

Every value is checked by its click type while the command line is parsed, so a bad value
fails at once with click's one-line "Invalid value" message, before any model load or stage
runs (`physical run --kinds blurr` fails before craft). This module imports click only: the
lists of names (attacks, transform kinds, presets) are looked up in their own modules when a
value is converted or a command's help is shown, so `physical --help` never imports torch or cv2.
"""
from __future__ import annotations

import importlib
import math
import os

import click

# ε in intensity levels of 0..255, the range of every crafting command and of
# physical.attacks.check_eps(positive=True); ε = 0 would be the clean image again.
EPS_RANGE = "(0, 255]"
SEED_MAX = 2 ** 63 - 1   # numpy, torch and random all take a seed below this


def _lookup(target: str):
    """'module:attribute' → the attribute (imported on first use)."""
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


class LazyChoice(click.Choice):
    """click.Choice whose names live in another module ('physical.simulate:PRESETS'), read when
    first needed, so the names are written once and importing this module stays cheap."""

    def __init__(self, target: str, case_sensitive: bool = True):
        self._target = target
        self._names: tuple[str, ...] | None = None
        self.case_sensitive = case_sensitive

    @property
    def choices(self):  # click reads self.choices in convert, metavar and completion
        if self._names is None:
            self._names = tuple(_lookup(self._target))
        return self._names

    @choices.setter
    def choices(self, value):  # pragma: no cover - click's __init__ is not called
        self._names = tuple(value)

    def __repr__(self) -> str:
        return f"LazyChoice({self._target!r})"


class FiniteFloat(click.FloatRange):
    """A float in a range that is also finite: click's FloatRange lets nan and inf through."""
    name = "float"

    def convert(self, value, param, ctx):
        if isinstance(value, str) and not value.strip():
            self.fail("empty value", param, ctx)
        rv = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(rv):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return super().convert(rv, param, ctx)


class CommaList(click.ParamType):
    """'a, b,c' → ('a', 'b', 'c'): stripped, empty items dropped, duplicates dropped (first kept),
    each item converted by `item` (a click type) and checked against `choices` (a LazyChoice
    target or a tuple). `allow_empty`: '' means none at all; otherwise at least one item."""
    name = "list"

    def __init__(self, item: click.ParamType | None = None, choices: str | tuple | None = None,
                 allow_empty: bool = False, lower: bool = False):
        self.item = item
        self._choices = choices
        self.allow_empty = allow_empty
        self.lower = lower

    @property
    def choices(self) -> tuple | None:
        if isinstance(self._choices, str):
            self._choices = tuple(_lookup(self._choices))
        return self._choices

    def get_metavar(self, param, ctx=None):
        return f"[{','.join(self.choices)}]" if self.choices else "LIST"

    def convert(self, value, param, ctx):
        if isinstance(value, (tuple, list)):
            return tuple(value)
        words = [w.strip() for w in str(value).split(",")]
        words = [w.lower() if self.lower else w for w in words if w]
        if not words and not self.allow_empty:
            self.fail("give at least one value (a comma list)", param, ctx)
        out = []
        for word in words:
            if self.choices is not None and word not in self.choices:
                self.fail(f"unknown {param.name if param else 'value'} {word!r}: choose from "
                          f"{', '.join(self.choices)}", param, ctx)
            out.append(self.item.convert(word, param, ctx) if self.item else word)
        return tuple(dict.fromkeys(out))


class Eps(click.ParamType):
    """One ε in intensity levels, (0, 255] — the one rule of physical.attacks.check_eps."""
    name = "eps"

    def convert(self, value, param, ctx):
        try:
            e = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        from physical.attacks import check_eps  # lazy: attacks imports torch

        try:
            return check_eps(e, positive=True)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class RunName(click.ParamType):
    """A run name: one folder name (physical.workspace.check_run_name's rule)."""
    name = "name"

    def convert(self, value, param, ctx):
        from physical.errors import PhysicalError
        from physical.workspace import check_run_name

        try:
            return check_run_name(value)
        except PhysicalError as exc:
            self.fail(str(exc), param, ctx)


class NonEmptyPath(click.Path):
    """click.Path that refuses '' (which would quietly mean the current folder)."""

    def convert(self, value, param, ctx):
        if isinstance(value, str) and not value.strip():
            self.fail("empty path", param, ctx)
        return super().convert(value, param, ctx)


class Seed(click.IntRange):
    """A seed: an integer 0 … 2**63 - 1 (numpy refuses negative seeds)."""

    def __init__(self):
        super().__init__(0, SEED_MAX)

    def _describe_range(self) -> str:
        return "x>=0"


SEED = Seed()


def _workspace_callback(ctx, param, value):
    # `physical craft ... --workspace DIR`: the subcommand's option overrides the group's.
    if value is not None:
        from physical.workspace import Workspace

        obj = ctx.ensure_object(dict)
        obj["workspace"] = Workspace(os.path.abspath(value))
    return value


workspace_option = click.option(
    "--workspace", "-w", type=NonEmptyPath(file_okay=False), default=None, expose_value=False,
    callback=_workspace_callback, is_eager=True, metavar="DIR",
    help="Folder holding printouts/, captures/ and reports/ (same as `physical -w DIR`).")
run_option = click.option("--run", "run", required=True, type=RunName(), metavar="NAME",
                          help="Run name: a folder under printouts/, captures/ and reports/.")
model_option = click.option("--model", default="default", show_default=True, metavar="SPEC",
                            help="default (EfficientNet-Lite0), efficientnet-lite1/2, timm:NAME, "
                                 "torchvision:NAME (weights from the local cache), or a .pt/.pth file.")
models_option = click.option(
    "--model", "models", multiple=True, metavar="SPEC",
    help="Evaluating model; repeat for a transfer matrix. Default: the model that crafted the run. "
         "SPEC: default, efficientnet-lite1, efficientnet-lite2, timm:NAME, torchvision:NAME, FILE.pt, "
         "or a model behind a service: oip:http://HOST:PORT/v2/models/NAME[/versions/V]")
batch_size_option = click.option("--batch-size", default=16, show_default=True, type=click.IntRange(1, 4096),
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


def seed_option(help: str = "Seed of every random choice."):
    return click.option("--seed", default=0, show_default=True, type=SEED, help=help)


def preset_option(help: str = "How hard the simulated print and photo are."):
    return click.option("--preset", type=LazyChoice("physical.simulate:PRESETS"), default="typical",
                        show_default=True, help=help)


def attacks_option(help: str = "Comma list from fgsm, bim, ill (iterative least-likely), noise (random ±ε), "
                               "gauss (Gaussian of FGSM's L2), eot (BIM through a simulated print + photo: "
                               "survives it)."):
    return click.option("--attacks", default="fgsm,bim,ill,noise", show_default=True,
                        type=CommaList(choices="physical.attacks:ATTACKS", lower=True), help=help)


def eps_option(default: str | None = "2,4,8,16", help: str = f"Comma list of ε in {EPS_RANGE} intensity levels."):
    return click.option("--eps", "eps", default=default, show_default=default is not None, metavar="LIST",
                        type=CommaList(Eps()), help=help)


def kinds_option(allow_empty: bool = False, help: str = "Comma list of the artificial transformations to apply."):
    return click.option("--kinds", default=None, show_default="all",
                        type=CommaList(choices="physical.transforms:KINDS", allow_empty=allow_empty, lower=True),
                        help=help + (" '' for none." if allow_empty else ""))


def threshold_option(help: str = "Thresholded classifier: accept a prediction only when its top-1 probability "
                                 "is above this (strictly between 0 and 1)."):
    return click.option("--threshold", type=FiniteFloat(0, 1, min_open=True, max_open=True), default=0.8,
                        show_default=True, help=help)


def images_option(help: str = "Folder of images (sub-folder per class, wnid file prefixes, or --labels), or "
                               "'demo' for the bundled real photos."):
    return click.option("--images", default="demo", show_default=True, metavar="DIR|demo",
                        type=NonEmptyPath(file_okay=False), help=help)


def labels_file_option(help: str):
    return click.option("--labels", type=NonEmptyPath(dir_okay=False), default=None, help=help)


def photos_option(help: str = "Folder of photos of the printed sheets [default: captures/RUN/photos]."):
    return click.option("--photos", type=NonEmptyPath(file_okay=False), default=None, metavar="DIR", help=help)


def image_mm_option():
    return click.option("--image-mm", type=FiniteFloat(1, 1000), default=40.0, show_default=True,
                        help="Printed size of an image's longer side, rounded to whole printer dots per pixel.")


def limit_option():
    return click.option("--limit", default=None, type=click.IntRange(min=1),
                        help="Use a seeded random subset of N images (refused on a re-run that would drop "
                             "images already crafted).")
