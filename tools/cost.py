"""Monthly cost of a stack from its offline plan: node pools (at their minimum and maximum node
counts), the HA control plane, load balancer size units, block volumes from the charts'
persistence sizes, and Spaces, priced from the dated table `tools/data/prices.json` (each figure
names its source there). Also the node pools themselves (size, counts, labels, taints), which
the capacity check (`tools/review_capacity.py`) reads.

Why from the plan: the plan is what `pulumi up` registers, so the figure follows every config
change (a bigger pool, a longer retention volume) without a second model of the stack. What the
plan cannot know (traffic, snapshots, Spaces usage beyond the included 250 GiB) is not counted
and the lines say so. Pure: no Pulumi import.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

PRICES = Path(__file__).resolve().parent / "data" / "prices.json"
CLUSTER = "digitalocean:index/kubernetesCluster:KubernetesCluster"
NODE_POOL = "digitalocean:index/kubernetesNodePool:KubernetesNodePool"
LOAD_BALANCER = "digitalocean:index/loadBalancer:LoadBalancer"
BUCKET = "digitalocean:index/spacesBucket:SpacesBucket"
HELM = ("kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v4:Chart")
PVC = "kubernetes:core/v1:PersistentVolumeClaim"

_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([a-zA-Z]*)$")
_BINARY = {"": 1, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
_DECIMAL = {"k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


@cache
def prices() -> dict[str, Any]:
    return json.loads(PRICES.read_text())


def cpu_milli(value: Any) -> int | None:
    """A CPU quantity ('500m', '2', 0.5) in millicores; None when it is not one."""
    m = _QUANTITY.match(str(value).strip())
    if not m or m.group(2) not in ("", "m"):
        return None
    number = float(m.group(1))
    return round(number if m.group(2) == "m" else number * 1000)


def bytes_of(value: Any) -> int | None:
    """A memory or storage quantity ('128Mi', '2Gi', '1G') in bytes; None when it is not one."""
    m = _QUANTITY.match(str(value).strip())
    if not m:
        return None
    unit = m.group(2)
    factor = _BINARY.get(unit) or _DECIMAL.get(unit)
    return round(float(m.group(1)) * factor) if factor else None


def gib(value: Any) -> float:
    b = bytes_of(value)
    return b / 2**30 if b is not None else 0.0


def get(values: Any, path: str, default: Any = None) -> Any:
    """`values['a']['b']` for 'a.b', or `default` when any step is missing."""
    for part in path.split("."):
        if not isinstance(values, Mapping) or part not in values:
            return default
        values = values[part]
    return values


# --- node pools -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pool:
    name: str
    size: str
    min_nodes: int
    max_nodes: int
    labels: Mapping[str, str]
    taints: tuple[Mapping[str, Any], ...]
    default: bool  # the cluster's own pool (the system pool here)


def _pool(spec: Mapping[str, Any], default: bool) -> Pool:
    if spec.get("autoScale"):
        lo = int(spec.get("minNodes") or spec.get("nodeCount") or 1)
        hi = int(spec.get("maxNodes") or lo)
    else:
        lo = hi = int(spec.get("nodeCount") or 1)
    return Pool(
        str(spec.get("name")),
        str(spec.get("size")),
        lo,
        hi,
        dict(spec.get("labels") or {}),
        tuple(spec.get("taints") or ()),
        default,
    )


def pools(resources: Iterable[Mapping[str, Any]]) -> list[Pool]:
    out = []
    for r in resources:
        if r["type"] == CLUSTER and isinstance(r["inputs"].get("nodePool"), Mapping):
            out.append(_pool(r["inputs"]["nodePool"], True))
        elif r["type"] == NODE_POOL:
            out.append(_pool(r["inputs"], False))
    return sorted(out, key=lambda p: (not p.default, p.name))


# --- volumes ----------------------------------------------------------------------------------

# Per chart: (what, storage path, replicas path or fixed count, default replicas, enabled path).
# A path of None means "always on"; the chart's own default replica count applies when unset.
_CHART_VOLUMES: dict[str, tuple[tuple[str, str, str | None, int, str | None], ...]] = {
    "kube-prometheus-stack": (
        (
            "prometheus",
            "prometheus.prometheusSpec.storageSpec.volumeClaimTemplate.spec.resources.requests.storage",
            "prometheus.prometheusSpec.replicas",
            1,
            None,
        ),
        (
            "alertmanager",
            "alertmanager.alertmanagerSpec.storage.volumeClaimTemplate.spec.resources.requests.storage",
            "alertmanager.alertmanagerSpec.replicas",
            1,
            None,
        ),
        (
            "grafana",
            "grafana.persistence.size",
            "grafana.replicas",
            1,
            "grafana.persistence.enabled",
        ),
    ),
    "grafana": (("grafana", "persistence.size", "replicas", 1, "persistence.enabled"),),
    "loki": (
        (
            "loki",
            "singleBinary.persistence.size",
            "singleBinary.replicas",
            0,
            "singleBinary.persistence.enabled",
        ),
    ),
    "tempo": (("tempo", "persistence.size", "replicas", 1, "persistence.enabled"),),
}


@dataclass(frozen=True)
class Volume:
    what: str
    count: int
    size_gib: float


def volumes(resources: Iterable[Mapping[str, Any]]) -> list[Volume]:
    """Block volumes the stack's charts and manifests claim (one per replica)."""
    out = []
    for r in resources:
        inputs = r["inputs"]
        if r["type"] in HELM:
            values = inputs.get("values") or {}
            for what, size, replicas, default, enabled in _CHART_VOLUMES.get(
                str(inputs.get("chart")), ()
            ):
                if enabled is not None and get(values, enabled) is not True:
                    continue
                count = int(get(values, replicas, default) if replicas else default)
                amount = get(values, size)
                if count and amount is not None:
                    out.append(Volume(what, count, gib(amount)))
        elif r["type"] == PVC:
            amount = get(inputs, "spec.resources.requests.storage")
            if amount is not None:
                out.append(Volume(str(get(inputs, "metadata.name", r["name"])), 1, gib(amount)))
    return sorted(out, key=lambda v: (v.what, v.size_gib))


# --- cost -------------------------------------------------------------------------------------


@dataclass
class Cost:
    """Monthly cost at the pools' minimum and maximum; `items` are (what, min, max, detail)."""

    minimum: float = 0.0
    maximum: float = 0.0
    items: list[tuple[str, float, float, str]] = field(default_factory=list)
    unpriced: list[str] = field(default_factory=list)

    def add(self, what: str, low: float, high: float, detail: str) -> None:
        self.items.append((what, low, high, detail))
        self.minimum += low
        self.maximum += high


def _money(value: float) -> str:
    return f"{value:,.2f}"


def stack_cost(resources: Iterable[Mapping[str, Any]]) -> Cost:
    table = prices()
    resources = list(resources)
    cost = Cost()
    for pool in pools(resources):
        price = (table["droplets"].get(pool.size) or {}).get("monthly")
        role = "system pool" if pool.default else "pool"
        if price is None:
            cost.unpriced.append(f"{role} {pool.name}: no price for size {pool.size}")
            continue
        counts = (
            f"{pool.min_nodes}"
            if pool.min_nodes == pool.max_nodes
            else (f"{pool.min_nodes}-{pool.max_nodes}")
        )
        cost.add(
            f"{role} {pool.name}",
            pool.min_nodes * price,
            pool.max_nodes * price,
            f"{counts} x {pool.size} @ {_money(price)}",
        )
    for r in resources:
        inputs = r["inputs"]
        if r["type"] == CLUSTER and inputs.get("ha"):
            ha = float(table["haControlPlane"])
            cost.add("HA control plane", ha, ha, f"{inputs.get('name')}")
        elif r["type"] == LOAD_BALANCER:
            units = inputs.get("sizeUnit") or table["loadBalancerLegacySizeUnits"].get(
                inputs.get("size"), 1
            )
            each = float(table["loadBalancerNode"])
            cost.add(
                f"load balancer {inputs.get('name', r['name'])}",
                units * each,
                units * each,
                f"{units} size unit(s) @ {_money(each)}",
            )
    vols = volumes(resources)
    if vols:
        total = sum(v.count * v.size_gib for v in vols)
        each = float(table["volumeGiB"])
        detail = ", ".join(f"{v.what} {v.count}x{v.size_gib:g} GiB" for v in vols)
        cost.add("block volumes", total * each, total * each, f"{total:g} GiB ({detail})")
    buckets = [r for r in resources if r["type"] == BUCKET]
    if buckets:
        spaces = table["spaces"]
        cost.add(
            "Spaces",
            float(spaces["monthly"]),
            float(spaces["monthly"]),
            f"{len(buckets)} bucket(s); subscription per account, {spaces['includedGiB']} GiB "
            f"included, then {spaces['extraGiB']}/GiB (usage not known offline)",
        )
    return cost


def cost_lines(cost: Cost, indent: str = "  ") -> list[str]:
    table = prices()
    head = (
        f"monthly cost ({table['currency']}, DigitalOcean list prices as of {table['asOf']}, "
        f"tools/data/prices.json): {_money(cost.minimum)} at minimum nodes, "
        f"{_money(cost.maximum)} at maximum"
    )
    lines = [head]
    for what, low, high, detail in cost.items:
        amount = _money(low) if low == high else f"{_money(low)}-{_money(high)}"
        lines.append(f"{indent}{what}: {amount} ({detail})")
    lines += [f"{indent}unpriced: {u}" for u in cost.unpriced]
    lines.append(f"{indent}not counted: outbound transfer, snapshots, Spaces use over the included")
    return lines


def plan_lines(resources: Iterable[Mapping[str, Any]]) -> tuple[list[str], bool]:
    """The cost and capacity lines `tools.plan` prints for one stack, and whether the
    platform fits its minimum pools."""
    from tools.review_capacity import capacity, capacity_lines

    resources = sorted(resources, key=lambda r: r["urn"])  # registration order varies
    check = capacity(resources)
    return cost_lines(stack_cost(resources)) + capacity_lines(check), check.fits
