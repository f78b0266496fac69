"""The fork server the command-line tests run `python -m tools.X` through (tests/forked.py)
answers as a fresh interpreter does: exit codes, stdout, stderr (a traceback included), argv,
cwd, environment, stdin, `sys.path` and a clean `__main__`; and a command whose environment it
cannot reproduce runs in a fresh interpreter."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests import forked
from tools.engine import ROOT

MODULES = {
    "fx_raise": (
        "import sys\n"
        "print('to stdout')\n"
        "print('to stderr', file=sys.stderr)\n"
        "raise ValueError('boom')\n"
    ),
    "fx_exit": (
        "import atexit, sys\n"
        "atexit.register(lambda: print('atexit ran'))\n"
        "print(sys.argv[1:], sys.argv[0].endswith('fx_exit.py'), __name__)\n"
        "sys.exit('a message')\n"
    ),
    "fx_os_exit": "import os, sys\nprint('flushed', end='')\nsys.stdout.flush()\nos._exit(3)\n",
    "fx_state": (
        "import os, sys, tempfile\n"
        "print(os.getcwd(), os.environ.get('FX'), sys.path[:2], tempfile.gettempdir())\n"
        "print(sorted(k for k in globals() if not k.startswith('__')))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('components', 'tools')))\n"
        "print(sys.stdin.read())\n"
    ),
}


@pytest.mark.parametrize("name", MODULES)
def test_a_forked_command_answers_as_a_fresh_interpreter(tmp_path, name):
    (tmp_path / f"{name}.py").write_text(MODULES[name])
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    before = forked.COUNTS["forked"]
    got = forked.run_module(name, "a", "b", env=env, input="from stdin")
    assert forked.COUNTS["forked"] == before + 1, "it ran in a fork"
    fresh = subprocess.run(
        [sys.executable, "-m", name, "a", "b"],
        cwd=ROOT,
        env=env,
        input="from stdin",
        capture_output=True,
        text=True,
        check=False,
    )
    assert (got.returncode, got.stdout, got.stderr) == (
        fresh.returncode,
        fresh.stdout,
        fresh.stderr,
    )
    assert got.returncode in (0, 1, 3)


def test_a_command_in_another_environment_or_directory_runs_fresh(tmp_path):
    (tmp_path / "fx_where.py").write_text("import os\nprint(os.getcwd(), os.environ.get('FX'))\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    before = dict(forked.COUNTS)
    assert forked.run_module("fx_where", env={**env, "FX": "x"}).stdout == f"{ROOT} x\n"
    assert forked.run_module("fx_where", cwd=tmp_path, env=env).stdout.startswith(f"{tmp_path} ")
    assert forked.COUNTS == {"forked": before["forked"], "fresh": before["fresh"] + 2}


def test_a_command_that_outlives_its_timeout_is_killed(tmp_path):
    (tmp_path / "fx_sleep.py").write_text("import time\ntime.sleep(60)\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    before = forked.COUNTS["forked"]
    with pytest.raises(subprocess.TimeoutExpired):
        forked.run_module("fx_sleep", env=env, timeout=1)
    (tmp_path / "fx_quick.py").write_text("print('still serving')\n")
    assert forked.run_module("fx_quick", env=env).stdout == "still serving\n"
    assert forked.COUNTS["forked"] == before + 2
