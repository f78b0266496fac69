"""Authorization from the declared service graph, checked against a model of Istio's matching
semantics (istio/api authorization_policy.proto): a policy allows when ANY rule matches; a rule
matches when one of its sources AND one of its operations AND all of its conditions match; fields
inside one source/operation are ANDed; an ALLOW policy without rules matches nothing; when ALLOW
policies apply to a workload, a request no ALLOW policy matches is denied. The model refuses any
field it does not know, so a generator change cannot slip past it unmodelled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components.base import mesh
from components.graph.checks import ServiceGraph
from components.graph.model import HTTP_METHODS, ExternalHost, MeshNamespace, MeshService
from components.security.authorization import authorization_policies as policies_of_graph
from components.security.authorization import istio_paths
from components.security.egress import GATEWAY_HTTP_PORT, GATEWAY_TLS_PORT, gateway_policies
from tests.conftest import run_config, stack_config
from tests.schema import validate_istio

# --- the model -------------------------------------------------------------------------------


def authorization_policies(namespaces, services, permissive=()):
    """The layer's policies for a graph given as namespace names, services and the names of
    PERMISSIVE namespaces."""
    graph = ServiceGraph(
        tuple(
            MeshNamespace(name=ns, mtls="permissive" if ns in permissive else "strict")
            for ns in namespaces
        ),
        tuple(services),
    )
    return policies_of_graph(graph)


@dataclass(frozen=True)
class Request:
    principal: str | None  # None: plaintext, no peer identity
    namespace: str | None
    method: str
    path: str
    port: int
    sni: str | None = None  # of the (m)TLS connection
    host: str | None = None  # HTTP Host header


@dataclass(frozen=True)
class Workload:
    namespace: str
    labels: dict[str, str]


def glob(pattern: str, value: str | None) -> bool:
    """Istio string match: exact, 'prefix*', '*suffix' or '*'."""
    if value is None:
        return False
    if pattern == "*":
        return True
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    if pattern.startswith("*"):
        return value.endswith(pattern[1:])
    return value == pattern


def _any(patterns: list[str], value: str | None) -> bool:
    return any(glob(p, value) for p in patterns)


def source_matches(src: dict[str, Any], r: Request) -> bool:
    known = {"principals", "notPrincipals", "namespaces", "notNamespaces"}
    assert set(src) <= known, f"model does not know source fields {set(src) - known}"
    return (
        ("principals" not in src or _any(src["principals"], r.principal))
        and ("notPrincipals" not in src or not _any(src["notPrincipals"], r.principal))
        and ("namespaces" not in src or _any(src["namespaces"], r.namespace))
        and ("notNamespaces" not in src or not _any(src["notNamespaces"], r.namespace))
    )


def operation_matches(op: dict[str, Any], r: Request) -> bool:
    known = {"methods", "notMethods", "paths", "notPaths", "ports", "notPorts", "hosts"}
    assert set(op) <= known, f"model does not know operation fields {set(op) - known}"
    return (
        ("hosts" not in op or _any(op["hosts"], r.host))
        and ("methods" not in op or _any(op["methods"], r.method))
        and ("notMethods" not in op or not _any(op["notMethods"], r.method))
        and ("paths" not in op or _any(op["paths"], r.path))
        and ("notPaths" not in op or not _any(op["notPaths"], r.path))
        and ("ports" not in op or str(r.port) in op["ports"])
        and ("notPorts" not in op or str(r.port) not in op["notPorts"])
    )


def condition_matches(cond: dict[str, Any], r: Request) -> bool:
    attributes = {
        "source.namespace": r.namespace,
        "source.principal": r.principal,
        "destination.port": str(r.port),
        "request.method": r.method,
        "connection.sni": r.sni,
    }
    assert cond["key"] in attributes, f"model does not know condition {cond['key']}"
    value = attributes[cond["key"]]
    ok = "values" not in cond or _any(cond["values"], value)
    return ok and not ("notValues" in cond and _any(cond["notValues"], value))


def rule_matches(rule: dict[str, Any], r: Request) -> bool:
    assert set(rule) <= {"from", "to", "when"}, rule
    return (
        ("from" not in rule or any(source_matches(f["source"], r) for f in rule["from"]))
        and ("to" not in rule or any(operation_matches(t["operation"], r) for t in rule["to"]))
        and all(condition_matches(c, r) for c in rule.get("when", []))
    )


def applies(policy: dict[str, Any], w: Workload) -> bool:
    ns = policy["metadata"]["namespace"]
    if ns not in (w.namespace, mesh.ROOT_NAMESPACE):
        return False
    selector = (policy["spec"].get("selector") or {}).get("matchLabels") or {}
    return all(w.labels.get(k) == v for k, v in selector.items())


def allowed(policies: list[dict[str, Any]], w: Workload, r: Request) -> bool:
    relevant = [p for p in policies if applies(p, w)]
    for p in relevant:
        assert p["spec"].get("action", "ALLOW") in ("ALLOW", "DENY"), p
    if any(
        p["spec"].get("action") == "DENY"
        and any(rule_matches(x, r) for x in p["spec"].get("rules", []))
        for p in relevant
    ):
        return False
    allow = [p for p in relevant if p["spec"].get("action", "ALLOW") == "ALLOW"]
    if not allow:
        return True
    return any(rule_matches(x, r) for p in allow for x in p["spec"].get("rules", []))


def test_model_catches_the_split_rule_mistake():
    """The seed material's shape (from/to/when as separate items) allows anyone: the model
    must say so, or it could not catch the mistake in generated policies."""
    split = {
        "metadata": {"namespace": "shop"},
        "spec": {
            "action": "ALLOW",
            "rules": [
                {"from": [{"source": {"principals": ["cluster.local/ns/shop/sa/frontend"]}}]},
                {"to": [{"operation": {"methods": ["GET"]}}]},
            ],
        },
    }
    stranger = Request("cluster.local/ns/evil/sa/x", "evil", "GET", "/", 8080)
    assert allowed([split], Workload("shop", {"app": "a"}), stranger)
    together = {
        "metadata": {"namespace": "shop"},
        "spec": {
            "action": "ALLOW",
            "rules": [
                {
                    "from": [{"source": {"principals": ["cluster.local/ns/shop/sa/frontend"]}}],
                    "to": [{"operation": {"methods": ["GET"]}}],
                },
            ],
        },
    }
    assert not allowed([together], Workload("shop", {"app": "a"}), stranger)


# --- expectations straight from the graph ----------------------------------------------------


def under(prefix: str, path: str) -> bool:
    return (
        path.startswith(prefix)
        if prefix.endswith("/")
        else (path == prefix or path.startswith(prefix + "/"))
    )


def expected(
    services: list[MeshService],
    svc: MeshService,
    r: Request,
    permissive: frozenset[str] = frozenset(),
) -> bool:
    """What the declared graph says about request `r` to `svc`: a declared caller's identity
    with its methods and paths, the ingress gateway on exposed paths, and plaintext (no
    identity at all) only on ports whose mTLS is PERMISSIVE (port or namespace)."""
    if r.principal is None:
        return r.port in {
            p.port for p in svc.ports if p.mtls == "permissive" or svc.namespace in permissive
        }
    http_ports = {p.port for p in svc.ports if p.protocol != "tcp"}
    for c in svc.callers:
        caller = next(s for s in services if s.name == c.service)
        if r.principal != mesh.principal(caller.namespace, caller.service_account):
            continue
        if not http_ports and r.port in {p.port for p in svc.ports}:
            return True  # TCP-only: identity and port are all there is to match
        if (
            r.port in http_ports
            and r.method in c.methods
            and any(under(p, r.path) for p in c.paths)
        ):
            return True
    ing = svc.ingress
    return bool(
        ing
        and r.principal == mesh.INGRESS_PRINCIPAL
        and r.port == svc.http_port  # the one port the public routes send to
        and r.method in ing.methods
        and any(under(p, r.path) for p in ing.paths)
    )


def probes(services: list[MeshService], svc: MeshService) -> list[Request]:
    """Requests near every boundary: each declared and undeclared identity, method, path."""
    identities = {(mesh.principal(s.namespace, s.service_account), s.namespace) for s in services}
    identities |= {
        (mesh.INGRESS_PRINCIPAL, mesh.INGRESS_NAMESPACE),
        (None, None),
        (mesh.principal("intruder", svc.service_account), "intruder"),
        (mesh.principal(svc.namespace, "default"), svc.namespace),
    }
    paths = {"/", "/zzz"}
    for c in svc.callers:
        for p in c.paths:
            base = p.rstrip("/") or ""
            paths |= {p, base + "/x", base + "x", base, p + "deeper/more"}
    if svc.ingress:
        paths |= {p + "x" for p in svc.ingress.paths}
    ports = {p.port for p in svc.ports} | {1}
    return [
        Request(pr, ns, m, path or "/", port)
        for pr, ns in sorted(identities, key=str)
        for m in ("GET", "POST", "DELETE")
        for path in sorted(paths)
        for port in sorted(ports)
    ]


def check_graph(
    services: list[MeshService], namespaces: list[str], permissive: frozenset[str] = frozenset()
) -> int:
    policies = authorization_policies(namespaces, services, permissive)
    checked = 0
    for svc in services:
        w = Workload(svc.namespace, svc.workload_labels)
        for r in probes(services, svc):
            want = expected(services, svc, r, permissive)
            assert allowed(policies, w, r) == want, (svc.name, r)
            checked += 1
    return checked


def committed_services(stack: str) -> tuple[list[MeshService], list[str]]:
    raw = stack_config(stack)
    services = [MeshService.model_validate(s) for s in raw.get("service-mesh:services", [])]
    namespaces = [ns["name"] for ns in raw.get("service-mesh:meshNamespaces", [])]
    return services, namespaces


@pytest.mark.parametrize("stack", ["dev", "staging", "production"])
def test_committed_graph_allows_declared_calls_only(stack):
    services, namespaces = committed_services(stack)
    assert services, "the stack declares a service graph"
    permissive = frozenset(
        ns["name"]
        for ns in stack_config(stack)["service-mesh:meshNamespaces"]
        if ns.get("mtls") == "permissive"
    )
    assert check_graph(services, namespaces, permissive) > 100


def test_declared_call_allowed_and_undeclared_caller_denied_in_production_graph():
    services, namespaces = committed_services("production")
    policies = authorization_policies(namespaces, services)
    checkout = next(s for s in services if s.name == "checkout")
    w = Workload("shop", checkout.workload_labels)
    frontend = mesh.principal("shop", "frontend")
    payments = mesh.principal("shop", "payments")
    assert allowed(policies, w, Request(frontend, "shop", "POST", "/api/checkout", 8080))
    assert allowed(policies, w, Request(frontend, "shop", "GET", "/api/cart/42", 8080))
    assert not allowed(policies, w, Request(payments, "shop", "POST", "/api/checkout", 8080))
    assert not allowed(policies, w, Request(frontend, "shop", "DELETE", "/api/cart", 8080))
    assert not allowed(policies, w, Request(frontend, "shop", "GET", "/api/cartoon", 8080))
    assert not allowed(policies, w, Request(frontend, "shop", "GET", "/admin", 8080))
    assert not allowed(
        policies, w, Request(mesh.INGRESS_PRINCIPAL, "istio-ingress", "GET", "/api/cart", 8080)
    )


def test_the_ingress_gateway_reaches_only_the_port_it_routes_to():
    """A service's second HTTP port (metrics, admin) is not reachable from the internet just
    because the service is exposed: the public routes send to its first HTTP port only."""
    exposed = MeshService.model_validate(
        svc(
            "web",
            ports=[{"name": "http", "port": 8080}, {"name": "http-metrics", "port": 9100}],
            ingress={"paths": ["/"]},
        )
    )
    policies = authorization_policies(["shop"], [exposed])
    w = Workload("shop", exposed.workload_labels)
    public = (mesh.INGRESS_PRINCIPAL, mesh.INGRESS_NAMESPACE, "GET", "/")
    assert allowed(policies, w, Request(*public, 8080))
    assert not allowed(policies, w, Request(*public, 9100))


# --- generated graphs ------------------------------------------------------------------------

NAMESPACES = ["shop", "ledger"]
PREFIXES = ["/", "/api", "/api/", "/api/v1", "/orders", "/pkg.Svc/"]


@st.composite
def graphs(draw) -> list[MeshService]:
    n = draw(st.integers(2, 5))
    names = [f"svc{i}" for i in range(n)]
    services = []
    for name in names:
        tcp = draw(st.booleans()) and draw(st.booleans())
        callers = []
        for other in draw(st.lists(st.sampled_from(names), unique=True, max_size=3)):
            if other == name:
                continue
            callers.append(
                {"service": other}
                if tcp
                else {
                    "service": other,
                    "methods": draw(
                        st.lists(
                            st.sampled_from(HTTP_METHODS[:5]), min_size=1, max_size=3, unique=True
                        )
                    ),
                    "paths": draw(
                        st.lists(st.sampled_from(PREFIXES), min_size=1, max_size=2, unique=True)
                    ),
                }
            )
        svc: dict[str, Any] = {
            "name": name,
            "namespace": draw(st.sampled_from(NAMESPACES)),
            "serviceAccount": draw(st.sampled_from([name, "shared"])),
            "ports": [
                {
                    "name": "main",
                    "port": draw(st.sampled_from([8080, 9090])),
                    "protocol": "tcp" if tcp else "http",
                    "mtls": draw(st.sampled_from(["strict", "strict", "permissive"])),
                }
            ],
            "callers": callers,
        }
        if not tcp and draw(st.booleans()):
            svc["ingress"] = {
                "paths": draw(
                    st.lists(st.sampled_from(PREFIXES), min_size=1, max_size=2, unique=True)
                )
            }
        services.append(MeshService.model_validate(svc))
    return services


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graphs(), st.sets(st.sampled_from(NAMESPACES)))
def test_generated_graphs_allow_exactly_the_declared_calls(services, permissive):
    check_graph(services, NAMESPACES, frozenset(permissive))


@settings(max_examples=30, deadline=None)
@given(graphs())
def test_generated_policies_are_schema_valid_and_never_wildcard_principals(services):
    declared = {mesh.principal(s.namespace, s.service_account) for s in services}
    declared.add(mesh.INGRESS_PRINCIPAL)
    for policy in authorization_policies(NAMESPACES, services, ["ledger"]):
        validate_istio(policy)
        for rule in policy["spec"].get("rules", []):
            if rule["from"] == [{"source": {"notPrincipals": ["*"]}}]:
                assert set(rule) == {"from", "to"} and set(rule["to"][0]["operation"]) == {"ports"}
                continue  # plaintext: no identity to name, ports only
            assert {"from", "to", "when"} <= set(rule), "source, operation, condition together"
            for f in rule["from"]:
                for p in f["source"]["principals"]:
                    assert "*" not in p and p in declared


def test_default_deny_in_every_namespace_matches_nothing():
    policies = authorization_policies(NAMESPACES, [])
    deny = {p["metadata"]["namespace"]: p for p in policies}
    assert set(deny) == set(NAMESPACES)
    for ns, p in deny.items():
        assert p["spec"] == {} and p["metadata"]["name"] == "allow-nothing"
        r = Request(mesh.principal(ns, "any"), ns, "GET", "/", 8080)
        assert not allowed([p], Workload(ns, {"app": "x"}), r)


def test_plaintext_only_on_the_ports_config_makes_permissive():
    db = MeshService.model_validate(
        {
            "name": "db",
            "namespace": "shop",
            "serviceAccount": "db",
            "ports": [
                {"name": "sql", "port": 5432, "protocol": "tcp", "mtls": "permissive"},
                {"name": "admin", "port": 8080},
            ],
        }
    )
    policies = authorization_policies(["shop"], [db])
    w = Workload("shop", db.workload_labels)
    assert allowed(policies, w, Request(None, None, "GET", "/", 5432)), "plaintext client"
    assert not allowed(policies, w, Request(None, None, "GET", "/", 8080)), "strict port"
    stranger = Request(mesh.principal("shop", "x"), "shop", "GET", "/", 5432)
    assert not allowed(policies, w, stranger), "an undeclared identity is still refused"
    strict = authorization_policies(["shop"], [db.model_copy(update={"ports": db.ports[1:]})])
    assert not allowed(strict, w, Request(None, None, "GET", "/", 8080))
    everywhere = authorization_policies(["shop"], [db], permissive=["shop"])
    assert allowed(everywhere, w, Request(None, None, "GET", "/", 8080)), "PERMISSIVE namespace"


# --- the egress gateway forwards declared hosts for declared namespaces only -----------------

EGRESS_GW = Workload(mesh.EGRESS_NAMESPACE, dict(mesh.EGRESS_SELECTOR))


def host(name: str, namespaces: list[str], **extra: Any) -> ExternalHost:
    return ExternalHost.model_validate(
        {"host": name, "namespaces": namespaces, "egressGateway": True, **extra}
    )


def test_egress_gateway_allows_declared_namespace_and_host_only():
    hosts = [
        host("api.stripe.com", ["shop"]),
        host("api.ledger.example", ["ledger"], tls="originate"),
        ExternalHost.model_validate({"host": "direct.example", "namespaces": ["shop"]}),
    ]
    policies = gateway_policies(hosts)
    for p in policies:
        validate_istio(p)
    shop, ledger = mesh.principal("shop", "checkout"), mesh.principal("ledger", "books")

    def tls(principal, ns, sni):
        return Request(principal, ns, "GET", "/", GATEWAY_TLS_PORT, sni=sni)

    def http(principal, ns, sni, host_header):
        return Request(principal, ns, "POST", "/v1", GATEWAY_HTTP_PORT, sni=sni, host=host_header)

    assert allowed(policies, EGRESS_GW, tls(shop, "shop", "api.stripe.com"))
    assert not allowed(policies, EGRESS_GW, tls(ledger, "ledger", "api.stripe.com")), (
        "namespace not declared for the host"
    )
    assert not allowed(policies, EGRESS_GW, tls(None, None, "api.stripe.com")), "no identity"
    assert not allowed(policies, EGRESS_GW, tls(shop, "shop", "api.ledger.example"))
    assert not allowed(policies, EGRESS_GW, tls(shop, "shop", "direct.example")), (
        "a host not routed through the gateway"
    )
    assert allowed(
        policies, EGRESS_GW, http(ledger, "ledger", "api.ledger.example", "api.ledger.example")
    )
    assert not allowed(
        policies, EGRESS_GW, http(ledger, "ledger", "api.ledger.example", "api.stripe.com")
    ), "Host header checked too"
    assert not allowed(
        policies, EGRESS_GW, http(shop, "shop", "api.ledger.example", "api.ledger.example")
    )


def test_egress_gateway_denies_everything_without_gateway_hosts():
    policies = gateway_policies([])
    assert [p["metadata"]["name"] for p in policies] == ["allow-nothing"]
    r = Request(mesh.principal("shop", "a"), "shop", "GET", "/", GATEWAY_TLS_PORT, sni="x.com")
    assert not allowed(policies, EGRESS_GW, r)


def test_istio_paths_do_not_overmatch_sibling_prefixes():
    assert istio_paths(["/api"]) == ["/api", "/api/*"]
    assert istio_paths(["/api/"]) == ["/api/*"]
    assert istio_paths(["/"]) == ["/*"]


# --- bad graphs are refused with the key named, before anything is registered ----------------

BASE = {
    "service-mesh:environment": "dev",
    "service-mesh:cluster": {"region": "fra1"},
    "service-mesh:meshNamespaces": [{"name": "shop"}],
}


def svc(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": "shop",
        "serviceAccount": name,
        "ports": [{"name": "http", "port": 8080}],
        **extra,
    }


def call(service: str, methods=("GET",), paths=("/api",)) -> dict[str, Any]:
    return {"service": service, "methods": list(methods), "paths": list(paths)}


BAD_GRAPHS = [
    ([svc("a", callers=[call("ghost")])], "services[0].callers[0].service", "ghost"),
    (
        [svc("a"), svc("b", callers=[call("a", methods=["FETCH"])])],
        "services[1].callers[0].methods",
        "unknown HTTP method",
    ),
    (
        [svc("a"), svc("b", callers=[call("a", paths=["api"])])],
        "services[1].callers[0].paths",
        "must start with '/'",
    ),
    ([svc("a", namespace="elsewhere")], "services[0].namespace", "meshNamespaces"),
    (
        [
            svc(
                "a",
                ports=[{"name": "db", "port": 5432, "protocol": "tcp"}],
                ingress={"paths": ["/"]},
            )
        ],
        "services[0].ingress",
        "http",
    ),
    (
        [svc("a"), svc("b", callers=[{"service": "a"}])],
        "services[1].callers[0]",
        "methods and paths",
    ),
    ([svc("a"), svc("a")], "services[1].name", "twice"),
]


@pytest.mark.parametrize(("services", "key", "words"), BAD_GRAPHS)
def test_bad_graph_is_refused_with_key_and_nothing_registered(tmp_path, services, key, words):
    run = run_config(tmp_path, "dev", {**BASE, "service-mesh:services": services})
    assert run.error is not None, "the bad graph must be refused"
    message = str(run.error)
    assert f"service-mesh:{key}" in message and words in message, message
    assert run.resources == []


def test_unknown_service_helper_for_other_layers():
    graph = ServiceGraph(services=(MeshService.model_validate(svc("a")),))
    assert graph.unknown_service("slos[0].service", "a") is None
    problem = graph.unknown_service("slos[0].service", "ghost")
    assert problem is not None and "service-mesh:slos[0].service = 'ghost'" in str(problem)
    assert "declared in `services` (a)" in str(problem)
