"""VirtualServices and DestinationRules from the service graph (`networking.istio.io/v1`).

- One DestinationRule per service host, in the service's namespace (the client's proxy looks
  there after its own namespace; Istio keeps only the first DR's top-level traffic policy for a
  host, so there must be one): the resolved load balancer, connection pool and outlier
  detection, and a subset per declared version.
- One VirtualService per HTTP service host (gateways: mesh), in the service's namespace: the
  declared routes in order (the catch-all last), or a single route to the host; every route
  carries the resolved timeout and retries, except one with a fault (Istio disables them there).
- One VirtualService per public host, bound to the public Gateway, in the gateway's namespace:
  every exposed service's paths on that host, longest prefix first, each with the service's
  own routes (so a header-routed split also holds for requests from the internet).

A canaried service gets none of these: Flagger owns its host's routing (`canary.py`).
Pure: no Pulumi.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from components.base import manifests, mesh
from components.edge.gateway import PUBLIC_GATEWAY
from components.graph.checks import ServiceGraph
from components.graph.model import MeshService
from components.traffic import checks, names
from components.traffic.exposure import public_hosts
from components.traffic.matches import RouteMatch
from components.traffic.model import HttpRoute
from components.traffic.resilience import Resilience

NETWORKING_API = "networking.istio.io/v1"
COMPONENT = "traffic"
# On every VirtualService with a weighted route: each destination's share, as Istio computes
# it (weight / sum of the route's weights), so a review sees the split without arithmetic.
SHARES_ANNOTATION = "service-mesh/traffic-shares"


def _istio_object(kind: str, name: str, namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    return manifests.namespaced(kind, NETWORKING_API, name, namespace, spec, COMPONENT)


def destination_rule(svc: MeshService, defaults: Resilience) -> dict[str, Any]:
    spec: dict[str, Any] = {"host": names.host(svc)}
    if policy := checks.resolved(defaults, svc).traffic_policy(http=svc.speaks_http):
        spec["trafficPolicy"] = policy
    if svc.traffic is not None and svc.traffic.versions:
        spec["subsets"] = [
            {"name": name, "labels": dict(labels)}
            for name, labels in sorted(svc.traffic.versions.items())
        ]
    return _istio_object("DestinationRule", svc.name, svc.namespace, spec)


def _destination(svc: MeshService, version: str | None, port: int | None) -> dict[str, Any]:
    out: dict[str, Any] = {"host": names.host(svc)}
    if version is not None:
        out["subset"] = version
    if port is not None:
        out["port"] = {"number": port}
    return out


def _routes(svc: MeshService) -> tuple[HttpRoute, ...] | None:
    return svc.traffic.routes if svc.traffic is not None and svc.traffic.routes else None


# Methods a mirror may copy: the mirrored version serves the copy for real (its side effects
# happen, only its response is dropped), so a copied POST would be a second order, payment or
# write. A route with a mirror becomes two rules: these methods mirrored, then the rest not.
MIRRORED_METHODS = ("GET", "HEAD", "OPTIONS")
_MIRRORED = {"regex": "|".join(MIRRORED_METHODS)}


def _mirrored_matches(matches: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """`matches` narrowed to the methods a mirror may copy (a block that names another method
    is dropped)."""
    out = []
    for m in matches or [{}]:
        method = m.get("method")
        if method is None:
            out.append({**m, "method": dict(_MIRRORED)})
        elif method.get("exact") in MIRRORED_METHODS:
            out.append(m)
    return out


def http_route(
    svc: MeshService,
    route: HttpRoute | None,
    defaults: Resilience,
    matches: list[dict[str, Any]] | None,
    port: int | None = None,
    name: str | None = None,
) -> list[dict[str, Any]]:
    """The `http` rules to `svc` for `route` (None: the whole service), `matches` already in
    Istio's form (None: no match, the catch-all): one rule, or for a route with a mirror the
    mirrored safe methods first and then the same route unmirrored (the first match wins)."""
    rule = _http_rule(svc, route, defaults, matches, port, name)
    if route is None or route.mirror is None:
        return [rule]
    unmirrored = {k: v for k, v in rule.items() if k not in ("mirror", "mirrorPercentage")}
    safe = _mirrored_matches(matches)
    if not safe:
        return [unmirrored]
    return [{**rule, "name": f"{rule['name']}-mirrored", "match": safe}, unmirrored]


def _http_rule(
    svc: MeshService,
    route: HttpRoute | None,
    defaults: Resilience,
    matches: list[dict[str, Any]] | None,
    port: int | None,
    name: str | None,
) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name or (route.name if route and route.name else "default")}
    if matches:
        out["match"] = matches
    if route is None:
        out["route"] = [{"destination": _destination(svc, None, port)}]
    else:
        weighted = len(route.destinations) > 1
        out["route"] = [
            {
                "destination": _destination(svc, d.version, port),
                **({"weight": d.weight} if weighted else {}),
            }
            for d in route.destinations
        ]
    if route is not None and route.fault is not None:
        out["fault"] = route.fault.istio()
    else:
        out.update(checks.resolved(defaults, svc, route).route_policy())
    if route is not None and route.mirror is not None:
        out["mirror"] = _destination(svc, route.mirror.version, port)
        out["mirrorPercentage"] = {"value": route.mirror.percentage}
    return out


def _shares(routes: Sequence[HttpRoute]) -> str | None:
    parts = {}
    for j, r in enumerate(routes):
        if len(r.destinations) > 1:
            weights = [d.weight or 0 for d in r.destinations]
            split = checks.shares(weights)
            parts[r.name or f"route-{j}"] = {
                d.version: f"{s:g}%" for d, s in zip(r.destinations, split, strict=True)
            }
    return json.dumps(parts, sort_keys=True) if parts else None


def _with_shares(obj: dict[str, Any], routes: Sequence[HttpRoute]) -> dict[str, Any]:
    if (shares := _shares(routes)) is not None:
        obj["metadata"]["annotations"] = {SHARES_ANNOTATION: shares}
    return obj


def virtual_service(svc: MeshService, defaults: Resilience) -> dict[str, Any]:
    """The service's in-mesh VirtualService (gateways: mesh)."""
    routes = _routes(svc)
    http = (
        [
            rule
            for r in routes
            for rule in http_route(svc, r, defaults, [m.istio() for m in r.match])
        ]
        if routes
        else http_route(svc, None, defaults, None)
    )
    spec = {"hosts": [names.host(svc)], "http": http}
    return _with_shares(
        _istio_object("VirtualService", svc.name, svc.namespace, spec), routes or ()
    )


# --- the public Gateway -------------------------------------------------------------------


def path_matches(path: str) -> list[dict[str, str]]:
    """An ingress path prefix as `uri` conditions with the authorization's meaning: '/api'
    is '/api' and '/api/...', never '/apix'; '/' or a prefix ending in '/' is a plain prefix."""
    if path.endswith("/"):
        return [{"prefix": path}]
    return [{"exact": path}, {"prefix": path + "/"}]


def _within(uri: dict[str, str], route_prefix: str | None) -> dict[str, str] | None:
    """The intersection of a path condition with a route's own uriPrefix (None if empty)."""
    if route_prefix is None:
        return uri
    if "exact" in uri:
        return uri if uri["exact"].startswith(route_prefix) else None
    prefix = uri["prefix"]
    if route_prefix.startswith(prefix):
        return {"prefix": route_prefix}
    if prefix.startswith(route_prefix):
        return uri
    return None


def _public_matches(path: str, blocks: Sequence[RouteMatch]) -> list[dict[str, Any]]:
    """Each of the route's match blocks (or none) under each of the path's conditions."""
    out: list[dict[str, Any]] = []
    for uri in path_matches(path):
        if not blocks:
            out.append({"uri": uri})
            continue
        for block in blocks:
            if (narrowed := _within(uri, block.uri_prefix)) is not None:
                out.append(block.istio(uri=narrowed))
    return out


def public_virtual_services(
    graph: ServiceGraph, gateway_hosts: Sequence[str], defaults: Resilience
) -> list[dict[str, Any]]:
    """One VirtualService per public host with a statically routed service on it."""
    entries: dict[str, list[tuple[str, MeshService]]] = {}
    for svc in graph.services:
        if svc.ingress is None or svc.canary is not None:
            continue
        for h in public_hosts(svc, gateway_hosts):
            entries[h] = entries.get(h, []) + [(p, svc) for p in svc.ingress.paths]
    out = []
    for h in gateway_hosts:
        if h not in entries:
            continue
        # Longest prefix first: the first matching rule wins, so '/api' must precede '/'.
        ordered = sorted(entries[h], key=lambda e: (-len(e[0]), e[0]))
        http: list[dict[str, Any]] = []
        all_routes: list[HttpRoute] = []
        for path, svc in ordered:
            port = svc.http_port
            base = f"{svc.name}-{manifests.slug(path.strip('/')) or 'root'}"
            routes = _routes(svc)
            if not routes:
                matches = [{"uri": uri} for uri in path_matches(path)]
                http += http_route(svc, None, defaults, matches, port, base)
                continue
            all_routes += routes
            for j, r in enumerate(routes):
                matches = _public_matches(path, r.match)
                if r.match and not matches:
                    continue  # the route's own prefix lies outside this path
                http += http_route(svc, r, defaults, matches, port, f"{base}-{r.name or j}")
        spec = {"hosts": [h], "gateways": [PUBLIC_GATEWAY], "exportTo": ["."], "http": http}
        obj = _istio_object(
            "VirtualService", f"public-{manifests.slug(h)}", mesh.INGRESS_NAMESPACE, spec
        )
        out.append(_with_shares(obj, all_routes))
    return out


def routing_objects(
    graph: ServiceGraph, gateway_hosts: Sequence[str], defaults: Resilience
) -> list[dict[str, Any]]:
    """DR per statically routed service, VS per such HTTP service, the public VSs."""
    out: list[dict[str, Any]] = []
    for svc in graph.services:
        if svc.canary is not None:
            continue
        out.append(destination_rule(svc, defaults))
        if svc.speaks_http:
            out.append(virtual_service(svc, defaults))
    return out + public_virtual_services(graph, gateway_hosts, defaults)
