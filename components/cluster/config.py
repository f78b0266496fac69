"""The `cluster` config section: region, Kubernetes version, VPC, node pools, maintenance, with
per-tier profiles and the checks the tier demands. Pure: no Pulumi."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import field_validator, model_validator

from components.base.model import Cidr, ConfigModel, Problem, between, private_cidr, region_slug
from components.base.profiles import Profile

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


@dataclass(frozen=True)
class ClusterRules:
    """What a tier demands of its cluster beyond well-formed values."""

    ha: bool  # HA control plane
    min_system_nodes: int  # the mesh control plane survives losing a node
    protect: bool  # cluster, VPC and workload tag protected


def _defaults(
    vpc_cidr: str, ha: bool, window: dict[str, str], system: dict, workload: dict, **rest: Any
) -> dict[str, Any]:
    return {
        "kubernetesVersionPrefix": "1.34",
        "vpcCidr": vpc_cidr,
        "ha": ha,
        "autoUpgrade": True,
        "surgeUpgrade": True,
        "maintenanceWindow": window,
        "systemPool": system,
        "workloadPool": workload,
        "controlPlaneAllowList": [],
        **rest,
    }


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
    # The DigitalOcean project's environment the cluster, load balancer and domain are listed in.
    project_environment: Literal["Development", "Staging", "Production"]
    protect: bool

    PROFILES: ClassVar[dict[str, Profile[ClusterRules]]] = {
        "dev": Profile(
            _defaults(
                "10.110.0.0/20",
                ha=False,
                window={"day": "any", "startTime": "04:00"},
                system={"size": "s-2vcpu-4gb", "nodeCount": 1},
                workload={"size": "s-2vcpu-4gb", "minNodes": 1, "maxNodes": 3},
                projectEnvironment="Development",
                protect=False,
            ),
            ClusterRules(ha=False, min_system_nodes=1, protect=False),
        ),
        "staging": Profile(
            _defaults(
                "10.120.0.0/20",
                ha=True,
                window={"day": "saturday", "startTime": "04:00"},
                system={"size": "s-2vcpu-4gb", "nodeCount": 2},
                workload={"size": "s-4vcpu-8gb", "minNodes": 2, "maxNodes": 5},
                projectEnvironment="Staging",
                protect=False,
            ),
            ClusterRules(ha=True, min_system_nodes=1, protect=False),
        ),
        "production": Profile(
            _defaults(
                "10.130.0.0/20",
                ha=True,
                window={"day": "sunday", "startTime": "03:00"},
                system={"size": "s-4vcpu-8gb", "nodeCount": 3},
                workload={"size": "s-4vcpu-8gb", "minNodes": 3, "maxNodes": 15},
                projectEnvironment="Production",
                protect=True,
            ),
            ClusterRules(ha=True, min_system_nodes=3, protect=True),
        ),
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
    if rules.protect and not cluster.protect:
        problems.append(
            Problem(
                "cluster.protect",
                False,
                f"must be true in {environment} (cluster and VPC are protected)",
            )
        )
    return problems
