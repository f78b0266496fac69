"""Pure builders of the cluster layer: the node pools' arguments, the cluster's settings, and
the labels and taint that tell the system pool from the workload pool (istiod's values, the
gateways' and Loki's placement read the same constants, so they cannot drift apart).
No Pulumi import."""

from __future__ import annotations

from typing import Any

from components.cluster.config import ClusterConfig

# Label and taint that reserve the system pool for the mesh control plane. istiod's values use
# the same constants for its nodeSelector and toleration, so they cannot drift apart.
SYSTEM_POOL_LABEL = {"service-mesh/pool": "system"}
SYSTEM_POOL_TAINT = {"key": "service-mesh/system", "value": "true", "effect": "NoSchedule"}
WORKLOAD_POOL_LABEL = {"service-mesh/pool": "workload"}


def system_pool_toleration() -> dict[str, str]:
    """What a pod needs to run on the system pool (with its nodeSelector)."""
    return {
        "key": SYSTEM_POOL_TAINT["key"],
        "operator": "Equal",
        "value": SYSTEM_POOL_TAINT["value"],
        "effect": SYSTEM_POOL_TAINT["effect"],
    }


def vpc_name(name: str, cluster: ClusterConfig) -> str:
    """Unique per region and address range, the VPC's two replace-forcing inputs: DigitalOcean
    refuses a second VPC of one name, and a replacement is created before the old VPC is
    deleted, so under a fixed name a region move or a new range would fail half-way (the new
    range must not overlap the old one either: the review refuses that). A rename alone is an
    in-place update."""
    cidr = cluster.vpc_cidr.replace(".", "-").replace("/", "-")
    return f"{name}-{cluster.region}-{cidr}"


def workload_tag(name: str) -> str:
    """Droplet tag on every workload node: the load balancer targets nodes by it, so it must
    be stable across cluster rebuilds (derived from the stack name only)."""
    return f"{name}-workload"


def system_node_pool_args(name: str, cfg: ClusterConfig) -> dict[str, Any]:
    """The cluster's default pool: fixed size, labelled and tainted for the control plane."""
    return {
        "name": f"{name}-system",
        "size": cfg.system_pool.size,
        "node_count": cfg.system_pool.node_count,
        "auto_scale": False,
        "labels": dict(SYSTEM_POOL_LABEL),
        "taints": [dict(SYSTEM_POOL_TAINT)],
        "tags": [f"{name}-system"],
    }


def workload_node_pool_args(name: str, cfg: ClusterConfig) -> dict[str, Any]:
    return {
        "name": f"{name}-workload",
        "size": cfg.workload_pool.size,
        "auto_scale": True,
        "min_nodes": cfg.workload_pool.min_nodes,
        "max_nodes": cfg.workload_pool.max_nodes,
        # No node_count: the autoscaler owns the size. The provider sends a stated count with
        # every update of the pool (terraform-provider-digitalocean v2.99.1,
        # resource_kubernetes_node_pool.go), even one `ignore_changes` keeps, so a change of
        # labels or maxNodes would reset the pool to it. Created at minNodes.
        "labels": dict(WORKLOAD_POOL_LABEL),
        "tags": [workload_tag(name)],
    }


def cluster_args(name: str, cfg: ClusterConfig) -> dict[str, Any]:
    """Cluster settings that do not depend on other resources."""
    args: dict[str, Any] = {
        "name": name,
        "region": cfg.region,
        "ha": cfg.ha,
        "auto_upgrade": cfg.auto_upgrade,
        "surge_upgrade": cfg.surge_upgrade,
        "maintenance_policy": {
            "day": cfg.maintenance_window.day,
            "start_time": cfg.maintenance_window.start_time,
        },
        # Load balancers and volumes outlive the cluster: the LB is owned by Pulumi, and
        # volumes hold data a rebuild must keep.
        "destroy_all_associated_resources": False,
        "tags": [name],
    }
    if cfg.control_plane_allow_list:
        args["control_plane_firewall"] = {
            "enabled": True,
            "allowed_addresses": list(cfg.control_plane_allow_list),
        }
    elif cfg.public_control_plane is not None:
        # Stated as public: turned off explicitly. Left out, the provider would keep the
        # firewall it last read (the block is optional and computed), so emptying the list
        # alone never reopened the API. Otherwise left out: the API's default (no firewall).
        args["control_plane_firewall"] = {"enabled": False, "allowed_addresses": []}
    return args
