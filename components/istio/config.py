"""The `istio` config section: revision, HA sizing of istiod and the gateways, sidecar resources,
with per-tier profiles (trace sampling comes from `observability.tracing`). Rules that need the
tier or several fields at once live in `istio_problems`, called from the stack's composition, so
every refusal names the full key path. Pure: no Pulumi.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from pydantic import field_validator

from components.base.model import ConfigModel, Problem
from components.base.profiles import Profile
from components.base.workload import (
    Resources,
    Workload,
    cpu_milli,
    disruption_problems,
    memory_mi,
)
from components.base.workload import workload_defaults as _workload

_REVISION = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")

# Sidecars run beside every application pod: their requests are capped so the mesh does not
# eat the workload pool (issue 3: <= 100m CPU / 128Mi).
MAX_PROXY_CPU_MILLI = 100
MAX_PROXY_MEMORY_MI = 128


@dataclass(frozen=True)
class IstioRules:
    """Fewest replicas a tier allows for each HA component (dev may run single replicas)."""

    min_istiod: int
    min_ingress_gateway: int
    min_egress_gateway: int


def _proxy(cpu: str, memory: str, cpu_limit: str, memory_limit: str) -> dict[str, str]:
    return {
        "cpuRequest": cpu,
        "memoryRequest": memory,
        "cpuLimit": cpu_limit,
        "memoryLimit": memory_limit,
    }


def _defaults(istiod: dict, ingress: dict, egress: dict, proxy: dict) -> dict:
    return {
        "revision": "1-30",
        "revisionTag": "stable",
        "istiod": istiod,
        "ingressGateway": ingress,
        "egressGateway": egress,
        "proxy": proxy,
        "logAsJson": True,
    }


class IstioConfig(ConfigModel):
    """Istio control plane and gateways."""

    # Control plane revision (istiod-<revision>); a canary upgrade installs a second one.
    revision: str
    # Revision tag namespaces select (`istio.io/rev: <tag>`); moving it moves the workloads.
    revision_tag: str
    istiod: Workload
    ingress_gateway: Workload
    egress_gateway: Workload
    # Sidecar container resources (requests capped at 100m CPU / 128Mi).
    proxy: Resources
    # Istio's own log format for istiod and proxies (access logs are always JSON).
    log_as_json: bool

    PROFILES: ClassVar[dict[str, Profile[IstioRules]]] = {
        "dev": Profile(
            _defaults(
                _workload(1, 1, "250m", "512Mi", "1", "1Gi"),
                _workload(1, 2, "100m", "128Mi", "1", "512Mi"),
                _workload(1, 1, "100m", "128Mi", "1", "512Mi"),
                _proxy("50m", "64Mi", "1", "512Mi"),
            ),
            IstioRules(min_istiod=1, min_ingress_gateway=1, min_egress_gateway=1),
        ),
        "staging": Profile(
            _defaults(
                _workload(2, 4, "500m", "1Gi", "2", "2Gi"),
                _workload(2, 5, "250m", "256Mi", "2", "1Gi"),
                _workload(2, 3, "100m", "128Mi", "1", "512Mi"),
                _proxy("100m", "128Mi", "2", "1Gi"),
            ),
            IstioRules(min_istiod=2, min_ingress_gateway=2, min_egress_gateway=2),
        ),
        "production": Profile(
            _defaults(
                _workload(3, 10, "1", "2Gi", "4", "4Gi"),
                _workload(3, 10, "500m", "512Mi", "2", "1Gi"),
                _workload(2, 5, "250m", "256Mi", "2", "1Gi"),
                _proxy("100m", "128Mi", "2", "1Gi"),
            ),
            IstioRules(min_istiod=3, min_ingress_gateway=3, min_egress_gateway=2),
        ),
    }

    @field_validator("revision", "revision_tag")
    @classmethod
    def _label(cls, v: str) -> str:
        if not _REVISION.match(v) or "." in v:
            raise ValueError(
                "must be a DNS-1123 label such as '1-30' or 'stable': lowercase letters, "
                "digits and '-', at most 63 characters (no dots: '1.30' is not allowed)"
            )
        return v


def istio_problems(istio: IstioConfig, rules: IstioRules, environment: str) -> list[Problem]:
    """Rules the tier sets or that span fields: HA minimums, disruption budgets that would block
    drains, sidecar request caps, revision vs tag. `environment` is only named in messages."""
    problems: list[Problem] = []
    if istio.revision_tag == istio.revision:
        problems.append(
            Problem(
                "istio.revisionTag",
                istio.revision_tag,
                "must differ from istio.revision (a tag is an alias that can move)",
            )
        )
    for key, workload, minimum in (
        ("istiod", istio.istiod, rules.min_istiod),
        ("ingressGateway", istio.ingress_gateway, rules.min_ingress_gateway),
        ("egressGateway", istio.egress_gateway, rules.min_egress_gateway),
    ):
        if workload.min_replicas < minimum:
            problems.append(
                Problem(
                    f"istio.{key}.minReplicas",
                    workload.min_replicas,
                    f"must be at least {minimum} in {environment} (HA minimum)",
                )
            )
        problems += disruption_problems(f"istio.{key}", workload)
    if cpu_milli(istio.proxy.cpu_request) > MAX_PROXY_CPU_MILLI:
        problems.append(
            Problem(
                "istio.proxy.cpuRequest",
                istio.proxy.cpu_request,
                f"must be at most {MAX_PROXY_CPU_MILLI}m (a sidecar runs beside every pod)",
            )
        )
    if memory_mi(istio.proxy.memory_request) > MAX_PROXY_MEMORY_MI:
        problems.append(
            Problem(
                "istio.proxy.memoryRequest",
                istio.proxy.memory_request,
                f"must be at most {MAX_PROXY_MEMORY_MI}Mi (a sidecar runs beside every pod)",
            )
        )
    return problems
