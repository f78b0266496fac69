"""The layout's contracts (DESIGN.md): builder modules import no Pulumi, every component takes
`(name, args, opts)` with a frozen args dataclass of config slices and upstream outputs, every
section keeps its per-tier profiles in one form, nothing outside the profile machinery branches
on an environment's name, and a new environment needs only a profile entry."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import json
import subprocess
import sys
import typing
from pathlib import Path

import pulumi
import pytest
import yaml

from components import config
from components.base import profiles
from components.graph import checks as graph_checks
from tests.conftest import run_config, stack_config, stack_run
from tools.engine import ROOT

COMPONENTS = ROOT / "components"
# Modules that may import Pulumi: each package's component, the one registrar, and the stack's
# composition (it raises config errors as Pulumi's RunError).
PULUMI_MODULES = {"components.config", "components.base.resources"}


def _module(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


ALL_MODULES = sorted(_module(p) for p in COMPONENTS.rglob("*.py"))
BUILDER_MODULES = [
    m for m in ALL_MODULES if m not in PULUMI_MODULES and not m.endswith(".component")
]
COMPONENT_MODULES = [m for m in ALL_MODULES if m.endswith(".component")]


def test_every_concern_is_a_package_with_its_component():
    packages = {p.parent.name for p in COMPONENTS.glob("*/__init__.py")}
    assert {"base", "graph", "cluster", "istio", "edge", "security", "observability", "slo"} <= (
        packages
    )
    # Only the package marker and the stack's config composition stay at the top.
    assert sorted(p.name for p in COMPONENTS.glob("*.py")) == ["__init__.py", "config.py"]
    for package in packages - {"base"}:
        assert (COMPONENTS / package / "component.py").exists(), package


# Builder modules are probed in forks of one interpreter (a fresh interpreter each costs 0.13 s,
# 66 times) that has loaded only what they all import, itself proven to load no Pulumi: the
# third-party libraries and the shared config model. Each fork imports one module and reports
# the Pulumi modules it then holds; had a preload loaded Pulumi, every probe would fail.
_PRELOAD = ("pydantic", "yaml", "components.base.model")
_PROBE_SERVER = """
import importlib, json, os, sys, traceback
for name in sys.argv[1].split(","):
    importlib.import_module(name)
def pulumi_modules():
    return sorted(m for m in sys.modules if m.split(".")[0].startswith("pulumi"))
def report(**out):
    sys.stdout.write("PROBE " + json.dumps(out) + "\\n")
    sys.stdout.flush()
report(module=None, ok=True, loaded=pulumi_modules())
for line in sys.stdin:
    module = line.strip()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            importlib.import_module(module)
            out = {"ok": True, "loaded": pulumi_modules()}
        except BaseException:
            out = {"ok": False, "error": traceback.format_exc()}
        os.write(write, json.dumps(out).encode())
        os._exit(0)
    os.close(write)
    data = b""
    while chunk := os.read(read, 1 << 16):
        data += chunk
    os.close(read)
    os.waitpid(pid, 0)
    report(module=module, **json.loads(data or b'{"ok": false, "error": "the fork died"}'))
"""


def probe(*modules: str) -> dict[str, dict]:
    """module -> {"ok", "loaded" (its Pulumi modules) or "error"}, each imported alone in a
    fork of the probe server."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE_SERVER, ",".join(_PRELOAD)],
        input="".join(f"{m}\n" for m in modules),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    rows = [
        json.loads(x[len("PROBE ") :]) for x in done.stdout.splitlines() if x.startswith("PROBE ")
    ]
    server, found = rows[0], {r.pop("module"): r for r in rows[1:]}
    assert server["loaded"] == [], f"the probe's own preloads load {server['loaded']}"
    assert sorted(found) == sorted(modules), done.stdout + done.stderr
    return found


@pytest.fixture(scope="module")
def builder_probes() -> dict[str, dict]:
    return probe(*BUILDER_MODULES)


@pytest.mark.parametrize("module", BUILDER_MODULES)
def test_builder_module_imports_no_pulumi(builder_probes, module):
    """Imported alone (in a fork of an interpreter holding only Pulumi-free preloads), a builder
    module loads neither `pulumi` nor a provider: what keeps builders testable and usable by
    the policy pack and the review tool."""
    done = builder_probes[module]
    assert done["ok"], done.get("error")
    assert done["loaded"] == [], f"{module} loads {','.join(done['loaded'])}"


def test_the_probe_sees_pulumi_when_a_module_loads_it():
    """The check above can fail: a component module is caught by the same probe."""
    (done,) = probe("components.slo.component").values()
    assert done["ok"] and "pulumi" in done["loaded"], done


def _components() -> list[type[pulumi.ComponentResource]]:
    found = []
    for name in COMPONENT_MODULES:
        module = importlib.import_module(name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, pulumi.ComponentResource) and cls.__module__ == name:
                found.append(cls)
    return found


def test_there_are_components_to_check():
    assert len(_components()) >= 8


@pytest.mark.parametrize("component", _components(), ids=lambda c: c.__name__)
def test_component_takes_name_frozen_args_and_opts(component):
    params = list(inspect.signature(component.__init__).parameters)
    assert params == ["self", "name", "args", "opts"], params
    args_type = typing.get_type_hints(component.__init__)["args"]
    assert dataclasses.is_dataclass(args_type) and args_type.__dataclass_params__.frozen
    component_names = {c.__name__ for c in _components()}
    for field in dataclasses.fields(args_type):
        # Annotations are strings (`from __future__ import annotations`); read them as written.
        words = set(str(field.type).replace("[", " ").replace("]", " ").replace(",", " ").split())
        words = {w.split(".")[-1] for w in words}
        assert "PlatformConfig" not in words, f"{args_type.__name__}.{field.name}"
        assert not words & component_names, (
            f"{args_type.__name__}.{field.name} is a component; pass its outputs"
        )


SECTIONS_WITH_PROFILES = [*config.SECTIONS.values(), graph_checks]


@pytest.mark.parametrize("section", SECTIONS_WITH_PROFILES, ids=lambda s: s.__name__)
def test_every_section_has_one_profile_per_tier_in_one_form(section):
    assert set(section.PROFILES) == set(profiles.TIERS)
    for profile in section.PROFILES.values():
        assert isinstance(profile, profiles.Profile)
        assert dataclasses.is_dataclass(profile.rules)
    assert not hasattr(section, "DEFAULTS"), "defaults live in PROFILES only"


def test_every_environment_resolves_to_a_tier():
    assert {e.tier for e in profiles.ENVIRONMENTS.values()} <= set(profiles.TIERS)


_ENVIRONMENT_NAMES = {"environment", "env", "tier"}
# The profile machinery itself: it maps an environment's name to its tier and profiles.
_MAY_READ_THE_NAME = {COMPONENTS / "base" / "profiles.py", COMPONENTS / "config.py"}


def _names_in(node: ast.AST) -> set[str]:
    out = set()
    for n in ast.walk(node):
        if isinstance(n, ast.Name):
            out.add(n.id)
        elif isinstance(n, ast.Attribute):
            out.add(n.attr)
    return out


def environment_branches(source: str) -> list[int]:
    """Lines that compare an environment's name or look something up by it."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare) and _names_in(node) & _ENVIRONMENT_NAMES:
            lines.append(node.lineno)
        elif isinstance(node, ast.Subscript) and _names_in(node.slice) & _ENVIRONMENT_NAMES:
            lines.append(node.lineno)
    return lines


def test_the_branch_finder_finds_a_branch():
    assert environment_branches('x = 1 if cfg.environment == "dev" else 2\n') == [1]
    assert environment_branches("y = TABLE[environment]\n") == [1]
    assert environment_branches('label = {"environment": environment}\n') == []


def test_nothing_outside_the_profiles_branches_on_the_environment_name():
    found = {
        f"{path.relative_to(ROOT)}:{line}"
        for path in COMPONENTS.rglob("*.py")
        if path not in _MAY_READ_THE_NAME
        for line in environment_branches(path.read_text())
    }
    assert not found, f"read a profile value instead: {sorted(found)}"


def test_a_fourth_environment_is_one_profile_entry(tmp_path, monkeypatch):
    """An ephemeral `preview` environment derived from dev, with its own VPC range: one entry
    in ENVIRONMENTS, and the real program plans it."""
    monkeypatch.setitem(
        profiles.ENVIRONMENTS,
        "preview",
        profiles.Environment("dev", overrides={"cluster": {"vpcCidr": "10.140.0.0/20"}}),
    )
    cfg = {**stack_config("dev"), "service-mesh:environment": "preview"}
    cfg.pop("service-mesh:name", None)
    run = run_config(tmp_path, "preview", cfg)
    assert run.error is None, run.error
    assert run.outputs["environment"] == "preview"
    vpc = run.one("digitalocean:index/vpc:Vpc")
    assert vpc.inputs["ipRange"] == "10.140.0.0/20"
    assert vpc.inputs["name"] == "mesh-preview-fra1-10-140-0-0-20"
    dev = stack_run("dev")
    assert sorted(r.type for r in run.resources) == sorted(r.type for r in dev.resources)
    stack_file = yaml.safe_load((tmp_path / "Pulumi.test.yaml").read_text())
    assert stack_file["config"]["service-mesh:environment"] == "preview"


def test_an_unknown_environment_lists_the_declared_ones(tmp_path):
    cfg = {**stack_config("dev"), "service-mesh:environment": "preview"}
    run = run_config(tmp_path, "dev", cfg)
    assert run.error is not None and run.resources == []
    assert "service-mesh:environment = 'preview': must be one of: dev, staging, production" in str(
        run.error
    )
