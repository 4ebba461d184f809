"""The `physical` command group.

Subcommands live in `physical/commands/<name>.py` and are imported lazily, so `physical --help`
is fast (no torch import) and a stage's heavy dependencies load only when that stage runs.
"""
from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys

import click

from physical import __version__
from physical.errors import PhysicalError

# name -> "module:attribute"; the order is the workflow's order in --help.
COMMANDS = {
    "demo": "physical.commands.demo:demo",
    "run": "physical.commands.run:run",
    "craft": "physical.commands.craft:craft",
    "layout": "physical.commands.layout:layout",
    "calibrate": "physical.commands.calibrate:calibrate",
    "simulate": "physical.commands.simulate:simulate",
    "ingest": "physical.commands.ingest:ingest",
    "serve": "physical.commands.serve:serve",
    "evaluate": "physical.commands.evaluate:evaluate",
    "transforms": "physical.commands.transforms:transforms",
    "merge": "physical.commands.scale:merge",
    "report": "physical.commands.report:report",
    "lab": "physical.commands.lab:lab",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported only when used."""

    def list_commands(self, ctx):
        return [name for name, target in COMMANDS.items() if _module_exists(target)]

    def get_command(self, ctx, name):
        target = COMMANDS.get(name)
        if target is None or not _module_exists(target):
            return None
        module_name, attr = target.split(":")
        return getattr(importlib.import_module(module_name), attr)

    def format_commands(self, ctx, formatter):
        # Each command's own short help. The command modules import only click at top level
        # (their stages load lazily inside the command), so this stays fast: no torch, no cv2.
        limit = formatter.width - 6 - max(len(name) for name in COMMANDS)
        rows = [(name, self.get_command(ctx, name).get_short_help_str(limit)) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands (in workflow order)"):
                formatter.write_dl(rows)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except PhysicalError as exc:
            # A user mistake: one clear line, non-zero exit, no traceback.
            raise click.ClickException(str(exc)) from None
        except OSError as exc:
            # The machine said no (read-only workspace, disk full, a folder where a file should be):
            # one line naming the path and the reason. An OSError without a path is a bug: re-raised.
            if exc.filename is None:
                raise
            raise click.ClickException(os_error_line(exc)) from None


def os_error_line(exc: OSError) -> str:
    """'cannot write /ws/printouts/r1: Read-only file system' from an OSError that names a path."""
    target = f"{exc.filename} → {exc.filename2}" if exc.filename2 else str(exc.filename)
    return f"cannot write or read {target}: {exc.strerror or exc}"


def _module_exists(target: str) -> bool:
    module_name = target.split(":")[0]
    return importlib.util.find_spec(module_name) is not None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="physical")
@click.option("--workspace", "-w", type=click.Path(file_okay=False), envvar="PHYSICAL_WORKSPACE",
              default=".", show_default=True,
              help="Folder holding printouts/, captures/ and reports/ (env: PHYSICAL_WORKSPACE).")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors.")
@click.pass_context
def main(ctx, workspace, verbose, quiet):
    """Test an image classifier against adversarial examples in the physical world.

    The experiment of Kurakin, Goodfellow & Bengio (2016): craft adversarial images,
    print them, photograph the sheets with a phone, and measure how many still fool the model.

    \b
    Quick start:
      physical demo                          # everything, on bundled photos, simulated paper
    \b
    Your own images, one stage at a time:
      physical craft  --images DIR --run r1
      physical layout --run r1               # print printouts/r1/r1.pdf at 100 % scale
      physical ingest --run r1 --photos DIR  # your phone photos of the sheets
      physical evaluate --run r1
      physical report --run r1
    """
    if os.environ.get("RANK", "0") not in ("", "0"):
        # A torchrun rank other than 0: rank 0 alone prints progress and results (errors still show).
        quiet = True
        sys.stdout = open(os.devnull, "w")
    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    from physical.workspace import Workspace

    ctx.obj = {"workspace": Workspace(os.path.abspath(workspace)), "quiet": quiet}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
