"""NetworkPolicies per mesh namespace, checked with a small model of Kubernetes semantics:
a pod selected by any policy of a direction is isolated in that direction, and a connection is
allowed when some policy's rule admits it (peers ORed; namespaceSelector + podSelector in one
peer ANDed; no `ports` = all ports). Both the sender's egress and the receiver's ingress must
allow a connection between two isolated pods."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

import pytest

from components.base import mesh
from components.graph.model import ExternalHost, MeshService
from components.observability.tracing import TEMPO_OTLP_GRPC_PORT
from components.security.network_policy import network_policies
from tests.conftest import STACKS, stack_config, stack_run
from tests.schema import validate_k8s

NP = "kubernetes:networking.k8s.io/v1:NetworkPolicy"


@dataclass(frozen=True)
class Pod:
    namespace: str  # "" for an address outside the cluster
    labels: tuple[tuple[str, str], ...] = ()
    ip: str | None = None  # set for addresses outside the cluster only

    def ns_labels(self) -> dict[str, str]:
        return {"kubernetes.io/metadata.name": self.namespace}


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, f"model does not know {selector}"
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def peer_matches(peer: dict[str, Any], policy_ns: str, pod: Pod) -> bool:
    assert set(peer) <= {"namespaceSelector", "podSelector", "ipBlock"}, f"unknown {peer}"
    if "ipBlock" in peer:
        assert set(peer) == {"ipBlock"}
        if pod.ip is None:
            return False  # pods are matched by selectors (ipBlock is for outside addresses)
        ip = ipaddress.ip_address(pod.ip)
        block = peer["ipBlock"]
        return ip in ipaddress.ip_network(block["cidr"]) and not any(
            ip in ipaddress.ip_network(x) for x in block.get("except", [])
        )
    if pod.ip is not None:
        return False
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], pod.ns_labels()):
            return False
    elif pod.namespace != policy_ns:
        return False  # a bare podSelector means pods in the policy's namespace
    return selects(peer.get("podSelector", {}), dict(pod.labels))


def port_ok(rule: dict[str, Any], port: int, protocol: str) -> bool:
    ports = rule.get("ports")
    return not ports or any(
        p["port"] == port and p.get("protocol", "TCP") == protocol for p in ports
    )


def direction_allows(policies, pod: Pod, peer: Pod, port: int, proto: str, kind: str) -> bool:
    key, peers_key = ("ingress", "from") if kind == "Ingress" else ("egress", "to")
    relevant = [
        p
        for p in policies
        if p["metadata"]["namespace"] == pod.namespace
        and selects(p["spec"]["podSelector"], dict(pod.labels))
        and kind in p["spec"]["policyTypes"]
    ]
    if not relevant:
        return True
    for p in relevant:
        for rule in p["spec"].get(key, []):
            peers = rule.get(peers_key)
            if (peers is None or any(peer_matches(x, pod.namespace, peer) for x in peers)) and (
                port_ok(rule, port, proto)
            ):
                return True
    return False


def connects(policies, src: Pod, dst: Pod, port: int, proto: str = "TCP") -> bool:
    return direction_allows(policies, src, dst, port, proto, "Egress") and direction_allows(
        policies, dst, src, port, proto, "Ingress"
    )


APP = Pod("shop", (("app", "checkout"),))
PEER = Pod("shop", (("app", "frontend"),))
DNS = Pod("kube-system", (("k8s-app", "kube-dns"),))
ISTIOD = Pod(mesh.ROOT_NAMESPACE, (("app", "istiod"),))
INGRESS = Pod(mesh.INGRESS_NAMESPACE, tuple(mesh.INGRESS_SELECTOR.items()))
EGRESS = Pod(mesh.EGRESS_NAMESPACE, tuple(mesh.EGRESS_SELECTOR.items()))
PROMETHEUS = Pod(mesh.MONITORING_NAMESPACE, (("app", "prometheus"),))
STRANGER = Pod("other", (("app", "x"),))


def committed(stack: str) -> list[dict[str, Any]]:
    """The security layer's NetworkPolicies (the traffic layer fences Flagger's load tester
    in its own namespace: components/traffic/flagger.py)."""
    run = stack_run(stack)
    (layer,) = run.of_type("service-mesh:security:MeshSecurity")
    return [r.inputs for r in run.children(layer) if r.type == NP]


@pytest.mark.parametrize("stack", STACKS)
def test_every_mesh_namespace_has_the_full_set(stack):
    names = {
        "default-deny",
        "allow-dns",
        "allow-same-namespace",
        "allow-from-ingress-gateway",
        "allow-metrics-scrape",
        "allow-istiod",
        "allow-egress-gateway",
        "allow-trace-export",
    }
    namespaces = [n["name"] for n in stack_config(stack)["service-mesh:meshNamespaces"]]
    policies = committed(stack)
    for ns in namespaces:
        got = {p["metadata"]["name"] for p in policies if p["metadata"]["namespace"] == ns}
        assert names <= got, f"{ns} misses {names - got}"
        deny = next(
            p
            for p in policies
            if p["metadata"] == {**p["metadata"], "namespace": ns, "name": "default-deny"}
        )
        assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    assert {p["metadata"]["namespace"] for p in policies} == set(namespaces)


@pytest.mark.parametrize("stack", STACKS)
def test_allowed_and_denied_connections(stack):
    pols = committed(stack)
    allowed = [
        (APP, DNS, 53, "UDP"),
        (APP, DNS, 53, "TCP"),
        (APP, ISTIOD, mesh.XDS_PORT, "TCP"),
        (PEER, APP, 8080, "TCP"),
        (INGRESS, APP, 8080, "TCP"),
        (APP, EGRESS, 443, "TCP"),
        (PROMETHEUS, APP, mesh.MERGED_METRICS_PORT, "TCP"),
        (PROMETHEUS, APP, mesh.ENVOY_METRICS_PORT, "TCP"),
        (APP, Pod(mesh.MONITORING_NAMESPACE, (("app", "tempo"),)), TEMPO_OTLP_GRPC_PORT, "TCP"),
    ]
    denied = [
        (APP, DNS, 443, "TCP"),
        (APP, ISTIOD, 443, "TCP"),
        (APP, ISTIOD, mesh.WEBHOOK_PORT, "TCP"),
        (PROMETHEUS, APP, 8080, "TCP"),
        (STRANGER, APP, 8080, "TCP"),
        (APP, STRANGER, 8080, "TCP"),
        (Pod(mesh.INGRESS_NAMESPACE, (("app", "other"),)), APP, 8080, "TCP"),
        (Pod(mesh.EGRESS_NAMESPACE), APP, 8080, "TCP"),
        (APP, Pod(mesh.EGRESS_NAMESPACE, (("app", "other"),)), 443, "TCP"),
        (APP, Pod("kube-system", (("k8s-app", "kube-dns"),)), 8080, "UDP"),
        (APP, PROMETHEUS, 9090, "TCP"),
    ]
    for src, dst, port, proto in allowed:
        assert connects(pols, src, dst, port, proto), (src, dst, port, proto)
    for src, dst, port, proto in denied:
        assert not connects(pols, src, dst, port, proto), (src, dst, port, proto)


@pytest.mark.parametrize("stack", STACKS)
def test_namespaces_selected_by_the_label_kubernetes_sets(stack):
    def walk(value: Any):
        if isinstance(value, dict):
            if "namespaceSelector" in value:
                yield value["namespaceSelector"]
            for v in value.values():
                yield from walk(v)
        elif isinstance(value, list):
            for v in value:
                yield from walk(v)

    selectors = [s for p in committed(stack) for s in walk(p["spec"])]
    assert selectors
    for s in selectors:
        assert list(s["matchLabels"]) == ["kubernetes.io/metadata.name"], s


def service(name: str, ns: str, callers: list[str]) -> MeshService:
    return MeshService.model_validate(
        {
            "name": name,
            "namespace": ns,
            "serviceAccount": name,
            "ports": [{"name": "http", "port": 8080}],
            "callers": [{"service": c, "methods": ["GET"], "paths": ["/"]} for c in callers],
        }
    )


def test_declared_cross_namespace_calls_open_both_sides_and_nothing_else():
    services = [
        service("web", "front", []),
        service("api", "back", ["web"]),
        service("db", "data", ["api"]),
    ]
    pols = [p for ns in ("front", "back", "data") for p in network_policies(ns, services)]
    for p in pols:
        validate_k8s(p)
    web, api, db = (
        Pod("front", (("app", "web"),)),
        Pod("back", (("app", "api"),)),
        Pod("data", (("app", "db"),)),
    )
    assert connects(pols, web, api, 8080)
    assert connects(pols, api, db, 8080)
    assert not connects(pols, web, db, 8080), "not declared: web -> db"
    assert not connects(pols, api, web, 8080), "calls are directed"
    assert not connects(pols, web, api, 9999), "only the callee's ports"


@pytest.mark.parametrize("stack", STACKS)
def test_network_policies_schema_valid(stack):
    for p in committed(stack):
        validate_k8s({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", **p})


PUBLIC = Pod("", ip="198.51.100.7")  # documentation range, stands for any public address


def test_direct_external_host_opens_its_port_to_public_addresses_only():
    hosts = [
        ExternalHost.model_validate(
            {"host": "api.example.com", "namespaces": ["shop"], "port": 8443}
        ),
        ExternalHost.model_validate(
            {"host": "via.example.com", "namespaces": ["shop"], "port": 9443, "egressGateway": True}
        ),
    ]
    pols = network_policies("shop", [], hosts) + network_policies("other", [], hosts)
    for p in pols:
        validate_k8s(p)
    assert connects(pols, APP, PUBLIC, 8443)
    assert not connects(pols, APP, PUBLIC, 443), "only the declared port"
    assert not connects(pols, APP, PUBLIC, 9443), "gateway hosts leave through the gateway"
    assert not connects(pols, Pod("other", (("app", "x"),)), PUBLIC, 8443), "other namespace"
    for private in (
        "10.244.0.9",
        "10.110.0.5",
        "172.16.3.4",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
    ):
        assert not connects(pols, APP, Pod("", ip=private), 8443), private


@pytest.mark.parametrize("stack", STACKS)
def test_committed_stacks_reach_nothing_outside_the_cluster_directly(stack):
    """Every committed external host goes through the egress gateway, so no mesh namespace
    may open a connection to an outside address."""
    pols = committed(stack)
    for port in (53, 80, 443, 8443):
        assert not connects(pols, APP, PUBLIC, port)
