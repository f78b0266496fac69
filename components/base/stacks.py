"""The project's stack files as a whole: how their values arrive, keys written under a namespace
nothing reads (`servicemesh:slos`), and two stacks that would give their resources the same
`name` (staging's load balancer and firewall would target production's droplet tag). One
stack's run sees only its own config, so `components.config.load` reads the sibling stack files
beside `Pulumi.yaml`; a test runs `name_collisions` over the committed ones. Pure: no Pulumi.
"""

from __future__ import annotations

import difflib
import functools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from components.base.model import NAMESPACE, Problem

# Config namespaces a stack file may use besides ours: the providers' own settings (and
# Pulumi's). A key under any other namespace is a typo the program would never read.
PROVIDER_NAMESPACES: tuple[str, ...] = ("digitalocean", "kubernetes", "pulumi", "tls", "random")


def decode(raw: Any) -> Any:
    """Pulumi hands config values over as strings; objects and numbers arrive JSON-encoded."""
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def namespace_problems(
    values: Mapping[str, Any], secret_keys: frozenset[str] = frozenset()
) -> list[Problem]:
    """Keys (with their namespace, as the runtime holds every key of the stack file) under a
    namespace nobody reads: the program would silently run without them. Values of
    `secret_keys` are not shown."""
    known = (NAMESPACE, *PROVIDER_NAMESPACES)
    problems = []
    for full_key in sorted(values):
        namespace, _, key = full_key.rpartition(":")
        if namespace in known:
            continue
        close = difflib.get_close_matches(namespace, known, n=1, cutoff=0.6)
        meant = f"{close[0] if close else NAMESPACE}:{key}"
        value = "[not shown]" if full_key in secret_keys else decode(values[full_key])
        problems.append(
            Problem(
                key,
                value,
                f"unknown config namespace {namespace!r}, nothing reads this key: did you mean "
                f"`{meant}`? (namespaces used here: {', '.join(known)})",
                namespace=namespace,
            )
        )
    return problems


def derived_name(stack_config: Mapping[str, Any], default_names: Mapping[str, str]) -> str | None:
    """The `name` a stack file (its `config:` map) gives its resources: `service-mesh:name`,
    else its environment's default from `default_names` (environment -> name, `mesh-<env>`);
    None when the file names no known environment."""
    name = stack_config.get(f"{NAMESPACE}:name")
    if isinstance(name, str):
        return name
    environment = stack_config.get(f"{NAMESPACE}:environment")
    if isinstance(environment, str):
        return default_names.get(environment)
    return None


def _files(stacks: list[str]) -> str:
    return ", ".join(f"{s!r} (Pulumi.{s}.yaml)" for s in stacks)


def name_problem(name: str, shared_with: list[str], this_stack: bool = False) -> Problem:
    """`name` used by the stacks `shared_with` (and by this one)."""
    whose = f"also the name of {_files(shared_with)}" if this_stack else _files(shared_with)
    return Problem(
        "name",
        name,
        f"is {'' if this_stack else 'the name of '}{whose}: their VPC, cluster, load balancer, "
        "firewall and droplet tag would be the same resources; give each stack its own "
        f"{NAMESPACE}:name",
    )


def name_collisions(
    stacks: Mapping[str, Mapping[str, Any]], default_names: Mapping[str, str]
) -> list[Problem]:
    """Stacks (stack -> its file's `config:` map) that would share a `name`."""
    owners: dict[str, list[str]] = {}
    for stack, stack_config in stacks.items():
        name = derived_name(stack_config, default_names)
        if name is not None:
            owners.setdefault(name, []).append(stack)
    return [name_problem(name, found) for name, found in owners.items() if len(found) > 1]


@functools.lru_cache(maxsize=64)
def _parsed(text: str) -> Any:
    """A stack or project file's text parsed, once per distinct text: every run reads the
    sibling files, and a process that runs the program many times (the tests, a review of three
    stacks) would parse the same few files again each time. Shared: callers only read it."""
    return yaml.safe_load(text)


def sibling_names(
    stack: str, project_dir: Path, default_names: Mapping[str, str]
) -> dict[str, str]:
    """The derived `name` of every other stack file of the project (stack -> name), read beside
    `Pulumi.yaml` (or in its `stackConfigDir`). A file that cannot be read is skipped: its own
    run reports it."""
    try:
        project = _parsed((project_dir / "Pulumi.yaml").read_text()) or {}
        config_dir = project_dir / str(project.get("stackConfigDir") or ".")
    except (OSError, yaml.YAMLError, AttributeError):
        return {}
    out: dict[str, str] = {}
    for path in sorted(config_dir.glob("Pulumi.*.yaml")):
        other = path.name.removeprefix("Pulumi.").removesuffix(".yaml")
        if other == stack:
            continue
        try:
            name = derived_name(
                (_parsed(path.read_text()) or {}).get("config") or {}, default_names
            )
        except (OSError, yaml.YAMLError, AttributeError):
            continue
        if name is not None:
            out[other] = name
    return out
