"""Every option of every command, given a hostile value, ends in one line and a non-zero exit.

The test walks the click parameters of physical.cli.COMMANDS (and `lab`'s subcommands), so an
option added later is covered without a new test. Values are rejected by click before any work;
where a value is valid (a huge --limit, a run named "nan"), the base arguments name a missing
image folder / run / data set so the command still stops early, with one line. Loading a model
is an error here: nothing may get that far.
"""
from __future__ import annotations

import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from physical.cli import COMMANDS, main

HOSTILE = ["nan", "inf", "-1", "", "9" * 300]   # "9"*300: a huge number, and a file name too long


def _commands():
    ctx = click.Context(main)
    for name in COMMANDS:
        cmd = main.get_command(ctx, name)
        if isinstance(cmd, click.Group):
            yield (name,), cmd
            for sub in cmd.list_commands(ctx):
                yield (name, sub), cmd.get_command(ctx, sub)
        else:
            yield (name,), cmd


def _walked(param) -> bool:
    """Options whose value is checked: numbers, choices, paths, lists, names (not free text, not flags)."""
    return (isinstance(param, click.Option) and not param.is_flag and not param.count
            and param.type not in (click.STRING, click.BOOL))


# Arguments that make each command stop early (one line) whatever the walked option's value is.
def _base(path: tuple[str, ...], missing: str) -> list[str]:
    return {
        ("craft",): ["--images", missing, "--run", "r"],
        ("run",): ["--images", missing, "--run", "r"],
        ("lab", "szegedy"): ["--data", f"mnist:{missing}"],
        ("lab", "linearity"): ["--data", f"mnist:{missing}"],
        ("lab", "directions"): ["--images", missing],
        ("demo",): [],
        ("lab",): [],
    }.get(path, ["--run", "r"])


CASES = [(path, param.opts[0]) for path, cmd in _commands() for param in cmd.params if _walked(param)]


def test_the_walk_covers_the_options_it_should():
    names = {(" ".join(p), o) for p, o in CASES}
    for expected in [("craft", "--eps"), ("craft", "--alpha"), ("craft", "--seed"), ("simulate", "--seed"),
                     ("transforms", "--seed"), ("transforms", "--kinds"), ("run", "--kinds"),
                     ("run", "--image-mm"), ("layout", "--image-mm"), ("evaluate", "--threshold"),
                     ("lab szegedy", "--points"), ("report", "--workspace"), ("craft", "--run")]:
        assert expected in names


@pytest.fixture
def no_model(monkeypatch):
    """Any model load means an option got past its check: fail loudly."""
    import physical.models as models

    def refuse(*a, **k):
        raise AssertionError("a model was loaded: the command did work before refusing its options")

    monkeypatch.setattr(models, "load_model", refuse)
    for name in ("physical.craft", "physical.evaluate"):
        mod = sys.modules.get(name)
        if mod is not None and hasattr(mod, "load_model"):
            monkeypatch.setattr(mod, "load_model", refuse)


@pytest.mark.parametrize("path,option", CASES, ids=[f"{' '.join(p)} {o}" for p, o in CASES])
def test_hostile_values_end_in_one_line(tmp_path, monkeypatch, no_model, path, option):
    monkeypatch.chdir(tmp_path)
    # Files named like the values: a folder option given "nan" is refused, never used as a folder.
    for name in ("nan", "inf", "-1"):
        (tmp_path / name).write_text("")
    blocked = tmp_path / "afile"
    blocked.write_text("")
    ws = str(blocked / "ws")   # a workspace nothing can be written to: demo stops at its first write
    base = _base(path, str(tmp_path / "missing"))
    if option in base:
        i = base.index(option)
        base = base[:i] + base[i + 2:]
    runner = CliRunner()
    for value in HOSTILE:
        result = runner.invoke(main, ["-w", ws, *path, *base, option, value])
        shown = f"{' '.join(path)} {option} {value[:12]!r}: exit {result.exit_code}\n{result.output}"
        assert result.exit_code != 0, shown
        assert isinstance(result.exception, SystemExit), f"{shown}\n{result.exception!r}"
        assert "Traceback" not in result.output, shown
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert 1 <= len(lines) <= 3 and lines[-1].startswith("Error:"), shown
        assert len(lines[-1]) < 300 + len(value), shown   # one message (it may quote the value)


def test_an_unknown_transform_kind_fails_before_any_stage(tmp_path, no_model):
    result = CliRunner().invoke(main, ["-w", str(tmp_path), "run", "--run", "r", "--kinds", "blur,blurr"])
    assert result.exit_code == 2 and "unknown kinds 'blurr'" in result.output
    assert not (tmp_path / "printouts").exists()   # craft never started


def test_eps_range_is_the_same_in_every_command_and_in_the_library():
    from physical import attacks
    from physical.craft import CraftOptions, validate
    from physical.errors import PhysicalError

    for bad in ("0", "255.5", "nan", "-2"):
        for cmd in ("craft", "run", "transforms"):
            r = CliRunner().invoke(main, [cmd, "--run", "r", "--eps", bad])
            assert r.exit_code == 2 and "(0, 255]" in r.output or "not a number" in r.output, (cmd, bad, r.output)
    with pytest.raises(PhysicalError, match=r"\(0, 255\]"):
        validate(CraftOptions(eps=(0.0,)))
    with pytest.raises(ValueError, match=r"\(0, 255\]"):
        attacks.check_eps(0.0, positive=True)
    assert attacks.check_eps(255.0, positive=True) == 255.0 and attacks.check_eps(0.0) == 0.0


def test_comma_lists_strip_and_deduplicate():
    from physical.commands.options import CommaList, Eps

    t = CommaList(Eps())
    assert t.convert(" 4, 16,4,, ", None, None) == (4.0, 16.0)
    kinds = CommaList(choices="physical.transforms:KINDS", allow_empty=True, lower=True)
    assert kinds.convert("JPEG, blur", None, None) == ("jpeg", "blur") and kinds.convert("", None, None) == ()
    with pytest.raises(click.BadParameter, match="at least one"):
        CommaList().convert(" , ", None, None)


def test_workspace_is_accepted_after_the_subcommand_and_wins(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    r = CliRunner().invoke(main, ["-w", str(a), "ingest", "--run", "r1", "--workspace", str(b)])
    assert r.exit_code == 1 and str(b / "printouts" / "r1" / "layout.json") in r.output
    r = CliRunner().invoke(main, ["lab", "directions", "-w", str(b), "--images", str(tmp_path / "none")])
    assert r.exit_code == 1 and "is not a folder" in r.output


def test_top_level_help_lists_each_commands_own_short_help():
    ctx = click.Context(main)
    out = CliRunner().invoke(main, ["--help"], terminal_width=200).output
    for name in COMMANDS:
        cmd = main.get_command(ctx, name)
        assert f"{name}  " in out and cmd.get_short_help_str(200) in out, name


def test_top_level_help_imports_no_torch_or_cv2():
    code = ("import sys; from click.testing import CliRunner; from physical.cli import main; "
            "r = CliRunner().invoke(main, ['--help']); assert r.exit_code == 0, r.output; "
            "print(sorted(m for m in ('torch', 'cv2', 'numpy', 'timm') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
