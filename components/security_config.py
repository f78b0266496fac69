"""Configuration of the zero-trust layer: the declared service graph (top-level `services`) and
the `security` section (egress, ingress rate limit, mesh CA).

The service graph is the single statement of who may call whom; authorization policies, network
policies and other layers (SLOs, traffic management) are derived from or checked against it, so
its model is kept free of any Istio detail. Checks that need the whole stack (namespaces declared,
callers existing) live in `graph_problems`, called from `PlatformConfig._environment_rules`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from components.model import ConfigModel, Problem, between, dns_label, hostname

HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE")
HTTP_PROTOCOLS = ("http", "http2", "grpc")
_PATH = re.compile(r"^/[A-Za-z0-9._~!$&'()+,;=:@%/-]*$")


def _methods(values: tuple[str, ...]) -> tuple[str, ...]:
    for m in values:
        if m not in HTTP_METHODS:
            raise ValueError(f"unknown HTTP method {m!r}; allowed: {', '.join(HTTP_METHODS)}")
    return values


def _paths(values: tuple[str, ...]) -> tuple[str, ...]:
    for p in values:
        if not _PATH.match(p):
            raise ValueError(
                f"path prefix {p!r} must start with '/' and contain no wildcard, query or "
                "space, e.g. '/api/orders'"
            )
    return values


class ServicePort(ConfigModel):
    """A port the workload's container listens on (what its sidecar sees)."""

    name: str
    port: int
    protocol: Literal["http", "http2", "grpc", "tcp"] = "http"
    # Port-level plaintext for a client outside the mesh; production needs a stated reason.
    mtls: Literal["strict", "permissive"] = "strict"
    permissive_exception: str | None = None

    _name = field_validator("name")(dns_label)

    @field_validator("port")
    @classmethod
    def _port(cls, v: int) -> int:
        if not 1 <= v <= 65535 or 15000 <= v <= 15099:
            raise ValueError("must be 1-65535 and outside Istio's reserved 15000-15099")
        return v


class Caller(ConfigModel):
    """One declared edge of the graph: `service` may call this service with these methods on
    paths under these prefixes (both required for HTTP services, absent for TCP-only ones)."""

    service: str
    methods: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()

    _methods = field_validator("methods")(_methods)
    _paths = field_validator("paths")(_paths)


class IngressExposure(ConfigModel):
    """The service is reachable through the ingress gateway for these methods and paths."""

    paths: tuple[str, ...] = Field(min_length=1)
    methods: tuple[str, ...] = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

    _methods = field_validator("methods")(_methods)
    _paths = field_validator("paths")(_paths)


class MeshService(ConfigModel):
    """A workload in the mesh: its identity, its ports and who may call it."""

    name: str
    namespace: str
    service_account: str
    ports: tuple[ServicePort, ...] = Field(min_length=1)
    callers: tuple[Caller, ...] = ()
    ingress: IngressExposure | None = None
    # Pod labels the policies select; Istio's convention `app: <name>` unless stated.
    selector: dict[str, str] | None = None

    _name = field_validator("name", "namespace", "service_account")(dns_label)

    @property
    def workload_labels(self) -> dict[str, str]:
        return dict(self.selector) if self.selector else {"app": self.name}

    @property
    def speaks_http(self) -> bool:
        return any(p.protocol in HTTP_PROTOCOLS for p in self.ports)


class ExternalHost(ConfigModel):
    """An external host workloads in `namespaces` may reach; everything else is refused by
    REGISTRY_ONLY. With `egressGateway`, traffic must leave through the egress gateway."""

    host: str
    namespaces: tuple[str, ...] = Field(min_length=1)
    port: int = 443
    # passthrough: the app speaks TLS itself; originate: the app sends HTTP on port 80 and the
    # mesh opens TLS to `port` (so the egress gateway can see and log the request).
    tls: Literal["passthrough", "originate"] = "passthrough"
    egress_gateway: bool = False

    _host = field_validator("host")(hostname)

    @field_validator("port")
    @classmethod
    def _port(cls, v: int) -> int:
        if not 1 <= v <= 65535 or v == 80:
            raise ValueError("must be a TLS port 1-65535 other than 80, e.g. 443")
        return v


class RateLimit(ConfigModel):
    """Local (per gateway replica) token bucket on the ingress gateway."""

    enabled: bool
    requests_per_interval: int
    interval_seconds: int

    _positive = field_validator("requests_per_interval", "interval_seconds")(
        between(1, 1_000_000)
    )


class MeshCaConfig(ConfigModel):
    """The per-cluster intermediate CA istiod signs workload certificates with."""

    intermediate_validity_hours: int
    early_renewal_hours: int
    protect: bool
    # Extra roots appended to root-cert.pem while rotating the root (docs/security.md).
    additional_trusted_roots: tuple[str, ...] = ()

    @field_validator("additional_trusted_roots")
    @classmethod
    def _pem(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for cert in v:
            if not cert.strip().startswith("-----BEGIN CERTIFICATE-----"):
                raise ValueError("each entry must be a PEM certificate ('-----BEGIN CERTIFICATE')")
        return tuple(c.strip() + "\n" for c in v)

    _validity = field_validator("intermediate_validity_hours")(
        between(720, 87600, " hours (30 days to 10 years)")
    )


_CA = {"intermediateValidityHours": 8760, "earlyRenewalHours": 720}


class SecurityConfig(ConfigModel):
    """Egress control, ingress protection and the mesh CA (`service-mesh:security`)."""

    outbound_traffic_policy: Literal["REGISTRY_ONLY", "ALLOW_ANY"]
    external_hosts: tuple[ExternalHost, ...]
    ingress_rate_limit: RateLimit
    mesh_ca: MeshCaConfig

    DEFAULTS: ClassVar[dict[str, dict[str, Any]]] = {
        "dev": {
            "outboundTrafficPolicy": "REGISTRY_ONLY",
            "externalHosts": [],
            "ingressRateLimit": {"enabled": True, "requestsPerInterval": 50, "intervalSeconds": 1},
            "meshCa": {**_CA, "protect": False},
        },
        "staging": {
            "outboundTrafficPolicy": "REGISTRY_ONLY",
            "externalHosts": [],
            "ingressRateLimit": {"enabled": True, "requestsPerInterval": 200, "intervalSeconds": 1},
            "meshCa": {**_CA, "protect": False},
        },
        "production": {
            "outboundTrafficPolicy": "REGISTRY_ONLY",
            "externalHosts": [],
            "ingressRateLimit": {
                "enabled": True, "requestsPerInterval": 1000, "intervalSeconds": 1,
            },
            "meshCa": {**_CA, "protect": True},
        },
    }


def graph_problems(
    environment: str,
    namespaces: Iterable[str],
    services: Sequence[MeshService],
    security: SecurityConfig,
) -> list[Problem]:
    """Whole-stack checks of the graph and the security section, each naming its key path."""
    problems: list[Problem] = []
    declared_ns = set(namespaces)
    ns_hint = ", ".join(sorted(declared_ns)) or "none declared"
    by_name: dict[str, MeshService] = {}
    for i, svc in enumerate(services):
        key = f"services[{i}]"
        if svc.name in by_name:
            problems.append(Problem(f"{key}.name", svc.name, "is declared twice; must be unique"))
        by_name[svc.name] = svc
        if svc.namespace not in declared_ns:
            problems.append(Problem(f"{key}.namespace", svc.namespace,
                                    f"must be one of meshNamespaces ({ns_hint})"))
        for j, port in enumerate(svc.ports):
            if (port.mtls == "permissive" and environment == "production"
                    and not port.permissive_exception):
                problems.append(Problem(f"{key}.ports[{j}].mtls", "permissive",
                                        "is refused in production unless permissiveException "
                                        "states why; otherwise use 'strict'"))
        if svc.ingress is not None and not svc.speaks_http:
            problems.append(Problem(f"{key}.ingress", "exposed",
                                    "needs an http, http2 or grpc port to expose"))
    for i, svc in enumerate(services):
        for j, caller in enumerate(svc.callers):
            key = f"services[{i}].callers[{j}]"
            if caller.service not in by_name:
                problems.append(Problem(f"{key}.service", caller.service,
                                        f"must be a declared service ({', '.join(by_name)})"))
            elif caller.service == svc.name:
                problems.append(Problem(f"{key}.service", caller.service,
                                        "a service does not need to allow itself"))
            if svc.speaks_http and not (caller.methods and caller.paths):
                problems.append(Problem(key, caller.model_dump(by_alias=True),
                                        "an HTTP service's caller must list methods and paths"))
            if not svc.speaks_http and (caller.methods or caller.paths):
                problems.append(Problem(key, caller.model_dump(by_alias=True),
                                        "a TCP-only service's caller takes no methods or paths"))
    if security.outbound_traffic_policy == "ALLOW_ANY" and environment != "dev":
        problems.append(Problem("security.outboundTrafficPolicy", "ALLOW_ANY",
                                f"must be REGISTRY_ONLY in {environment}; ALLOW_ANY is dev-only"))
    ca = security.mesh_ca
    if not 0 <= ca.early_renewal_hours < ca.intermediate_validity_hours:
        problems.append(Problem("security.meshCa.earlyRenewalHours", ca.early_renewal_hours,
                                "must be at least 0 and less than intermediateValidityHours "
                                f"({ca.intermediate_validity_hours}), else every `pulumi up` "
                                "re-issues the intermediate"))
    if environment == "production" and not security.mesh_ca.protect:
        problems.append(Problem("security.meshCa.protect", False,
                                "must be true in production (the mesh CA is identity-bearing)"))
    seen_hosts: set[str] = set()
    for i, ext in enumerate(security.external_hosts):
        key = f"security.externalHosts[{i}]"
        if ext.host in seen_hosts:
            problems.append(Problem(f"{key}.host", ext.host, "is declared twice"))
        seen_hosts.add(ext.host)
        for j, ns in enumerate(ext.namespaces):
            if ns not in declared_ns:
                problems.append(Problem(f"{key}.namespaces[{j}]", ns,
                                        f"must be one of meshNamespaces ({ns_hint})"))
    return problems


def service_names(services: Sequence[MeshService]) -> frozenset[str]:
    """For other layers' "unknown service" checks."""
    return frozenset(s.name for s in services)


def unknown_service(key: str, name: str, services: Sequence[MeshService]) -> Problem | None:
    """The one message every layer gives for a reference to a service not in `services`
    (an SLO, a route exposing it, a traffic policy)."""
    if name in service_names(services):
        return None
    declared = ", ".join(s.name for s in services) or "none declared"
    return Problem(key, name, f"must be a service declared in `services` ({declared})")
