"""Values of the ingress and egress gateway charts (`istio/gateway`, pinned with istiod).

The ingress gateway Service is `NodePort` with fixed node ports (`mesh.INGRESS_*_NODE_PORT`):
the DigitalOcean load balancer is owned by Pulumi (`ingress.py`), not by the cloud controller,
so no Service of type LoadBalancer may exist to create a second one. The gateway accepts PROXY
protocol (`gatewayTopology.proxyProtocol`), matching the load balancer, so client IPs survive.
The chart's values schema rejects unknown top-level keys; tests check every key path we set.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from components import mesh
from components.cluster import WORKLOAD_POOL_LABEL
from components.workload import Workload, spread

if TYPE_CHECKING:
    from components.config import PlatformConfig

# Gateway Service ports: (name, service port, target port, node port).
INGRESS_PORTS: tuple[tuple[str, int, int, int], ...] = (
    ("status-port", mesh.STATUS_PORT, mesh.STATUS_PORT, mesh.INGRESS_STATUS_NODE_PORT),
    ("http2", 80, 80, mesh.INGRESS_HTTP_NODE_PORT),
    ("https", 443, 443, mesh.INGRESS_HTTPS_NODE_PORT),
)
EGRESS_PORTS: tuple[tuple[str, int, int], ...] = (
    ("status-port", mesh.STATUS_PORT, mesh.STATUS_PORT),
    ("http2", 80, 80),
    ("https", 443, 443),
)
# Tells DigitalOcean's cloud controller not to open the node ports of this NodePort Service to
# 0.0.0.0/0 in the cluster's public-access firewall (its default for NodePort Services): only
# our load balancer may reach them (ingress.py), so `ingress.sourceRanges` cannot be bypassed.
DO_FIREWALL_MANAGED = "kubernetes.digitalocean.com/firewall-managed"
# Pod annotation read by the injector: listeners expect a PROXY protocol header first.
PROXY_PROTOCOL_CONFIG = json.dumps({"gatewayTopology": {"proxyProtocol": {}}}, sort_keys=True)


def _gateway(workload: Workload, selector: dict[str, str], cfg: PlatformConfig) -> dict[str, Any]:
    """What both gateways share: the revision tag, the selector labels, HPA + budget, and
    placement on the workload pool, spread softly across nodes (a gateway scales under load
    and must not wait for the autoscaler to add a node)."""
    return {
        "revision": cfg.istio.revision_tag,
        "labels": dict(selector),
        "replicaCount": workload.min_replicas,  # used only while autoscaling is off
        "autoscaling": {
            "enabled": workload.autoscaled,
            "minReplicas": workload.min_replicas,
            "maxReplicas": workload.max_replicas,
            "targetCPUUtilizationPercentage": 80,
        },
        # The chart renders the budget only above one replica (at the minimum).
        "podDisruptionBudget": workload.pdb.helm(),
        "resources": workload.resources.helm(),
        "nodeSelector": dict(WORKLOAD_POOL_LABEL),
        "topologySpreadConstraints": spread(selector, hard=False),
    }


def ingress_gateway_values(cfg: PlatformConfig) -> dict[str, Any]:
    """Ingress gateway in `istio-ingress`, selected by `istio: ingressgateway`."""
    return {
        **_gateway(cfg.istio.ingress_gateway, mesh.INGRESS_SELECTOR, cfg),
        "podAnnotations": {"proxy.istio.io/config": PROXY_PROTOCOL_CONFIG},
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


def egress_gateway_values(cfg: PlatformConfig) -> dict[str, Any]:
    """Egress gateway in `istio-egress`: in-cluster only (ClusterIP)."""
    return {
        **_gateway(cfg.istio.egress_gateway, mesh.EGRESS_SELECTOR, cfg),
        "service": {
            "type": "ClusterIP",
            "ports": [
                {"name": name, "port": port, "protocol": "TCP", "targetPort": target}
                for name, port, target in EGRESS_PORTS
            ],
        },
    }
