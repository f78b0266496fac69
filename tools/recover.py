"""Disaster recovery from stack exports, checked against the program (docs/recovery.md).

    python -m tools.recover check EXPORT --stack STACK [--stack-file F] [--root-cert PEM]
    python -m tools.recover plan EXPORT --lost cluster|region [--region R] [--stack STACK]

`check` validates an export (`pulumi stack export --show-secrets`, or `tools.plan --export`)
before it is trusted or imported: format version, every URN of STACK, no pending operations, no
null secret, the resources the program protects present and protected, the mesh root CA the same
(by fingerprint) as the one the stack is configured with, and the resource set equal to what the
program declares. One finding per line; exit 0 when there is none, 1 when there are, 2 on bad
input.

`plan` prints the runbook for a lost cluster or a lost region: the exact commands in order,
which resources are retained (same URN and identity), recreated (and in what dependency order),
updated in place, or only in state; and an estimated recovery time from the graph depth.
Nothing here runs Pulumi, touches the cloud, or writes a file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.export import SECRET_SIG, SIG_KEY, secret_envelopes

CLUSTER_TYPES = (
    "digitalocean:index/kubernetesCluster:KubernetesCluster",
    "digitalocean:index/kubernetesNodePool:KubernetesNodePool",
)
K8S_PROVIDER = "pulumi:providers:kubernetes"
PROJECT_RESOURCES = "digitalocean:index/projectResources:ProjectResources"
# Regional DigitalOcean resources that a region loss takes with it (beyond the cluster). DNS
# (Domain, DnsRecord), firewalls, tags, projects and Spaces keys are account-wide; a Spaces
# bucket is lost only when it is in the lost region.
REGIONAL_TYPES = (
    "digitalocean:index/vpc:Vpc",
    "digitalocean:index/loadBalancer:LoadBalancer",
)
SPACES_BUCKET = "digitalocean:index/spacesBucket:SpacesBucket"
CACERTS = ("istio-system", "cacerts")
STATE_ROOT = "tls:index/selfSignedCert:SelfSignedCert"  # a root kept in state (dev, staging)

# Typical minutes to create one resource of a type, for the recovery-time estimate: DOKS says a
# cluster is ready in "several minutes" (we use 7, plus 4 for a node pool); a load balancer
# "a few minutes" (3); Helm releases wait for readiness, bounded by our 900 s timeout (we use 4
# for Istio and kube-prometheus-stack, 2 otherwise); Kubernetes objects and DO metadata are
# seconds. Estimates, not measurements: the real figure is what a drill on a real account shows.
CREATE_MINUTES: dict[str, float] = {
    "digitalocean:index/kubernetesCluster:KubernetesCluster": 7,
    "digitalocean:index/kubernetesNodePool:KubernetesNodePool": 4,
    "digitalocean:index/loadBalancer:LoadBalancer": 3,
    "digitalocean:index/vpc:Vpc": 0.5,
    "digitalocean:index/spacesBucket:SpacesBucket": 0.5,
    "kubernetes:helm.sh/v3:Release": 4,
    "kubernetes:helm.sh/v4:Chart": 2,
}
DEFAULT_CREATE_MINUTES = 0.1


class RecoverInputError(Exception):
    """Bad input: exit 2 with the message, no traceback."""


# --- reading an export ----------------------------------------------------------------------


def load_export(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise RecoverInputError(f"{path}: no such file")
    try:
        doc = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RecoverInputError(f"{path}: not a JSON stack export ({error})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("deployment"), dict):
        raise RecoverInputError(f"{path}: not a stack export (no `deployment` object)")
    resources = doc["deployment"].get("resources")
    if not isinstance(resources, list) or not all(
        isinstance(r, dict) and isinstance(r.get("urn"), str) for r in resources
    ):
        raise RecoverInputError(f"{path}: `deployment.resources` must be a list of resources")
    return doc


def _urn_stack(urn: str) -> str | None:
    parts = urn.split("::")
    head = parts[0].split(":")
    return head[2] if len(head) == 3 and head[:2] == ["urn", "pulumi"] else None


def _is_resource(r: dict[str, Any]) -> bool:
    """A resource the cloud holds: custom ones, and Helm charts (remote components that render
    objects into the cluster)."""
    return bool(r.get("custom")) or str(r.get("type", "")).startswith("kubernetes:helm.sh/v4:")


def _plaintext(value: Any) -> Any:
    """A state value with its secrets opened (they must be `--show-secrets` plaintext)."""
    if isinstance(value, dict):
        if value.get(SIG_KEY) == SECRET_SIG:
            return json.loads(value["plaintext"]) if "plaintext" in value else None
        return {k: _plaintext(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plaintext(v) for v in value]
    return value


def _wire_plaintext(value: Any) -> Any:
    """A value as the offline engine saw it on the wire, secrets opened."""
    if isinstance(value, dict):
        if value.get(SIG_KEY) == SECRET_SIG:
            return _wire_plaintext(value.get("value"))
        return {k: _wire_plaintext(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_wire_plaintext(v) for v in value]
    return value


# --- the mesh root CA -----------------------------------------------------------------------


def first_pem(text: str) -> str:
    """The first certificate of a PEM bundle (root-cert.pem holds the root, then any roots
    trusted during a rotation), or the text itself when it holds no PEM block."""
    end = "-----END CERTIFICATE-----"
    if "-----BEGIN CERTIFICATE-----" in text and end in text:
        return text[text.index("-----BEGIN CERTIFICATE-----") : text.index(end) + len(end)] + "\n"
    return text.strip() + "\n"


def fingerprint(pem: str) -> str:
    """SHA-256 of the certificate's DER, as `openssl x509 -fingerprint -sha256` shows it; for a
    text that is not a certificate (the offline engine's placeholders), of the text."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    try:
        der = x509.load_pem_x509_certificate(pem.encode()).public_bytes(Encoding.DER)
    except ValueError:
        return "sha256-text:" + hashlib.sha256(pem.strip().encode()).hexdigest()
    digest = hashlib.sha256(der).hexdigest().upper()
    return "SHA256:" + ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def _cacerts(resources: Iterable[dict[str, Any]], open_: Any) -> dict[str, Any] | None:
    for r in resources:
        if r.get("type") != "kubernetes:core/v1:Secret":
            continue
        meta = (r.get("inputs") or {}).get("metadata") or {}
        if (meta.get("namespace"), meta.get("name")) == CACERTS:
            return open_((r.get("inputs") or {}).get("stringData"))
    return None


def export_root_fingerprint(doc: dict[str, Any]) -> str | None:
    data = _cacerts(doc["deployment"]["resources"], _plaintext)
    if not isinstance(data, dict) or not isinstance(data.get("root-cert.pem"), str):
        return None
    return fingerprint(first_pem(data["root-cert.pem"]))


def program_root_fingerprint(program: Any) -> str | None:
    """The root the program writes into `cacerts` for the stack's current config."""
    entries = [{"type": r.type, "inputs": r.wire_inputs} for r in program.resources]
    data = _cacerts(entries, _wire_plaintext)
    if not isinstance(data, dict) or not isinstance(data.get("root-cert.pem"), str):
        return None
    return fingerprint(first_pem(data["root-cert.pem"]))


def _expected_root(doc: dict[str, Any], program: Any, root_pem: str | None) -> str | None:
    """The root the stack trusts: the PEM given (`pulumi config get service-mesh:meshCaRootCert`
    for a real stack, whose encrypted config the offline engine cannot read); where the tier
    lets the stack keep its root in state, the export's own state root; else the configured root
    as the offline program sees it."""
    if root_pem is not None:
        return fingerprint(first_pem(root_pem))
    if any(r.type == STATE_ROOT for r in program.resources):
        for r in doc["deployment"]["resources"]:
            if r.get("type") == STATE_ROOT:
                cert = _plaintext((r.get("outputs") or {}).get("certPem"))
                return fingerprint(first_pem(cert)) if isinstance(cert, str) else None
        return None
    return program_root_fingerprint(program)


# --- check ----------------------------------------------------------------------------------


def check(doc: dict[str, Any], stack: str, program: Any, root_pem: str | None = None) -> list[str]:
    """Every reason not to trust or import `doc` for `stack`; empty when there is none.
    `program` is the offline run of the current program for the stack (`tools.engine`)."""
    findings: list[str] = []
    deployment = doc["deployment"]
    if doc.get("version") != 3:
        findings.append(f"version: {doc.get('version')!r}, expected 3 (`pulumi stack export`)")
    resources = deployment["resources"]
    for r in resources:
        if _urn_stack(r["urn"]) != stack:
            findings.append(f"foreign URN (not stack {stack}): {r['urn']}")
    for op in deployment.get("pending_operations") or []:
        urn = (op.get("resource") or {}).get("urn", "?") if isinstance(op, dict) else "?"
        kind = op.get("type", "?") if isinstance(op, dict) else "?"
        findings.append(f"pending operation {kind} on {urn}: resolve it before backing up")
    for r in resources:
        for section in ("inputs", "outputs"):
            for path, envelope in secret_envelopes(r.get(section) or {}, section):
                if envelope.get("plaintext") == "null" or (
                    "plaintext" not in envelope and "ciphertext" not in envelope
                ):
                    findings.append(f"null secret at {r['urn']} {path}: the export lost it")
    by_urn = {r["urn"]: r for r in resources}
    for expected in (r for r in program.resources if r.protect):
        found = by_urn.get(expected.urn)
        if found is None:
            findings.append(f"protected resource missing: {expected.urn}")
        elif not found.get("protect"):
            findings.append(f"not protected (the program protects it): {expected.urn}")
    want = _expected_root(doc, program, root_pem)
    have = export_root_fingerprint(doc)
    if have is None:
        findings.append(
            "mesh root CA: no readable istio-system/cacerts root in the export (export with "
            "--show-secrets)"
        )
    elif want is not None and have != want:
        findings.append(
            f"mesh root CA differs: export {have}, stack config {want} — workloads rebuilt "
            "from this export would not trust the others"
        )
    declared = {r.urn for r in program.resources if r.custom or r.remote}
    recorded = {r["urn"] for r in resources if _is_resource(r)}
    for urn in sorted(recorded - declared):
        findings.append(f"only in the export (the program no longer declares it): {urn}")
    for urn in sorted(declared - recorded):
        findings.append(f"only in the program (missing from the export): {urn}")
    return findings


# --- recovery plan --------------------------------------------------------------------------


@dataclass
class RecoveryPlan:
    stack: str
    lost: str
    retained: list[str] = field(default_factory=list)
    recreated: list[str] = field(default_factory=list)  # in dependency order
    updated: list[str] = field(default_factory=list)
    only_in_state: list[str] = field(default_factory=list)
    helm_releases: list[str] = field(default_factory=list)  # need `state delete`
    minutes: float = 0.0
    commands: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def lost_urns(resources: list[dict[str, Any]], lost: str) -> set[str]:
    """What a refresh after the loss drops from state: the cluster, its pools and provider and
    every object on that provider; for a region (the cluster's), also the regional resources
    there."""
    region = next(
        (
            (r.get("inputs") or {}).get("region")
            for r in resources
            if r.get("type") == CLUSTER_TYPES[0]
        ),
        None,
    )
    out = {r["urn"] for r in resources if r.get("type") in CLUSTER_TYPES}
    providers = {r["urn"] for r in resources if r.get("type") == K8S_PROVIDER}
    out |= providers
    for r in resources:
        provider = str(r.get("provider") or "")
        if any(provider.startswith(p + "::") for p in providers):
            out.add(r["urn"])
    if lost == "region":
        for r in resources:
            kind = r.get("type")
            bucket_region = (r.get("inputs") or {}).get("region")
            if kind in REGIONAL_TYPES or (kind == SPACES_BUCKET and bucket_region == region):
                out.add(r["urn"])
    for r in resources:
        if r.get("type") == PROJECT_RESOURCES and set(r.get("dependencies") or []) & out:
            out.add(r["urn"])
    return out


def _order(urns: set[str], deps: dict[str, list[str]]) -> list[str]:
    """Dependency order (a dependency before what depends on it), stable by URN."""
    done: list[str] = []
    seen: set[str] = set()

    def visit(urn: str) -> None:
        if urn in seen:
            return
        seen.add(urn)
        for d in sorted(deps.get(urn, [])):
            if d in urns:
                visit(d)
        done.append(urn)

    for urn in sorted(urns):
        visit(urn)
    return done


def _critical_minutes(urns: list[str], deps: dict[str, list[str]], kinds: dict[str, str]) -> float:
    finish: dict[str, float] = {}
    for urn in urns:  # in dependency order
        start = max((finish[d] for d in deps.get(urn, []) if d in finish), default=0.0)
        finish[urn] = start + CREATE_MINUTES.get(kinds[urn], DEFAULT_CREATE_MINUTES)
    return max(finish.values(), default=0.0)


def recovery_plan(
    doc: dict[str, Any], stack: str, program: Any, lost: str, region: str | None = None
) -> RecoveryPlan:
    resources = [r for r in doc["deployment"]["resources"] if _is_resource(r)]
    gone = lost_urns(resources, lost)
    after = {r["urn"] for r in resources} - gone
    declared = {r.urn: r for r in program.resources if r.custom or r.remote}
    # A resource waits for its dependencies and for its provider (the in-cluster objects for
    # the Kubernetes provider, hence the cluster): both order the rebuild.
    deps = {
        urn: [*r.dependencies, *([r.provider.rsplit("::", 1)[0]] if r.provider else [])]
        for urn, r in declared.items()
    }
    kinds = {urn: r.type for urn, r in declared.items()}
    plan = RecoveryPlan(stack=stack, lost=lost)
    plan.retained = sorted(after & set(declared))
    plan.recreated = _order(set(declared) - after, deps)
    plan.only_in_state = sorted(after - set(declared))
    recreated = set(plan.recreated)
    plan.updated = sorted(u for u in plan.retained if set(deps.get(u, [])) & recreated)
    plan.helm_releases = sorted(
        r["urn"]
        for r in resources
        if r["urn"] in gone and r.get("type") == "kubernetes:helm.sh/v3:Release"
    )
    plan.minutes = _critical_minutes(plan.recreated, deps, kinds)
    plan.commands = _commands(stack, lost, region, plan)
    if lost == "region":
        plan.notes += [
            "A load balancer's IP cannot move to another region: the new one gets a new IP, and "
            "the DNS records (retained, updated in place) point the hosts at it; clients follow "
            "after the records' TTL (ingress.dnsTtl).",
            "Workload identities hold: same trust domain, and the mesh root CA comes from stack "
            "config, so a new intermediate is issued under the same root.",
            "Logs in a Spaces bucket of the lost region are gone; metrics, traces and Grafana "
            "state are rebuilt empty (docs/recovery.md).",
        ]
    else:
        plan.notes += [
            "The load balancer, its IP, the DNS zone and records, the VPC and the mesh CA's "
            "intermediate stay: clients keep the same address, workloads the same identities.",
            "Everything in the cluster is recreated under the same URNs; metrics, traces and "
            "dev/staging logs start empty, Flagger keeps no promotion state (docs/recovery.md).",
        ]
    return plan


def _commands(stack: str, lost: str, region: str | None, plan: RecoveryPlan) -> list[str]:
    cmds = [
        "# 0. If the state backend itself was lost: restore the latest backup (state-backup.yml)",
        "age --decrypt -i backup-key.txt -o export.json <backup>/export.json.age",
        "pulumi login <backend>  # the same backend, or a new one; then a stack of the SAME name",
        f"pulumi stack init {stack} --secrets-provider <the escrowed provider, e.g. passphrase>",
        f"cp <backup>/Pulumi.{stack}.yaml .  # config, encryptionsalt and secretsprovider",
        f"python -m tools.recover check export.json --stack {stack}",
        f"pulumi stack import --file export.json -s {stack}",
    ]
    if lost == "region":
        new_region = region or "<new region>"
        cmds.append(f"pulumi config set --path service-mesh:cluster.region {new_region} -s {stack}")
    cmds += [
        "# 1. Forget what died with the cluster (protect is not consulted by refresh)",
        "export PULUMI_K8S_DELETE_UNREACHABLE=true  # drop objects of the unreachable cluster",
        "export DIGITALOCEAN_ACCESS_TOKEN=<token>   # doctl exec credential and the provider",
        f"pulumi refresh --run-program --yes -s {stack}",
    ]
    for urn in plan.helm_releases:
        cmds.append(
            f"pulumi state delete '{urn}' --force -s {stack}"
            "  # helm.v3.Release ignores deleteUnreachable"
        )
    for urn in plan.only_in_state:
        cmds.append(f"pulumi state delete '{urn}' -s {stack}  # no longer declared")
    cmds += [
        "# 2. Rebuild, reviewing the plan first",
        f"pulumi preview --diff -s {stack}",
        f"pulumi up -s {stack}",
        "kubectl get pods -A  # then restart workloads you deploy yourself (docs/recovery.md)",
    ]
    return cmds


def render_plan(plan: RecoveryPlan) -> str:
    def block(title: str, urns: list[str]) -> list[str]:
        return [f"{title} ({len(urns)}):", *(f"  {u}" for u in urns)]

    lines = [f"Recovery of stack {plan.stack} after a lost {plan.lost}", "", "Commands, in order:"]
    lines += [f"  {c}" for c in plan.commands]
    lines += ["", *block("Retained (same URN and identity)", plan.retained)]
    lines += block("Updated in place", plan.updated)
    lines += block("Recreated, in dependency order", plan.recreated)
    if plan.only_in_state:
        lines += block("Only in state (delete)", plan.only_in_state)
    lines += [
        "",
        f"Estimated recovery time: about {plan.minutes:.0f} minutes along the longest dependency "
        "chain (typical create times in tools/recover.py CREATE_MINUTES; estimates, not "
        "measurements)",
    ]
    lines += ["", *plan.notes]
    return "\n".join(lines)


# --- command line ---------------------------------------------------------------------------


def _program(stack: str, stack_file: Path | None):
    from components.base.model import ConfigError
    from tools.engine import run_stack

    try:
        return run_stack(stack, stack_file)
    except ConfigError as error:
        raise RecoverInputError(str(error)) from None
    except (OSError, ValueError) as error:
        raise RecoverInputError(f"stack {stack}: {error}") from None


def _stack_of(doc: dict[str, Any]) -> str:
    for r in doc["deployment"]["resources"]:
        if r.get("type") == "pulumi:pulumi:Stack":
            found = _urn_stack(r["urn"])
            if found:
                return found
    raise RecoverInputError("the export has no stack resource; pass --stack")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.recover", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("check", help="validate an export against the current program")
    c.add_argument("export", type=Path)
    c.add_argument("--stack", required=True)
    c.add_argument("--stack-file", type=Path, help="instead of Pulumi.STACK.yaml")
    c.add_argument(
        "--root-cert", type=Path, help="the mesh root CA (PEM) the stack is configured with"
    )
    p = sub.add_parser("plan", help="print the runbook for a lost cluster or region")
    p.add_argument("export", type=Path)
    p.add_argument("--lost", choices=("cluster", "region"), required=True)
    p.add_argument("--region", help="with --lost region: the region to rebuild in")
    p.add_argument("--stack", help="default: the export's stack")
    p.add_argument("--stack-file", type=Path)
    args = parser.parse_args(argv)
    try:
        doc = load_export(args.export)
        if args.command == "check":
            if args.root_cert is not None and not args.root_cert.is_file():
                raise RecoverInputError(f"--root-cert {args.root_cert}: no such file")
            root = args.root_cert.read_text() if args.root_cert else None
            findings = check(doc, args.stack, _program(args.stack, args.stack_file), root)
            for line in findings:
                print(line)
            print(
                f"{len(findings)} finding(s)" if findings else f"export OK for stack {args.stack}"
            )
            return 1 if findings else 0
        stack = args.stack or _stack_of(doc)
        if args.lost == "region" and not args.region:
            raise RecoverInputError("--lost region needs --region (the region to rebuild in)")
        plan = recovery_plan(doc, stack, _program(stack, args.stack_file), args.lost, args.region)
        print(render_plan(plan))
        return 0
    except RecoverInputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    import os

    os._exit(code)
