"""Scoped Sidecars (issue 10, item 6): on generated graphs, each service's proxy sees exactly
its declared callees among the mesh's services (plus the platform), a workload the graph does
not declare sees none; and the measurement docs/traffic.md reports: hosts a proxy receives at
50 and 500 services, scoped and not."""

from __future__ import annotations

import random
import statistics
from collections.abc import Sequence
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components.graph.checks import ServiceGraph
from components.graph.model import ExternalHost, MeshNamespace, MeshService
from components.traffic import names, sidecars
from tests.schema import validate_crd

# --- Istio's Sidecar egress host selection, written from the API reference ----------------


def selects(entry: str, proxy_namespace: str, namespace: str, host: str) -> bool:
    """`namespace/dnsName`: namespace `*` any, `.` the Sidecar's own, `~` none; dnsName `*`,
    a `*.suffix` wildcard, or an exact host."""
    ns, _, dns = entry.partition("/")
    if ns == "~":
        return False
    if ns not in ("*", namespace) and not (ns == "." and namespace == proxy_namespace):
        return False
    return dns == "*" or (dns.startswith("*.") and host.endswith(dns[1:])) or dns == host


def sidecar_for(objects: Sequence[dict[str, Any]], svc: MeshService) -> dict[str, Any]:
    (found,) = [
        o
        for o in objects
        if o["metadata"]["namespace"] == svc.namespace
        and (o["spec"].get("workloadSelector") or {}).get("labels") == svc.workload_labels
    ]
    return found


def seen(sidecar: dict[str, Any], graph: ServiceGraph) -> set[str]:
    """The graph's service hosts the proxy under `sidecar` receives."""
    (egress,) = sidecar["spec"]["egress"]
    ns = sidecar["metadata"]["namespace"]
    return {
        h
        for s in graph.services
        for h in names.service_hosts(s)
        if any(selects(e, ns, s.namespace, h) for e in egress["hosts"])
    }


# --- generated graphs ---------------------------------------------------------------------


def generated_graph(n: int, calls: int, seed: int, canaries: int = 0) -> ServiceGraph:
    """`n` services, ten per namespace, each calling `calls` random others."""
    rng = random.Random(seed)
    namespaces = [f"ns{i}" for i in range(max(1, n // 10))]
    names_ = [f"svc{i}" for i in range(n)]
    callers: dict[str, list[str]] = {s: [] for s in names_}
    for s in names_:
        for callee in rng.sample([x for x in names_ if x != s], min(calls, n - 1)):
            callers[callee].append(s)
    services = []
    for i, s in enumerate(names_):
        body: dict[str, Any] = {
            "name": s,
            "namespace": namespaces[i % len(namespaces)],
            "serviceAccount": s,
            "ports": [{"name": "http", "port": 8080}],
            "callers": [{"service": c, "methods": ["GET"], "paths": ["/"]} for c in callers[s]],
        }
        if i < canaries:
            body["traffic"] = {"canary": {}}
        services.append(MeshService.model_validate(body))
    external = (ExternalHost(host="api.stripe.com", namespaces=(namespaces[0],)),)
    return ServiceGraph(
        tuple(MeshNamespace(name=ns) for ns in namespaces), tuple(services), external
    )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(2, 40), st.integers(0, 4), st.integers(0, 10_000), st.integers(0, 3))
def test_each_sidecar_admits_its_callees_and_nothing_else(n, calls, seed, canaries):
    graph = generated_graph(n, calls, seed, min(canaries, n))
    objects = sidecars.mesh_sidecars(graph)
    index = sidecars.callees(graph)
    for svc in graph.services:
        expected = {h for c in index[svc.name] for h in names.service_hosts(c)}
        assert seen(sidecar_for(objects, svc), graph) == expected, svc.name
        if svc.canary is not None:
            primary = [o for o in objects if o["metadata"]["name"] == f"{svc.name}-primary"]
            assert primary[0]["spec"]["workloadSelector"]["labels"] == names.primary_labels(svc)
            assert seen(primary[0], graph) == expected
    for default in (o for o in objects if "workloadSelector" not in o["spec"]):
        assert seen(default, graph) == set(), "an undeclared workload sees no mesh service"


def test_sidecars_keep_the_platform_and_declared_external_hosts():
    graph = generated_graph(20, 2, seed=1)
    objects = sidecars.mesh_sidecars(graph)
    for o in objects:
        validate_crd(o)
        hosts = o["spec"]["egress"][0]["hosts"]
        assert set(sidecars.PLATFORM_EGRESS) <= set(hosts)
        assert ("./api.stripe.com" in hosts) == (o["metadata"]["namespace"] == "ns0")
    # one namespace default and one per workload
    assert len(objects) == len(graph.namespace_names) + len(graph.services)


def test_the_models_agree_on_what_a_proxy_sees():
    """The builders' own measurement (`sidecars.visible_hosts`) and this file's model."""
    graph = generated_graph(30, 3, seed=7, canaries=2)
    objects = sidecars.mesh_sidecars(graph)
    known = sidecars.registry(graph)
    for svc in graph.services:
        sidecar = sidecar_for(objects, svc)
        egress = sidecar["spec"]["egress"][0]["hosts"]
        mine = {(ns, h) for ns, h in known if any(selects(e, svc.namespace, ns, h) for e in egress)}
        assert sidecars.visible_hosts(egress, svc.namespace, known) == mine


# --- the measurement ------------------------------------------------------------------------


def measure(n: int) -> dict[str, float]:
    graph = generated_graph(n, calls=3, seed=42)
    scoped = sidecars.visibility(graph, scoped=True)
    unscoped = sidecars.visibility(graph, scoped=False)
    return {
        "scoped_mean": statistics.mean(scoped),
        "scoped_max": max(scoped),
        "unscoped_mean": statistics.mean(unscoped),
    }


def test_proxy_configuration_grows_with_dependencies_not_with_the_mesh():
    """Reported in docs/traffic.md: with 3 callees per service, a scoped proxy sees about the
    same handful of hosts at 50 and at 500 services; without Sidecars it sees all of them."""
    small, large = measure(50), measure(500)
    print(f"\nhosts per proxy: 50 services {small}, 500 services {large}")
    platform = len(sidecars.PLATFORM_SERVICES)
    assert small["unscoped_mean"] == 50 + platform and large["unscoped_mean"] == 500 + platform
    # Scoped: callees (about 3) plus the platform hosts the Sidecar names, whatever the size.
    for m in (small, large):
        assert m["scoped_max"] <= 4 + 10
    assert abs(large["scoped_mean"] - small["scoped_mean"]) < 1.0
    assert large["unscoped_mean"] / large["scoped_mean"] > 50
