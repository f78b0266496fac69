"""The `istio` config section: revision, HA sizing of istiod and the gateways, sidecar resources
and trace sampling, with per-environment defaults.

Kept apart from `istio.py` (which imports the cluster and Pulumi resources) so `config.py` can
compose it without an import cycle. Rules that need the environment or several fields at once
live in `istio_problems`, called from `PlatformConfig._environment_rules`, so every refusal names
the full key path.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from pydantic import field_validator, model_validator

from components.model import ConfigModel, Problem

_CPU = re.compile(r"^([0-9]+)(m?)$|^([0-9]+\.[0-9]+)$")
_MEMORY = re.compile(r"^([0-9]+)(Mi|Gi)$")
_REVISION = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")

# Sidecars run beside every application pod: their requests are capped so the mesh does not
# eat the workload pool (issue 3: <= 100m CPU / 128Mi).
MAX_PROXY_CPU_MILLI = 100
MAX_PROXY_MEMORY_MI = 128

# Fewest replicas per environment for each HA component (dev may run single replicas).
HA_MINIMUM: dict[str, dict[str, int]] = {
    "istiod": {"dev": 1, "staging": 2, "production": 3},
    "ingressGateway": {"dev": 1, "staging": 2, "production": 3},
    "egressGateway": {"dev": 1, "staging": 2, "production": 2},
}


def cpu_milli(value: str) -> int:
    """'500m' -> 500, '2' -> 2000, '0.5' -> 500."""
    m = _CPU.match(value)
    if not m:
        raise ValueError("must be a CPU quantity such as '100m', '1' or '1.5'")
    if m.group(3):
        return int(float(m.group(3)) * 1000)
    return int(m.group(1)) * (1 if m.group(2) else 1000)


def memory_mi(value: str) -> int:
    """'128Mi' -> 128, '2Gi' -> 2048."""
    m = _MEMORY.match(value)
    if not m:
        raise ValueError("must be a memory quantity in Mi or Gi such as '128Mi' or '2Gi'")
    return int(m.group(1)) * (1024 if m.group(2) == "Gi" else 1)


class Resources(ConfigModel):
    """Container requests and limits. A CPU limit is always set: istiod derives GOMAXPROCS from
    it, and without one it sizes itself to the whole node."""

    cpu_request: str
    memory_request: str
    cpu_limit: str
    memory_limit: str

    @field_validator("cpu_request", "cpu_limit")
    @classmethod
    def _cpu(cls, v: str) -> str:
        cpu_milli(v)
        return v

    @field_validator("memory_request", "memory_limit")
    @classmethod
    def _memory(cls, v: str) -> str:
        memory_mi(v)
        return v

    @model_validator(mode="after")
    def _ordered(self) -> Resources:
        if cpu_milli(self.cpu_request) > cpu_milli(self.cpu_limit):
            raise ValueError(f"cpuRequest ({self.cpu_request}) must not exceed cpuLimit")
        if memory_mi(self.memory_request) > memory_mi(self.memory_limit):
            raise ValueError(f"memoryRequest ({self.memory_request}) must not exceed memoryLimit")
        return self

    def helm(self) -> dict[str, dict[str, str]]:
        return {
            "requests": {"cpu": self.cpu_request, "memory": self.memory_request},
            "limits": {"cpu": self.cpu_limit, "memory": self.memory_limit},
        }


class DisruptionBudget(ConfigModel):
    """Exactly one of maxUnavailable / minAvailable (integers). Checked against the replica
    minimum so a budget can never block node drains or DOKS surge upgrades."""

    # Pods that may be down at once; the default when neither key is set is 1.
    max_unavailable: int | None = None
    # Pods that must stay up; must be below minReplicas.
    min_available: int | None = None

    @model_validator(mode="before")
    @classmethod
    def _default(cls, data: Any) -> Any:
        """An empty budget means `maxUnavailable: 1`, so a stack file that sets only
        `minAvailable` does not also inherit the profile's maxUnavailable."""
        if isinstance(data, dict) and not any(
            k in data
            for k in ("maxUnavailable", "minAvailable", "max_unavailable", "min_available")
        ):
            return {**data, "maxUnavailable": 1}
        return data

    @model_validator(mode="after")
    def _one(self) -> DisruptionBudget:
        if (self.max_unavailable is None) == (self.min_available is None):
            raise ValueError("set exactly one of maxUnavailable or minAvailable")
        return self

    def allowed_evictions(self, replicas: int) -> int:
        """Pods that may be evicted at once when `replicas` are running and healthy."""
        if self.max_unavailable is not None:
            return min(self.max_unavailable, replicas)
        return max(replicas - (self.min_available or 0), 0)

    def helm(self) -> dict[str, int]:
        if self.max_unavailable is not None:
            return {"maxUnavailable": self.max_unavailable}
        return {"minAvailable": self.min_available or 0}


class Workload(ConfigModel):
    """Replica range (an HPA runs when max > min) and disruption budget of one deployment."""

    min_replicas: int
    max_replicas: int
    pdb: DisruptionBudget
    resources: Resources

    @field_validator("min_replicas", "max_replicas")
    @classmethod
    def _positive(cls, v: int) -> int:
        if not 1 <= v <= 50:
            raise ValueError("must be between 1 and 50")
        return v

    @model_validator(mode="after")
    def _ordered(self) -> Workload:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"minReplicas ({self.min_replicas}) must not exceed maxReplicas "
                f"({self.max_replicas})"
            )
        return self

    @property
    def autoscaled(self) -> bool:
        return self.max_replicas > self.min_replicas


def _workload(
    lo: int, hi: int, cpu: str, mem: str, cpu_limit: str, mem_limit: str
) -> dict[str, Any]:
    return {
        "minReplicas": lo,
        "maxReplicas": hi,
        "pdb": {},  # empty: maxUnavailable 1
        "resources": {
            "cpuRequest": cpu,
            "memoryRequest": mem,
            "cpuLimit": cpu_limit,
            "memoryLimit": mem_limit,
        },
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
    # Percentage of requests traced (1.0 means 1%).
    trace_sampling: float
    # Istio's own log format for istiod and proxies (access logs are always JSON).
    log_as_json: bool

    DEFAULTS: ClassVar[dict[str, dict[str, Any]]] = {
        env: {
            "revision": "1-30",
            "revisionTag": "stable",
            "istiod": istiod,
            "ingressGateway": ingress,
            "egressGateway": egress,
            "proxy": proxy,
            "traceSampling": sampling,
            "logAsJson": True,
        }
        for env, istiod, ingress, egress, proxy, sampling in (
            (
                "dev",
                _workload(1, 1, "250m", "512Mi", "1", "1Gi"),
                _workload(1, 2, "100m", "128Mi", "1", "512Mi"),
                _workload(1, 1, "100m", "128Mi", "1", "512Mi"),
                {
                    "cpuRequest": "50m",
                    "memoryRequest": "64Mi",
                    "cpuLimit": "1",
                    "memoryLimit": "512Mi",
                },
                100.0,
            ),
            (
                "staging",
                _workload(2, 4, "500m", "1Gi", "2", "2Gi"),
                _workload(2, 5, "250m", "256Mi", "2", "1Gi"),
                _workload(2, 3, "100m", "128Mi", "1", "512Mi"),
                {
                    "cpuRequest": "100m",
                    "memoryRequest": "128Mi",
                    "cpuLimit": "2",
                    "memoryLimit": "1Gi",
                },
                10.0,
            ),
            (
                "production",
                _workload(3, 10, "1", "2Gi", "4", "4Gi"),
                _workload(3, 10, "500m", "512Mi", "2", "1Gi"),
                _workload(2, 5, "250m", "256Mi", "2", "1Gi"),
                {
                    "cpuRequest": "100m",
                    "memoryRequest": "128Mi",
                    "cpuLimit": "2",
                    "memoryLimit": "1Gi",
                },
                1.0,
            ),
        )
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

    @field_validator("trace_sampling")
    @classmethod
    def _sampling(cls, v: float) -> float:
        if not 0.0 <= v <= 100.0:
            raise ValueError("must be a percentage between 0.0 and 100.0 (1.0 means 1%)")
        return v


def istio_problems(environment: str, istio: IstioConfig) -> list[Problem]:
    """Rules that need the environment or span fields: HA minimums, disruption budgets that
    would block drains, sidecar request caps, revision vs tag."""
    problems: list[Problem] = []
    if istio.revision_tag == istio.revision:
        problems.append(
            Problem(
                "istio.revisionTag",
                istio.revision_tag,
                "must differ from istio.revision (a tag is an alias that can move)",
            )
        )
    for key, workload in (
        ("istiod", istio.istiod),
        ("ingressGateway", istio.ingress_gateway),
        ("egressGateway", istio.egress_gateway),
    ):
        minimum = HA_MINIMUM[key][environment]
        if workload.min_replicas < minimum:
            problems.append(
                Problem(
                    f"istio.{key}.minReplicas",
                    workload.min_replicas,
                    f"must be at least {minimum} in {environment} (HA minimum)",
                )
            )
        pdb = workload.pdb
        if pdb.max_unavailable is not None and pdb.max_unavailable < 1:
            problems.append(
                Problem(
                    f"istio.{key}.pdb.maxUnavailable",
                    pdb.max_unavailable,
                    "must be at least 1: a budget allowing no eviction blocks node drains "
                    "and DOKS surge upgrades",
                )
            )
        if pdb.min_available is not None and (
            pdb.min_available < 0 or pdb.allowed_evictions(workload.min_replicas) < 1
        ):
            problems.append(
                Problem(
                    f"istio.{key}.pdb.minAvailable",
                    pdb.min_available,
                    f"must be between 0 and minReplicas - 1 "
                    f"({workload.min_replicas - 1}), so one pod may always be evicted "
                    "(otherwise node drains and DOKS surge upgrades block)",
                )
            )
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
