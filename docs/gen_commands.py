"""Regenerate docs/commands.md from the CLI's own --help:  python docs/gen_commands.py"""
from pathlib import Path

from click.testing import CliRunner

from physical.cli import COMMANDS, main


def help_text(*args: str) -> str:
    return CliRunner().invoke(main, [*args, "--help"], terminal_width=100).output.rstrip()


def main_() -> None:
    parts = ["# Command reference", "", "Generated from `--help` by `python docs/gen_commands.py`.", "",
             "## physical", "", "```", help_text(), "```"]
    for name in COMMANDS:
        text = help_text(name)
        if not text.startswith("Usage"):
            continue
        parts += ["", f"## physical {name}", "", "```", text, "```"]
        if name == "lab":
            for sub in ("szegedy", "linearity", "directions"):
                parts += ["", f"### physical lab {sub}", "", "```", help_text("lab", sub), "```"]
        if name == "calibrate":
            for sub in ("chart", "fit"):
                parts += ["", f"### physical calibrate {sub}", "", "```", help_text("calibrate", sub), "```"]
    Path(__file__).with_name("commands.md").write_text("\n".join(parts) + "\n")


if __name__ == "__main__":
    main_()
