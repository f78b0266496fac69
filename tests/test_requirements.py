"""The project's three Python environments (the program's `venv`, the tests' and the policy
pack's `policies/venv`) are pinned whole: every line an exact pin, every dependency of a pin
pinned in the same environment, and the versions the suite itself runs with, so that a
`pulumi up` or a policy run imports exactly what CI tested (before, the program's venv got a
newer protobuf than the one the suite ran it with)."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
FILES = ("requirements.txt", "requirements-dev.txt", "policies/requirements.txt")
PIN = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!-]+)")


def pins(name: str, root: Path = ROOT) -> dict[str, str]:
    """Canonical name -> version of every pin in the file and the files it includes (`-r`)."""
    path = root / name
    out: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("-r "):
            out.update(pins(str((path.parent / line[3:].strip()).relative_to(root)), root))
            continue
        match = PIN.fullmatch(line)
        assert match, f"{name}:{number}: {raw!r} is not an exact pin (name==version)"
        out[canonicalize_name(match[1])] = match[2]
    return out


def unpinned_dependencies(pinned: dict[str, str]) -> list[str]:
    """What a pin needs (its installed metadata, markers for this interpreter) that the set
    does not pin, or pins at a version outside what it needs."""
    problems = []
    for dist, version in sorted(pinned.items()):
        for text in metadata.requires(dist) or []:
            need = Requirement(text)
            if need.marker is not None and not need.marker.evaluate({"extra": ""}):
                continue
            wanted = canonicalize_name(need.name)
            if wanted not in pinned:
                problems.append(f"{dist} {version} needs {need}, which is not pinned")
            elif not need.specifier.contains(pinned[wanted], prereleases=True):
                problems.append(f"{dist} needs {need}, but {wanted}=={pinned[wanted]} is pinned")
    return problems


@pytest.mark.parametrize("name", FILES)
def test_every_environment_is_closed_under_its_dependencies(name):
    pinned = pins(name)
    assert len(pinned) >= 10
    assert unpinned_dependencies(pinned) == [], name


@pytest.mark.parametrize("name", FILES)
def test_the_suite_runs_the_versions_each_environment_pins(name):
    """The tests import the program and run the policy pack in this interpreter: each pin is
    what is installed here (CI installs requirements-dev.txt, which includes the program's)."""
    for dist, version in pins(name).items():
        assert metadata.version(dist) == version, f"{name} pins {dist}=={version}"


def test_a_loose_or_missing_pin_is_caught(tmp_path):
    """The checks can fail: a range instead of a pin is refused, a set without a dependency
    of one of its pins is not closed, and neither is one pinning it outside its range."""
    (tmp_path / "loose.txt").write_text("pytest>=9\n")
    with pytest.raises(AssertionError, match="not an exact pin"):
        pins("loose.txt", tmp_path)
    (tmp_path / "open.txt").write_text("# tests\npytest==9.0.3\n")
    assert any(
        "pytest 9.0.3 needs pluggy" in p for p in unpinned_dependencies(pins("open.txt", tmp_path))
    )
    (tmp_path / "off.txt").write_text(
        "-r open.txt\npluggy==0.1\niniconfig==2.3.1\npackaging==26.4\npygments==2.21.0\n"
    )
    assert any(
        "but pluggy==0.1 is pinned" in p for p in unpinned_dependencies(pins("off.txt", tmp_path))
    )
