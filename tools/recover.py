"""Disaster recovery from stack exports, checked against the program (docs/recovery.md).

    python -m tools.recover check EXPORT --stack STACK [--config CONFIG_JSON] [--root-cert PEM]
                                         [--stack-file F]
    python -m tools.recover plan EXPORT --lost cluster|region [--region R] [--stack STACK]

`check` says whether an export (`pulumi stack export --show-secrets`, or `tools.plan --export`)
can rebuild the stack. It **refuses** it (exit 1) only for what makes it unfit: a format other
than version 3, a URN of another stack, a null secret, no readable `istio-system/cacerts` root,
a root other than the stack's (by fingerprint), or a config backup (`pulumi config
--show-secrets --json`) with a value missing. What differs from the current program (resources
only in the export or only in the program, protect flags) and pending operations are
**warnings** (exit 0): routine pending changes never cost a day's backup. Exit 2 on bad input,
and for a stack whose root comes from config when no `--root-cert` (or `--config`) says which
root that is. Provider resources and the objects a `helm.sh/v4` Chart renders are state
bookkeeping the offline program does not register: neither is compared.

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
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.export import SECRET_SIG, SIG_KEY, secret_envelopes

CLUSTER_TYPES = (
    "digitalocean:index/kubernetesCluster:KubernetesCluster",
    "digitalocean:index/kubernetesNodePool:KubernetesNodePool",
)
PROVIDERS = "pulumi:providers:"  # type prefix of every provider resource, default or explicit
K8S_PROVIDER = "pulumi:providers:kubernetes"
CHART_V4 = "kubernetes:helm.sh/v4:Chart"
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
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
ROOT_CERT_KEY = "service-mesh:meshCaRootCert"

# What state-backup.yml uploads (its upload-artifact steps; tests/test_recovery.py keeps these
# equal to the workflow): one artifact per stack, run and attempt (`...-unverified` when the
# check refused the export), holding the age-encrypted gzip tar of export.json, config.json and
# Pulumi.<stack>.yaml.
ARTIFACT = "state-backup-{stack}-<run-id>-<attempt>"
ENCRYPTED = "backup-{stack}.tgz.age"

# Listings that show what the account holds, per DigitalOcean type (doctl, checked against
# digitalocean/doctl commands/*.go): the reconcile step compares the preview's creates with them.
DOCTL_LISTINGS: dict[str, str] = {
    "digitalocean:index/vpc:Vpc": "doctl vpcs list",
    "digitalocean:index/kubernetesCluster:KubernetesCluster": "doctl kubernetes cluster list",
    "digitalocean:index/kubernetesNodePool:KubernetesNodePool": (
        "doctl kubernetes cluster node-pool list <cluster-id>"
    ),
    "digitalocean:index/loadBalancer:LoadBalancer": "doctl compute load-balancer list",
    "digitalocean:index/domain:Domain": "doctl compute domain list",
    "digitalocean:index/dnsRecord:DnsRecord": "doctl compute domain records list <domain>",
    "digitalocean:index/firewall:Firewall": "doctl compute firewall list",
    "digitalocean:index/tag:Tag": "doctl compute tag list",
    "digitalocean:index/project:Project": "doctl projects list",
    PROJECT_RESOURCES: "doctl projects resources list <project-id>",
    "digitalocean:index/spacesKey:SpacesKey": "doctl spaces keys list",
    SPACES_BUCKET: (
        "aws s3 ls --endpoint-url https://<region>.digitaloceanspaces.com  # S3-compatible"
    ),
}

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


def load_config_backup(path: Path) -> dict[str, Any]:
    """A `pulumi config --show-secrets --json` file: `{key: {value, objectValue?, secret}}`
    (configValueJSON, pulumi pkg/cmd/pulumi/config/config.go), what `config set-all --json`
    reads back."""
    if not path.is_file():
        raise RecoverInputError(f"--config {path}: no such file")
    try:
        doc = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RecoverInputError(f"--config {path}: not JSON ({error})") from None
    if not isinstance(doc, dict) or not all(isinstance(v, dict) for v in doc.values()):
        raise RecoverInputError(
            f"--config {path}: not the output of `pulumi config --show-secrets --json` "
            "(an object of {value, secret} entries)"
        )
    return doc


def _urn_stack(urn: str) -> str | None:
    parts = urn.split("::")
    head = parts[0].split(":")
    return head[2] if len(head) == 3 and head[:2] == ["urn", "pulumi"] else None


def _ref_urn(ref: str) -> str:
    """The URN of a provider reference (`<provider URN>::<provider id>`)."""
    return ref.rsplit("::", 1)[0]


def _is_provider(type_: str) -> bool:
    return type_.startswith(PROVIDERS)


def _rendered_by_chart(r: dict[str, Any], by_urn: dict[str, dict[str, Any]]) -> bool:
    """Whether a helm.sh/v4 Chart rendered the resource: its parent chain reaches a Chart (the
    URN's qualified type lists the parents' types; the parent fields say it too)."""
    parts = r["urn"].split("::")
    if len(parts) > 2 and CHART_V4 in parts[2].split("$")[:-1]:
        return True
    seen: set[str] = set()
    parent = r.get("parent")
    while isinstance(parent, str) and parent and parent not in seen:
        seen.add(parent)
        found = by_urn.get(parent)
        if found is None:
            return False
        if found.get("type") == CHART_V4:
            return True
        parent = found.get("parent")
    return False


def tracked(resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The export's resources that the program declares one by one, so that `check` and `plan`
    compare them: custom resources and v4 Charts (remote components that render objects), but
    no provider (the engine adds a default provider per package and version, `default_4_84_1`,
    that no program registers) and no object a Chart rendered (the program declares the Chart,
    the provider renders its objects)."""
    by_urn = {r["urn"]: r for r in resources}
    return [
        r
        for r in resources
        if (r.get("custom") or r.get("type") == CHART_V4)
        and not _is_provider(str(r.get("type", "")))
        and not _rendered_by_chart(r, by_urn)
    ]


def declared(program: Any) -> dict[str, Any]:
    """The program's counterpart of `tracked`: its custom resources and remote components,
    without providers."""
    return {
        r.urn: r for r in program.resources if (r.custom or r.remote) and not _is_provider(r.type)
    }


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


PLACEHOLDER_FINGERPRINT = "sha256-text:"


def fingerprint(pem: str) -> str:
    """SHA-256 of the certificate's DER, as `openssl x509 -fingerprint -sha256` shows it; for a
    text that is not a certificate (the offline engine's placeholders), of the text."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    try:
        der = x509.load_pem_x509_certificate(pem.encode()).public_bytes(Encoding.DER)
    except ValueError:
        return PLACEHOLDER_FINGERPRINT + hashlib.sha256(pem.strip().encode()).hexdigest()
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


def state_root_fingerprint(doc: dict[str, Any]) -> str | None:
    """The root the export keeps in state (a tier that allows it, without meshCaRootCert), or
    None when the stack's root comes from config."""
    for r in doc["deployment"]["resources"]:
        if r.get("type") == STATE_ROOT:
            cert = _plaintext((r.get("outputs") or {}).get("certPem"))
            return fingerprint(first_pem(cert)) if isinstance(cert, str) else "unreadable"
    return None


def _config_value(config: dict[str, Any] | None, key: str) -> str | None:
    entry = (config or {}).get(key)
    value = entry.get("value") if isinstance(entry, dict) else None
    return value if isinstance(value, str) else None


def _expected_root(
    doc: dict[str, Any],
    stack: str,
    program: Any,
    root_pem: str | None,
    config: dict[str, Any] | None,
    have: str | None,
) -> tuple[str | None, str]:
    """The root the stack trusts, and where it comes from. In order: the PEM given (the
    escrowed root-cert.pem); the config backup's meshCaRootCert; the export's own state root
    (a stack that keeps its root in state); for an offline export (placeholder root), the
    program's placeholder. A real root that comes from config cannot be known offline: the
    engine sees only a placeholder for the encrypted value, so that is bad input (exit 2)."""
    if root_pem is not None:
        return fingerprint(first_pem(root_pem)), "--root-cert"
    configured = _config_value(config, ROOT_CERT_KEY)
    if configured is not None:
        return fingerprint(first_pem(configured)), f"--config {ROOT_CERT_KEY}"
    in_state = state_root_fingerprint(doc)
    if in_state is not None:
        return in_state, "the export's state root"
    if have is not None and not have.startswith(PLACEHOLDER_FINGERPRINT):
        raise RecoverInputError(
            f"stack {stack} takes its mesh root CA from config ({ROOT_CERT_KEY}), which the "
            "offline program cannot read: pass --root-cert <escrowed root-cert.pem>"
        )
    return program_root_fingerprint(program), "stack config"


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
        if _urn_stack(r["urn"]) != stack:
            refuse(f"foreign URN (not stack {stack}): {r['urn']}")
    for r in resources:
        for section in ("inputs", "outputs"):
            for path, envelope in secret_envelopes(r.get(section) or {}, section):
                if envelope.get("plaintext") == "null" or (
                    "plaintext" not in envelope and "ciphertext" not in envelope
                ):
                    refuse(f"null secret at {r['urn']} {path}: the export lost it")
    have = export_root_fingerprint(doc)
    want, source = _expected_root(doc, stack, program, root_pem, config, have)
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
    """The config backup: every value present (`config set-all --json` refuses a nil one, and
    `pulumi config --json` writes none for a secret without --show-secrets), its root the
    expected one, and the secrets the stack's tier needs present. Names keys, never values."""
    from tools.engine import NAMESPACE, offline_secrets

    for key, entry in sorted(config.items()):
        if entry.get("value") is None:
            refuse(f"config backup: {key} has no value (written without --show-secrets?)")
    configured = _config_value(config, ROOT_CERT_KEY)
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


# --- recovery plan --------------------------------------------------------------------------


@dataclass
class RecoveryPlan:
    stack: str
    lost: str
    retained: list[str] = field(default_factory=list)
    recreated: list[str] = field(default_factory=list)  # in dependency order
    updated: list[str] = field(default_factory=list)
    only_in_state: list[str] = field(default_factory=list)
    helm_releases: list[str] = field(default_factory=list)  # `state delete`, dependents first
    unprotect: list[str] = field(default_factory=list)  # protected, replaced in a new region
    reconcile: list[str] = field(default_factory=list)  # may exist although not in the export
    minutes: float = 0.0
    commands: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def lost_urns(resources: list[dict[str, Any]], lost: str) -> set[str]:
    """What a refresh after the loss drops from state: the cluster, its pools and every object
    on its Kubernetes provider; for a region (the cluster's), also the regional resources
    there. Never a provider: a refresh reads no provider resource and drops none (pulumi
    pkg/resource/deploy/deployment_executor.go refresh: "expected non-provider resource"), so
    the Kubernetes provider stays in state and is updated with the new cluster's kubeconfig."""
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
    for r in resources:
        provider = str(r.get("provider") or "")
        if provider and _ref_urn(provider) in providers:
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


def _program_deps(program: Any) -> dict[str, list[str]]:
    """Per declared resource, what it waits for: its dependencies and its provider, a provider
    standing for what it waits for itself (the Kubernetes provider for the cluster), since
    providers are not part of the plan."""
    by_urn = {r.urn: r for r in program.resources}

    def own(r: Any) -> list[str]:
        return [*r.dependencies, *([_ref_urn(r.provider)] if r.provider else [])]

    def expand(urns: list[str], seen: set[str]) -> list[str]:
        out: list[str] = []
        for urn in urns:
            found = by_urn.get(urn)
            if found is not None and _is_provider(found.type):
                if urn not in seen:
                    seen.add(urn)
                    out += expand(own(found), seen)
            else:
                out.append(urn)
        return out

    return {urn: sorted(set(expand(own(r), set()))) for urn, r in declared(program).items()}


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


def state_dependents(resources: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Per URN, every resource of the export that depends on it, directly or not, by the
    edges `pulumi state delete` follows (pulumi pkg/resource/graph/dependency_graph.go
    OnlyDependsOn: dependencies, property dependencies, deletedWith, parent and provider)."""
    direct: dict[str, set[str]] = defaultdict(set)
    for r in resources:
        refs = set(r.get("dependencies") or [])
        for urns in (r.get("propertyDependencies") or {}).values():
            refs |= set(urns or [])
        for key in ("deletedWith", "parent"):
            if isinstance(r.get(key), str) and r[key]:
                refs.add(r[key])
        if isinstance(r.get("provider"), str) and r["provider"]:
            refs.add(_ref_urn(r["provider"]))
        for ref in refs:
            direct[ref].add(r["urn"])
    closure: dict[str, set[str]] = {}
    for r in resources:
        seen: set[str] = set()
        todo = list(direct.get(r["urn"], ()))
        while todo:
            urn = todo.pop()
            if urn not in seen:
                seen.add(urn)
                todo += direct.get(urn, ())
        closure[r["urn"]] = seen
    return closure


def _dependents_first(urns: list[str], dependents: dict[str, set[str]]) -> list[str]:
    """`urns` ordered so that one comes before every one it depends on."""
    done: list[str] = []
    wanted = set(urns)

    def visit(urn: str) -> None:
        if urn in done:
            return
        for other in sorted(dependents.get(urn, set()) & wanted):
            visit(other)
        done.append(urn)

    for urn in sorted(urns):
        visit(urn)
    return done


def recovery_plan(
    doc: dict[str, Any], stack: str, program: Any, lost: str, region: str | None = None
) -> RecoveryPlan:
    everything = doc["deployment"]["resources"]
    resources = tracked(everything)
    by_urn = {r["urn"]: r for r in everything}
    gone = lost_urns(everything, lost)
    recorded = {r["urn"] for r in resources}
    after = recorded - gone
    program_resources = declared(program)
    deps = _program_deps(program)
    kinds = {urn: r.type for urn, r in program_resources.items()}
    plan = RecoveryPlan(stack=stack, lost=lost)
    plan.retained = sorted(after & set(program_resources))
    plan.recreated = _order(set(program_resources) - after, deps)
    plan.only_in_state = sorted(after - set(program_resources))
    recreated = set(plan.recreated)
    plan.updated = sorted(u for u in plan.retained if set(deps.get(u, [])) & recreated)
    dependents = state_dependents(everything)
    plan.helm_releases = _dependents_first(
        [r["urn"] for r in resources if r["urn"] in gone and r.get("type") == HELM_RELEASE],
        dependents,
    )
    k8s_providers = {r["urn"] for r in everything if r.get("type") == K8S_PROVIDER}
    if lost == "region":
        # The region is down, not deleted: the DigitalOcean API still reports its cluster, VPC,
        # load balancer and bucket, so the refresh keeps them, and `up` replaces them in the new
        # region, which protection refuses ("unable to replace resource ... marked for
        # protection", pulumi pkg/resource/deploy/step_generator.go).
        plan.unprotect = sorted(
            r["urn"]
            for r in resources
            if r["urn"] in gone
            and r.get("protect")
            and _ref_urn(str(r.get("provider") or "")) not in k8s_providers
        )
    # Cloud resources the program declares that the export does not hold: created after the
    # backup (or not yet), and the pending creates that `stack import` drops.
    pending = {
        (op.get("resource") or {}).get("urn")
        for op in doc["deployment"].get("pending_operations") or []
        if isinstance(op, dict) and op.get("type") == "creating"
    }
    plan.reconcile = sorted(
        urn
        for urn, r in program_resources.items()
        if r.type.startswith("digitalocean:") and (urn not in recorded or urn in pending)
    )
    plan.minutes = _critical_minutes(plan.recreated, deps, kinds)
    plan.commands = _commands(doc, stack, lost, region, plan, program, dependents, gone, by_urn)
    plan.notes = _notes(doc, lost, plan)
    return plan


def _notes(doc: dict[str, Any], lost: str, plan: RecoveryPlan) -> list[str]:
    notes: list[str] = []
    if lost == "region":
        notes += [
            "A load balancer's IP cannot move to another region: the new one gets a new IP, and "
            "the DNS records (retained, updated in place) point the hosts at it; clients follow "
            "after the records' TTL (ingress.dnsTtl).",
            "Workload identities hold: same trust domain and root, and the mesh CA's "
            "intermediate and its key are tls resources kept in state (not regional), so the "
            "new istiod signs with the same intermediate.",
            "Logs in a Spaces bucket of the lost region are out of reach; metrics, traces and "
            "Grafana state are rebuilt empty; block volumes stay in the lost region "
            "(docs/recovery.md).",
        ]
    else:
        notes += [
            "The load balancer, its IP, the DNS zone and records, the VPC and the mesh CA's "
            "intermediate stay: clients keep the same address, workloads the same identities.",
            "Everything in the cluster is recreated under the same URNs; metrics, traces and "
            "dev/staging logs start empty, Flagger keeps no promotion state (docs/recovery.md).",
        ]
        cluster = next(
            (r for r in doc["deployment"]["resources"] if r.get("type") == CLUSTER_TYPES[0]), None
        )
        inputs = (cluster or {}).get("inputs") or {}
        if cluster is not None and inputs.get("destroyAllAssociatedResources") is False:
            notes.append(
                "The cluster was created with destroyAllAssociatedResources: false, so its "
                "block volumes (pvc-*, `doctl compute volume list`) outlive it: re-attach "
                "them as static PersistentVolumes (driver dobs.csi.digitalocean.com, "
                "volumeHandle = the volume ID) to keep their data, or delete them "
                "(docs/recovery.md)."
            )
    return notes


def _secrets_provider_lines(doc: dict[str, Any], stack: str) -> list[str]:
    """How the export's secrets provider is opened by `stack import`, and the rewrite that
    makes the import independent of it. `stack import` builds the export's own secrets manager
    before anything else (pulumi pkg/resource/stack/deployment.go DeserializeDeploymentV3 ->
    initializeSecretsManager): a `service` one needs an access token for the Cloud URL in its
    state (pkg/secrets/service/manager.go NewServiceSecretsManagerFromState: "could not find
    access token for ..."), and only then is it re-targeted to the new stack
    (pkg/cmd/pulumi/stack/stack_import.go); a `passphrase` one needs the passphrase of its salt
    (pkg/secrets/passphrase/manager.go, state `{"salt": ...}`) and is kept. A `--show-secrets`
    export holds every secret as plaintext, so pointing `secrets_providers` at the new stack's
    passphrase salt needs neither."""
    provider = doc["deployment"].get("secrets_providers")
    provider = provider if isinstance(provider, dict) else {}
    state = provider.get("state") if isinstance(provider.get("state"), dict) else {}
    kind = provider.get("type") or "none"
    url = state.get("url")
    if kind == "service":
        why = (
            f"the export's secrets provider is the Pulumi Cloud service at "
            f"{url or 'https://api.pulumi.com'}: `stack import` needs an access token for "
            "that URL (even into another backend), then re-targets it to the new stack"
        )
    elif kind == "passphrase":
        why = (
            "the export's secrets provider is a passphrase: `stack import` opens it with "
            "PULUMI_CONFIG_PASSPHRASE, which must then be the OLD (escrowed) passphrase"
        )
    else:
        why = f"the export's secrets provider is {kind!r}"
    salt = f"$(sed -n 's/^encryptionsalt: //p' Pulumi.{stack}.yaml)"
    return [
        f"#    {why}. The export's secrets are plaintext (--show-secrets), so pointing it at "
        "the new stack's passphrase salt needs neither:",
        f'jq --arg salt "{salt}" \'.deployment.secrets_providers = '
        '{type: "passphrase", state: {salt: $salt}}\' "$d/export.json" > "$d/import.json"',
    ]


def _commands(
    doc: dict[str, Any],
    stack: str,
    lost: str,
    region: str | None,
    plan: RecoveryPlan,
    program: Any,
    dependents: dict[str, set[str]],
    gone: set[str],
    by_urn: dict[str, dict[str, Any]],
) -> list[str]:
    """The runbook's commands. Every flag was checked against the Pulumi CLI's source
    (pulumi/pulumi at 1b5949891b, v3.259.0 + 14, the newest snapshot available here; the
    project pins 3.272.0): `stack init` = `stack new` with `--secrets-provider`
    (pkg/cmd/pulumi/stack/stack_new.go); `stack import --file` (stack_import.go); `stack
    change-secrets-provider <provider>`, re-encrypting config and state
    (stack_change_secrets_provider.go); `config set --path`, `config set-all --json` in the format
    of `config --show-secrets --json` (pkg/cmd/pulumi/config/config.go newConfigSetAllCmd,
    configValueJSON); `state delete --target-dependents --force --yes`, several URNs ordered
    dependents first (pkg/cmd/pulumi/state/state_delete.go); `state unprotect --yes`
    (state_unprotect.go); `refresh --run-program --yes --clear-pending-creates
    --import-pending-creates` (pkg/cmd/pulumi/operations/refresh.go); `import <type> <name> <id>
    --parent name=urn --generate-code=false --yes`, protecting by default (operations/import.go).
    `gh run download <run-id> -n <name> -D <dir>` extracts a single artifact into the directory
    (cli.github.com manual); `age -d -i -o`, `age -e -R` (age(1))."""
    s = f"-s {stack}"
    root_arg = (
        "" if state_root_fingerprint(doc) is not None else " --root-cert <escrowed root-cert.pem>"
    )
    cmds = [
        "# 0. Only if the state backend itself was lost: restore the latest backup "
        "(state-backup.yml) into a private temporary directory, never into the repository",
        'umask 077 && d="$(mktemp -d)"',
        "gh run list --workflow state-backup.yml --status success --limit 5  # pick <run-id>",
        f'gh run download <run-id> -n {ARTIFACT.format(stack=stack)} -D "$d"'
        "  # an -unverified one only after reading its findings",
        f'age -d -i key.txt -o "$d/backup.tgz" "$d/{ENCRYPTED.format(stack=stack)}"'
        "  # key.txt: an escrowed age identity",
        f'tar -xzf "$d/backup.tgz" -C "$d"  # export.json, config.json and Pulumi.{stack}.yaml '
        "(a reference copy: never copy it over the tracked file)",
        f'python -m tools.recover check "$d/export.json" --stack {stack} '
        f'--config "$d/config.json"{root_arg}',
        "pulumi login <backend>  # the same backend, or a new one (Pulumi Cloud or DIY)",
        f"pulumi stack init {stack} --secrets-provider passphrase  # the SAME stack name",
        *_secrets_provider_lines(doc, stack),
        f"pulumi config set-all --json \"$(jq -c 'with_entries(select(.value.secret))' "
        f'"$d/config.json")" {s}  # the secret config (the plain config is the tracked file); '
        "the argument shows in `ps`: on a single-user machine",
        f'pulumi stack import --file "$d/import.json" {s}',
        f"pulumi stack change-secrets-provider default {s}  # only to go back to the Pulumi "
        "Cloud secrets service",
        "# 1. Forget what died with the cluster. Run this and every later step from an "
        "address in service-mesh:cluster.controlPlaneAllowList: the cluster API admits no "
        "other, and from elsewhere a live cluster looks unreachable, which the refresh would "
        "take for a lost one",
        "read -rs DIGITALOCEAN_ACCESS_TOKEN && export DIGITALOCEAN_ACCESS_TOKEN"
        "  # for doctl (the kubeconfig's exec credential) and the provider",
    ]
    cluster = next(
        (r for r in doc["deployment"]["resources"] if r.get("type") == CLUSTER_TYPES[0]), None
    )
    if cluster is not None and cluster.get("id"):
        cmds.append(
            f"doctl kubernetes cluster get {cluster['id']}  # confirm the loss first: "
            + ("its region is down" if lost == "region" else "the cluster is gone (404)")
        )
    # Before the refresh: a Helm release's Read on a dead cluster can fail the whole refresh
    # (pulumi-kubernetes provider/pkg/provider/helm_release.go Read returns the release
    # lookup's error whenever Configure did not already flag the cluster unreachable: only then
    # does provider.go's Read honour deleteUnreachable first), and a release's Delete ignores
    # deleteUnreachable (pulumi-kubernetes#2675; pull request #4593 still open).
    # Dependents first, since `state delete` refuses a resource something depends on
    # (ResourceHasDependenciesError, pulumi pkg/resource/edit/operations.go); in state the
    # objects on the cluster depend on the releases too, so each command takes its dependents
    # along (`--target-dependents`, pkg/cmd/pulumi/state/state_delete.go), which is safe only
    # when every one of them died with the cluster.
    removed: set[str] = set()
    for urn in plan.helm_releases:
        taken = dependents.get(urn, set()) - removed
        survivors = sorted(taken - gone)
        if survivors:
            cmds.append(
                f"# not printed: `state delete {urn}` would also drop {', '.join(survivors)}, "
                "which survive the loss; remove that dependency first"
            )
            continue
        removed |= taken | {urn}
        # Each flag only where it is needed: --target-dependents for a release something
        # still depends on, --force for a protected release or dependent.
        along = f", with the {len(taken)} object(s) on the dead cluster that depend on it"
        flags = " --target-dependents" if taken else ""
        if any(by_urn.get(u, {}).get("protect") for u in taken | {urn}):
            flags += " --force"
        cmds.append(
            f"pulumi state delete '{urn}'{flags} --yes {s}"
            f"  # helm.v3.Release{along if taken else ''}"
        )
    cmds.append(
        f"PULUMI_K8S_DELETE_UNREACHABLE=true pulumi refresh --run-program --yes {s}"
        "  # drops the dead cluster's objects (refresh does not consult protect); set on this "
        "line only, so `up` fails on an unreachable cluster instead of forgetting it"
    )
    step = 2
    if lost == "region":
        vpc = next(
            (r for r in doc["deployment"]["resources"] if r.get("type") == REGIONAL_TYPES[0]), None
        )
        current = ((vpc or {}).get("inputs") or {}).get("ipRange")
        cmds += [
            f"# {step}. Move the stack to the new region (the old one's resources still exist "
            "for the DigitalOcean API)",
            f"pulumi config set --path service-mesh:cluster.region {region or '<new region>'} {s}",
            "doctl vpcs list  # VPC ranges cannot overlap within an account"
            + (f"; {current} is still the old VPC's" if current else ""),
            f"pulumi config set --path service-mesh:cluster.vpcCidr <unused range> {s}",
        ]
        cmds += [
            f"pulumi state unprotect '{urn}' --yes {s}  # protected; `up` replaces it in the "
            "new region, and sets protect again"
            for urn in plan.unprotect
        ]
        step += 1
    cmds += [
        f"# {step}. Only after a restore (step 0): reconcile. A DigitalOcean resource the "
        "preview creates that a listing already shows was created or replaced after the "
        "backup: adopt it instead of creating a second one",
        f"pulumi preview --diff {s}",
    ]
    types = sorted({r.type for r in declared(program).values()} & set(DOCTL_LISTINGS))
    cmds += [DOCTL_LISTINGS[t] for t in types]
    program_by_urn = {r.urn: r for r in program.resources}
    for urn in plan.reconcile:
        r = program_by_urn[urn]
        parent = f" --parent 'parent={r.parent}'" if r.parent else ""
        cmds.append(
            f"pulumi import '{r.type}' '{r.name}' <id>{parent} --generate-code=false --yes {s}"
            "  # not in the export: created after the backup?"
        )
    cmds.append(
        "pulumi import '<type>' '<name>' <id> --parent 'parent=<parent URN>' "
        f"--generate-code=false --yes {s}  # any other such create (type, name, parent: its URN)"
    )
    step += 1
    cmds += [
        f"# {step}. Rebuild, reviewing the plan first",
        f"pulumi preview --diff {s}",
        f"pulumi up {s}",
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
        lines += block(
            "Only in state (the program no longer declares them: `up` deletes them)",
            plan.only_in_state,
        )
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
    c = sub.add_parser("check", help="say whether an export can rebuild the stack")
    c.add_argument("export", type=Path)
    c.add_argument("--stack", required=True)
    c.add_argument("--stack-file", type=Path, help="instead of Pulumi.STACK.yaml")
    c.add_argument(
        "--root-cert", type=Path, help="the stack's mesh root CA (PEM): the escrowed root-cert.pem"
    )
    c.add_argument(
        "--config", type=Path, help="the config backup (`pulumi config --show-secrets --json`)"
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
            config = load_config_backup(args.config) if args.config else None
            report = check(doc, args.stack, _program(args.stack, args.stack_file), root, config)
            for line in report.refusals:
                print(line)
            for line in report.warnings:
                print(f"warning: {line}")
            if report.refusals:
                # The bare count is what state-backup.yml filters out of its annotations.
                print(f"{len(report.refusals)} finding(s)")
                return 1
            drift = f" ({len(report.warnings)} warning(s))" if report.warnings else ""
            print(f"export OK for stack {args.stack}{drift}")
            return 0
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
