"""A model of Istio's HTTP route selection (first matching rule wins; a rule's match blocks are
ORed, a block's conditions ANDed; header regexes match the whole value; weights are relative)
run on the VirtualServices the program emits, against the routes as declared: declared
matches reach the declared versions, in the mesh and through the public Gateway, and a route
the static checks call shadowed is never selected."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components.graph.checks import ServiceGraph
from components.graph.model import MeshNamespace, MeshService
from components.traffic import checks
from components.traffic.config import TrafficConfig
from components.traffic.matches import RouteMatch
from components.traffic.model import HttpRoute
from components.traffic.routing import (
    SHARES_ANNOTATION,
    destination_rule,
    public_virtual_services,
    virtual_service,
)
from tests.conftest import parsed_stack
from tests.schema import validate_crd

DEFAULTS = TrafficConfig.model_validate(TrafficConfig.PROFILES["staging"].defaults).resilience


@dataclass(frozen=True)
class Request:
    path: str
    method: str = "GET"
    headers: Mapping[str, str] = field(default_factory=dict)  # lowercase names


# --- the model (Istio semantics, written from the API reference, not from the builders) -------


def string_matches(cond: Mapping[str, str], value: str | None) -> bool:
    if not cond:  # `{}`: the header is present
        return value is not None
    ((kind, expected),) = cond.items()
    if value is None:
        return False
    if kind == "exact":
        return value == expected
    if kind == "prefix":
        return value.startswith(expected)
    assert kind == "regex", kind
    return re.fullmatch(expected, value) is not None  # RE2 full match


def block_matches(block: Mapping[str, Any], r: Request) -> bool:
    assert set(block) <= {"uri", "method", "headers"}, f"model does not know {set(block)}"
    return (
        ("uri" not in block or string_matches(block["uri"], r.path))
        and ("method" not in block or string_matches(block["method"], r.method))
        and all(string_matches(c, r.headers.get(h)) for h, c in block.get("headers", {}).items())
    )


def select(http: Sequence[Mapping[str, Any]], r: Request) -> Mapping[str, Any] | None:
    """The first rule whose match holds (a rule without match holds always); None: 404."""
    for rule in http:
        blocks = rule.get("match")
        if not blocks or any(block_matches(b, r) for b in blocks):
            return rule
    return None


def split(rule: Mapping[str, Any]) -> dict[str | None, float]:
    """Subset -> share of requests: weight / sum of weights (one destination: all)."""
    routes = rule["route"]
    if len(routes) == 1:
        return {routes[0]["destination"].get("subset"): 1.0}
    total = sum(d.get("weight", 0) for d in routes)
    return {d["destination"].get("subset"): d.get("weight", 0) / total for d in routes}


# --- the routes as declared -------------------------------------------------------------


def _cookies(r: Request) -> set[str]:
    return {c.strip() for c in r.headers.get("cookie", "").split(";") if c.strip()}


def declared_matches(m: RouteMatch, r: Request) -> bool:
    conds = [
        m.uri_prefix is None or r.path.startswith(m.uri_prefix),
        m.method is None or m.method == r.method,
        m.cookie is None or m.cookie in _cookies(r),
    ]
    for name, cond in m.headers.items():
        value = r.headers.get(name)
        conds.append(value is not None and string_matches(cond.istio(), value))
    return all(conds)


def declared_route(routes: Sequence[HttpRoute], r: Request) -> int | None:
    for j, route in enumerate(routes):
        if not route.match or any(declared_matches(m, r) for m in route.match):
            return j
    return None


# --- the committed staging split ------------------------------------------------------------


def staging_checkout() -> tuple[MeshService, ServiceGraph, Any]:
    cfg = parsed_stack("staging")
    return cfg.graph.by_name["checkout"], cfg.graph, cfg


def test_staging_requests_reach_the_declared_versions():
    svc, _, cfg = staging_checkout()
    http = virtual_service(svc, cfg.traffic.resilience)["spec"]["http"]
    cases = [
        (Request("/api/cart", headers={"x-fault": "delay"}), "delay-drill", {"v1": 1.0}),
        (Request("/api/cart", headers={"x-variant": "beta"}), "beta", {"v2": 1.0}),
        (Request("/api/cart", headers={"cookie": "session=1; variant=beta"}), "beta", {"v2": 1.0}),
        (Request("/api/cart", headers={"cookie": "variant=beta"}), "beta", {"v2": 1.0}),
        (
            Request("/api/cart", headers={"cookie": "variant=betamax"}),
            "default-mirrored",
            {"v1": 1.0},
        ),
        (Request("/api/cart", headers={"x-variant": "alpha"}), "default-mirrored", {"v1": 1.0}),
        (Request("/api/checkout", "POST"), "default", {"v1": 1.0}),
    ]
    for request, name, shares in cases:
        rule = select(http, request)
        assert rule is not None and rule["name"] == name, request
        assert split(rule) == shares, request
    drill = select(http, cases[0][0])
    assert drill["fault"]["delay"] == {"fixedDelay": "2s", "percentage": {"value": 100}}
    assert "timeout" not in drill and "retries" not in drill  # Istio disables them there
    # The mirror copies reads only: a copied POST /api/checkout would be served by v2 for real
    # (a second order, a second payment), only its response dropped.
    for method in ("GET", "HEAD", "OPTIONS"):
        default = select(http, Request("/", method))
        assert default["mirror"]["subset"] == "v2" and default["mirrorPercentage"] == {"value": 20}
        assert default["timeout"] == "10s" and default["retries"]["attempts"] == 2
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        rule = select(http, Request("/api/checkout", method))
        assert rule["name"] == "default" and "mirror" not in rule, method
        assert rule["timeout"] == "10s" and split(rule) == {"v1": 1.0}


def test_a_mirror_never_copies_a_request_that_changes_something():
    """Every rule of every plan that mirrors matches only GET, HEAD or OPTIONS, and the same
    route follows unmirrored for the other methods."""
    from components.traffic.routing import MIRRORED_METHODS, http_route

    svc, _, cfg = staging_checkout()
    route = next(r for r in svc.traffic.routes if r.mirror is not None)
    for matches in (None, [{"uri": {"prefix": "/api"}}], [{"method": {"exact": "POST"}}]):
        rules = http_route(svc, route, cfg.traffic.resilience, matches)
        mirrored = [r for r in rules if "mirror" in r]
        assert rules[-1].get("match") == matches and "mirror" not in rules[-1]
        for rule in mirrored:
            for block in rule["match"]:
                method = block["method"]
                assert method.get("exact") in MIRRORED_METHODS or method == {
                    "regex": "|".join(MIRRORED_METHODS)
                }
    assert len(http_route(svc, route, cfg.traffic.resilience, [{"method": {"exact": "POST"}}])) == 1


def test_model_shares_are_relative_and_stated_on_the_virtual_service():
    svc = MeshService.model_validate(
        {
            "name": "cart",
            "namespace": "shop",
            "serviceAccount": "cart",
            "ports": [{"name": "http", "port": 8080}],
            "traffic": {
                "versions": {"v1": {"version": "v1"}, "v2": {"version": "v2"}},
                "routes": [
                    {
                        "name": "split",
                        "destinations": [
                            {"version": "v1", "weight": 90},
                            {"version": "v2", "weight": 20},
                        ],
                    }
                ],
            },
        }
    )
    vs = virtual_service(svc, DEFAULTS)
    shares = split(select(vs["spec"]["http"], Request("/")))
    assert round(shares["v1"], 3) == 0.818 and round(shares["v2"], 3) == 0.182
    assert (
        vs["metadata"]["annotations"][SHARES_ANNOTATION]
        == '{"split": {"v1": "81.8%", "v2": "18.2%"}}'
    )
    validate_crd(vs)


# --- generated route tables -------------------------------------------------------------------

PREFIXES = ["/", "/a", "/a/b", "/b"]
VALUES = ["1", "12", "2"]
PATHS = ["/", "/a", "/a/b", "/a/bc", "/ab", "/b", "/c"]


@st.composite
def match_blocks(draw) -> dict[str, Any]:
    block: dict[str, Any] = {}
    if draw(st.booleans()):
        block["uriPrefix"] = draw(st.sampled_from(PREFIXES))
    if draw(st.booleans()):
        block["method"] = draw(st.sampled_from(["GET", "POST"]))
    for name in ("x-a", "x-b"):
        if draw(st.integers(0, 2)) == 0:
            kind = draw(st.sampled_from(["exact", "prefix", "regex"]))
            value = draw(st.sampled_from(VALUES))
            block.setdefault("headers", {})[name] = {
                kind: value + ".*" if kind == "regex" else value
            }
    if draw(st.integers(0, 2)) == 0:
        block["cookie"] = draw(st.sampled_from(["c=1", "c=2"]))
    if not block:
        block["method"] = "GET"
    return block


@st.composite
def route_tables(draw) -> list[dict[str, Any]]:
    n = draw(st.integers(1, 4))
    routes = []
    for j in range(n):
        versions = draw(st.sampled_from([["v1"], ["v2"], ["v1", "v2"]]))
        dests = (
            [{"version": versions[0]}]
            if len(versions) == 1
            else [{"version": v, "weight": draw(st.integers(1, 100))} for v in versions]
        )
        route: dict[str, Any] = {"name": f"r{j}", "destinations": dests}
        if j < n - 1:
            route["match"] = draw(st.lists(match_blocks(), min_size=1, max_size=2))
        routes.append(route)
    return routes


@st.composite
def requests(draw) -> Request:
    headers: dict[str, str] = {}
    for name in ("x-a", "x-b"):
        if draw(st.booleans()):
            headers[name] = draw(st.sampled_from([*VALUES, "123", "21"]))
    cookie = draw(st.sampled_from([None, "c=1", "d=0; c=1", "c=12", "d=0;c=2", "c=2; d=0"]))
    if cookie is not None:
        headers["cookie"] = cookie
    return Request(draw(st.sampled_from(PATHS)), draw(st.sampled_from(["GET", "POST"])), headers)


def _service(routes: list[dict[str, Any]], ingress: dict[str, Any] | None = None) -> MeshService:
    body: dict[str, Any] = {
        "name": "svc",
        "namespace": "shop",
        "serviceAccount": "svc",
        "ports": [{"name": "http", "port": 8080}],
        "traffic": {
            "versions": {"v1": {"version": "v1"}, "v2": {"version": "v2"}},
            "routes": routes,
        },
    }
    if ingress:
        body["ingress"] = ingress
    return MeshService.model_validate(body)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(route_tables(), st.lists(requests(), min_size=5, max_size=15))
def test_emitted_routes_select_what_the_declaration_says(table, probes):
    svc = _service(table)
    routes = svc.traffic.routes
    vs = virtual_service(svc, DEFAULTS)
    validate_crd(vs)
    validate_crd(destination_rule(svc, DEFAULTS))
    http = vs["spec"]["http"]
    shadowed = {j for j in range(len(routes)) if checks.shadowing(routes, j)}
    for r in probes:
        rule = select(http, r)
        j = declared_route(routes, r)
        assert j is not None and rule is not None, "the last route is the catch-all"
        assert rule["name"] == routes[j].name, r
        assert set(split(rule)) == {d.version for d in routes[j].destinations}
        assert j not in shadowed, f"a route the checks call shadowed was selected by {r}"


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    route_tables(),
    st.lists(requests(), min_size=5, max_size=15),
    st.sampled_from([["/"], ["/a"], ["/a/"], ["/b", "/a/b"]]),
)
def test_the_public_gateway_routes_exposed_paths_as_declared(table, probes, paths):
    svc = _service(table, {"paths": paths})
    graph = ServiceGraph((MeshNamespace(name="shop"),), (svc,))
    (vs,) = public_virtual_services(graph, ["www.example.com"], DEFAULTS)
    validate_crd(vs)
    assert vs["spec"]["gateways"] == ["istio-ingress/public"]
    for r in probes:
        rule = select(vs["spec"]["http"], r)
        exposed = any(
            r.path == p or r.path.startswith(p if p.endswith("/") else p + "/") for p in paths
        )
        if not exposed:
            assert rule is None, f"{r.path} is not under {paths}"
            continue
        j = declared_route(svc.traffic.routes, r)
        assert rule is not None and j is not None
        assert rule["name"].endswith(f"-{svc.traffic.routes[j].name}"), (r, rule["name"])
        assert {d["destination"]["port"]["number"] for d in rule["route"]} == {8080}
