"""`physical lab`: the lecture's earlier experiments (Szegedy's L-BFGS and transfer table,
Goodfellow's linearity, units vs random directions), each writing results.json + index.html."""
from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from physical.commands import options as o
from physical.errors import PhysicalError

DATA_HELP = "digits (scikit-learn's bundled 8×8 digits, offline) or mnist:DIR (torchvision's MNIST/raw layout)."


def _out_dir(ctx, out: str | None, name: str, force: bool) -> Path:
    path = Path(out) if out else ctx.obj["workspace"].reports(f"lab-{name}")
    if (path / "results.json").exists() and not force:
        raise PhysicalError(f"{path} already holds results.json: pass --force to overwrite, or --out another folder")
    return path


def _say(ctx):
    quiet = (ctx.obj or {}).get("quiet")
    return (lambda msg: None) if quiet else (lambda msg: click.echo(msg, err=True))


def _command_line() -> str:
    return "physical " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv and "physical" in sys.argv[0] else "physical lab"


out_option = click.option("--out", type=o.NonEmptyPath(file_okay=False), default=None,
                          help="Output folder [default: reports/lab-<name> in the workspace].")
seed_option = o.seed_option("Seed for training, sampling and noise.")
data_option = click.option("--data", default="digits", show_default=True, help=DATA_HELP)
force_option = click.option("--force", is_flag=True, help="Overwrite an existing results.json.")
steps_option = click.option("--steps", type=click.IntRange(1), default=3000, show_default=True,
                            help="Training minibatches per model (Adam, batch 64).")


@click.group(short_help="The lecture's earlier experiments (L-BFGS, linearity, directions).")
@o.workspace_option
def lab():
    """The lecture's earlier experiments, on small models and on the ImageNet model.

    \b
      physical lab szegedy                  # L-BFGS minimal perturbations, transfer table, noise rows
      physical lab linearity                # FGSM error and confidence vs eps, linear vs non-linear
      physical lab directions --images DIR  # top images for units vs random directions
    """


@lab.command(short_help="L-BFGS minimal perturbations, transfer table with noise rows (Szegedy 2014).")
@data_option
@out_option
@seed_option
@click.option("--points", type=click.IntRange(1), default=100, show_default=True,
              help="Test points attacked with L-BFGS (a seeded sample every model gets right).")
@click.option("--bisections", type=click.IntRange(0, 30), default=10, show_default=True,
              help="Bisection steps of the search over log10 c in [-3, 3] (each one L-BFGS-B run per model).")
@steps_option
@force_option
@o.workspace_option
@click.pass_context
def szegedy(ctx, data, out, seed, points, bisections, steps, force):
    """Szegedy et al. (2014): minimal targeted perturbations by box-constrained L-BFGS, the
    cross-model transfer table and Gaussian-noise rows at the same distortion."""
    from physical.lab import digits, page, transfer

    ds = digits.load_data(data, seed=seed)
    out_dir = _out_dir(ctx, out, "szegedy", force)
    say = _say(ctx)
    results = transfer.run(ds, seed=seed, points=points, steps=steps, bisections=bisections, progress=say)
    path = page.write(out_dir, results, _command_line())
    click.echo(str(path))


@lab.command(short_help="FGSM error and wrong-class confidence vs eps, linear vs non-linear (Goodfellow 2015).")
@data_option
@out_option
@seed_option
@click.option("--eps-max", type=click.FloatRange(0.01, 1.0), default=0.5, show_default=True,
              help="Largest ε (pixels on [0, 1]); the grid steps by 0.01.")
@steps_option
@force_option
@o.workspace_option
@click.pass_context
def linearity(ctx, data, out, seed, eps_max, steps, force):
    """Goodfellow et al. (2015): FGSM error rate and wrong-class confidence vs ε for linear and
    non-linear models, and the ε where the error reaches 90 %."""
    from physical.lab import digits, linearity as lin, page

    ds = digits.load_data(data, seed=seed)
    out_dir = _out_dir(ctx, out, "linearity", force)
    grid = [round(0.01 * i, 2) for i in range(int(round(eps_max / 0.01)) + 1)]
    results = lin.run(ds, seed=seed, eps_grid=grid, steps=steps, progress=_say(ctx))
    path = page.write(out_dir, results, _command_line())
    click.echo(str(path))


@lab.command(short_help="Top images for single units vs random directions of a layer (Szegedy 2014).")
@click.option("--images", required=True, type=o.NonEmptyPath(), help="Folder of images (searched recursively).")
@click.option("--model", "model_spec", default="default", show_default=True, help="Model spec (see `physical craft --help`).")
@click.option("--layer", default=None, help="Module name to read φ(x) from [default: the input of the last linear layer].")
@click.option("--top", type=click.IntRange(1, 10000), default=8, show_default=True, help="Images shown per unit / direction.")
@click.option("--units", type=click.IntRange(1, 32), default=4, show_default=True, help="Units and random directions shown.")
@out_option
@seed_option
@force_option
@o.workspace_option
@click.pass_context
def directions(ctx, images, model_spec, layer, top, units, out, seed, force):
    """Szegedy et al. (2014): images maximising a single unit vs a random direction of a layer."""
    from physical.lab import directions as dirs, page

    paths = dirs.list_images(images)
    if len(paths) < top:
        raise PhysicalError(f"--top {top} needs at least {top} images, found {len(paths)} in {images}")
    out_dir = _out_dir(ctx, out, "directions", force)
    from physical.models import load_model, model_info

    model = load_model(model_spec)
    dirs.resolve_layer(model, layer)   # an unknown layer fails before images are decoded
    size = model.input_size
    arr, kept, skipped = dirs.load_images(paths, size, model.preprocessing.get("resize", round(size / 0.875)))
    root = Path(images)
    names = [str(p.relative_to(root)) for p in kept]
    results = dirs.run(model, arr, names, layer=layer, top=top, units=units, seed=seed)
    results["model"] = model_info(model)
    results["skipped"] = [{"source": s, "reason": r} for s, r in skipped]
    path = page.write(out_dir, results, _command_line(), images=arr)
    click.echo(str(path))
