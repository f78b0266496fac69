"""`python -m tools.bench` runs end to end on tiny stacks and reports every figure it promises;
never its timings (a shared machine is too noisy to assert them), only the report's shape. It
refuses what it cannot do with exit 2, and leaves nothing behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tools import bench
from tools.engine import ROOT


def _bench(*args: str, cwd: Path, tmp: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if tmp is not None:  # its own temporary directory: other runs on the machine do not count
        env["TMPDIR"] = str(tmp)
    return subprocess.run(
        [sys.executable, "-m", "tools.bench", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_benchmark_reports_every_case_and_figure(tmp_path):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    report = tmp_path / "report.json"
    done = _bench(
        "--sizes",
        "4,8",
        "--repeat",
        "1",
        "--quiet",
        "--json",
        str(report),
        cwd=tmp_path,
        tmp=scratch,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(report.read_text())
    (tree,) = data["trees"]
    rows = {r["case"]: r for r in tree["rows"]}
    assert list(rows) == ["empty", "imports", "loaded", "production", "n4", "n8"]
    for row in rows.values():
        assert set(row["phases"]) == set(bench.PHASES)
        assert row["wall"] > 0 and row["cpu"] > 0 and row["rssMiB"] > 0 and row["stable"]
        assert row["toFloor"] > 0 and row["toLoaded"] > 0
    assert rows["empty"]["resources"] == rows["imports"]["resources"] == 0
    assert rows["loaded"]["resources"] == 0
    assert 0 < rows["n4"]["resources"] < rows["n8"]["resources"]
    assert rows["n8"]["manifests"] > 0 and rows["n8"]["bytes"] > 0
    assert rows["n8"]["phases"]["config"] is not None and rows["n8"]["phases"]["render"] > 0
    assert tree["growth"]["of"] == "n8/n4" and tree["growth"]["services"] == 2
    assert data["comparison"] == []
    for heading in ("### working tree", "| case | wall s |", "growth n8/n4", "| n8 |"):
        assert heading in done.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json", "tmp"]
    assert list(scratch.iterdir()) == [], "the temporary directory was left behind"


def test_it_refuses_a_bad_ref_and_an_existing_report_with_exit_2(tmp_path):
    done = _bench("--sizes", "2", "--repeat", "1", "--compare", "no-such-ref-xyz", cwd=tmp_path)
    assert done.returncode == 2 and "no-such-ref-xyz" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    report = tmp_path / "mine.json"
    report.write_text("keep me")
    done = _bench("--json", str(report), cwd=tmp_path)
    assert done.returncode == 2 and "refusing to overwrite" in done.stderr
    assert report.read_text() == "keep me"
    done = _bench("--json", str(tmp_path / "no" / "such.json"), cwd=tmp_path)
    assert done.returncode == 2 and "does not exist" in done.stderr
    for bad in (("--sizes", "0"), ("--sizes", "a,b"), ("--repeat", "0")):
        assert _bench(*bad, cwd=tmp_path).returncode == 2
