"""`physical craft`: adversarial examples → 8-bit PNGs + manifest."""
import click

from physical.commands import options as o
from physical.commands.scale import procs_option, relaunched, shard_option
from physical.presets import DEFAULT_CHANNEL


@click.command(short_help="Craft adversarial examples and save 8-bit PNGs.")
@o.images_option()
@o.labels_file_option("CSV of 'file,label' rows; label = class index, wnid or class name.")
@o.run_option
@o.attacks_option()
@o.eps_option()
@click.option("--alpha", default=1.0, show_default=True, type=o.FiniteFloat(0, 255, min_open=True),
              help="Step size of BIM/ILL, in levels.")
@click.option("--steps", default=None, type=click.IntRange(1, 10000),
              help="Iterations of BIM/ILL. Default: the paper's int(min(ε+4, 1.25ε)).")
@o.limit_option()
@o.seed_option("Seed for --limit and the noise baselines.")
@o.model_option
@click.option("--eot-samples", default=8, show_default=True, type=click.IntRange(1, 1024), metavar="K",
              help="EOT: channel samples averaged per step (one batched forward/backward).")
@click.option("--eot-steps", default=None, type=click.IntRange(1, 10000), metavar="N",
              help="EOT: iterations. Default: BIM's int(min(ε+4, 1.25ε)), eight times that when targeted.")
@click.option("--channel", default=DEFAULT_CHANNEL, show_default=True, metavar="PRESET|PROFILE",
              help="EOT: the print + photo channel: a simulate preset (mild, typical, harsh), broad (each "
                   "sample one of them or a brighter one: physical/presets.py), phones / phone (with a phone's "
                   "sharpening, colour, tone and chroma denoising: docs/robust.md), or a profile.json of "
                   "`physical calibrate fit` (its colour, blur, noise and JPEG; geometry and light from typical).")
@click.option("--target", default=None, metavar="CLASS",
              help="Make fgsm, bim and eot targeted: class index, wnid or name (e.g. 924, guacamole). "
                   "Variants are named <attack>-eps<ε>-to<index>.")
@click.option("--arch", default=None, help="timm architecture of a checkpoint file given as --model.")
@o.batch_size_option
@o.device_option
@o.force_option
@o.workspace_option
@procs_option
@shard_option
@click.pass_context
def craft(ctx, images, labels, run, attacks, eps, alpha, steps, limit, seed, model, arch, batch_size, device, force,
          procs, shard, eot_samples, eot_steps, channel, target):
    """Craft clean + adversarial PNGs into printouts/RUN/.

    Every image is resized and centre-cropped to the model's input size; each adversarial
    image is rounded to 8 bits, saved as PNG, read back and classified. Re-running resumes
    where a run stopped; --force starts it over.

    \b
    Examples:
      physical craft --images demo --run demo
      physical craft --images ~/imagenet/val --labels val.csv --run r1 --limit 100
      physical craft --images ~/imagenet/val --run r1 --procs 2       # two ranks on this machine
      physical craft --images demo --run cat --attacks bim,eot --eps 16 --target guacamole
      physical craft --images DIR --run r2 --attacks eot --eps 16 --channel profile.json
    """
    if relaunched(ctx, procs):
        return
    from physical.craft import CraftOptions, craft as craft_run, summary_line

    ws = ctx.obj["workspace"]
    if ctx.get_parameter_source("batch_size") == click.core.ParameterSource.DEFAULT:
        batch_size = None  # fit the device: a memory probe on CUDA, 16 on CPU (physical.accel)
    options = CraftOptions(images=images, labels=labels, attacks=tuple(attacks), eps=tuple(eps), model=model,
                           arch=arch, limit=limit, seed=seed, batch_size=batch_size, device=device, alpha=alpha,
                           steps=steps, force=force, progress=not ctx.obj.get("quiet"), shard=shard,
                           eot_samples=eot_samples, eot_steps=eot_steps, channel=channel, target=target)
    manifest = craft_run(ws, run, options)
    if "shard" in manifest:  # a --shard job: its record, not the run's manifest
        info = manifest["shard"]
        click.echo(f"shard {info['index']}/{info['count']}: {len(manifest['images'])} images → "
                   f"{ws.printouts(run) / '.shards'}; when all {info['count']} are done: physical merge --run {run}")
        return
    click.echo(summary_line(manifest, ws.printouts(run)))
