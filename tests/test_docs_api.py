"""docs/api.md's ```python blocks run, in order, in one namespace, in a workspace holding a
small run `r1` that went through layout → simulate → ingest → evaluate (the default model)."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import make_fake_run
from physical.cli import main

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


@pytest.fixture
def workspace(tmp_path, cached_model):
    """(cached_model: every load_model("default"), the doc's too, reuses the session's model.)"""
    root = tmp_path
    make_fake_run(root, run="r1", ids=("img0", "img1"), size=64)

    def cli(*args):
        res = CliRunner().invoke(main, ["-w", str(root), *args])
        assert res.exit_code == 0, res.output
    cli("layout", "--run", "r1", "--image-mm", "40")
    cli("simulate", "--run", "r1", "--preset", "mild", "--resolution", "1200x900")
    cli("ingest", "--run", "r1")
    cli("evaluate", "--run", "r1", "--model", "default")
    return root


def test_the_doc_has_the_three_sections_and_the_records_marker():
    text = DOC.read_text()
    for heading in ("## Load a model", "## Run an attack on a tensor", "## Read a run's records"):
        assert heading in text
    assert "<!-- records -->" in text and len(python_blocks(text)) >= 4


def test_every_python_block_runs(workspace, capsys):
    namespace: dict = {"__name__": "docs_api"}
    old = os.getcwd()
    os.chdir(workspace)
    try:
        for n, block in enumerate(python_blocks(DOC.read_text()), 1):
            exec(compile(block, f"docs/api.md block {n}", "exec"), namespace)
    finally:
        os.chdir(old)
    out = capsys.readouterr().out
    assert "tf_efficientnet_lite0 224" in out                     # the model block
    assert "must lie in the range [0, 255]" in out                 # the range checks
    assert "at most the whole pixel range" in out                  # ε > 255 refused
    assert "img0 clean" in out and "photos accepted" in out        # the records block
    assert re.search(r"default fgsm-eps16 +photo", out)            # a photo row of metrics.json
