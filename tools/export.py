"""An offline run as a `pulumi stack export` document (format version 3), so that the recovery
tools and their tests work on the same shape a real export has.

What a real `pulumi stack export [--show-secrets]` writes (pulumi pkg/apitype, DeploymentV3):
`{"version": 3, "deployment": {"manifest", "secrets_providers", "resources",
"pending_operations"}}`, each resource with `urn`, `custom`, `id`, `type`, `inputs`,
`outputs`, `parent`, `dependencies`, `protect`, `provider`. A secret is an envelope keyed by
Pulumi's signature: with `--show-secrets` it carries `plaintext` (the JSON text of the value),
otherwise `ciphertext`. Offline, values are the engine's placeholders and fakes; the manifest
says so.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
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
