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
    "evaluate": "physical.commands.evaluate:evaluate",
    "transforms": "physical.commands.transforms:transforms",
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
        # Short help without importing every command module (each may pull in torch).
        rows = [(name, SHORT_HELP.get(name, "")) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands (in workflow order)"):
                formatter.write_dl(rows)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except PhysicalError as exc:
            # A user mistake: one clear line, non-zero exit, no traceback.
            raise click.ClickException(str(exc)) from None


SHORT_HELP = {
    "demo": "Run the whole loop on bundled photos with a simulated printer and camera.",
    "run": "Run the whole loop on your images; skips stages already done.",
    "craft": "Craft adversarial examples and save clean/adversarial 8-bit PNGs.",
    "layout": "Lay clean/adversarial pairs out as a printable PDF with markers.",
    "calibrate": "Fit a profile of your printer and phone from photos of a chart.",
    "simulate": "Simulate printing the PDF and photographing it with a phone.",
    "ingest": "Find markers in phone photos, undo perspective, crop each image.",
    "evaluate": "Accuracy, destruction rate and prefiltered error per attack and eps.",
    "transforms": "The paper's artificial transformations (blur, noise, JPEG, ...).",
    "report": "Write the HTML report for a run.",
    "lab": "The lecture's earlier experiments (L-BFGS, linearity, directions).",
}


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
    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    from physical.workspace import Workspace

    ctx.obj = {"workspace": Workspace(os.path.abspath(workspace)), "quiet": quiet}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
