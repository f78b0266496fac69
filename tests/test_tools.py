"""Every command-line tool in tools/ answers `--help` with its usage and does nothing else, so
nobody has to read the source to learn its arguments (or runs it by accident to find out)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys

import pytest

from tools.engine import ROOT


def _tools_with_a_main() -> list[str]:
    """Modules of tools/ that define a top-level `main`: the ones meant to be run."""
    found = []
    for path in sorted((ROOT / "tools").glob("*.py")):
        tree = ast.parse(path.read_text())
        if any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in tree.body):
            found.append(path.stem)
    return found


TOOLS = _tools_with_a_main()
_HELP_CASES = TOOLS


def test_the_tools_are_found():
    assert {"plan", "mesh_ca"} <= set(TOOLS)
    assert "engine" not in TOOLS, "a library, not a command"


@pytest.mark.parametrize("tool", _HELP_CASES)
def test_help_prints_the_usage_and_exits_0(tool, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", f"tools.{tool}", "--help"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: "), proc.stdout[:200]
    assert f"tools.{tool}" in proc.stdout.splitlines()[0]
    assert "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == [], "--help wrote files"
