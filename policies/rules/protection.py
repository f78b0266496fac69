"""Identity- and state-bearing resources are protected, so no `pulumi up` or `destroy` deletes
or replaces them by accident: the cluster, the load balancer (its IP is in DNS), the domain and
its records, the mesh CA secret (every workload certificate chains to it) and buckets,
volumes and databases that hold state.

`protect` is a resource option, known at preview for every resource.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from components.base import mesh
from policies.rules.base import (
    RESOURCE,
    Rule,
    excepted,
    exceptions_schema,
    is_kind,
    message,
    namespace,
    obj_name,
)

# type -> what it is, for the message.
PROTECTED_TYPES = {
    "digitalocean:index/kubernetesCluster:KubernetesCluster": "the DOKS cluster",
    "digitalocean:index/loadBalancer:LoadBalancer": "the load balancer (its IP is in DNS)",
    "digitalocean:index/domain:Domain": "the DNS domain",
    "digitalocean:index/dnsRecord:DnsRecord": "a DNS record",
    "digitalocean:index/spacesBucket:SpacesBucket": "a Spaces bucket (state)",
    "digitalocean:index/volume:Volume": "a block storage volume (state)",
    "digitalocean:index/databaseCluster:DatabaseCluster": "a managed database (state)",
}
MESH_CA_SECRET = "cacerts"  # istiod's plug-in CA secret, in the root namespace


def _what(resource: Any) -> str | None:
    if resource.resource_type in PROTECTED_TYPES:
        return PROTECTED_TYPES[resource.resource_type]
    if (
        is_kind(resource, "core", "Secret")
        and obj_name(resource) == MESH_CA_SECRET
        and namespace(resource) == mesh.ROOT_NAMESPACE
    ):
        return "the mesh CA secret (every workload certificate chains to it)"
    return None


def check(resource: Any, config: Mapping[str, Any]) -> Iterator[str]:
    what = _what(resource)
    if what is None or resource.opts.protect or excepted(config, resource.name):
        return
    yield message(
        f"{resource.name} is {what} and is not protected",
        "deleting or replacing it loses state or identity that a rebuild cannot restore "
        "(an IP in DNS, a CA every certificate trusts, stored data).",
        "set the component's `protect: true` in the stack config (`cluster.protect`, "
        "`ingress.protect`, `security.meshCa.protect`, `observability.logs.protect`)",
    )


RULES = [
    Rule(
        name="protect-stateful-resources",
        description=(
            "The cluster, load balancer, domain and records, mesh CA secret and state-bearing "
            "buckets are protected."
        ),
        kind=RESOURCE,
        check=check,
        remediation="Turn on `protect` for the component that owns the resource.",
        config={"exceptions": exceptions_schema("Pulumi resource name")},
        severity="critical",
        exception_key="Pulumi resource name",
    )
]
