"""What DOKS does not ship but the platform needs in every cluster: metrics-server, the source
of the `metrics.k8s.io` API that every HorizontalPodAutoscaler reads (istiod's, the gateways').
Without it DOKS' HPAs never scale and stay at their minimum (DigitalOcean's HPA how-to installs
it first). Pure builders: no Pulumi.

Official chart (`pins.METRICS_SERVER`), on the tainted system pool beside istiod — it is part of
the control path, sized small — spread across nodes, with a budget that always allows one
eviction when it runs more than one replica. The chart's own arguments are kept (kubelet
addresses InternalIP first, the kubelet's status port, 15 s resolution).
"""

from __future__ import annotations

from typing import Any

from components.base.workload import spread
from components.cluster.config import ClusterConfig
from components.cluster.pools import SYSTEM_POOL_LABEL, system_pool_toleration

METRICS_SERVER_RELEASE = "metrics-server"  # fullname = release name (it contains the chart's)
METRICS_SERVER_NAMESPACE = "kube-system"  # where the aggregated API's Service is expected


def metrics_server_pod_labels() -> dict[str, str]:
    """The chart's selector labels (templates/_helpers.tpl `metrics-server.selectorLabels`)."""
    return {
        "app.kubernetes.io/name": "metrics-server",
        "app.kubernetes.io/instance": METRICS_SERVER_RELEASE,
    }


def metrics_server_values(cluster: ClusterConfig) -> dict[str, Any]:
    replicas = cluster.metrics_server_replicas
    values: dict[str, Any] = {
        "replicas": replicas,
        "nodeSelector": dict(SYSTEM_POOL_LABEL),
        "tolerations": [system_pool_toleration()],
        "topologySpreadConstraints": spread(metrics_server_pod_labels(), hard=False),
        "resources": {"requests": {"cpu": "100m", "memory": "200Mi"}},
    }
    if replicas > 1:
        values["podDisruptionBudget"] = {"enabled": True, "maxUnavailable": 1}
    return values
