"""How one HA deployment is sized and placed: replica range, disruption budget, requests and
limits (typed config), and the spread across nodes its pods get.

Shared by the Istio control plane, the gateways and cert-manager so that "a budget never blocks a
drain" and "one pod per node where possible" are written once. Pure: no Pulumi import.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import field_validator, model_validator

from components.base.model import ConfigModel, Problem, between

_CPU = re.compile(r"^([0-9]+)(m?)$|^([0-9]+\.[0-9]+)$")
_MEMORY = re.compile(r"^([0-9]+)(Mi|Gi)$")

HOSTNAME_TOPOLOGY = "kubernetes.io/hostname"  # DOKS nodes carry no zone label


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


class PodResources(ConfigModel):
    """A pod's requests and memory limit; a CPU limit only if stated. Requests are what the
    scheduler places by and what keeps a pod out of the BestEffort class that is evicted first;
    a memory limit bounds a leak to its own pod. No CPU limit by default: a throttled Prometheus
    or Loki falls behind while the node has CPU to spare."""

    cpu_request: str
    memory_request: str
    memory_limit: str
    cpu_limit: str | None = None

    @field_validator("cpu_request", "cpu_limit")
    @classmethod
    def _cpu(cls, v: str | None) -> str | None:
        if v is not None:
            cpu_milli(v)
        return v

    @field_validator("memory_request", "memory_limit")
    @classmethod
    def _memory(cls, v: str) -> str:
        memory_mi(v)
        return v

    @model_validator(mode="after")
    def _ordered(self) -> PodResources:
        if self.cpu_limit is not None and cpu_milli(self.cpu_request) > cpu_milli(self.cpu_limit):
            raise ValueError(f"cpuRequest ({self.cpu_request}) must not exceed cpuLimit")
        if memory_mi(self.memory_request) > memory_mi(self.memory_limit):
            raise ValueError(f"memoryRequest ({self.memory_request}) must not exceed memoryLimit")
        return self

    def helm(self) -> dict[str, dict[str, str]]:
        limits = {} if self.cpu_limit is None else {"cpu": self.cpu_limit}
        return {
            "requests": {"cpu": self.cpu_request, "memory": self.memory_request},
            "limits": {**limits, "memory": self.memory_limit},
        }


class Resources(PodResources):
    """Requests and limits with a CPU limit always set: istiod derives GOMAXPROCS from it, and
    without one it sizes itself to the whole node (the mesh's workloads: istiod, gateways,
    sidecars, Flagger)."""

    cpu_limit: str


def pod_resources(cpu: str, memory: str, memory_limit: str) -> dict[str, str]:
    """A `PodResources` as written in a profile (camelCase)."""
    return {"cpuRequest": cpu, "memoryRequest": memory, "memoryLimit": memory_limit}


class DisruptionBudget(ConfigModel):
    """Exactly one of maxUnavailable / minAvailable (integers). Checked against the replica
    minimum (`disruption_problems`) so a budget can never block node drains or DOKS surge
    upgrades."""

    # Pods that may be down at once; the default when neither key is set is 1.
    max_unavailable: int | None = None
    # Pods that must stay up; between 1 and minReplicas - 1.
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

    _positive = field_validator("min_replicas", "max_replicas")(between(1, 50))

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


def workload_defaults(
    lo: int, hi: int, cpu: str, mem: str, cpu_limit: str, mem_limit: str
) -> dict[str, Any]:
    """A `Workload` as written in a profile (camelCase), with the default budget."""
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


def disruption_problems(key: str, workload: Workload) -> list[Problem]:
    """A budget must let at least one pod be evicted at the minimum replica count (otherwise
    node drains and DOKS surge upgrades block) and still protect something."""
    pdb = workload.pdb
    problems: list[Problem] = []
    if pdb.max_unavailable is not None and pdb.max_unavailable < 1:
        problems.append(
            Problem(
                f"{key}.pdb.maxUnavailable",
                pdb.max_unavailable,
                "must be at least 1: a budget allowing no eviction blocks node drains "
                "and DOKS surge upgrades",
            )
        )
    if pdb.min_available is not None and not 1 <= pdb.min_available < workload.min_replicas:
        problems.append(
            Problem(
                f"{key}.pdb.minAvailable",
                pdb.min_available,
                f"must be between 1 and minReplicas - 1 ({workload.min_replicas - 1}), so one "
                "pod may always be evicted (otherwise node drains and DOKS surge upgrades "
                "block); use maxUnavailable with a single replica",
            )
        )
    return problems


def spread(match_labels: dict[str, str], hard: bool) -> list[dict[str, Any]]:
    """One pod per node where possible. `Honor` keeps cordoned (draining) nodes out of the skew
    count, so a hard constraint never leaves an evicted pod pending during a drain;
    `pod-template-hash` compares pods of one rollout only, so a surge is never blocked."""
    return [
        {
            "maxSkew": 1,
            "topologyKey": HOSTNAME_TOPOLOGY,
            "whenUnsatisfiable": "DoNotSchedule" if hard else "ScheduleAnyway",
            "nodeTaintsPolicy": "Honor",
            "labelSelector": {"matchLabels": dict(match_labels)},
            "matchLabelKeys": ["pod-template-hash"],
        }
    ]
