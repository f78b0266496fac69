"""The service graph as one indexed value (`ServiceGraph`), the checks that need all of it, and
the one message every layer gives for a reference to an undeclared service.

Indexes are built once per graph, so a check or a builder that looks a service up per caller,
per objective or per namespace stays linear in the size of the mesh. Pure: no Pulumi.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from components.base.model import Problem
from components.base.profiles import Profile
from components.graph.model import ExternalHost, MeshNamespace, MeshService


@dataclass(frozen=True)
class GraphRules:
    """What a tier demands of the graph: whether plaintext (PERMISSIVE mTLS, for a namespace or a
    port) needs a stated reason."""

    permissive_needs_reason: bool


PROFILES: dict[str, Profile[GraphRules]] = {
    "dev": Profile(defaults={}, rules=GraphRules(permissive_needs_reason=False)),
    "staging": Profile(defaults={}, rules=GraphRules(permissive_needs_reason=False)),
    "production": Profile(defaults={}, rules=GraphRules(permissive_needs_reason=True)),
}


@dataclass(frozen=True)
class ServiceGraph:
    """Mesh namespaces, services and external hosts of one stack, with lookups built once."""

    namespaces: tuple[MeshNamespace, ...] = ()
    services: tuple[MeshService, ...] = ()
    external_hosts: tuple[ExternalHost, ...] = ()

    @cached_property
    def namespace_names(self) -> tuple[str, ...]:
        return tuple(ns.name for ns in self.namespaces)

    @cached_property
    def permissive_namespaces(self) -> frozenset[str]:
        return frozenset(ns.name for ns in self.namespaces if ns.mtls == "permissive")

    @cached_property
    def by_name(self) -> dict[str, MeshService]:
        """Service name -> service (the first declaration wins; duplicates are refused)."""
        out: dict[str, MeshService] = {}
        for svc in self.services:
            out.setdefault(svc.name, svc)
        return out

    @cached_property
    def services_in(self) -> dict[str, tuple[MeshService, ...]]:
        """Namespace -> the services declared in it, in declaration order."""
        out: dict[str, list[MeshService]] = {}
        for svc in self.services:
            out.setdefault(svc.namespace, []).append(svc)
        return {ns: tuple(found) for ns, found in out.items()}

    def unknown_service(self, key: str, name: str) -> Problem | None:
        """The one message every layer gives for a reference to a service not declared in
        `services` (an SLO, a route exposing it, a traffic policy)."""
        if name in self.by_name:
            return None
        declared = ", ".join(s.name for s in self.services) or "none declared"
        return Problem(key, name, f"must be a service declared in `services` ({declared})")


def graph_problems(graph: ServiceGraph, rules: GraphRules, environment: str) -> list[Problem]:
    """Whole-graph checks, each naming its key path: unique names, services and external hosts
    in declared namespaces, unique ports per service, one service per identity, callers that
    exist, plaintext only with a reason where the tier demands one. `environment` is only named
    in messages."""
    problems = _namespace_problems(graph, rules, environment)
    declared_ns = set(graph.namespace_names)
    ns_hint = ", ".join(sorted(declared_ns)) or "none declared"
    seen: set[str] = set()
    for i, svc in enumerate(graph.services):
        key = f"services[{i}]"
        if svc.name in seen:
            problems.append(Problem(f"{key}.name", svc.name, "is declared twice; must be unique"))
        seen.add(svc.name)
        if svc.namespace not in declared_ns:
            problems.append(
                Problem(
                    f"{key}.namespace", svc.namespace, f"must be one of meshNamespaces ({ns_hint})"
                )
            )
        for j, port in enumerate(svc.ports):
            if (
                port.mtls == "permissive"
                and rules.permissive_needs_reason
                and not port.permissive_exception
            ):
                problems.append(
                    Problem(
                        f"{key}.ports[{j}].mtls",
                        "permissive",
                        f"is refused in {environment} unless permissiveException states why; "
                        "otherwise use 'strict'",
                    )
                )
        if svc.ingress is not None and not svc.speaks_http:
            problems.append(
                Problem(f"{key}.ingress", "exposed", "needs an http, http2 or grpc port to expose")
            )
    problems += _port_problems(graph)
    problems += _identity_problems(graph)
    problems += _caller_problems(graph)
    seen_hosts: set[str] = set()
    for i, ext in enumerate(graph.external_hosts):
        key = f"security.externalHosts[{i}]"
        if ext.host in seen_hosts:
            problems.append(Problem(f"{key}.host", ext.host, "is declared twice"))
        seen_hosts.add(ext.host)
        for j, ns in enumerate(ext.namespaces):
            if ns not in declared_ns:
                problems.append(
                    Problem(
                        f"{key}.namespaces[{j}]", ns, f"must be one of meshNamespaces ({ns_hint})"
                    )
                )
    return problems


def _namespace_problems(graph: ServiceGraph, rules: GraphRules, environment: str) -> list[Problem]:
    problems: list[Problem] = []
    seen: set[str] = set()
    for i, ns in enumerate(graph.namespaces):
        key = f"meshNamespaces[{i}]"
        if ns.name in seen:
            problems.append(
                Problem(f"{key}.name", ns.name, "is declared twice; names must be unique")
            )
        seen.add(ns.name)
        if (
            ns.mtls == "permissive"
            and rules.permissive_needs_reason
            and not ns.permissive_exception
        ):
            problems.append(
                Problem(
                    f"{key}.mtls",
                    "permissive",
                    f"is refused in {environment} unless permissiveException states why "
                    "(a visible, reviewed exception); otherwise use 'strict'",
                )
            )
    return problems


def _port_problems(graph: ServiceGraph) -> list[Problem]:
    """A port number or name declared twice in one service: Kubernetes refuses the Service, and
    policies keyed by port would say two things about one port."""
    problems: list[Problem] = []
    for i, svc in enumerate(graph.services):
        numbers: dict[int, int] = {}
        names: dict[str, int] = {}
        for j, port in enumerate(svc.ports):
            key = f"services[{i}].ports[{j}]"
            if port.port in numbers:
                problems.append(
                    Problem(
                        f"{key}.port",
                        port.port,
                        f"is already declared by services[{i}].ports[{numbers[port.port]}] of "
                        f"{svc.name!r}; each port number must appear once per service",
                    )
                )
            if port.name in names:
                problems.append(
                    Problem(
                        f"{key}.name",
                        port.name,
                        f"is already declared by services[{i}].ports[{names[port.name]}] of "
                        f"{svc.name!r}; each port name must appear once per service",
                    )
                )
            numbers.setdefault(port.port, j)
            names.setdefault(port.name, j)
    return problems


def _identity_problems(graph: ServiceGraph) -> list[Problem]:
    """Two services with one service account in one namespace share one mTLS identity: a
    policy allowing one allows the other, so identity-based authorization cannot tell them
    apart."""
    problems: list[Problem] = []
    owner: dict[tuple[str, str], MeshService] = {}
    for i, svc in enumerate(graph.services):
        identity = (svc.namespace, svc.service_account)
        first = owner.setdefault(identity, svc)
        if first is not svc:
            problems.append(
                Problem(
                    f"services[{i}].serviceAccount",
                    svc.service_account,
                    f"is already the service account of {first.name!r} in namespace "
                    f"{svc.namespace!r}: two services on one identity cannot be told apart by "
                    "authorization policy; give each service its own service account",
                )
            )
    return problems


def _caller_problems(graph: ServiceGraph) -> list[Problem]:
    problems: list[Problem] = []
    declared = ", ".join(graph.by_name)
    for i, svc in enumerate(graph.services):
        for j, caller in enumerate(svc.callers):
            key = f"services[{i}].callers[{j}]"
            if caller.service not in graph.by_name:
                problems.append(
                    Problem(
                        f"{key}.service", caller.service, f"must be a declared service ({declared})"
                    )
                )
            elif caller.service == svc.name:
                problems.append(
                    Problem(
                        f"{key}.service", caller.service, "a service does not need to allow itself"
                    )
                )
            if svc.speaks_http and not (caller.methods and caller.paths):
                problems.append(
                    Problem(
                        key,
                        caller.model_dump(by_alias=True),
                        "an HTTP service's caller must list methods and paths",
                    )
                )
            if not svc.speaks_http and (caller.methods or caller.paths):
                problems.append(
                    Problem(
                        key,
                        caller.model_dump(by_alias=True),
                        "a TCP-only service's caller takes no methods or paths",
                    )
                )
    return problems
