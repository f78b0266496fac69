"""The `cluster` config section: region, Kubernetes version, VPC, node pools, maintenance."""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

from pydantic import field_validator, model_validator

from components.model import Cidr, ConfigModel, Problem, between, private_cidr, region_slug

# Istio 1.30 refuses Kubernetes older than 1.32 (istioctl MinK8SVersion = 32).
MIN_KUBERNETES_MINOR = 32
_SIZE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)+$")
_HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")


def _size_slug(value: str) -> str:
    if not _SIZE.match(value):
        raise ValueError("must be a DigitalOcean droplet size slug such as 's-4vcpu-8gb'")
    return value


class SystemPool(ConfigModel):
    """Fixed-size pool, tainted for the mesh control plane (istiod, and nothing else)."""

    size: str
    node_count: int

    _size = field_validator("size")(_size_slug)

    _count = field_validator("node_count")(between(1, 10))


class WorkloadPool(ConfigModel):
    """Autoscaling pool for applications and gateways; the load balancer targets its tag."""

    size: str
    min_nodes: int
    max_nodes: int

    _size = field_validator("size")(_size_slug)

    _bounds = field_validator("min_nodes", "max_nodes")(
        between(1, 100, " (DOKS autoscaling needs at least 1 node)")
    )

    @model_validator(mode="after")
    def _ordered(self) -> WorkloadPool:
        if self.min_nodes > self.max_nodes:
            raise ValueError(
                f"minNodes ({self.min_nodes}) must not exceed maxNodes ({self.max_nodes})"
            )
        return self


class MaintenanceWindow(ConfigModel):
    """When DOKS may apply patch upgrades (UTC)."""

    day: Literal[
        "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "any"
    ]
    start_time: str

    @field_validator("start_time")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        if not _HHMM.match(v):
            raise ValueError("must be a UTC time 'HH:MM', e.g. '03:00'")
        return v


class ClusterConfig(ConfigModel):
    """The DOKS cluster, its VPC and node pools."""

    region: str
    kubernetes_version_prefix: str
    vpc_cidr: str
    ha: bool
    auto_upgrade: bool
    surge_upgrade: bool
    maintenance_window: MaintenanceWindow
    system_pool: SystemPool
    workload_pool: WorkloadPool
    control_plane_allow_list: tuple[Cidr, ...]
    protect: bool

    DEFAULTS: ClassVar[dict[str, dict[str, Any]]] = {
        "dev": {
            "kubernetesVersionPrefix": "1.34",
            "vpcCidr": "10.110.0.0/20",
            "ha": False,
            "autoUpgrade": True,
            "surgeUpgrade": True,
            "maintenanceWindow": {"day": "any", "startTime": "04:00"},
            "systemPool": {"size": "s-2vcpu-4gb", "nodeCount": 1},
            "workloadPool": {"size": "s-2vcpu-4gb", "minNodes": 1, "maxNodes": 3},
            "controlPlaneAllowList": [],
            "protect": False,
        },
        "staging": {
            "kubernetesVersionPrefix": "1.34",
            "vpcCidr": "10.120.0.0/20",
            "ha": True,
            "autoUpgrade": True,
            "surgeUpgrade": True,
            "maintenanceWindow": {"day": "saturday", "startTime": "04:00"},
            "systemPool": {"size": "s-2vcpu-4gb", "nodeCount": 2},
            "workloadPool": {"size": "s-4vcpu-8gb", "minNodes": 2, "maxNodes": 5},
            "controlPlaneAllowList": [],
            "protect": False,
        },
        "production": {
            "kubernetesVersionPrefix": "1.34",
            "vpcCidr": "10.130.0.0/20",
            "ha": True,
            "autoUpgrade": True,
            "surgeUpgrade": True,
            "maintenanceWindow": {"day": "sunday", "startTime": "03:00"},
            "systemPool": {"size": "s-4vcpu-8gb", "nodeCount": 3},
            "workloadPool": {"size": "s-4vcpu-8gb", "minNodes": 3, "maxNodes": 15},
            "controlPlaneAllowList": [],
            "protect": True,
        },
    }

    _region = field_validator("region")(region_slug)

    @field_validator("kubernetes_version_prefix")
    @classmethod
    def _version(cls, v: str) -> str:
        m = re.fullmatch(r"1\.(\d+)\.?", v)
        if not m or int(m.group(1)) < MIN_KUBERNETES_MINOR:
            raise ValueError(
                f"must be a Kubernetes minor version '1.N' with N >= {MIN_KUBERNETES_MINOR} "
                "(Istio 1.30 needs Kubernetes 1.32 or newer), e.g. '1.34'"
            )
        return f"1.{m.group(1)}."

    @field_validator("vpc_cidr")
    @classmethod
    def _vpc(cls, v: str) -> str:
        return private_cidr(v)


def cluster_problems(environment: str, cluster: ClusterConfig) -> list[Problem]:
    """What an environment demands of its cluster beyond well-formed values."""
    problems: list[Problem] = []
    if environment in ("staging", "production") and not cluster.ha:
        problems.append(
            Problem("cluster.ha", False, f"must be true in {environment} (HA control plane)")
        )
    if environment == "production" and cluster.system_pool.node_count < 3:
        problems.append(
            Problem(
                "cluster.systemPool.nodeCount",
                cluster.system_pool.node_count,
                "must be at least 3 in production, so the control plane survives losing a node",
            )
        )
    if environment == "production" and not cluster.protect:
        problems.append(
            Problem(
                "cluster.protect",
                False,
                "must be true in production (cluster and VPC are protected)",
            )
        )
    return problems
