"""Scoped `Sidecar`s from the service graph, so that each proxy receives the configuration of
what its workload calls, not of the whole mesh: without them istiod sends every proxy every
service, and a proxy's memory and every push grow with the mesh.

Per mesh namespace, a `default` Sidecar (no selector: workloads the graph does not declare)
sees only the platform; per declared service (and per Flagger primary of a canaried one), a
Sidecar selecting its pods sees the platform and its declared callees. The platform is
istio-system, kube-dns (with REGISTRY_ONLY, DNS over TCP is black-holed without it), Tempo
(where Envoy sends spans), the egress gateway, and the external hosts declared for the
namespace (their ServiceEntries here, their routes through the egress gateway there).

`visible_hosts` models how Istio selects a proxy's hosts from `namespace/dnsName` entries; the
tests and docs/traffic.md use it to measure hosts per proxy as the mesh grows. Pure: no Pulumi.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from components.base import manifests, mesh
from components.graph.checks import ServiceGraph
from components.graph.model import MeshService
from components.observability.metrics import KPS_RELEASE
from components.observability.tracing import TEMPO_HOST
from components.security.egress import GATEWAY_HOST
from components.traffic import names

NETWORKING_API = "networking.istio.io/v1"
KUBE_DNS_HOST = names.fqdn("kube-dns", mesh.DNS_NAMESPACE)
PROMETHEUS_HOST = names.fqdn(f"{KPS_RELEASE}-prometheus", mesh.MONITORING_NAMESPACE)
PLATFORM_EGRESS: tuple[str, ...] = (
    f"{mesh.ROOT_NAMESPACE}/*",
    f"{mesh.DNS_NAMESPACE}/{KUBE_DNS_HOST}",
    f"{mesh.MONITORING_NAMESPACE}/{TEMPO_HOST}",
    f"{mesh.EGRESS_NAMESPACE}/{GATEWAY_HOST}",
)
# Services of the platform a proxy could otherwise see (for the visibility measurement).
PLATFORM_SERVICES: tuple[tuple[str, str], ...] = (
    (mesh.ROOT_NAMESPACE, names.fqdn("istiod", mesh.ROOT_NAMESPACE)),
    (mesh.ROOT_NAMESPACE, names.fqdn("istiod-revision-tag-stable", mesh.ROOT_NAMESPACE)),
    (mesh.INGRESS_NAMESPACE, names.fqdn(mesh.INGRESS_GATEWAY, mesh.INGRESS_NAMESPACE)),
    (mesh.EGRESS_NAMESPACE, GATEWAY_HOST),
    (mesh.DNS_NAMESPACE, KUBE_DNS_HOST),
    (mesh.API_NAMESPACE, names.fqdn("kubernetes", mesh.API_NAMESPACE)),
    (mesh.MONITORING_NAMESPACE, TEMPO_HOST),
    *(
        (mesh.MONITORING_NAMESPACE, names.fqdn(n, mesh.MONITORING_NAMESPACE))
        for n in (
            f"{KPS_RELEASE}-prometheus",
            f"{KPS_RELEASE}-alertmanager",
            f"{KPS_RELEASE}-grafana",
            "loki",
            "kiali",
        )
    ),
)


def _sidecar(name: str, namespace: str, hosts: Iterable[str], labels: dict[str, str] | None):
    spec: dict[str, Any] = {}
    if labels is not None:
        spec["workloadSelector"] = {"labels": dict(labels)}
    spec["egress"] = [{"hosts": sorted(set(hosts))}]
    return manifests.namespaced("Sidecar", NETWORKING_API, name, namespace, spec, "traffic")


def callees(graph: ServiceGraph) -> dict[str, list[MeshService]]:
    """Service name -> the services that list it among their callers."""
    out: dict[str, list[MeshService]] = {s.name: [] for s in graph.services}
    for svc in graph.services:
        for caller in svc.callers:
            if caller.service in out and svc not in out[caller.service]:
                out[caller.service].append(svc)
    return out


def external_egress(graph: ServiceGraph, namespace: str) -> list[str]:
    out = []
    for ext in graph.external_hosts:
        if namespace in ext.namespaces:
            out.append(f"./{ext.host}")
            if ext.egress_gateway:
                out.append(f"{mesh.EGRESS_NAMESPACE}/{ext.host}")
    return out


def callee_egress(targets: Iterable[MeshService]) -> list[str]:
    return [f"{t.namespace}/{h}" for t in targets for h in names.service_hosts(t)]


def service_egress(svc: MeshService, graph: ServiceGraph, index: dict[str, list[MeshService]]):
    return [
        *PLATFORM_EGRESS,
        *external_egress(graph, svc.namespace),
        *callee_egress(index[svc.name]),
    ]


def mesh_sidecars(graph: ServiceGraph) -> list[dict[str, Any]]:
    """The namespace defaults, then one per declared workload (primaries of canaries too)."""
    index = callees(graph)
    out = [
        _sidecar("default", ns, [*PLATFORM_EGRESS, *external_egress(graph, ns)], None)
        for ns in graph.namespace_names
    ]
    for svc in graph.services:
        hosts = service_egress(svc, graph, index)
        out.append(_sidecar(svc.name, svc.namespace, hosts, svc.workload_labels))
        if svc.canary is not None:
            primary = names.primary_labels(svc)
            out.append(_sidecar(f"{svc.name}-primary", svc.namespace, hosts, primary))
    return out


def flagger_sidecars(graph: ServiceGraph) -> list[dict[str, Any]]:
    """In the Flagger namespace: Flagger sees the API, Prometheus and the load tester; the
    load tester sees the canaried services' hosts."""
    ns = names.FLAGGER_NAMESPACE
    controller = [
        *PLATFORM_EGRESS,
        f"{mesh.API_NAMESPACE}/{names.fqdn('kubernetes', mesh.API_NAMESPACE)}",
        f"{mesh.MONITORING_NAMESPACE}/{PROMETHEUS_HOST}",
        f"{ns}/{names.fqdn(names.LOADTESTER_RELEASE, ns)}",
    ]
    return [
        _sidecar("default", ns, PLATFORM_EGRESS, None),
        _sidecar("flagger", ns, controller, names.FLAGGER_POD_LABELS),
        _sidecar(
            "loadtester",
            ns,
            [*PLATFORM_EGRESS, *callee_egress(names.canaried(graph))],
            names.LOADTESTER_LABELS,
        ),
    ]


# --- what a proxy sees --------------------------------------------------------------------


def registry(graph: ServiceGraph) -> list[tuple[str, str]]:
    """(namespace, host) of every Service istiod knows in this mesh: the graph's (with
    Flagger's generated ones) and the platform's."""
    hosts = [(s.namespace, h) for s in graph.services for h in names.service_hosts(s)]
    return hosts + list(PLATFORM_SERVICES)


def _matches(entry: str, proxy_namespace: str, namespace: str, host: str) -> bool:
    ns_part, _, dns = entry.partition("/")
    if not (
        ns_part == "*" or ns_part == namespace or (ns_part == "." and namespace == proxy_namespace)
    ):
        return False
    if dns == "*":
        return True
    if dns.startswith("*."):
        return host.endswith(dns[1:])
    return dns == host


def visible_hosts(
    egress: Sequence[str] | None, proxy_namespace: str, known: Sequence[tuple[str, str]]
) -> set[tuple[str, str]]:
    """The registry entries a proxy in `proxy_namespace` receives: those its Sidecar's egress
    `namespace/dnsName` entries select, or all of them without a Sidecar (exportTo '*')."""
    if egress is None:
        return set(known)
    return {(ns, h) for ns, h in known if any(_matches(e, proxy_namespace, ns, h) for e in egress)}


def visibility(graph: ServiceGraph, scoped: bool) -> list[int]:
    """Hosts each declared workload's proxy receives, scoped by its Sidecar or not."""
    known = registry(graph)
    index = callees(graph)
    return [
        len(
            visible_hosts(
                service_egress(svc, graph, index) if scoped else None, svc.namespace, known
            )
        )
        for svc in graph.services
    ]
