"""Values of the `istio/gateway` chart (pinned with the control plane each gateway runs on) that
every gateway shares, the egress gateway's own, and an ingress gateway canary derived from the
primary's. The ingress gateway's Service is the way in's concern (`components/edge/gateway.py`).
The chart's values schema rejects unknown top-level keys; tests check every key path we set.
Pure: no Pulumi.

A gateway's `revision` sets its pods' `istio.io/rev` label, so changing it rolls the gateway in
place onto that control plane (the gateway namespace's own label follows it:
`IstioConfig.rev_labels`).
"""

from __future__ import annotations

from typing import Any

from components.base import mesh
from components.base.workload import Workload, spread
from components.cluster.pools import WORKLOAD_POOL_LABEL
from components.istio.config import IstioConfig
from components.istio.revisions import GatewayCanary
from components.istio.values import EVICT_UNHEALTHY, restart_annotations

EGRESS_PORTS: tuple[tuple[str, int, int], ...] = (
    ("status-port", mesh.STATUS_PORT, mesh.STATUS_PORT),
    ("http2", 80, 80),
    ("https", 443, 443),
)
# The ingress gateway canary's release and Deployment name.
INGRESS_CANARY = f"{mesh.INGRESS_GATEWAY}-canary"


def gateway_values(
    workload: Workload, selector: dict[str, str], revision: str, restart_epoch: int = 0
) -> dict[str, Any]:
    """What both gateways share: the revision (or tag) its pods select, the selector labels,
    HPA + budget, the restart annotation, and placement on the workload pool, spread softly
    across nodes (a gateway scales under load and must not wait for the autoscaler to add a
    node)."""
    restart = restart_annotations(restart_epoch)
    return {
        "revision": revision,
        "labels": dict(selector),
        "replicaCount": workload.min_replicas,  # used only while autoscaling is off
        "autoscaling": {
            "enabled": workload.autoscaled,
            "minReplicas": workload.min_replicas,
            "maxReplicas": workload.max_replicas,
            "targetCPUUtilizationPercentage": 80,
        },
        # The chart renders the budget only above one replica (at the minimum).
        "podDisruptionBudget": {**workload.pdb.helm(), **EVICT_UNHEALTHY},
        "resources": workload.resources.helm(),
        "nodeSelector": dict(WORKLOAD_POOL_LABEL),
        "topologySpreadConstraints": spread(selector, hard=False),
        **({"podAnnotations": restart} if restart else {}),
    }


def egress_gateway_values(istio: IstioConfig) -> dict[str, Any]:
    """Egress gateway in `istio-egress`: in-cluster only (ClusterIP)."""
    return {
        **gateway_values(
            istio.egress_gateway, mesh.EGRESS_SELECTOR, istio.egress_revision, istio.restart_epoch
        ),
        "service": {
            "type": "ClusterIP",
            "ports": [
                {"name": name, "port": port, "protocol": "TCP", "targetPort": target}
                for name, port, target in EGRESS_PORTS
            ],
        },
    }


def ingress_canary_values(primary: dict[str, Any], canary: GatewayCanary) -> dict[str, Any]:
    """A canary beside the primary ingress gateway (istio.io `additional-setup/gateway`,
    canary upgrade): the primary's values (PROXY protocol, placement, resources) on another
    revision, with the primary's `app` and `istio` labels so the primary Service (selector
    `app` + `istio`, chart `_helpers.tpl`) sends it a share of the traffic, and nothing of
    its own that would collide with the primary: no Service (`service.type: None`, else a
    second load balancer), no HPA, no budget (two over the same pods block every eviction),
    and the primary's ServiceAccount and RBAC (its identity is what authorization allows)."""
    labels = {"app": mesh.INGRESS_GATEWAY, **primary["labels"]}
    return {
        **primary,
        "revision": canary.revision,
        "labels": labels,
        "replicaCount": canary.replicas,
        "autoscaling": {"enabled": False},
        "podDisruptionBudget": {},
        "service": {"type": canary.service_type},
        "serviceAccount": {"create": False, "name": mesh.INGRESS_GATEWAY},
        "rbac": {"enabled": False},
    }
