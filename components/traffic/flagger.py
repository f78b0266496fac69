"""Flagger and its load tester, in their own namespace `flagger`: chart values and the policies
the namespace needs (it is not in the graph, so the security layer does not fence it).

Why this shape: the load tester must send mTLS requests with an identity the canaried services'
authorization admits, and Flagger must call the load tester's webhook, which under STRICT mTLS
a proxy-less Flagger cannot (flagger#239; the other way out, a PERMISSIVE port, is plaintext).
So both run with sidecars, injected by their pods' own `istio.io/rev` label: the namespace
carries none, it is not a mesh namespace, because a namespace-wide default deny would cut
Flagger off the Kubernetes API. The webhook admits Flagger's identity only, for POSTs only,
and only from Flagger's pods (NetworkPolicy); the load tester may reach only DNS, istiod, Tempo
and the canaried services' ports. Flagger's sidecar starts before it (it calls the API at
once) and leaves its metrics port to Prometheus, which has no sidecar. Flagger's CRDs come
with its chart. Pure: no Pulumi.
"""

from __future__ import annotations

import json
from typing import Any

from components.base import manifests, mesh
from components.graph.checks import ServiceGraph
from components.graph.model import HTTP_PROTOCOLS
from components.observability.metrics import PROMETHEUS_URL
from components.observability.tracing import TEMPO_OTLP_GRPC_PORT
from components.security.authorization import SECURITY_API
from components.security.network_policy import namespace_selector, network_policy
from components.traffic import names
from components.traffic.config import ControllerConfig

NS = names.FLAGGER_NAMESPACE


def flagger_values(flagger: ControllerConfig, revision_tag: str) -> dict[str, Any]:
    """Istio mesh provider, kube-prometheus-stack's Prometheus, HA: leader election and a
    disruption budget once there is a standby (a budget over one pod would block drains)."""
    return {
        "meshProvider": "istio",
        "metricsServer": PROMETHEUS_URL,
        "leaderElection": {"enabled": True, "replicaCount": flagger.replicas},
        "podDisruptionBudget": {"enabled": flagger.replicas > 1, "minAvailable": 1},
        "resources": flagger.resources.helm(),
        "podLabels": {mesh.REVISION_LABEL: revision_tag},
        "podAnnotations": {
            "proxy.istio.io/config": json.dumps({"holdApplicationUntilProxyStarts": True}),
            "traffic.sidecar.istio.io/excludeInboundPorts": str(names.FLAGGER_METRICS_PORT),
        },
        "serviceMonitor": {"enabled": True},
    }


def loadtester_values(loadtester: ControllerConfig, revision_tag: str) -> dict[str, Any]:
    """Injected through the mesh's revision tag (pod label), its own service account (the
    identity canaries admit), a budget once replicated."""
    return {
        "replicaCount": loadtester.replicas,
        "podLabels": {mesh.REVISION_LABEL: revision_tag},
        "rbac": {"create": True},
        "podDisruptionBudget": {"enabled": loadtester.replicas > 1, "minAvailable": 1},
        "resources": loadtester.resources.helm(),
    }


def flagger_namespace() -> dict[str, Any]:
    """Seen by istiod (the load tester's proxy and Service), not injected as a whole."""
    labels = {**manifests.labels(NS), **mesh.DISCOVERY_LABEL}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS, "labels": labels}}


def _security(kind: str, name: str, spec: dict[str, Any], component: str) -> dict[str, Any]:
    return manifests.namespaced(kind, SECURITY_API, name, NS, spec, component)


def webhook_objects() -> list[dict[str, Any]]:
    """Default deny in the namespace; the load tester's webhook for Flagger's POSTs only."""
    return [
        _security("AuthorizationPolicy", "allow-nothing", {}, "authorization"),
        _security(
            "AuthorizationPolicy",
            "allow-flagger-webhooks",
            {
                "selector": {"matchLabels": dict(names.LOADTESTER_LABELS)},
                "action": "ALLOW",
                "rules": [
                    {
                        "from": [{"source": {"principals": [names.FLAGGER_PRINCIPAL]}}],
                        "to": [
                            {
                                "operation": {
                                    "ports": [str(names.LOADTESTER_PORT)],
                                    "methods": ["POST"],
                                    "paths": ["/"],
                                }
                            }
                        ],
                        "when": [{"key": "source.namespace", "values": [NS]}],
                    }
                ],
            },
            "authorization",
        ),
    ]


def _tcp(*ports: int) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": p} for p in ports]


def loadtester_network_policies(graph: ServiceGraph) -> list[dict[str, Any]]:
    pods = {"matchLabels": dict(names.LOADTESTER_LABELS)}
    ingress = network_policy(
        NS,
        "loadtester-ingress",
        {
            "podSelector": pods,
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [{"podSelector": {"matchLabels": dict(names.FLAGGER_POD_LABELS)}}],
                    "ports": _tcp(names.LOADTESTER_PORT),
                }
            ],
        },
    )
    targets: dict[str, set[int]] = {}
    for svc in names.canaried(graph):
        ports = {p.port for p in svc.ports if p.protocol in HTTP_PROTOCOLS}
        targets.setdefault(svc.namespace, set()).update(ports)
    egress_rules = [
        {
            "to": [{"namespaceSelector": namespace_selector(mesh.DNS_NAMESPACE)}],
            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
        },
        {
            "to": [{"namespaceSelector": namespace_selector(mesh.ROOT_NAMESPACE)}],
            "ports": _tcp(mesh.XDS_PORT),
        },
        {
            "to": [{"namespaceSelector": namespace_selector(mesh.MONITORING_NAMESPACE)}],
            "ports": _tcp(TEMPO_OTLP_GRPC_PORT),
        },
        *(
            {"to": [{"namespaceSelector": namespace_selector(ns)}], "ports": _tcp(*sorted(p))}
            for ns, p in sorted(targets.items())
        ),
    ]
    egress = network_policy(
        NS,
        "loadtester-egress",
        {"podSelector": pods, "policyTypes": ["Egress"], "egress": egress_rules},
    )
    return [ingress, egress]
