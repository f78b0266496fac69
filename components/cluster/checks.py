"""What a tier demands of its cluster (`cluster_problems`, called from the stack's
composition so that each refusal names its full key path): HA, node floors, the API allow-list,
a Kubernetes version DigitalOcean offers, metrics-server replicas, protection. Pure: no Pulumi."""

from __future__ import annotations

from components.base.model import Problem
from components.cluster.config import ClusterConfig, ClusterRules


def cluster_problems(
    cluster: ClusterConfig, rules: ClusterRules, environment: str
) -> list[Problem]:
    """What the tier demands of its cluster; `environment` is only named in messages."""
    problems: list[Problem] = []
    if rules.ha and not cluster.ha:
        problems.append(
            Problem("cluster.ha", False, f"must be true in {environment} (HA control plane)")
        )
    if cluster.system_pool.node_count < rules.min_system_nodes:
        problems.append(
            Problem(
                "cluster.systemPool.nodeCount",
                cluster.system_pool.node_count,
                f"must be at least {rules.min_system_nodes} in {environment}, so the control "
                "plane survives losing a node",
            )
        )
    problems += _allow_list_problems(cluster, rules, environment)
    problems += _version_problems(cluster)
    if cluster.metrics_server_replicas < rules.min_metrics_server_replicas:
        problems.append(
            Problem(
                "cluster.metricsServerReplicas",
                cluster.metrics_server_replicas,
                f"must be at least {rules.min_metrics_server_replicas} in {environment}: while "
                "metrics-server is down no HPA scales",
            )
        )
    if rules.protect and not cluster.protect:
        problems.append(
            Problem(
                "cluster.protect",
                False,
                f"must be true in {environment} (cluster and VPC are protected)",
            )
        )
    return problems


def _allow_list_problems(
    cluster: ClusterConfig, rules: ClusterRules, environment: str
) -> list[Problem]:
    """An empty allow-list leaves the Kubernetes API open to the internet: where the tier
    requires an allow-list that is refused unless `publicControlPlane` says why; a waiver beside
    an allow-list would be stale anywhere."""
    waiver = cluster.public_control_plane
    if rules.control_plane_allow_list and not cluster.control_plane_allow_list and waiver is None:
        return [
            Problem(
                "cluster.controlPlaneAllowList",
                [],
                f"must list the CIDRs that may reach the Kubernetes API in {environment} (empty "
                "leaves it open to the internet), e.g. ['198.51.100.0/24']; or acknowledge an "
                "open API with cluster.publicControlPlane: {reason: '...'}",
            )
        ]
    if cluster.control_plane_allow_list and waiver is not None:
        return [
            Problem(
                "cluster.publicControlPlane",
                waiver.model_dump(by_alias=True),
                "must be removed while cluster.controlPlaneAllowList is set (the API is not "
                "public, so the acknowledgement would be stale)",
            )
        ]
    return []


def _version_problems(cluster: ClusterConfig) -> list[Problem]:
    """A pinned version is a deliberate move: it must be of the configured minor, and DOKS must
    not patch the cluster past it (autoUpgrade), or the next `up` would try to go back down —
    which DigitalOcean can only do by replacing the cluster."""
    pin = cluster.kubernetes_version
    if pin is None:
        return []
    problems: list[Problem] = []
    if not pin.startswith(cluster.kubernetes_version_prefix):
        problems.append(
            Problem(
                "cluster.kubernetesVersion",
                pin,
                f"must be a {cluster.kubernetes_version_prefix.rstrip('.')} version, the minor "
                "of cluster.kubernetesVersionPrefix (move both together)",
            )
        )
    if cluster.auto_upgrade:
        problems.append(
            Problem(
                "cluster.kubernetesVersion",
                pin,
                "needs cluster.autoUpgrade false while pinned: DOKS would patch past the pin and "
                "the next `up` would try to downgrade, which replaces the cluster; unpin (and "
                "turn autoUpgrade back on) once the upgrade is done",
            )
        )
    return problems
