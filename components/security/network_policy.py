"""Layer-4 isolation of every mesh namespace with Kubernetes NetworkPolicies: deny all ingress and
egress, then open exactly what a sidecar-injected workload needs (DNS, istiod xDS, the ingress
and egress gateways, metrics scraping and span export to `monitoring`, its own namespace and the
declared cross-namespace calls).

Why both this and AuthorizationPolicy: authorization is enforced by the sidecar; a pod without
one (or a compromised one) is still fenced in by the CNI. Namespaces are matched on
`kubernetes.io/metadata.name`, which Kubernetes sets on every namespace, unlike `name`.
An external host reached without the egress gateway opens only its port towards public
addresses (NetworkPolicy has no host names); the egress gateway is the tight option.
Kubelet probes need no opening: they come from the pod's own node, which Cilium (DOKS) always
admits (`allow-localhost`), and Istio rewrites HTTP probes to the agent port anyway.
A namespace with canaried services (`traffic.canary`) admits Flagger's load tester on their
HTTP ports; the `-primary` and `-canary` workloads Flagger generates are pods of the namespace,
so every other opening already covers them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from components.base import manifests, mesh
from components.graph.model import HTTP_PROTOCOLS, ExternalHost, MeshService
from components.observability.tracing import TEMPO_OTLP_GRPC_PORT
from components.traffic import names as traffic_names

NS_LABEL = mesh.NAMESPACE_NAME_LABEL
DNS_NAMESPACE = mesh.DNS_NAMESPACE
METRICS_PORTS = (mesh.MERGED_METRICS_PORT, mesh.ENVOY_METRICS_PORT)
# Never "the internet": private (RFC 1918, so also the VPC, pods and Services), CGNAT and
# link-local (the droplet metadata service) ranges.
NOT_PUBLIC = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16")


def namespace_selector(namespace: str) -> dict[str, Any]:
    return {"matchLabels": {NS_LABEL: namespace}}


def _tcp(*ports: int) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": p} for p in ports]


def network_policy(namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": manifests.labels("network-policy"),
        },
        "spec": {"podSelector": {}, **spec},
    }


def base_policies(namespace: str) -> list[dict[str, Any]]:
    """The fixed set every mesh namespace gets."""
    return [
        network_policy(namespace, "default-deny", {"policyTypes": ["Ingress", "Egress"]}),
        network_policy(
            namespace,
            "allow-dns",
            {
                "policyTypes": ["Egress"],
                "egress": [
                    {
                        "to": [{"namespaceSelector": namespace_selector(DNS_NAMESPACE)}],
                        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                    }
                ],
            },
        ),
        network_policy(
            namespace,
            "allow-same-namespace",
            {
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [{"from": [{"podSelector": {}}]}],
                "egress": [{"to": [{"podSelector": {}}]}],
            },
        ),
        network_policy(
            namespace,
            "allow-from-ingress-gateway",
            {
                "policyTypes": ["Ingress"],
                "ingress": [
                    {
                        "from": [
                            {
                                "namespaceSelector": namespace_selector(mesh.INGRESS_NAMESPACE),
                                "podSelector": {"matchLabels": dict(mesh.INGRESS_SELECTOR)},
                            }
                        ]
                    }
                ],
            },
        ),
        network_policy(
            namespace,
            "allow-metrics-scrape",
            {
                "policyTypes": ["Ingress"],
                "ingress": [
                    {
                        "from": [
                            {"namespaceSelector": namespace_selector(mesh.MONITORING_NAMESPACE)}
                        ],
                        "ports": _tcp(*METRICS_PORTS),
                    }
                ],
            },
        ),
        network_policy(
            namespace,
            "allow-istiod",
            {
                "policyTypes": ["Egress"],
                "egress": [
                    {
                        "to": [{"namespaceSelector": namespace_selector(mesh.ROOT_NAMESPACE)}],
                        "ports": _tcp(mesh.XDS_PORT),
                    }
                ],
            },
        ),
        network_policy(
            namespace,
            "allow-trace-export",
            {
                "policyTypes": ["Egress"],
                "egress": [
                    {
                        "to": [
                            {"namespaceSelector": namespace_selector(mesh.MONITORING_NAMESPACE)}
                        ],
                        "ports": _tcp(TEMPO_OTLP_GRPC_PORT),
                    }
                ],
            },
        ),
        network_policy(
            namespace,
            "allow-egress-gateway",
            {
                "policyTypes": ["Egress"],
                "egress": [
                    {
                        "to": [
                            {
                                "namespaceSelector": namespace_selector(mesh.EGRESS_NAMESPACE),
                                "podSelector": {"matchLabels": dict(mesh.EGRESS_SELECTOR)},
                            }
                        ]
                    }
                ],
            },
        ),
    ]


@dataclass(frozen=True)
class _GraphIndex:
    """What the per-namespace builders read of the whole graph, built once per graph rather
    than once per namespace (which made a plan quadratic in the size of the mesh)."""

    # Namespace -> the ports its services listen on, sorted.
    ports: dict[str, tuple[int, ...]]
    # Namespace -> the cross-namespace edges (caller namespace, callee namespace) it is an end
    # of, in sorted order.
    edges: dict[str, tuple[tuple[str, str], ...]]
    # Namespace -> the HTTP ports of its canaried services, sorted.
    load_test_ports: dict[str, tuple[int, ...]]


# The last graph indexed: `security_objects` calls the builders once per namespace with the same
# (immutable) tuple of services, so it is indexed once. Holding the tuple keeps its id unique.
_last_index: tuple[Sequence[MeshService], _GraphIndex] | None = None
_last_hosts: tuple[Sequence[ExternalHost], dict[str, tuple[int, ...]]] | None = None


def _graph_index(services: Sequence[MeshService]) -> _GraphIndex:
    global _last_index
    last = _last_index
    if last is not None and last[0] is services:
        return last[1]
    ports: dict[str, set[int]] = {}
    load_test: dict[str, set[int]] = {}
    for s in services:
        ports.setdefault(s.namespace, set()).update(p.port for p in s.ports)
        if s.canary is not None:
            found = load_test.setdefault(s.namespace, set())
            found.update(p.port for p in s.ports if p.protocol in HTTP_PROTOCOLS)
    edges: dict[str, list[tuple[str, str]]] = {}
    for edge in sorted(cross_namespace_edges(services)):
        for end in edge:
            edges.setdefault(end, []).append(edge)
    index = _GraphIndex(
        ports={ns: tuple(sorted(found)) for ns, found in ports.items()},
        edges={ns: tuple(found) for ns, found in edges.items()},
        load_test_ports={ns: tuple(sorted(found)) for ns, found in load_test.items() if found},
    )
    if isinstance(services, tuple):
        _last_index = (services, index)
    return index


def _direct_host_ports(hosts: Sequence[ExternalHost]) -> dict[str, tuple[int, ...]]:
    """Namespace -> the ports of the external hosts it reaches without the egress gateway."""
    global _last_hosts
    last = _last_hosts
    if last is not None and last[0] is hosts:
        return last[1]
    found: dict[str, set[int]] = {}
    for h in hosts:
        if not h.egress_gateway:
            for ns in h.namespaces:
                found.setdefault(ns, set()).add(h.port)
    index = {ns: tuple(sorted(ports)) for ns, ports in found.items()}
    if isinstance(hosts, tuple):
        _last_hosts = (hosts, index)
    return index


def cross_namespace_edges(services: Sequence[MeshService]) -> set[tuple[str, str]]:
    """(caller namespace, callee namespace) for every declared call between namespaces."""
    ns_of = {s.name: s.namespace for s in services}
    return {
        (ns_of[c.service], s.namespace)
        for s in services
        for c in s.callers
        if c.service in ns_of and ns_of[c.service] != s.namespace
    }


def graph_policies(namespace: str, services: Sequence[MeshService]) -> list[dict[str, Any]]:
    """Declared calls that cross namespaces: egress on the caller's side, ingress on the
    callee's, limited to the callee's ports."""
    index = _graph_index(services)
    out = []
    for src, dst in index.edges.get(namespace, ()):
        if dst == namespace:
            out.append(
                network_policy(
                    namespace,
                    f"allow-from-{src}",
                    {
                        "policyTypes": ["Ingress"],
                        "ingress": [
                            {
                                "from": [{"namespaceSelector": namespace_selector(src)}],
                                "ports": _tcp(*index.ports[dst]),
                            }
                        ],
                    },
                )
            )
        if src == namespace:
            out.append(
                network_policy(
                    namespace,
                    f"allow-to-{dst}",
                    {
                        "policyTypes": ["Egress"],
                        "egress": [
                            {
                                "to": [{"namespaceSelector": namespace_selector(dst)}],
                                "ports": _tcp(*index.ports[dst]),
                            }
                        ],
                    },
                )
            )
    return out


def external_policies(namespace: str, hosts: Sequence[ExternalHost]) -> list[dict[str, Any]]:
    """Ports of the external hosts this namespace reaches directly (not through the egress
    gateway), towards public addresses only; which host is still decided by the sidecar."""
    ports = _direct_host_ports(hosts).get(namespace)
    if not ports:
        return []
    return [
        network_policy(
            namespace,
            "allow-external-hosts",
            {
                "policyTypes": ["Egress"],
                "egress": [
                    {
                        "to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": list(NOT_PUBLIC)}}],
                        "ports": _tcp(*ports),
                    }
                ],
            },
        )
    ]


def load_test_policies(namespace: str, services: Sequence[MeshService]) -> list[dict[str, Any]]:
    """Flagger's load tester, towards the HTTP ports of the namespace's canaried services."""
    ports = _graph_index(services).load_test_ports.get(namespace)
    if not ports:
        return []
    source = {
        "namespaceSelector": namespace_selector(traffic_names.FLAGGER_NAMESPACE),
        "podSelector": {"matchLabels": dict(traffic_names.LOADTESTER_LABELS)},
    }
    return [
        network_policy(
            namespace,
            "allow-from-loadtester",
            {"policyTypes": ["Ingress"], "ingress": [{"from": [source], "ports": _tcp(*ports)}]},
        )
    ]


def network_policies(
    namespace: str, services: Sequence[MeshService], hosts: Sequence[ExternalHost] = ()
) -> list[dict[str, Any]]:
    return (
        base_policies(namespace)
        + graph_policies(namespace, services)
        + external_policies(namespace, hosts)
        + load_test_policies(namespace, services)
    )
