"""`tools.recover check`: whether an export can rebuild its stack (refusals) and how it differs
from the program on main (warnings)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tools.export import secret_envelopes
from tools.recovery.root_ca import (
    config_value,
    expected_root,
    export_root_fingerprint,
    fingerprint,
    first_pem,
    state_root_fingerprint,
)
from tools.recovery.state import ROOT_CERT_KEY, declared, tracked, urn_stack

# --- check ----------------------------------------------------------------------------------


@dataclass
class CheckReport:
    """`refusals`: the export cannot be trusted to rebuild the stack (exit 1). `warnings`: it
    can, but differs from the current program or carries pending operations (exit 0)."""

    refusals: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def check(
    doc: dict[str, Any],
    stack: str,
    program: Any,
    root_pem: str | None = None,
    config: dict[str, Any] | None = None,
) -> CheckReport:
    """What makes `doc` unfit to rebuild `stack` (refusals), and how it differs from what the
    current program declares (warnings). `program` is the offline run of the current program
    for the stack (`tools.engine`); `config` a `pulumi config --show-secrets --json` backup."""
    report = CheckReport()
    refuse, warn = report.refusals.append, report.warnings.append
    deployment = doc["deployment"]
    if doc.get("version") != 3:
        refuse(f"version: {doc.get('version')!r}, expected 3 (`pulumi stack export`)")
    resources = deployment["resources"]
    for r in resources:
        if urn_stack(r["urn"]) != stack:
            refuse(f"foreign URN (not stack {stack}): {r['urn']}")
    for r in resources:
        for section in ("inputs", "outputs"):
            for path, envelope in secret_envelopes(r.get(section) or {}, section):
                if envelope.get("plaintext") == "null" or (
                    "plaintext" not in envelope and "ciphertext" not in envelope
                ):
                    refuse(f"null secret at {r['urn']} {path}: the export lost it")
    have = export_root_fingerprint(doc)
    want, source = expected_root(doc, stack, program, root_pem, config, have)
    if have is None:
        refuse(
            "mesh root CA: no readable istio-system/cacerts root in the export (export with "
            "--show-secrets)"
        )
    elif want is not None and have != want:
        refuse(
            f"mesh root CA differs: export {have}, {source} {want} - workloads rebuilt "
            "from this export would not trust the others"
        )
    if config is not None:
        _check_config(config, doc, want, refuse, warn)
    # `stack import` drops pending operations with a warning each (pulumi
    # pkg/cmd/pulumi/stack/io.go SaveSnapshot): the backup stays usable, the reconcile step of
    # the runbook finds what they may have created.
    for op in deployment.get("pending_operations") or []:
        urn = (op.get("resource") or {}).get("urn", "?") if isinstance(op, dict) else "?"
        kind = op.get("type", "?") if isinstance(op, dict) else "?"
        warn(
            f"pending operation {kind} on {urn}: on the live stack, `pulumi refresh "
            "--clear-pending-creates` (it failed) or `--import-pending-creates <urn> "
            "--import-pending-creates <id>` (it succeeded)"
        )
    # Program drift: the export is what the stack is, main is what it will be after the next
    # `up`. Reported, never a reason to refuse a backup.
    by_urn = {r["urn"]: r for r in resources}
    program_resources = declared(program)
    for expected in (r for r in program_resources.values() if r.protect):
        found = by_urn.get(expected.urn)
        if found is None:
            warn(f"protected resource missing: {expected.urn}")
        elif not found.get("protect"):
            warn(f"not protected (the program protects it): {expected.urn}")
    recorded = {r["urn"] for r in tracked(resources)}
    for urn in sorted(recorded - set(program_resources)):
        warn(f"only in the export (the program no longer declares it): {urn}")
    for urn in sorted(set(program_resources) - recorded):
        warn(f"only in the program (missing from the export): {urn}")
    return report


def _check_config(
    config: dict[str, Any], doc: dict[str, Any], want: str | None, refuse: Any, warn: Any
) -> None:
    """The config backup: every value present (`pulumi config --json` writes none for a secret
    without --show-secrets, and the restore would set it empty), its root the
    expected one, and the secrets the stack's tier needs present. Names keys, never values."""
    from tools.engine import NAMESPACE, offline_secrets

    for key, entry in sorted(config.items()):
        if entry.get("value") is None:
            refuse(f"config backup: {key} has no value (written without --show-secrets?)")
    configured = config_value(config, ROOT_CERT_KEY)
    if configured is not None and want is not None and fingerprint(first_pem(configured)) != want:
        refuse(f"config backup: {ROOT_CERT_KEY} is not the expected root ({want})")
    plain = {k: v.get("value") for k, v in config.items()}
    in_state = state_root_fingerprint(doc) is not None
    for name in offline_secrets(plain):
        if in_state and name in ("meshCaRootCert", "meshCaRootKey"):
            continue
        entry = config.get(NAMESPACE + name)
        if entry is None:
            warn(f"config backup: secret {NAMESPACE}{name} absent: a restore would lack it")
        elif not entry.get("secret"):
            warn(f"config backup: {NAMESPACE}{name} is not a secret (`config set --secret`)")
