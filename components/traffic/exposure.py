"""The public hosts and paths exposed services claim: a host must be one of the public Gateway's
(`ingress.hosts`), a host and path go to one service, and a canaried service's host goes to it
alone (Flagger's VirtualService takes the whole host). Pure: no Pulumi.
"""

from __future__ import annotations

from collections.abc import Sequence

from components.base.model import Problem
from components.graph.checks import ServiceGraph
from components.graph.model import MeshService


def public_hosts(svc: MeshService, gateway_hosts: Sequence[str]) -> tuple[str, ...]:
    """The public hosts an exposed service is routed on: its own list, else the Gateway's."""
    assert svc.ingress is not None
    return svc.ingress.hosts or tuple(gateway_hosts)


def _claim(path: str) -> str:
    return path if path == "/" else path.rstrip("/")


def exposure_problems(graph: ServiceGraph, gateway_hosts: Sequence[str]) -> list[Problem]:
    """Hosts must be the Gateway's, and a host and path go to one service; a canaried
    service's host goes to it alone (Flagger's VirtualService takes the whole host)."""
    problems: list[Problem] = []
    allowed = ", ".join(gateway_hosts) or "none set"
    claims: dict[tuple[str, str], int] = {}
    whole: dict[str, int] = {}
    for i, svc in enumerate(graph.services):
        if svc.ingress is None:
            continue
        for j, h in enumerate(svc.ingress.hosts):
            if h not in gateway_hosts:
                problems.append(
                    Problem(
                        f"services[{i}].ingress.hosts[{j}]",
                        h,
                        f"must be one of the public Gateway's hosts, ingress.hosts ({allowed})",
                    )
                )
        for h in public_hosts(svc, gateway_hosts):
            if svc.canary is not None:
                whole.setdefault(h, i)
            for j, path in enumerate(svc.ingress.paths):
                first = claims.setdefault((h, _claim(path)), i)
                if first != i:
                    other = graph.services[first].name
                    problems.append(
                        Problem(
                            f"services[{i}].ingress.paths[{j}]",
                            path,
                            f"on host {h} is already routed to {other!r} (services[{first}]): "
                            "a host and path go to one service",
                        )
                    )
    for (h, _), i in sorted(claims.items()):
        owner = whole.get(h)
        if owner is not None and owner != i:
            problems.append(
                Problem(
                    f"services[{i}].ingress",
                    graph.services[i].name,
                    f"is exposed on {h}, which is routed by Flagger's VirtualService of the "
                    f"canaried service {graph.services[owner].name!r} (it takes the whole host)",
                )
            )
    return sorted(set(problems), key=lambda p: p.key) if problems else problems
