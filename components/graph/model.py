"""The declared service graph: mesh namespaces, services with their ports and callers, and the
external hosts workloads may reach. It is the domain model every layer reads (authorization,
network policies, egress, SLOs, traffic, policies), so it is kept free of any Istio detail.

Stack-file keys: top-level `meshNamespaces` and `services`, and `security.externalHosts`. The
checks that need the whole graph are in `checks.py`. Pure: no Pulumi.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from components.base.model import ConfigModel, dns_label, hostname
from components.traffic.model import Canary, ServiceTraffic

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
    """The service is reachable through the ingress gateway for these methods and paths, on
    `hosts` (some of `ingress.hosts`; all of them when none are listed)."""

    paths: tuple[str, ...] = Field(min_length=1)
    methods: tuple[str, ...] = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
    hosts: tuple[str, ...] = ()

    _methods = field_validator("methods")(_methods)
    _paths = field_validator("paths")(_paths)

    @field_validator("hosts")
    @classmethod
    def _hosts(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for host in v:
            hostname(host)
        if len(set(v)) != len(v):
            raise ValueError("lists a host twice; hosts must be unique")
        return v


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
    # Versions, routes, resilience overrides or a canary (components/traffic/model.py).
    traffic: ServiceTraffic | None = None

    _name = field_validator("name", "namespace", "service_account")(dns_label)

    @property
    def canary(self) -> Canary | None:
        """The service's Flagger canary, if it declares one."""
        return self.traffic.canary if self.traffic is not None else None

    @property
    def service_names(self) -> tuple[str, ...]:
        """The Kubernetes Services in front of this service's pods, each a name Istio may
        report its requests under: its own and, for a canary, Flagger's `<name>-primary` and
        `<name>-canary` (pkg/router/kubernetes_default.go). The canary's pods sit behind
        `<name>-canary` only; the primary's behind `<name>` and `<name>-primary`, reported as
        the older of the two (istio 1.30 pilot: `Proxy.SetServiceTargets` sorts by creation
        time, and the stats filter takes the inbound cluster's first service)."""
        if self.canary is None:
            return (self.name,)
        return self.name, f"{self.name}-primary", f"{self.name}-canary"

    @property
    def workload_labels(self) -> dict[str, str]:
        return dict(self.selector) if self.selector else {"app": self.name}

    @property
    def speaks_http(self) -> bool:
        return any(p.protocol in HTTP_PROTOCOLS for p in self.ports)

    @property
    def http_port(self) -> int:
        """The port the mesh routes the service's HTTP to (its first HTTP port): the public
        Gateway's routes, the canary's Services and its load test all use it."""
        return next(p.port for p in self.ports if p.protocol in HTTP_PROTOCOLS)


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


class MeshNamespace(ConfigModel):
    """An application namespace in the mesh: sidecars injected through the revision tag,
    seen by istiod's discoverySelectors, default-deny authorization and network policies."""

    name: str
    # Namespaces being migrated into the mesh may accept plaintext for a while.
    mtls: Literal["strict", "permissive"] = "strict"
    # Production only allows `permissive` with a stated reason, visible in the stack file.
    permissive_exception: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        dns_label(v)
        if v in RESERVED_NAMESPACES or v.startswith("kube-"):
            raise ValueError(
                f"is reserved for the platform; choose another name (reserved: "
                f"{', '.join(sorted(RESERVED_NAMESPACES))}, kube-*)"
            )
        return v


RESERVED_NAMESPACES = frozenset(
    {"default", "istio-system", "istio-ingress", "istio-egress", "monitoring", "cert-manager"}
)
