"""Egress control. With `outboundTrafficPolicy: REGISTRY_ONLY` a sidecar only reaches hosts in
its registry, so each allowed external host becomes a `ServiceEntry` in each namespace that may
use it, exported to that namespace only. A host marked `egressGateway` is also routed through the
egress gateway (Gateway + VirtualService + DestinationRule, after Istio's egress-gateway tasks),
so that it leaves the cluster from one audited place whose NetworkPolicy can be tight.
"""

from __future__ import annotations

from typing import Any

from components import mesh
from components.authorization import istio_object
from components.security_config import ExternalHost

NETWORKING_API = "networking.istio.io/v1"
GATEWAY_HOST = f"{mesh.EGRESS_GATEWAY}.{mesh.EGRESS_NAMESPACE}.svc.cluster.local"
HTTP_PORT = 80  # apps send plain HTTP here when the mesh originates TLS


def slug(host: str) -> str:
    return host.replace(".", "-")


def _entry_ports(ext: ExternalHost) -> list[dict[str, Any]]:
    if ext.tls == "originate":
        return [
            {"number": HTTP_PORT, "name": "http", "protocol": "HTTP"},
            {"number": ext.port, "name": "https", "protocol": "HTTPS"},
        ]
    return [{"number": ext.port, "name": "tls", "protocol": "TLS"}]


def service_entry(ext: ExternalHost, namespace: str) -> dict[str, Any]:
    """The host in `namespace`'s registry only (exportTo '.')."""
    spec = {
        "hosts": [ext.host],
        "exportTo": ["."],
        "location": "MESH_EXTERNAL",
        "resolution": "DNS",
        "ports": _entry_ports(ext),
    }
    return istio_object("ServiceEntry", NETWORKING_API, f"external-{slug(ext.host)}", namespace,
                        spec, "egress")


def _origination_rule(ext: ExternalHost, namespace: str, export_to: list[str]) -> dict[str, Any]:
    """TLS towards the external host, opened by the sidecar or the egress gateway."""
    spec = {
        "host": ext.host,
        "exportTo": export_to,
        "trafficPolicy": {"portLevelSettings": [
            {"port": {"number": ext.port}, "tls": {"mode": "SIMPLE", "sni": ext.host}},
        ]},
    }
    return istio_object("DestinationRule", NETWORKING_API, f"originate-{slug(ext.host)}",
                        namespace, spec, "egress")


def sidecar_origination(ext: ExternalHost, namespace: str) -> list[dict[str, Any]]:
    """Without the gateway: the sidecar sends the app's port-80 request to `port` over TLS."""
    route = {
        "hosts": [ext.host],
        "exportTo": ["."],
        "http": [{
            "match": [{"port": HTTP_PORT}],
            "route": [{"destination": {"host": ext.host, "port": {"number": ext.port}}}],
        }],
    }
    return [
        istio_object("VirtualService", NETWORKING_API, f"originate-{slug(ext.host)}", namespace,
                     route, "egress"),
        _origination_rule(ext, namespace, ["."]),
    ]


def gateway_objects(ext: ExternalHost) -> list[dict[str, Any]]:
    """Gateway, VirtualService and DestinationRule(s) in the egress gateway namespace routing
    `ext` from the allowed namespaces' sidecars through the egress gateway."""
    name = f"egress-{slug(ext.host)}"
    ns = mesh.EGRESS_NAMESPACE
    export_to = [".", *ext.namespaces]
    originate = ext.tls == "originate"
    gw_port = HTTP_PORT if originate else ext.port
    server: dict[str, Any] = {"hosts": [ext.host]}
    if originate:
        # Sidecar -> gateway stays mutual TLS; the gateway opens TLS to the host.
        server["port"] = {"number": gw_port, "name": "https-origination", "protocol": "HTTPS"}
        server["tls"] = {"mode": "ISTIO_MUTUAL"}
    else:
        server["port"] = {"number": gw_port, "name": "tls", "protocol": "TLS"}
        server["tls"] = {"mode": "PASSTHROUGH"}
    gateway = istio_object("Gateway", NETWORKING_API, name, ns,
                           {"selector": dict(mesh.EGRESS_SELECTOR), "servers": [server]}, "egress")

    to_gateway = {"host": GATEWAY_HOST, "subset": slug(ext.host), "port": {"number": gw_port}}
    to_host = {"host": ext.host, "port": {"number": ext.port}}
    gateway_ref = f"{ns}/{name}"
    if originate:
        routes_key = "http"
        from_mesh: dict[str, Any] = {"gateways": ["mesh"], "port": HTTP_PORT}
        from_gateway: dict[str, Any] = {"gateways": [gateway_ref], "port": gw_port}
    else:
        routes_key = "tls"
        from_mesh = {"gateways": ["mesh"], "port": ext.port, "sniHosts": [ext.host]}
        from_gateway = {"gateways": [gateway_ref], "port": gw_port, "sniHosts": [ext.host]}
    virtual_service = istio_object("VirtualService", NETWORKING_API, name, ns, {
        "hosts": [ext.host],
        "gateways": ["mesh", gateway_ref],
        "exportTo": export_to,
        routes_key: [
            {"match": [from_mesh], "route": [{"destination": to_gateway}]},
            {"match": [from_gateway], "route": [{"destination": to_host}]},
        ],
    }, "egress")

    subset: dict[str, Any] = {"name": slug(ext.host)}
    if originate:
        subset["trafficPolicy"] = {"portLevelSettings": [
            {"port": {"number": gw_port}, "tls": {"mode": "ISTIO_MUTUAL", "sni": ext.host}},
        ]}
    to_gateway_rule = istio_object("DestinationRule", NETWORKING_API, name, ns, {
        "host": GATEWAY_HOST, "exportTo": export_to, "subsets": [subset],
    }, "egress")
    out = [gateway, virtual_service, to_gateway_rule]
    if originate:
        out.append(_origination_rule(ext, ns, ["."]))
    return out


def egress_objects(ext: ExternalHost) -> list[dict[str, Any]]:
    """Everything one external host needs, in the namespaces it concerns."""
    out = [service_entry(ext, ns) for ns in ext.namespaces]
    if ext.egress_gateway:
        # The gateway resolves the host from its own registry.
        out.append(service_entry(ext, mesh.EGRESS_NAMESPACE))
        out += gateway_objects(ext)
    elif ext.tls == "originate":
        for ns in ext.namespaces:
            out += sidecar_origination(ext, ns)
    return out
