"""Egress control: sidecars reach only hosts in the mesh's registry (REGISTRY_ONLY, where the
stack's config enables `egress-registry-only`: outside dev), and external hosts enter the
registry only as declared ServiceEntries: exact hosts, visible to the namespaces that declared
them, and every host the egress gateway lets out is one of them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from components.base import mesh
from policies.rules.base import (
    RESOURCE,
    STACK,
    Rule,
    dig,
    excepted,
    exceptions_schema,
    fqdn,
    in_cluster,
    is_kind,
    items,
    message,
    namespace,
    obj_name,
    of_kind,
    where,
)
from policies.rules.helm import chart

NETWORKING = "networking.istio.io"
WHY_REGISTRY = (
    "with ALLOW_ANY a compromised or misconfigured workload can reach any host on the "
    "internet, and nothing records or authorizes it."
)


def check_registry_only(resource: Any, config: Mapping[str, Any]) -> Iterator[str]:
    if excepted(config, resource.name):
        return
    c = chart(resource)
    if c is not None and c.chart == "istiod":
        mode = str(
            dig(c.values, "meshConfig", "outboundTrafficPolicy", "mode", default="ALLOW_ANY")
        )
        if mode != "REGISTRY_ONLY":
            yield message(
                f"{c.where()} sets meshConfig.outboundTrafficPolicy.mode {mode} (the chart's "
                "default is ALLOW_ANY)",
                WHY_REGISTRY,
                "set `security.outboundTrafficPolicy: REGISTRY_ONLY` and declare external hosts "
                "in `security.externalHosts`",
            )
    elif is_kind(resource, NETWORKING, "Sidecar"):
        mode = dig(resource.props, "spec", "outboundTrafficPolicy", "mode")
        if mode == "ALLOW_ANY":
            yield message(
                f"{where(resource)} sets outboundTrafficPolicy ALLOW_ANY",
                "a Sidecar overrides the mesh-wide REGISTRY_ONLY for its workloads; "
                + WHY_REGISTRY,
                "drop the override; declare the external hosts the workload needs",
            )


def _external_entries(resources: Sequence[Any]) -> list[Any]:
    entries = of_kind(resources, NETWORKING, "ServiceEntry")
    return [
        e
        for e in entries
        if str(dig(e.props, "spec", "location", default="MESH_EXTERNAL")) == "MESH_EXTERNAL"
    ]


def _external(host: str) -> bool:
    return "." in host and not in_cluster(host) and not host.endswith(".local") and host != "*"


def _mesh_bound(vs: Any) -> bool:
    gateways = [str(g) for g in items(dig(vs.props, "spec", "gateways"))]
    return not gateways or "mesh" in gateways


def check_service_entries(
    resources: Sequence[Any], config: Mapping[str, Any]
) -> Iterator[tuple[str | None, str]]:
    declared: set[str] = set()
    for entry in _external_entries(resources):
        hosts = [str(h).lower() for h in items(dig(entry.props, "spec", "hosts"))]
        declared.update(hosts)
        for host in hosts:
            if "*" in host and not excepted(config, host):
                yield (
                    entry.urn,
                    message(
                        f"{where(entry)} declares the wildcard host {host}",
                        "a wildcard lets workloads reach every host of a domain, including ones "
                        "an attacker controls (a bucket, a tenant) for exfiltration.",
                        "declare each external host exactly in `security.externalHosts`",
                    ),
                )
        export = [str(x) for x in items(dig(entry.props, "spec", "exportTo"))]
        if (not export or "*" in export) and not excepted(
            config, f"{namespace(entry)}/{obj_name(entry)}"
        ):
            yield (
                entry.urn,
                message(
                    f"{where(entry)} is exported to every namespace",
                    "an external host is allowed per namespace; exported everywhere, every "
                    "namespace of the mesh may reach it.",
                    'set spec.exportTo: ["."] (the security layer declares one entry per '
                    "namespace)",
                ),
            )
    yield from _undeclared(resources, declared, config)


def _undeclared(
    resources: Sequence[Any], declared: set[str], config: Mapping[str, Any]
) -> Iterator[tuple[str | None, str]]:
    fix = "add the host to `security.externalHosts` (it becomes a ServiceEntry)"
    why = "a host the mesh lets out must be in the registry, declared and reviewed."
    for policy in of_kind(resources, "security.istio.io", "AuthorizationPolicy"):
        for rule in items(dig(policy.props, "spec", "rules")):
            for condition in items(dig(rule, "when")):
                if dig(condition, "key") not in (
                    "connection.sni",
                    "connection.requested_server_name",
                ):
                    continue
                for host in items(dig(condition, "values")):
                    if str(host).lower() not in declared and not excepted(config, str(host)):
                        yield (
                            policy.urn,
                            message(
                                f"{where(policy)} lets out SNI {host}, which no ServiceEntry "
                                "declares",
                                why,
                                fix,
                            ),
                        )
    served: set[str] = set()  # hosts the ingress gateways serve: ours, not external
    for gateway in of_kind(resources, NETWORKING, "Gateway"):
        selector = dig(gateway.props, "spec", "selector", default={})
        egress = dict(selector) == mesh.EGRESS_SELECTOR
        for server in items(dig(gateway.props, "spec", "servers")):
            for host in items(dig(server, "hosts")):
                name = str(host).split("/")[-1].lower()
                if not egress:
                    served.add(name)
                elif name not in declared and not excepted(config, name):
                    yield (
                        gateway.urn,
                        message(
                            f"egress {where(gateway)} serves {name}, which no ServiceEntry "
                            "declares",
                            why,
                            fix,
                        ),
                    )
    for kind in ("VirtualService", "DestinationRule"):
        for obj in of_kind(resources, NETWORKING, kind):
            if kind == "VirtualService" and not _mesh_bound(obj):
                continue  # routes of a public Gateway: hosts are ours, not external
            hosts = (
                items(dig(obj.props, "spec", "hosts"))
                if kind == "VirtualService"
                else [dig(obj.props, "spec", "host", default="")]
            )
            for host in hosts:
                name = fqdn(str(host), namespace(obj))
                if name in served or name in declared or excepted(config, name):
                    continue
                if _external(name):
                    yield (
                        obj.urn,
                        message(
                            f"{where(obj)} routes the external host {name}, which no ServiceEntry "
                            "declares",
                            why,
                            fix,
                        ),
                    )


RULES = [
    Rule(
        name="egress-registry-only",
        description="Sidecars may reach only registered hosts (outboundTrafficPolicy "
        "REGISTRY_ONLY).",
        kind=RESOURCE,
        check=check_registry_only,
        remediation="Keep `security.outboundTrafficPolicy: REGISTRY_ONLY`.",
        config={"exceptions": exceptions_schema("Pulumi resource name")},
        severity="high",
        exception_key="Pulumi resource name",
    ),
    Rule(
        name="egress-declared-service-entries",
        description="External hosts are reachable only as declared ServiceEntries: exact "
        "hosts, not exported mesh-wide, and every host let out is declared.",
        kind=STACK,
        check=check_service_entries,
        remediation="Declare external hosts in `security.externalHosts`.",
        config={"exceptions": exceptions_schema("host, or namespace/ServiceEntry name")},
        severity="high",
        exception_key="host, or namespace/ServiceEntry name",
    ),
]
