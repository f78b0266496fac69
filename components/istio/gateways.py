"""Values of the `istio/gateway` chart (pinned with istiod) that every gateway shares, and the
egress gateway's own. The ingress gateway's Service is the way in's concern
(`components/edge/gateway.py`). The chart's values schema rejects unknown top-level keys; tests
check every key path we set. Pure: no Pulumi.
"""

from __future__ import annotations

from typing import Any

from components.base import mesh
from components.base.workload import Workload, spread
from components.cluster.pools import WORKLOAD_POOL_LABEL

EGRESS_PORTS: tuple[tuple[str, int, int], ...] = (
    ("status-port", mesh.STATUS_PORT, mesh.STATUS_PORT),
    ("http2", 80, 80),
    ("https", 443, 443),
)


def gateway_values(
    workload: Workload, selector: dict[str, str], revision_tag: str
) -> dict[str, Any]:
    """What both gateways share: the revision tag, the selector labels, HPA + budget, and
    placement on the workload pool, spread softly across nodes (a gateway scales under load
    and must not wait for the autoscaler to add a node)."""
    return {
        "revision": revision_tag,
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


def egress_gateway_values(workload: Workload, revision_tag: str) -> dict[str, Any]:
    """Egress gateway in `istio-egress`: in-cluster only (ClusterIP)."""
    return {
        **gateway_values(workload, mesh.EGRESS_SELECTOR, revision_tag),
        "service": {
            "type": "ClusterIP",
            "ports": [
                {"name": name, "port": port, "protocol": "TCP", "targetPort": target}
                for name, port, target in EGRESS_PORTS
            ],
        },
    }
