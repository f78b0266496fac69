"""Availability of the platform's workloads: disruption budgets that never block a node drain
(at least one pod may be evicted at the minimum replica count), and istiod and the gateways
highly available where the stack's config enables `platform-ha` (production).

Budgets are read the way the charts render them, chart defaults included (istiod's budget is
`minAvailable: 1` unless set; cert-manager's, Flagger's, the load tester's and
kube-prometheus-stack's Alertmanager and Prometheus budgets, once enabled, too), and the way
Kubernetes counts them (percentages round up). Budgets the program authors itself are matched to the
Deployments/StatefulSets they select and to their HorizontalPodAutoscaler's minimum.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from policies.rules.base import (
    RESOURCE,
    STACK,
    Rule,
    dig,
    excepted,
    exceptions_schema,
    is_mapping,
    message,
    namespace,
    number,
    obj_name,
    of_kind,
)
from policies.rules.helm import Chart, chart, charts


@dataclass(frozen=True)
class Budget:
    """A workload's minimum replicas and its disruption budget (None: no budget)."""

    label: str
    min_replicas: int
    min_available: Any = None
    max_unavailable: Any = None
    enabled: bool = True


def _scaled(value: Any, replicas: int) -> int:
    """An int-or-percent as Kubernetes scales it for a budget (rounded up)."""
    if isinstance(value, str) and value.endswith("%"):
        return math.ceil(float(value[:-1]) * replicas / 100)
    return int(float(value))


def allowed_evictions(b: Budget) -> int:
    """Pods that may be evicted at once when `min_replicas` pods run and are healthy."""
    if not b.enabled:
        return b.min_replicas
    if b.max_unavailable is not None:
        return min(_scaled(b.max_unavailable, b.min_replicas), b.min_replicas)
    if b.min_available is not None:
        return max(b.min_replicas - _scaled(b.min_available, b.min_replicas), 0)
    return b.min_replicas


def _int(value: Any, default: int) -> int:
    found = number(value)
    return int(found) if found is not None else default


def _budget(label: str, replicas: int, pdb: Any, enabled: bool, default_min: Any) -> Budget:
    pdb = pdb if is_mapping(pdb) else {}
    max_unavailable = dig(pdb, "maxUnavailable")
    min_available = dig(pdb, "minAvailable")
    if max_unavailable is None and min_available is None:
        min_available = default_min
    return Budget(label, replicas, min_available, max_unavailable, enabled)


def _istiod(c: Chart) -> list[Budget]:
    v = c.values
    autoscaled = dig(v, "autoscaleEnabled", default=True) is not False
    replicas = _int(dig(v, "autoscaleMin") if autoscaled else dig(v, "replicaCount"), 1)
    enabled = dig(v, "global", "defaultPodDisruptionBudget", "enabled", default=True) is not False
    pdb = {"minAvailable": 1, **dict(dig(v, "pdb", default={}) or {})}
    if dig(pdb, "maxUnavailable") is not None:
        pdb.pop("minAvailable")  # the chart ignores minAvailable once maxUnavailable is set
    return [_budget("istiod", replicas, pdb, enabled, None)]


def _gateway(c: Chart) -> list[Budget]:
    v = c.values
    autoscaled = dig(v, "autoscaling", "enabled", default=True) is not False
    replicas = _int(
        dig(v, "autoscaling", "minReplicas") if autoscaled else dig(v, "replicaCount"), 1
    )
    pdb = dig(v, "podDisruptionBudget", default={})
    return [_budget("gateway", replicas, pdb, bool(pdb), None)]


def _cert_manager(c: Chart) -> list[Budget]:
    out = []
    for label, section in (("controller", c.values), ("webhook", None), ("cainjector", None)):
        values = section if section is not None else dig(c.values, label, default={})
        pdb = dig(values, "podDisruptionBudget", default={})
        enabled = dig(pdb, "enabled", default=False) is True
        out.append(_budget(label, _int(dig(values, "replicaCount"), 1), pdb, enabled, 1))
    return out


def _metrics_server(c: Chart) -> list[Budget]:
    pdb = dig(c.values, "podDisruptionBudget", default={})
    enabled = dig(pdb, "enabled", default=False) is True
    return [_budget("metrics-server", _int(dig(c.values, "replicas"), 1), pdb, enabled, None)]


def _enabled_budget(label: str, replicas: int, pdb: Any) -> Budget:
    """Charts whose budget is `podDisruptionBudget: {enabled, minAvailable: 1 by default}`."""
    enabled = dig(pdb, "enabled", default=False) is True
    return _budget(label, replicas, pdb, enabled, 1)


def _flagger(c: Chart) -> list[Budget]:
    v = c.values
    elected = dig(v, "leaderElection", "enabled", default=False) is True
    replicas = _int(dig(v, "leaderElection", "replicaCount"), 1) if elected else 1
    return [_enabled_budget("flagger", replicas, dig(v, "podDisruptionBudget", default={}))]


def _loadtester(c: Chart) -> list[Budget]:
    v = c.values
    pdb = dig(v, "podDisruptionBudget", default={})
    return [_enabled_budget("loadtester", _int(dig(v, "replicaCount"), 1), pdb)]


def _kube_prometheus_stack(c: Chart) -> list[Budget]:
    out = []
    for label, spec in (("alertmanager", "alertmanagerSpec"), ("prometheus", "prometheusSpec")):
        replicas = _int(dig(c.values, label, spec, "replicas"), 1)
        pdb = dig(c.values, label, "podDisruptionBudget", default={})
        out.append(_enabled_budget(label, replicas, pdb))
    return out


CHART_BUDGETS = {
    "istiod": _istiod,
    "gateway": _gateway,
    "cert-manager": _cert_manager,
    "metrics-server": _metrics_server,
    "flagger": _flagger,
    "loadtester": _loadtester,
    "kube-prometheus-stack": _kube_prometheus_stack,
}

WHY_DRAIN = (
    "a budget that allows no eviction at the minimum replica count blocks `kubectl drain`, "
    "DOKS node pool upgrades and surge upgrades until someone deletes it."
)


def _shown(value: Any) -> str:
    found = number(value)
    return str(found if found is not None else value)


def _drain_message(subject: str, b: Budget) -> str:
    budget = (
        f"maxUnavailable {_shown(b.max_unavailable)}"
        if b.max_unavailable is not None
        else f"minAvailable {_shown(b.min_available)}"
    )
    return message(
        f"{subject}: the disruption budget ({budget}) allows no eviction at "
        f"{b.min_replicas} replica(s)",
        WHY_DRAIN,
        "use maxUnavailable: 1, or raise the minimum replicas above minAvailable (stack "
        "config `<component>.minReplicas` / `.pdb`)",
    )


def _selected(selector: Mapping[str, Any], template_labels: Any) -> bool:
    return bool(selector) and all(
        is_mapping(template_labels) and template_labels.get(k) == v for k, v in selector.items()
    )


def _authored_budgets(resources: Sequence[Any]) -> Iterator[tuple[Any, str, Budget]]:
    workloads = [
        *of_kind(resources, "apps", "Deployment"),
        *of_kind(resources, "apps", "StatefulSet"),
    ]
    hpas = of_kind(resources, "autoscaling", "HorizontalPodAutoscaler")
    for pdb in of_kind(resources, "policy", "PodDisruptionBudget"):
        ns = namespace(pdb)
        selector = dig(pdb.props, "spec", "selector", "matchLabels", default={})
        for w in workloads:
            template = dig(w.props, "spec", "template", "metadata", "labels")
            if namespace(w) != ns or not _selected(selector, template):
                continue
            replicas = _int(dig(w.props, "spec", "replicas"), 1)
            for hpa in hpas:
                target = dig(hpa.props, "spec", "scaleTargetRef", default={})
                if namespace(hpa) == ns and dig(target, "name") == obj_name(w):
                    replicas = _int(dig(hpa.props, "spec", "minReplicas"), 1)
            spec = dig(pdb.props, "spec", default={})
            budget = _budget(obj_name(w), replicas, spec, True, None)
            yield pdb, f"PodDisruptionBudget {ns}/{obj_name(pdb)} of {obj_name(w)}", budget


def check_drain(
    resources: Sequence[Any], config: Mapping[str, Any]
) -> Iterator[tuple[str | None, str]]:
    for c in charts(resources, *CHART_BUDGETS):
        if excepted(config, c.release):
            continue
        for b in CHART_BUDGETS[c.chart](c):
            if allowed_evictions(b) < 1:
                yield c.resource.urn, _drain_message(f"{c.where()} {b.label}", b)
    for pdb, subject, b in _authored_budgets(resources):
        if not excepted(config, f"{namespace(pdb)}/{obj_name(pdb)}") and allowed_evictions(b) < 1:
            yield pdb.urn, _drain_message(subject, b)


HA_CHARTS = ("istiod", "gateway")


def check_ha(resource: Any, config: Mapping[str, Any]) -> Iterator[str]:
    c = chart(resource)
    if c is None or c.chart not in HA_CHARTS or excepted(config, c.release):
        return
    minimum = _int(config.get("minReplicas"), 2)
    (b,) = CHART_BUDGETS[c.chart](c)
    if b.min_replicas < minimum:
        yield message(
            f"{c.where()} runs at least {b.min_replicas} replica(s), fewer than {minimum}",
            "with one istiod no proxy gets config or certificates while it restarts; with one "
            "gateway every drain or crash is an outage of that way in or out.",
            "raise `istio.istiod.minReplicas` / `istio.ingressGateway.minReplicas` / "
            f"`istio.egressGateway.minReplicas` to {minimum} or more",
        )
    if not b.enabled:
        yield message(
            f"{c.where()} has no PodDisruptionBudget",
            "without a budget a node drain may evict every replica at once.",
            "set a budget (`pdb: {maxUnavailable: 1}` in the component's config)",
        )


RULES = [
    Rule(
        name="pdb-allows-drain",
        description=(
            "Disruption budgets of platform workloads allow at least one eviction at the "
            "minimum replica count."
        ),
        kind=STACK,
        check=check_drain,
        remediation="Use maxUnavailable: 1, or minAvailable below the minimum replicas.",
        config={"exceptions": exceptions_schema("Helm release name, or namespace/PDB name")},
        severity="high",
        exception_key="Helm release name, or namespace/PodDisruptionBudget name",
    ),
    Rule(
        name="platform-ha",
        description="istiod and the Istio gateways run highly available, with a disruption budget.",
        kind=RESOURCE,
        check=check_ha,
        remediation="Raise the minimum replicas of istiod and the gateways and keep their PDBs.",
        config={
            "minReplicas": {
                "type": "integer",
                "minimum": 1,
                "description": "Fewest replicas istiod and each gateway may run.",
                "default": 2,
            },
            "exceptions": exceptions_schema("Helm release name"),
        },
        severity="high",
        exception_key="Helm release name",
    ),
]
