"""Identity and authorization from the declared service graph: mesh-wide STRICT mTLS with
configured exceptions, a default-deny policy per mesh namespace, and per service one ALLOW policy
whose every rule pairs a caller identity with the operations it may perform.

Why one rule per caller with `from`, `to` and `when` in the same item: Istio ORs the items of
`rules`, so splitting them would allow any source that matches any single item.
Plaintext has no identity, so no caller rule admits it; where config accepts plaintext (a
PERMISSIVE namespace or port) one rule admits identity-less requests on exactly those ports,
else PERMISSIVE would be refused by authorization anyway.

A canaried service (`traffic.canary`) runs as two workloads: its own Deployment (the canary,
its labels unchanged) and the `<name>-primary` Deployment Flagger generates, whose pods carry
the Flagger selector label rewritten to `<value>-primary` (components/traffic/names.py). The
primary gets the same ALLOW policy under its own selector, and both admit Flagger's load tester
for the load test's method and path only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from components.base import mesh
from components.base.manifests import namespaced as istio_object
from components.graph.checks import ServiceGraph
from components.graph.model import HTTP_PROTOCOLS, Caller, MeshNamespace, MeshService
from components.traffic import names as traffic_names

SECURITY_API = "security.istio.io/v1"


def istio_paths(prefixes: Iterable[str]) -> list[str]:
    """Path prefixes as Istio path patterns: '/api' matches '/api' and '/api/...' but not
    '/apix'; a prefix ending in '/' (or '/' itself) matches everything under it."""
    out: list[str] = []
    for p in prefixes:
        patterns = [p + "*"] if p.endswith("/") else [p, p + "/*"]
        out += [x for x in patterns if x not in out]
    return out


# --- mTLS ------------------------------------------------------------------------------------


def mesh_peer_authentication() -> dict[str, Any]:
    """STRICT for the whole mesh: a policy named `default` in the root namespace."""
    return istio_object(
        "PeerAuthentication",
        SECURITY_API,
        "default",
        mesh.ROOT_NAMESPACE,
        {"mtls": {"mode": "STRICT"}},
        "mtls",
    )


def namespace_peer_authentication(namespace: str) -> dict[str, Any]:
    """PERMISSIVE override for a namespace still migrating into the mesh."""
    return istio_object(
        "PeerAuthentication",
        SECURITY_API,
        "default",
        namespace,
        {"mtls": {"mode": "PERMISSIVE"}},
        "mtls",
    )


def port_peer_authentication(svc: MeshService) -> dict[str, Any] | None:
    """Port-level PERMISSIVE only for ports configured so; None when there is none."""
    ports = {str(p.port): {"mode": "PERMISSIVE"} for p in svc.ports if p.mtls == "permissive"}
    if not ports:
        return None
    spec = {"selector": {"matchLabels": svc.workload_labels}, "portLevelMtls": ports}
    return istio_object(
        "PeerAuthentication", SECURITY_API, f"{svc.name}-ports", svc.namespace, spec, "mtls"
    )


def peer_authentications(
    namespaces: Iterable[MeshNamespace], services: Sequence[MeshService]
) -> list[dict[str, Any]]:
    """Mesh-wide STRICT, then the namespace and port exceptions the config declares."""
    out = [mesh_peer_authentication()]
    out += [namespace_peer_authentication(ns.name) for ns in namespaces if ns.mtls == "permissive"]
    out += [pa for svc in services if (pa := port_peer_authentication(svc)) is not None]
    return out


# --- authorization ---------------------------------------------------------------------------


def default_deny(namespace: str) -> dict[str, Any]:
    """An ALLOW policy without rules matches nothing, so once it exists every request to the
    namespace's workloads is denied unless another ALLOW policy matches it."""
    return istio_object(
        "AuthorizationPolicy", SECURITY_API, "allow-nothing", namespace, {}, "authorization"
    )


def _ports(svc: MeshService, http_only: bool) -> list[str]:
    return [str(p.port) for p in svc.ports if not http_only or p.protocol in HTTP_PROTOCOLS]


def _rule(principal: str, source_namespace: str, operation: dict[str, Any]) -> dict[str, Any]:
    """Source AND operation AND condition, in one rule item."""
    return {
        "from": [{"source": {"principals": [principal]}}],
        "to": [{"operation": operation}],
        "when": [{"key": "source.namespace", "values": [source_namespace]}],
    }


def caller_rule(svc: MeshService, caller: Caller, caller_svc: MeshService) -> dict[str, Any]:
    operation: dict[str, Any] = {"ports": _ports(svc, http_only=svc.speaks_http)}
    if svc.speaks_http:
        operation["methods"] = list(caller.methods)
        operation["paths"] = istio_paths(caller.paths)
    principal = mesh.principal(caller_svc.namespace, caller_svc.service_account)
    return _rule(principal, caller_svc.namespace, operation)


def ingress_rule(svc: MeshService) -> dict[str, Any]:
    """The ingress gateway, on the one port its routes send to (`MeshService.http_port`): a
    second HTTP port, such as metrics, stays closed to the internet."""
    assert svc.ingress is not None
    operation = {
        "ports": [str(svc.http_port)],
        "methods": list(svc.ingress.methods),
        "paths": istio_paths(svc.ingress.paths),
    }
    return _rule(mesh.INGRESS_PRINCIPAL, mesh.INGRESS_NAMESPACE, operation)


def load_test_rule(svc: MeshService) -> dict[str, Any]:
    """Flagger's load tester, with the canary's load-test method on its path, on the port
    its load test calls (`MeshService.http_port`)."""
    assert svc.canary is not None
    test = svc.canary.load_test
    operation = {
        "ports": [str(svc.http_port)],
        "methods": [test.method],
        "paths": istio_paths([test.path]),
    }
    return _rule(traffic_names.LOADTESTER_PRINCIPAL, traffic_names.FLAGGER_NAMESPACE, operation)


def plaintext_rule(svc: MeshService, namespace_permissive: bool) -> dict[str, Any] | None:
    """Requests without a peer identity, on the ports that accept plaintext (all of them in a
    PERMISSIVE namespace); `notPrincipals: ['*']` matches only requests without mTLS."""
    ports = [str(p.port) for p in svc.ports if namespace_permissive or p.mtls == "permissive"]
    if not ports:
        return None
    return {"from": [{"source": {"notPrincipals": ["*"]}}], "to": [{"operation": {"ports": ports}}]}


def service_policy(svc: MeshService, graph: ServiceGraph) -> dict[str, Any] | None:
    """ALLOW policy on the service's workloads: one rule per declared caller, the ingress
    gateway when the service is exposed, plaintext where config accepts it (namespaces in
    PERMISSIVE mTLS). None when nobody may call it (default-deny holds)."""
    rules = _service_rules(svc, graph)
    if not rules:
        return None
    return _allow(f"allow-{svc.name}", svc, svc.workload_labels, rules)


def _service_rules(svc: MeshService, graph: ServiceGraph) -> list[dict[str, Any]]:
    rules = [caller_rule(svc, c, graph.by_name[c.service]) for c in svc.callers]
    if svc.ingress is not None:
        rules.append(ingress_rule(svc))
    if svc.canary is not None:
        rules.append(load_test_rule(svc))
    if (plain := plaintext_rule(svc, svc.namespace in graph.permissive_namespaces)) is not None:
        rules.append(plain)
    return rules


def _allow(
    name: str, svc: MeshService, labels: dict[str, str], rules: list[dict[str, Any]]
) -> dict[str, Any]:
    spec = {"selector": {"matchLabels": labels}, "action": "ALLOW", "rules": rules}
    return istio_object(
        "AuthorizationPolicy", SECURITY_API, name, svc.namespace, spec, "authorization"
    )


def primary_policy(svc: MeshService, graph: ServiceGraph) -> dict[str, Any] | None:
    """The same ALLOW policy for the `-primary` workload Flagger generates for a canary."""
    if svc.canary is None:
        return None
    primary = traffic_names.primary_labels(svc)
    return _allow(f"allow-{svc.name}-primary", svc, primary, _service_rules(svc, graph))


def authorization_policies(graph: ServiceGraph) -> list[dict[str, Any]]:
    """Default-deny in every mesh namespace, then the declared graph."""
    out = [default_deny(ns) for ns in graph.namespace_names]
    out += [p for svc in graph.services if (p := service_policy(svc, graph)) is not None]
    out += [p for svc in graph.services if (p := primary_policy(svc, graph)) is not None]
    return out
