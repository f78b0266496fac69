"""Static checks of every service's routes and resilience, before anything is registered
(each a `Problem` naming its key): every routed or mirrored version is declared; the last route
is the catch-all and no route is shadowed by an earlier one (Istio takes the first matching
route); weights are relative, non-negative and not all zero; retries fit in the timeout; a
mirror differs from the route's destinations; faults only where the tier allows them and never
relying on the timeout or retries Istio disables there. Canaries: `canary_checks.py`; public
hosts and paths: `exposure.py`.

`subsumes` (one match block matches every request another does) is also what the tests'
route-selection model is checked against. Pure: no Pulumi.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from components.base.model import MISSING, Problem
from components.graph.checks import ServiceGraph
from components.graph.model import MeshService
from components.traffic.matches import RouteMatch, StringMatch
from components.traffic.model import HttpRoute
from components.traffic.resilience import Resilience, overlay, retry_budget_problem, seed_mistakes

# --- shadowing --------------------------------------------------------------------------------


def _implies(narrow: StringMatch, wide: StringMatch) -> bool:
    """Every value `narrow` matches is matched by `wide`."""
    if wide.kind == "exact":
        return narrow.kind == "exact" and narrow.value == wide.value
    if wide.kind == "prefix":
        return narrow.kind in ("exact", "prefix") and narrow.value.startswith(wide.value)
    if narrow.kind == "exact":
        return re.fullmatch(wide.value, narrow.value) is not None
    return narrow.kind == "regex" and narrow.value == wide.value


def subsumes(wide: RouteMatch | None, narrow: RouteMatch | None) -> bool:
    """`wide` matches every request `narrow` matches (None: no condition, everything)."""
    if wide is None:
        return True
    if narrow is None:
        return False
    if wide.uri_prefix is not None and not (
        narrow.uri_prefix is not None and narrow.uri_prefix.startswith(wide.uri_prefix)
    ):
        return False
    if wide.method is not None and wide.method != narrow.method:
        return False
    if wide.cookie is not None and wide.cookie != narrow.cookie:
        return False
    return all(
        name in narrow.headers and _implies(narrow.headers[name], cond)
        for name, cond in wide.headers.items()
    )


def _blocks(route: HttpRoute) -> tuple[RouteMatch | None, ...]:
    return route.match or (None,)


def shadowing(routes: Sequence[HttpRoute], j: int) -> list[int]:
    """Earlier routes that together match every request route `j` matches (empty: route `j`
    is reachable). Each of its blocks must be covered by some earlier block."""
    covering: list[int] = []
    for block in _blocks(routes[j]):
        found = next(
            (k for k in range(j) for wide in _blocks(routes[k]) if subsumes(wide, block)), None
        )
        if found is None:
            return []
        covering.append(found)
    return sorted(set(covering))


# --- per service ------------------------------------------------------------------------------


def _route_override(route: HttpRoute) -> Resilience | None:
    stated = {k: v for k, v in (("timeout", route.timeout), ("retries", route.retries)) if v}
    return Resilience(**stated) if stated else None


def resolved(defaults: Resilience, svc: MeshService, route: HttpRoute | None = None) -> Resilience:
    """The resilience a route of `svc` gets: tier defaults, the service's, the route's."""
    own = svc.traffic.resilience if svc.traffic is not None else None
    out = overlay(overlay(defaults, own), _route_override(route) if route else None)
    assert out is not None
    return out


def shares(weights: Sequence[int]) -> list[float]:
    """Istio's weights are relative: a destination gets weight / sum of weights."""
    total = sum(weights)
    return [round(100 * w / total, 1) if total else 0.0 for w in weights]


def service_problems(
    graph: ServiceGraph, defaults: Resilience, faults_need_exception: bool, environment: str
) -> list[Problem]:
    problems: list[Problem] = []
    for i, svc in enumerate(graph.services):
        traffic = svc.traffic
        if traffic is None:
            continue
        key = f"services[{i}].traffic"
        problems += seed_mistakes(f"{key}.resilience", traffic.resilience)
        own = traffic.resilience
        if own is not None and own.model_fields_set & {"timeout", "retries"}:
            if budget := retry_budget_problem(f"{key}.resilience", resolved(defaults, svc)):
                problems.append(budget)
        if traffic.routes and not svc.speaks_http:
            problems.append(
                Problem(f"{key}.routes", "routes", "HTTP routes need an http, http2 or grpc port")
            )
        if traffic.canary is None:
            problems += _route_problems(svc, key, defaults, faults_need_exception, environment)
    return problems


def _route_problems(
    svc: MeshService,
    key: str,
    defaults: Resilience,
    faults_need_exception: bool,
    environment: str,
) -> list[Problem]:
    assert svc.traffic is not None
    traffic = svc.traffic
    routes = traffic.routes
    versions = ", ".join(traffic.versions) or "none declared"
    problems: list[Problem] = []

    def version_problem(where: str, version: str) -> None:
        if version not in traffic.versions:
            problems.append(
                Problem(
                    where, version, f"must be a version declared in {key}.versions ({versions})"
                )
            )

    names_seen: dict[str, int] = {}
    for j, route in enumerate(routes):
        rkey = f"{key}.routes[{j}]"
        if route.name is not None:
            if route.name in names_seen:
                problems.append(
                    Problem(
                        f"{rkey}.name",
                        route.name,
                        f"is already the name of {key}.routes[{names_seen[route.name]}]",
                    )
                )
            names_seen.setdefault(route.name, j)
        seen: set[str] = set()
        for k, dest in enumerate(route.destinations):
            version_problem(f"{rkey}.destinations[{k}].version", dest.version)
            if dest.version in seen:
                problems.append(
                    Problem(
                        f"{rkey}.destinations[{k}].version",
                        dest.version,
                        "is listed twice in this route; give it one destination with its weight",
                    )
                )
            seen.add(dest.version)
        problems += _weight_problems(rkey, route)
        if route.mirror is not None:
            version_problem(f"{rkey}.mirror.version", route.mirror.version)
            primary = [d.version for d in route.destinations if d.weight is None or d.weight > 0]
            if route.mirror.version in primary:
                problems.append(
                    Problem(
                        f"{rkey}.mirror.version",
                        route.mirror.version,
                        f"is already a destination of this route ({', '.join(primary)}): a "
                        "mirror must copy traffic to another version, else that version gets "
                        "the same requests twice",
                    )
                )
        if route.fault is not None:
            if faults_need_exception and not traffic.fault_exception:
                problems.append(
                    Problem(
                        f"{rkey}.fault",
                        route.fault.model_dump(by_alias=True, exclude_none=True),
                        f"fault injection is refused in {environment} unless "
                        f"{key}.faultException states why (a visible, reviewed exception)",
                    )
                )
            for field, value in (("timeout", route.timeout), ("retries", route.retries)):
                if value is not None:
                    problems.append(
                        Problem(
                            f"{rkey}.{field}",
                            value if isinstance(value, str) else value.model_dump(by_alias=True),
                            "Istio applies no timeout or retries on a route with a fault, so "
                            "this would never take effect: remove it, or put the fault on a "
                            "route of its own",
                        )
                    )
        elif route.timeout is not None or route.retries is not None:
            if budget := retry_budget_problem(rkey, resolved(defaults, svc, route)):
                problems.append(budget)
    problems += _order_problems(key, routes)
    return problems


def _weight_problems(rkey: str, route: HttpRoute) -> list[Problem]:
    dests = route.destinations
    if len(dests) == 1:
        return []
    problems = [
        Problem(
            f"{rkey}.destinations[{k}].weight",
            MISSING,
            "is required when a route has more than one destination (weights are relative: "
            "each destination gets weight / sum of the weights)",
        )
        for k, d in enumerate(dests)
        if d.weight is None
    ]
    problems += [
        Problem(f"{rkey}.destinations[{k}].weight", d.weight, "must not be negative")
        for k, d in enumerate(dests)
        if d.weight is not None and d.weight < 0
    ]
    weights = [d.weight for d in dests]
    if not problems and not any(weights):
        problems.append(
            Problem(
                f"{rkey}.destinations",
                [d.version for d in dests],
                "all weights are 0, so no destination gets a share (Istio refuses a route whose "
                "weights sum to 0); weights are relative: give each its share, e.g. 90 and 10",
            )
        )
    return problems


def _order_problems(key: str, routes: Sequence[HttpRoute]) -> list[Problem]:
    problems: list[Problem] = []
    for j in range(1, len(routes)):
        covering = shadowing(routes, j)
        if covering:
            catch_all = [k for k in covering if not routes[k].match]
            why = (
                f"{key}.routes[{catch_all[0]}] has no match (a catch-all) and takes every request"
                if catch_all
                else f"{', '.join(f'{key}.routes[{k}]' for k in covering)} already match every "
                "request it matches"
            )
            problems.append(
                Problem(
                    f"{key}.routes[{j}]",
                    routes[j].name or f"route {j}",
                    f"is never reached: {why} (Istio takes the first matching route; "
                    "order specific routes first)",
                )
            )
    if routes and routes[-1].match:
        last = len(routes) - 1
        problems.append(
            Problem(
                f"{key}.routes[{last}].match",
                [m.model_dump(by_alias=True, exclude_none=True) for m in routes[last].match],
                "the last route must be the catch-all (no `match`), so every request has a "
                "route: Istio answers 404 to a request no route matches",
            )
        )
    return problems
