"""The `cluster` config section: region, Kubernetes version, VPC, node pools, maintenance, with
per-tier profiles; the checks the tier demands are in `checks.py`. Pure: no Pulumi."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import field_validator, model_validator

from components.base.model import Cidr, ConfigModel, between, private_cidr
from components.base.profiles import Profile
from components.cluster.catalog import (
    DOKS_KUBERNETES_MINORS,
    DOKS_REGIONS,
    DROPLET_SIZES,
    SIZE_FAMILIES,
    suggestion,
)

# Istio 1.30 refuses Kubernetes older than 1.32 (istioctl MinK8SVersion = 32).
MIN_KUBERNETES_MINOR = 32
# The minors a stack may ask for: what DOKS offers (catalog.py) that Istio 1.30 runs on.
KUBERNETES_MINORS: tuple[str, ...] = tuple(
    f"1.{minor}" for minor in DOKS_KUBERNETES_MINORS if minor >= MIN_KUBERNETES_MINOR
)
_HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")


def _size_slug(value: str) -> str:
    if value not in DROPLET_SIZES:
        families = ", ".join(f"{f}-" for f in SIZE_FAMILIES)
        raise ValueError(
            "must be a droplet size slug DOKS offers, such as 's-4vcpu-8gb'"
            f"{suggestion(value, DROPLET_SIZES)}: one of the {families} sizes pinned in "
            "components/cluster/catalog.py (`doctl kubernetes options sizes`)"
        )
    return value


def doks_region(value: str) -> str:
    if value not in DOKS_REGIONS:
        raise ValueError(
            f"must be a DigitalOcean region slug where DOKS runs{suggestion(value, DOKS_REGIONS)}: "
            f"{', '.join(DOKS_REGIONS)}"
        )
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
        between(1, 100, below=" (DOKS autoscaling needs at least 1 node)")
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
    # The Kubernetes API is reachable only from controlPlaneAllowList, unless a stated
    # `publicControlPlane` reason acknowledges an API open to the internet.
    control_plane_allow_list: bool
    # metrics-server replicas (HPAs stop scaling while it is down).
    min_metrics_server_replicas: int = 1


class PublicControlPlane(ConfigModel):
    """The acknowledgement that this stack's Kubernetes API is open to the internet: a reason
    a reviewer can read in the stack file (where the tier requires an allow-list). Stated, the
    control-plane firewall is turned off, also one an earlier allow-list enabled."""

    reason: str

    @field_validator("reason")
    @classmethod
    def _stated(cls, v: str) -> str:
        if len(v.strip()) < 10:
            raise ValueError("must state why the API may be reached from anywhere (a sentence)")
        return v


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
        "metricsServerReplicas": 1 if not ha else 2,
        **rest,
    }


class ClusterConfig(ConfigModel):
    """The DOKS cluster, its VPC and node pools."""

    region: str
    # The Kubernetes minor ('1.34'). With autoUpgrade, DOKS applies its patch releases in the
    # maintenance window and the program never moves the version by itself.
    kubernetes_version_prefix: str
    # An exact DOKS version ('1.35.1-do.0') to move to deliberately (a minor upgrade); needs
    # autoUpgrade false while pinned, and the minor of kubernetesVersionPrefix.
    kubernetes_version: str | None = None
    vpc_cidr: str
    ha: bool
    auto_upgrade: bool
    surge_upgrade: bool
    maintenance_window: MaintenanceWindow
    system_pool: SystemPool
    workload_pool: WorkloadPool
    control_plane_allow_list: tuple[Cidr, ...]
    # metrics-server replicas on the system pool: every HPA (istiod, gateways) reads it.
    metrics_server_replicas: int
    # Acknowledges an empty controlPlaneAllowList where the tier requires one: {reason: "..."}.
    public_control_plane: PublicControlPlane | None = None
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
            ClusterRules(
                ha=False, min_system_nodes=1, protect=False, control_plane_allow_list=False
            ),
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
            ClusterRules(
                ha=True, min_system_nodes=1, protect=False, control_plane_allow_list=False
            ),
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
            ClusterRules(
                ha=True,
                min_system_nodes=3,
                protect=True,
                control_plane_allow_list=True,
                min_metrics_server_replicas=2,
            ),
        ),
    }

    _region = field_validator("region")(doks_region)
    _metrics_server = field_validator("metrics_server_replicas")(between(1, 5))

    @field_validator("kubernetes_version")
    @classmethod
    def _exact_version(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"1\.\d+\.\d+-do\.\d+", v):
            raise ValueError(
                "must be an exact DOKS version slug such as '1.35.1-do.0' "
                "(`doctl kubernetes options versions`)"
            )
        return v

    @field_validator("kubernetes_version_prefix")
    @classmethod
    def _version(cls, v: str) -> str:
        offered = ", ".join(KUBERNETES_MINORS)
        m = re.fullmatch(r"1\.(\d+)\.?", v)
        if not m:
            raise ValueError(
                f"must be a Kubernetes minor version '1.N' that DOKS offers: {offered}"
            )
        if f"1.{m.group(1)}" not in KUBERNETES_MINORS:
            floor = (
                f" (Istio 1.30 needs Kubernetes 1.{MIN_KUBERNETES_MINOR} or newer)"
                if int(m.group(1)) < MIN_KUBERNETES_MINOR
                else ""
            )
            raise ValueError(f"is not a Kubernetes minor DOKS offers{floor}; use one of: {offered}")
        return f"1.{m.group(1)}."

    @field_validator("vpc_cidr")
    @classmethod
    def _vpc(cls, v: str) -> str:
        return private_cidr(v)
