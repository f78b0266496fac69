"""Egress control. With `outboundTrafficPolicy: REGISTRY_ONLY` a sidecar only reaches hosts in
its registry, so each allowed external host becomes a `ServiceEntry` in each namespace that may
use it, exported to that namespace only. A host marked `egressGateway` is also routed through the
egress gateway (Gateway + VirtualService + DestinationRule, after Istio's egress-gateway tasks),
so that it leaves the cluster from one audited place.

Sidecar -> egress gateway is always Istio mutual TLS (also for TLS passthrough: the app's TLS
rides inside it and the gateway forwards it as TCP), so the gateway knows each caller's identity
and its ALLOW policy (`gateway_policy`) forwards a host only for the namespaces declared for it.
Where the mesh originates TLS it verifies the external server's certificate against the OS
roots (Istio's default) and its name (`subjectAltNames`): an explicit `sni` turns Istio's
automatic SAN check off, so the name is stated.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from components.base import mesh
from components.base.manifests import namespaced as istio_object
from components.base.manifests import slug
from components.graph.model import ExternalHost
from components.security.authorization import SECURITY_API

NETWORKING_API = "networking.istio.io/v1"
GATEWAY_HOST = f"{mesh.EGRESS_GATEWAY}.{mesh.EGRESS_NAMESPACE}.svc.cluster.local"
HTTP_PORT = 80  # apps send plain HTTP here when the mesh originates TLS
# Egress gateway Service ports sidecars use: 80 carries HTTP to originate, 443 the app's TLS.
# Each equals its target port (istio/gateways.EGRESS_PORTS; a test holds them together), so it is
# also the port the gateway's authorization sees.
GATEWAY_HTTP_PORT = 80
GATEWAY_TLS_PORT = 443
GATEWAY_POLICY = "allow-declared-hosts"


def gateway_port(ext: ExternalHost) -> int:
    return GATEWAY_HTTP_PORT if ext.tls == "originate" else GATEWAY_TLS_PORT


def _entry_ports(ext: ExternalHost, namespace: str) -> list[dict[str, Any]]:
    http = {"number": HTTP_PORT, "name": "http", "protocol": "HTTP"}
    if ext.tls == "originate":
        if ext.egress_gateway and namespace != mesh.EGRESS_NAMESPACE:
            # Callers only ever send plain HTTP to the gateway. With the TLS port in their
            # registry too, a TLS connection to it would match no route of ours and leave the
            # sidecar straight for the host (istio 1.30 `networking/core/tls.go`), past the
            # gateway and its policy, wherever a NetworkPolicy opens that port to the internet.
            return [http]
        return [http, {"number": ext.port, "name": "https", "protocol": "HTTPS"}]
    return [{"number": ext.port, "name": "tls", "protocol": "TLS"}]


def service_entry(ext: ExternalHost, namespace: str) -> dict[str, Any]:
    """The host in `namespace`'s registry only (exportTo '.')."""
    spec = {
        "hosts": [ext.host],
        "exportTo": ["."],
        "location": "MESH_EXTERNAL",
        "resolution": "DNS",
        "ports": _entry_ports(ext, namespace),
    }
    return istio_object(
        "ServiceEntry", NETWORKING_API, f"external-{slug(ext.host)}", namespace, spec, "egress"
    )


def _origination_rule(ext: ExternalHost, namespace: str) -> dict[str, Any]:
    """TLS towards the external host, opened by the sidecar or the egress gateway, verifying
    the server's chain (OS roots) and its name."""
    tls = {"mode": "SIMPLE", "sni": ext.host, "subjectAltNames": [ext.host]}
    spec = {
        "host": ext.host,
        "exportTo": ["."],
        "trafficPolicy": {"portLevelSettings": [{"port": {"number": ext.port}, "tls": tls}]},
    }
    return istio_object(
        "DestinationRule", NETWORKING_API, f"originate-{slug(ext.host)}", namespace, spec, "egress"
    )


def sidecar_origination(ext: ExternalHost, namespace: str) -> list[dict[str, Any]]:
    """Without the gateway: the sidecar sends the app's port-80 request to `port` over TLS."""
    route = {
        "hosts": [ext.host],
        "exportTo": ["."],
        "http": [
            {
                "match": [{"port": HTTP_PORT}],
                "route": [{"destination": {"host": ext.host, "port": {"number": ext.port}}}],
            }
        ],
    }
    return [
        istio_object(
            "VirtualService",
            NETWORKING_API,
            f"originate-{slug(ext.host)}",
            namespace,
            route,
            "egress",
        ),
        _origination_rule(ext, namespace),
    ]


def _routes(ext: ExternalHost, gateway_ref: str) -> dict[str, Any]:
    """VirtualService routes: sidecars -> gateway subset, gateway -> the external host."""
    gw_port = gateway_port(ext)
    to_gateway = {"host": GATEWAY_HOST, "subset": slug(ext.host), "port": {"number": gw_port}}
    to_host = {"host": ext.host, "port": {"number": ext.port}}
    if ext.tls == "originate":
        return {
            "http": [
                {
                    "match": [{"gateways": ["mesh"], "port": HTTP_PORT}],
                    "route": [{"destination": to_gateway}],
                },
                {
                    "match": [{"gateways": [gateway_ref], "port": gw_port}],
                    "route": [{"destination": to_host}],
                },
            ]
        }
    # The app's TLS is matched on its SNI at the sidecar; the gateway terminates only the
    # Istio mTLS around it and forwards the inner bytes as TCP.
    return {
        "tls": [
            {
                "match": [{"gateways": ["mesh"], "port": ext.port, "sniHosts": [ext.host]}],
                "route": [{"destination": to_gateway}],
            }
        ],
        "tcp": [
            {
                "match": [{"gateways": [gateway_ref], "port": gw_port}],
                "route": [{"destination": to_host}],
            }
        ],
    }


def gateway_callers(hosts: Iterable[ExternalHost]) -> tuple[str, ...]:
    """Every namespace that reaches some host through the egress gateway, sorted."""
    return tuple(sorted({ns for ext in hosts if ext.egress_gateway for ns in ext.namespaces}))


def gateway_objects(ext: ExternalHost, callers: Sequence[str]) -> list[dict[str, Any]]:
    """Gateway, VirtualService and DestinationRule(s) in the egress gateway namespace routing
    `ext` from the allowed namespaces' sidecars through the egress gateway. `callers`: every
    namespace of every host routed through the gateway (`gateway_callers`)."""
    name = f"egress-{slug(ext.host)}"
    ns = mesh.EGRESS_NAMESPACE
    export_to = [".", *ext.namespaces]
    gw_port = gateway_port(ext)
    protocol = "HTTPS" if ext.tls == "originate" else "TLS"
    server = {
        "hosts": [ext.host],
        "port": {
            "number": gw_port,
            "name": f"{protocol.lower()}-{slug(ext.host)}",
            "protocol": protocol,
        },
        "tls": {"mode": "ISTIO_MUTUAL"},
    }
    gateway = istio_object(
        "Gateway",
        NETWORKING_API,
        name,
        ns,
        {"selector": dict(mesh.EGRESS_SELECTOR), "servers": [server]},
        "egress",
    )
    virtual_service = istio_object(
        "VirtualService",
        NETWORKING_API,
        name,
        ns,
        {
            "hosts": [ext.host],
            "gateways": ["mesh", f"{ns}/{name}"],
            "exportTo": export_to,
            **_routes(ext, f"{ns}/{name}"),
        },
        "egress",
    )
    # Sidecars reach the gateway with mTLS whose SNI names the host (what the Gateway server
    # and `gateway_policy` match on).
    subset = {
        "name": slug(ext.host),
        "trafficPolicy": {
            "portLevelSettings": [
                {"port": {"number": gw_port}, "tls": {"mode": "ISTIO_MUTUAL", "sni": ext.host}},
            ]
        },
    }
    # Every host's rule for the gateway host is exported to the same namespaces: Istio merges
    # rules of one host only when their exportTo sets are equal (1.30 `model/destination_rule.go`
    # mergeDestinationRule); else a namespace sees one of them, and the other hosts' subsets
    # are missing there (503). Which host a namespace may reach stays the gateway policy's call.
    to_gateway_rule = istio_object(
        "DestinationRule",
        NETWORKING_API,
        name,
        ns,
        {
            "host": GATEWAY_HOST,
            "exportTo": [".", *callers],
            "subsets": [subset],
        },
        "egress",
    )
    out = [gateway, virtual_service, to_gateway_rule]
    if ext.tls == "originate":
        out.append(_origination_rule(ext, ns))
    return out


def gateway_rule(ext: ExternalHost) -> dict[str, Any]:
    """Callers from the declared namespaces (mTLS identity), to this host (the SNI of their
    mTLS connection; for HTTP also the Host header), on the gateway port it is served on."""
    operation: dict[str, Any] = {"ports": [str(gateway_port(ext))]}
    if ext.tls == "originate":
        operation["hosts"] = [ext.host, f"{ext.host}:{HTTP_PORT}"]
    return {
        "from": [{"source": {"namespaces": list(ext.namespaces)}}],
        "to": [{"operation": operation}],
        "when": [{"key": "connection.sni", "values": [ext.host]}],
    }


def gateway_policies(hosts: Iterable[ExternalHost]) -> list[dict[str, Any]]:
    """Default-deny on the egress gateway, then one ALLOW rule per host routed through it: a
    namespace not declared for a host cannot use the gateway to reach it."""
    out = [
        istio_object(
            "AuthorizationPolicy",
            SECURITY_API,
            "allow-nothing",
            mesh.EGRESS_NAMESPACE,
            {},
            "authorization",
        )
    ]
    rules = [gateway_rule(ext) for ext in hosts if ext.egress_gateway]
    if rules:
        spec = {
            "selector": {"matchLabels": dict(mesh.EGRESS_SELECTOR)},
            "action": "ALLOW",
            "rules": rules,
        }
        out.append(
            istio_object(
                "AuthorizationPolicy",
                SECURITY_API,
                GATEWAY_POLICY,
                mesh.EGRESS_NAMESPACE,
                spec,
                "authorization",
            )
        )
    return out


def egress_objects(ext: ExternalHost, gateway_callers: Sequence[str]) -> list[dict[str, Any]]:
    """Everything one external host needs, in the namespaces it concerns. `gateway_callers`:
    as for `gateway_objects`."""
    out = [service_entry(ext, ns) for ns in ext.namespaces]
    if ext.egress_gateway:
        # The gateway resolves the host from its own registry.
        out.append(service_entry(ext, mesh.EGRESS_NAMESPACE))
        out += gateway_objects(ext, gateway_callers)
    elif ext.tls == "originate":
        for ns in ext.namespaces:
            out += sidecar_origination(ext, ns)
    return out
