"""`physical craft`: adversarial examples → 8-bit PNGs + manifest."""
import click

from physical.commands.options import batch_size_option, device_option, force_option, model_option, run_option


def _csv_list(ctx, param, value):
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise click.BadParameter("give at least one value")
    return items


def _eps_list(ctx, param, value):
    out = []
    for v in _csv_list(ctx, param, value):
        try:
            e = float(v)
        except ValueError:
            raise click.BadParameter(f"{v!r} is not a number") from None
        if not 0 < e <= 255:
            raise click.BadParameter(f"ε must be in (0, 255] intensity levels, got {v}")
        out.append(e)
    return out


@click.command(short_help="Craft adversarial examples and save 8-bit PNGs.")
@click.option("--images", default="demo", show_default=True, metavar="DIR|demo",
              help="Folder of images (sub-folder per class, wnid file prefixes, or --labels), or 'demo' "
                   "for the bundled real photos.")
@click.option("--labels", type=click.Path(dir_okay=False), default=None,
              help="CSV of 'file,label' rows; label = class index, wnid or class name.")
@run_option
@click.option("--attacks", default="fgsm,bim,ill,noise", show_default=True, callback=_csv_list,
              help="Comma list from fgsm, bim, ill (iterative least-likely), noise (random ±ε), "
                   "gauss (Gaussian of FGSM's L2), eot (BIM through a simulated print + photo: survives it).")
@click.option("--eps", default="2,4,8,16", show_default=True, callback=_eps_list,
              help="Comma list of ε in intensity levels of 0..255.")
@click.option("--alpha", default=1.0, show_default=True, type=float, help="Step size of BIM/ILL, in levels.")
@click.option("--steps", default=None, type=int,
              help="Iterations of BIM/ILL. Default: the paper's int(min(ε+4, 1.25ε)).")
@click.option("--eot-samples", default=8, show_default=True, type=int, metavar="K",
              help="EOT: channel samples averaged per step (one batched forward/backward).")
@click.option("--eot-steps", default=None, type=int, metavar="N", help="EOT: iterations. Default: BIM's int(min(ε+4, 1.25ε)).")
@click.option("--channel", default="typical", show_default=True, metavar="PRESET",
              help="EOT: the print + photo channel, a simulate preset (mild, typical, harsh).")
@click.option("--target", default=None, metavar="CLASS",
              help="Make fgsm, bim and eot targeted: class index, wnid or name (e.g. 924, guacamole). "
                   "Variants are named <attack>-eps<ε>-to<index>.")
@click.option("--limit", default=None, type=int, help="Use a seeded random subset of N images.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed for --limit and the noise baselines.")
@model_option
@click.option("--arch", default=None, help="timm architecture of a checkpoint file given as --model.")
@batch_size_option
@device_option
@force_option
@click.pass_context
def craft(ctx, images, labels, run, attacks, eps, alpha, steps, eot_samples, eot_steps, channel, target, limit, seed,
          model, arch, batch_size, device, force):
    """Craft clean + adversarial PNGs into printouts/RUN/.

    Every image is resized and centre-cropped to the model's input size; each adversarial
    image is rounded to 8 bits, saved as PNG, read back and classified. Re-running resumes
    where a run stopped; --force starts it over.

    \b
    Examples:
      physical craft --images demo --run demo
      physical craft --images ~/imagenet/val --labels val.csv --run r1 --limit 100
      physical craft --images demo --run cat --attacks bim,eot --eps 16 --target guacamole
    """
    from physical.craft import CraftOptions, craft as craft_run, summary_line

    ws = ctx.obj["workspace"]
    options = CraftOptions(images=images, labels=labels, attacks=tuple(attacks), eps=tuple(eps), model=model,
                           arch=arch, limit=limit, seed=seed, batch_size=batch_size, device=device, alpha=alpha,
                           steps=steps, force=force, progress=not ctx.obj.get("quiet"), eot_samples=eot_samples,
                           eot_steps=eot_steps, channel=channel, target=target)
    manifest = craft_run(ws, run, options)
    click.echo(summary_line(manifest, ws.printouts(run)))
