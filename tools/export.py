"""An offline run as a `pulumi stack export` document (format version 3), so that the recovery
tools and their tests work on the same shape a real export has.

What a real `pulumi stack export [--show-secrets]` writes (pulumi pkg/apitype, DeploymentV3):
`{"version": 3, "deployment": {"manifest", "secrets_providers", "resources",
"pending_operations"}}`, each resource with `urn`, `custom`, `id`, `type`, `inputs`,
`outputs`, `parent`, `dependencies`, `protect`, `provider`. A secret is an envelope keyed by
Pulumi's signature: with `--show-secrets` it carries `plaintext` (the JSON text of the value),
otherwise `ciphertext`. A custom resource registered without a provider (the DigitalOcean, tls
and random ones) references the engine's default provider for its package and version, which
state holds as a resource of its own (`pulumi:providers:digitalocean::default_4_84_1`, custom).
Offline, values are the engine's placeholders and fakes; the manifest says so.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from importlib import metadata
from typing import Any

from tools.engine import PROJECT, Run

SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
# Outputs a provider marks secret (additionalSecretOutputs) among those the fake cloud invents.
SECRET_OUTPUTS = frozenset(
    {"kubeConfigs", "privateKeyPem", "result", "secretKey", "accessKey", "rawConfig"}
)
OFFLINE_NOTE = "offline export written by tools.plan --export: every id, IP and secret is a fake"


def secret_envelopes(value: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every secret envelope (`{SIG_KEY: SECRET_SIG, ...}`) in a wire or state value, with its
    path (`spec.data.key`, `items[0]`); what is inside an envelope is not walked."""
    if isinstance(value, dict):
        if value.get(SIG_KEY) == SECRET_SIG:
            yield path, value
            return
        for k, v in value.items():
            yield from secret_envelopes(v, f"{path}.{k}" if path else k)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from secret_envelopes(v, f"{path}[{i}]")


def stack_urn(stack: str) -> str:
    return f"urn:pulumi:{stack}::{PROJECT}::pulumi:pulumi:Stack::{PROJECT}-{stack}"


def _envelope(value: Any, show_secrets: bool) -> dict[str, Any]:
    if show_secrets:
        return {SIG_KEY: SECRET_SIG, "plaintext": json.dumps(value)}
    digest = hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()
    return {SIG_KEY: SECRET_SIG, "ciphertext": f"v1:offline:{digest[:32]}"}


def _state_value(wire: Any, show_secrets: bool) -> Any:
    """A wire value (from the resource monitor) as state stores it."""
    if isinstance(wire, dict):
        if wire.get(SIG_KEY) == SECRET_SIG:
            return _envelope(_state_value(wire.get("value"), True), show_secrets)
        return {k: _state_value(v, show_secrets) for k, v in wire.items()}
    if isinstance(wire, list):
        return [_state_value(v, show_secrets) for v in wire]
    if isinstance(wire, float) and wire.is_integer():
        return int(wire)
    return wire


def default_provider_name(version: str | None) -> str:
    """The name the engine gives a package's default provider: `default`, then the version's
    parts joined by `_` (pulumi pkg/resource/deploy/providers/provider.go DefaultName:
    4.84.1 -> `default_4_84_1`)."""
    if not version:
        return "default"
    return "default_" + "".join(c if c.isalnum() else "_" for c in version)


def _package_version(package: str) -> str | None:
    """The installed SDK's version of a provider package (`pulumi_digitalocean` 4.84.1), the
    version its default provider is requested at."""
    try:
        return metadata.version(f"pulumi_{package.replace('-', '_')}")
    except metadata.PackageNotFoundError:
        return None


def _default_providers(run: Run, root: str) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """A default provider resource per package of the run's custom resources that name no
    provider, and the provider reference (`<urn>::<id>`) each such resource records."""
    entries: list[dict[str, Any]] = []
    refs: dict[str, str] = {}
    for r in run.resources:
        if not r.custom or r.provider or r.type.startswith("pulumi:providers:"):
            continue
        package = r.type.split(":", 1)[0]
        if package in refs:
            continue
        version = _package_version(package)
        prefix = root.split("::pulumi:pulumi:Stack::")[0]
        urn = f"{prefix}::pulumi:providers:{package}::{default_provider_name(version)}"
        fake_id = str(uuid.UUID(hashlib.sha256(urn.encode()).hexdigest()[:32]))
        inputs = {"version": version} if version else {}
        entries.append(
            {
                "urn": urn,
                "custom": True,
                "id": fake_id,
                "type": f"pulumi:providers:{package}",
                "inputs": inputs,
                "outputs": dict(inputs),
            }
        )
        refs[package] = f"{urn}::{fake_id}"
    return entries, refs


def export_document(
    run: Run, show_secrets: bool = True, time: str = "1970-01-01T00:00:00Z"
) -> dict:
    """The run as a version-3 stack export. `show_secrets` as `--show-secrets` (what a backup
    needs, since service-encrypted ciphertext cannot be read once the stack is gone)."""
    root = stack_urn(run.stack)
    resources: list[dict[str, Any]] = [
        {
            "urn": root,
            "custom": False,
            "type": "pulumi:pulumi:Stack",
            "outputs": _state_value(run.wire_outputs, show_secrets),
        }
    ]
    providers, default_refs = _default_providers(run, root)
    resources += providers
    for r in run.resources:
        inputs = _state_value(r.wire_inputs, show_secrets)
        outputs = dict(inputs)
        for key, value in r.fake_outputs.items():
            outputs[key] = (
                _envelope(value, show_secrets)
                if key in SECRET_OUTPUTS
                else _state_value(value, show_secrets)
            )
        entry: dict[str, Any] = {
            "urn": r.urn,
            "custom": r.custom,
            "type": r.type,
            "inputs": inputs,
            "outputs": outputs,
            "parent": r.parent or root,
            "dependencies": list(r.dependencies),
        }
        if r.custom and r.resource_id is not None:
            entry["id"] = r.resource_id
        if r.protect:
            entry["protect"] = True
        if r.provider:
            entry["provider"] = r.provider
        elif r.custom and not r.type.startswith("pulumi:providers:"):
            entry["provider"] = default_refs[r.type.split(":", 1)[0]]
        resources.append(entry)
    return {
        "version": 3,
        "deployment": {
            "manifest": {
                "time": time,
                "magic": "offline",
                "version": "offline",
                "note": OFFLINE_NOTE,
            },
            "secrets_providers": {"type": "passphrase", "state": {"salt": "v1:offline:fake-salt"}},
            "resources": resources,
            "pending_operations": [],
        },
    }
