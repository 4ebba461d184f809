"""Scale-out options (`--procs N`, `--shard K/N`) and `physical merge` (physical.distributed)."""
import click

from physical.commands.options import run_option

procs_option = click.option(
    "--procs", default=1, show_default=True, type=click.IntRange(1, 256), metavar="N",
    help="Processes on this machine: starts N ranks with torchrun's launcher (each takes every N-th image).")
shard_option = click.option(
    "--shard", default=None, metavar="K/N",
    help="Only this job's share (images i % N == K), for schedulers without torchrun (SLURM arrays, Ray); "
         "then `physical merge --run RUN`.")


def relaunched(ctx, procs: int) -> bool:
    """With --procs N > 1: run this very command as N torchrun ranks and return True (done)."""
    if procs <= 1:
        return False
    from physical import distributed

    distributed.launch(procs, distributed.relaunch_args(ctx))
    return True


@click.command(short_help="Merge the shard records of `craft --shard K/N` jobs into the manifest.")
@run_option
@click.pass_context
def merge(ctx, run):
    """Combine printouts/RUN/.shards/shard-K-of-N.json (one per `physical craft --shard K/N`
    job) into printouts/RUN/manifest.json — the manifest one process would have written.
    Every shard 0..N-1 must have finished.

    \b
    Example (a SLURM array of 4 jobs, then one merge):
      physical craft --images DIR --run r1 --shard $SLURM_ARRAY_TASK_ID/4
      physical merge --run r1
    """
    from physical.craft import summary_line
    from physical.distributed import merge_run

    ws = ctx.obj["workspace"]
    manifest = merge_run(ws, run)
    click.echo(summary_line(manifest, ws.printouts(run)))
