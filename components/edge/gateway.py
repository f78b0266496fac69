"""The ingress gateway as the way in sees it: its Service (NodePort on fixed node ports behind
the Pulumi-owned load balancer, PROXY protocol) and the public Istio Gateway that terminates TLS
for the exposed hosts. Pure: no Pulumi.

The Service is `NodePort`, never `LoadBalancer`: the DigitalOcean load balancer is owned by
Pulumi (`load_balancer.py`), and a Service of type LoadBalancer would make the cloud controller
create and own a second one. The gateway accepts PROXY protocol, matching the load balancer,
so client IPs survive: on its traffic ports through `gatewayTopology.proxyProtocol`, and on the
status port the load balancer health-checks through `ENVOY_STATUS_PORT_ENABLE_PROXY_PROTOCOL`.
DigitalOcean sends the PROXY header on health checks too, and `gatewayTopology` covers only
the gateway's listeners (istio 1.30.3 `pilot/pkg/networking/core/gateway.go`); without the
variable every node fails the health check and the load balancer answers 503. The chart
release itself is installed by the Istio layer, at the version of the control plane it runs on;
a gateway canary there reuses this Service and never gets one of its own.
"""

from __future__ import annotations

import json
from typing import Any

from components.base import manifests, mesh
from components.edge.config import IngressConfig
from components.edge.tls import INGRESS_TLS_SECRET
from components.istio.config import IstioConfig
from components.istio.gateways import gateway_values

# The ingress gateway Service's fixed node ports; the load balancer forwards 80/443 (TCP, PROXY
# protocol) to them and health-checks the status port.
HTTP_NODE_PORT = 30080  # -> gateway port 80
HTTPS_NODE_PORT = 30443  # -> gateway port 443
STATUS_NODE_PORT = 30021  # -> mesh.STATUS_PORT, /healthz/ready
NODE_PORTS = (HTTP_NODE_PORT, HTTPS_NODE_PORT, STATUS_NODE_PORT)
HEALTH_PATH = "/healthz/ready"

# Gateway Service ports: (name, service port, target port, node port).
INGRESS_PORTS: tuple[tuple[str, int, int, int], ...] = (
    ("status-port", mesh.STATUS_PORT, mesh.STATUS_PORT, STATUS_NODE_PORT),
    ("http2", 80, 80, HTTP_NODE_PORT),
    ("https", 443, 443, HTTPS_NODE_PORT),
)
# Tells DigitalOcean's cloud controller not to open the node ports of this NodePort Service to
# 0.0.0.0/0 in the cluster's public-access firewall (its default for NodePort Services): only
# our load balancer may reach them (`load_balancer.py`), so `ingress.sourceRanges` cannot be
# bypassed.
DO_FIREWALL_MANAGED = "kubernetes.digitalocean.com/firewall-managed"
# Pod annotation read by the injector: listeners expect a PROXY protocol header first.
PROXY_PROTOCOL_CONFIG = json.dumps({"gatewayTopology": {"proxyProtocol": {}}}, sort_keys=True)
# pilot-agent then adds a PROXY protocol listener filter to the status port's listener, which
# still takes requests without the header (the kubelet's probes): istio 1.30.3
# tools/packaging/common/envoy_bootstrap.json, `allow_requests_without_proxy_protocol`.
STATUS_PORT_PROXY_PROTOCOL = {"ENVOY_STATUS_PORT_ENABLE_PROXY_PROTOCOL": "true"}

# The public Istio Gateway (networking.istio.io/v1) VirtualServices bind to: "<ns>/<name>".
PUBLIC_GATEWAY_NAME = "public"
PUBLIC_GATEWAY = f"{mesh.INGRESS_NAMESPACE}/{PUBLIC_GATEWAY_NAME}"


def ingress_gateway_values(istio: IstioConfig) -> dict[str, Any]:
    """Ingress gateway in `istio-ingress`, selected by `istio: ingressgateway`, on the revision
    `istio.ingressGatewayRevision` selects (else the mesh tag). A canary beside it shares this
    Service (`components/istio/gateways.py`)."""
    shared = gateway_values(
        istio.ingress_gateway, mesh.INGRESS_SELECTOR, istio.ingress_revision, istio.restart_epoch
    )
    return {
        **shared,
        "podAnnotations": {
            **shared.get("podAnnotations", {}),
            "proxy.istio.io/config": PROXY_PROTOCOL_CONFIG,
        },
        "env": {**shared.get("env", {}), **STATUS_PORT_PROXY_PROTOCOL},
        "service": {
            "type": "NodePort",
            "annotations": {DO_FIREWALL_MANAGED: "false"},
            # Any node forwards to a ready gateway pod; PROXY protocol carries the client IP.
            "externalTrafficPolicy": "Cluster",
            "ports": [
                {
                    "name": name,
                    "port": port,
                    "protocol": "TCP",
                    "targetPort": target,
                    "nodePort": node_port,
                }
                for name, port, target, node_port in INGRESS_PORTS
            ],
        },
    }


def public_gateway(ingress: IngressConfig) -> dict[str, Any]:
    """The Istio Gateway serving the hosts: 80 redirects to HTTPS, 443 terminates TLS."""
    hosts = list(ingress.hosts)
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "Gateway",
        "metadata": {
            "name": PUBLIC_GATEWAY_NAME,
            "namespace": mesh.INGRESS_NAMESPACE,
            "labels": manifests.labels(PUBLIC_GATEWAY_NAME),
        },
        "spec": {
            "selector": dict(mesh.INGRESS_SELECTOR),
            "servers": [
                {
                    "port": {"number": 80, "name": "http", "protocol": "HTTP"},
                    "hosts": hosts,
                    "tls": {"httpsRedirect": True},
                },
                {
                    "port": {"number": 443, "name": "https", "protocol": "HTTPS"},
                    "hosts": hosts,
                    "tls": {
                        "mode": "SIMPLE",
                        "credentialName": INGRESS_TLS_SECRET,
                        "minProtocolVersion": ingress.min_tls_version,
                    },
                },
            ],
        },
    }
