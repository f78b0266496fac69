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
from components.istio_config import Workload

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
# Pod annotation read by the injector: listeners expect a PROXY protocol header first.
PROXY_PROTOCOL_CONFIG = json.dumps({"gatewayTopology": {"proxyProtocol": {}}}, sort_keys=True)


def _scaling(workload: Workload) -> dict[str, Any]:
    """Gateway chart: the HPA (when max > min) owns replicas; a PDB renders only above one."""
    return {
        "replicaCount": workload.min_replicas,
        "autoscaling": {
            "enabled": workload.autoscaled,
            "minReplicas": workload.min_replicas,
            "maxReplicas": workload.max_replicas,
            "targetCPUUtilizationPercentage": 80,
        },
        "podDisruptionBudget": workload.pdb.helm(),
        "resources": workload.resources.helm(),
    }


def _spread(selector: dict[str, str]) -> list[dict[str, Any]]:
    # Soft: gateways scale under load and must not wait for the autoscaler to add a node.
    return [
        {
            "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "ScheduleAnyway",
            "nodeTaintsPolicy": "Honor",
            "labelSelector": {"matchLabels": dict(selector)},
            "matchLabelKeys": ["pod-template-hash"],
        }
    ]


def ingress_gateway_values(cfg: PlatformConfig) -> dict[str, Any]:
    """Ingress gateway in `istio-ingress`, selected by `istio: ingressgateway`."""
    return {
        "revision": cfg.istio.revision_tag,
        "labels": dict(mesh.INGRESS_SELECTOR),
        **_scaling(cfg.istio.ingress_gateway),
        "nodeSelector": dict(WORKLOAD_POOL_LABEL),
        "topologySpreadConstraints": _spread(mesh.INGRESS_SELECTOR),
        "podAnnotations": {"proxy.istio.io/config": PROXY_PROTOCOL_CONFIG},
        "service": {
            "type": "NodePort",
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
        "revision": cfg.istio.revision_tag,
        "labels": dict(mesh.EGRESS_SELECTOR),
        **_scaling(cfg.istio.egress_gateway),
        "nodeSelector": dict(WORKLOAD_POOL_LABEL),
        "topologySpreadConstraints": _spread(mesh.EGRESS_SELECTOR),
        "service": {
            "type": "ClusterIP",
            "ports": [
                {"name": name, "port": port, "protocol": "TCP", "targetPort": target}
                for name, port, target in EGRESS_PORTS
            ],
        },
    }
