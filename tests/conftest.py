"""Shared fixtures: offline runs of the real program, cached per stack for the session."""

from __future__ import annotations

import functools
import gc
import pickle
from pathlib import Path
from typing import Any

import pytest
import yaml

from tools.engine import (
    ROOT,
    Run,
    attempt,
    read_stack_config,
    run_stack,
    stack_file,
    with_offline_secrets,
)

STACKS = ("dev", "staging", "production")

# The session's collector: young collections every 10 000 allocations instead of 700. The session
# keeps a large heap alive (the committed stacks' runs, plans, schemas) while tests allocate
# millions of short-lived objects (the policy servicer builds a proxy tree per resource and
# policy); at 700 those objects outlived young collections, and the promotions set off a full
# collection of the whole heap about a hundred times (17 s, a sixth of the suite). Tests that
# tune or check the collector compare against the values they find (tests/test_plan_speed.py).
SESSION_GC_THRESHOLD = (10_000, 10, 10)


def pytest_configure(config: pytest.Config) -> None:
    gc.set_threshold(*SESSION_GC_THRESHOLD)


_RUNS: dict[str, Run] = {}


def stack_run(stack: str) -> Run:
    """The committed stack file, run once per session (the program is deterministic)."""
    if stack not in _RUNS:
        _RUNS[stack] = run_stack(stack)
    return _RUNS[stack]


@pytest.fixture(scope="session", params=STACKS)
def plan(request, tmp_path_factory) -> tuple[Run, Path]:
    """The offline plan of each committed stack, written once: (run, output directory)."""
    from tools.plan import write

    out = tmp_path_factory.mktemp(f"plan-{request.param}")
    run = stack_run(request.param)
    write(run, out)
    return run, out


@functools.lru_cache(maxsize=16)
def _parsed_config(text: str) -> bytes:
    return pickle.dumps(yaml.safe_load(text)["config"])


def stack_config(stack: str) -> dict[str, Any]:
    """The `config:` map of a committed stack file, with the secrets the offline engine assumes
    set written as `secure:` entries (as `pulumi config set --secret` does), so that a test can
    drop one to prove that its absence is refused. A new copy for each caller to change (the
    file's text parsed once, 250 tests ask)."""
    raw = pickle.loads(_parsed_config((ROOT / f"Pulumi.{stack}.yaml").read_text()))
    return with_offline_secrets(raw)


def write_stack_file(
    tmp_path: Path, config: dict[str, Any], name: str = "Pulumi.test.yaml"
) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"config": config}, sort_keys=False))
    return path


def run_config(tmp_path: Path, stack: str, config: dict[str, Any]) -> Run:
    """Run the program for an ad-hoc stack file; failures come back in `Run.error`."""
    return attempt(stack, write_stack_file(tmp_path, config))


def parsed_stack(stack: str):
    """The committed stack file parsed as the program sees it (secrets as the engine's
    placeholders), for builder tests that need a stack's typed config."""
    from components.config import parse

    values, secret_keys, _ = read_stack_config(stack_file(stack))
    prefix = "service-mesh:"
    raw = {k.removeprefix(prefix): v for k, v in values.items() if k.startswith(prefix)}
    return parse(raw, frozenset(k.removeprefix(prefix) for k in secret_keys))


# --- promtool, in the background (tests/slo_promtool.py) ------------------------------------------


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests that read a promtool verdict run last, in their order: the Python tests before
    them keep one core busy while promtool works on the other, and when the session gets to
    them most verdicts are in. (Before, the session waited at tests/test_slo*.py while promtool
    still had a third of its work queued.)"""
    items.sort(key=lambda item: "promtool_runs" in getattr(item, "fixturenames", ()))


def pytest_collection_finish(session: pytest.Session) -> None:
    """Once the tests are collected, start every promtool case the selected tests read (each
    module using `promtool_runs` declares them in `promtool_jobs()`): promtool then works on
    another core while the Python tests run, instead of the session waiting for it."""
    if session.config.option.collectonly:
        return
    from tests import slo_promtool

    modules = {
        item.module.__name__: item.module
        for item in session.items
        if "promtool_runs" in getattr(item, "fixturenames", ())
    }
    jobs: dict[str, slo_promtool.Job] = {}
    for name in sorted(modules):
        try:
            jobs |= slo_promtool.module_jobs(modules[name])
        except Exception:  # the module's own fixture reports it, in a test
            continue
    if jobs:
        slo_promtool.runs().submit(jobs)


def pytest_sessionfinish(session: pytest.Session) -> None:
    from tests import forked, slo_promtool

    slo_promtool.close()
    forked.close()


@pytest.fixture(scope="module")
def promtool_runs(request):
    """This module's promtool verdicts (`ModuleRuns`): its cases were submitted once the tests
    were collected, or are now."""
    from tests import slo_promtool

    return slo_promtool.ModuleRuns(request.module)
