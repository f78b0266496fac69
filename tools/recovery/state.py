"""What a stack export holds, as the recovery tools read it: the resource types that matter
to a rebuild, the export and config backup files, and the resources a rebuild tracks (not
providers, not the objects a v4 Chart renders). Pure: no Pulumi."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tools.export import SECRET_SIG, SIG_KEY

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
    (configValueJSON, pulumi pkg/cmd/pulumi/config/config.go), whose secrets the runbook pipes
    back one by one into `config set --secret KEY`."""
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


def urn_stack(urn: str) -> str | None:
    parts = urn.split("::")
    head = parts[0].split(":")
    return head[2] if len(head) == 3 and head[:2] == ["urn", "pulumi"] else None


def ref_urn(ref: str) -> str:
    """The URN of a provider reference (`<provider URN>::<provider id>`)."""
    return ref.rsplit("::", 1)[0]


def is_provider(type_: str) -> bool:
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


def cluster_of(resources: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    """The export's DOKS cluster record, if it has one."""
    return next((r for r in resources if r.get("type") == CLUSTER_TYPES[0]), None)


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
        and not is_provider(str(r.get("type", "")))
        and not _rendered_by_chart(r, by_urn)
    ]


def declared(program: Any) -> dict[str, Any]:
    """The program's counterpart of `tracked`: its custom resources and remote components,
    without providers."""
    return {
        r.urn: r for r in program.resources if (r.custom or r.remote) and not is_provider(r.type)
    }


def plaintext(value: Any) -> Any:
    """A state value with its secrets opened (they must be `--show-secrets` plaintext)."""
    if isinstance(value, dict):
        if value.get(SIG_KEY) == SECRET_SIG:
            return json.loads(value["plaintext"]) if "plaintext" in value else None
        return {k: plaintext(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plaintext(v) for v in value]
    return value


def wire_plaintext(value: Any) -> Any:
    """A value as the offline engine saw it on the wire, secrets opened."""
    if isinstance(value, dict):
        if value.get(SIG_KEY) == SECRET_SIG:
            return wire_plaintext(value.get("value"))
        return {k: wire_plaintext(v) for k, v in value.items()}
    if isinstance(value, list):
        return [wire_plaintext(v) for v in value]
    return value
