"""README stays true: the config table is the one the models produce, and the three commands a
newcomer needs are there."""

from __future__ import annotations

import os
import subprocess
import sys

from tools import config_docs
from tools.engine import ROOT

README = (ROOT / "README.md").read_text()
CI = (ROOT / ".ci" / "run").read_text()


def test_config_table_is_current():
    assert config_docs.current_readme_table() == config_docs.render(), (
        "run: python -m tools.config_docs --write"
    )


def test_every_section_of_the_config_is_documented():
    table = config_docs.render()
    for key, field in config_docs.config.PlatformConfig.model_fields.items():
        assert f"`{field.alias or key}" in table


def test_readme_gives_install_test_plan_and_deploy_commands():
    assert "bash .ci/run" in README
    assert "python3 -m tools.plan production" in README
    assert "pulumi login" in README
    assert "pulumi config set --secret digitalocean:token" in README
    assert "pulumi up -s dev" in README


def test_ci_runs_the_test_command_written_in_readme():
    """CI's last step is the command README gives, and it lints, checks formatting and tests."""
    marker = "# The test command from README.md:\n"
    assert marker in CI
    command = CI.split(marker, 1)[1].strip().splitlines()[0]
    assert f"\n{command}\n" in README
    for part in ("ruff check .", "ruff format --check .", "python3 -m pytest"):
        assert part in command


def test_readme_config_snippets_are_valid_config():
    """Every YAML example in README is accepted by the real config parser (on top of the
    production stack), so the documentation cannot teach a key that does not exist."""
    import re

    import yaml

    from components import config
    from tests.test_config import committed

    snippets = [
        yaml.safe_load(block)
        for block in re.findall(r"```yaml\n(.*?)```", README, re.S)
        if block.startswith("service-mesh:")
    ]
    assert len(snippets) >= 3
    for snippet in snippets:
        raw, secrets = committed("production")
        for key, value in snippet.items():
            raw[key.removeprefix("service-mesh:")] = value
        if "service-mesh:services" in snippet and "service-mesh:slos" not in snippet:
            raw.pop("slos", None)  # production objectives name services the snippet may drop
        config.parse(raw, secrets)


def test_every_secret_row_says_where_it_is_required():
    """A rule change (a tier that starts requiring a secret) shows in README, and every secret
    field has a stated requirement (a new secret without one fails here)."""
    table = config_docs.render()
    for field in config_docs.config.SECRET_FIELDS:
        alias = config_docs.config.PlatformConfig.model_fields[field].alias or field
        (row,) = [line for line in table.splitlines() if line.startswith(f"| `{alias}` |")]
        cells = row.split(" | ")[1:]
        assert all("required" in c or "optional" in c for c in cells), row
    production = [line for line in table.splitlines() if line.startswith("| `meshCaRootCert` |")]
    assert production[0].rstrip(" |").endswith("required")


def _ci_with_python(tmp_path, managed: bool) -> tuple[subprocess.CompletedProcess[str], str]:
    """`.ci/run` with a `python3` that runs this interpreter for the PEP 668 probe, made to
    look like a system Python or not, and records (instead of running) anything else."""
    log = tmp_path / "calls"
    fake = tmp_path / "bin"
    fake.mkdir()
    probe = "import sys; sys.exit(0)" if managed else "import sys; sys.exit(1)"
    (fake / "python3").write_text(
        '#!/usr/bin/env bash\nif [ "$1" = "-" ]; then cat >/dev/null; '
        f'exec {sys.executable} -c "{probe}"; fi\necho "$*" >> {log}\n'
    )
    (fake / "python3").chmod(0o755)
    for tool in ("ruff",):  # the test command's first step: recorded, not run
        (fake / tool).write_text(f'#!/usr/bin/env bash\necho "{tool} $*" >> {log}\n')
        (fake / tool).chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"}
    done = subprocess.run(
        ["bash", str(ROOT / ".ci" / "run")], env=env, capture_output=True, text=True, check=False
    )
    return done, log.read_text() if log.exists() else ""


def test_ci_refuses_a_system_python_with_the_command_to_run_instead(tmp_path):
    """On a PEP 668 system Python, pip would refuse the install with its own error: `.ci/run`
    stops first (exit 2), installs nothing and prints the virtualenv command README gives."""
    done, calls = _ci_with_python(tmp_path, managed=True)
    assert done.returncode == 2 and "pip install" not in calls, calls
    command = "python3 -m venv .venv && . .venv/bin/activate && bash .ci/run"
    assert command in done.stderr and command in README
    other = tmp_path / "other"
    other.mkdir()
    done, calls = _ci_with_python(other, managed=False)
    assert "-m pip install -q -r requirements-dev.txt" in calls, (done.stderr, calls)
