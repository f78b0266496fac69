"""Capacity check: do the platform's pods (the charts and their values in the plan) fit the
allocatable CPU and memory of the node pools at their *minimum* size? A plan that does not fit
is refused (`tools.plan` and `tools.review` exit 1): pods would stay Pending until the
autoscaler adds nodes, and the system pool does not autoscale at all.

Each chart's pods are described once (`POD_GROUPS`): where its values hold the replica count,
the HPA minimum, the requests, the nodeSelector and the tolerations. A pod goes to the pools
whose labels its nodeSelector matches and whose taints it tolerates; a DaemonSet runs one pod
on every such node. Requests the program does not set are the chart's default where known
(istiod, gateway, metrics-server: their values.yaml), otherwise not counted and listed, since
the scheduler would not count them either. Allocatable per node size comes from
`tools/data/prices.json`. A pool of fixed size (the system pool) must also hold its HPAs'
maximum replicas: where it cannot, the check says so ("at maximum replicas"), without refusing
the plan (the platform runs at its minimum; replicas past what fits would stay Pending under
load). Pure: no Pulumi import.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tools.cost import HELM, Pool, bytes_of, cpu_milli, get, pools, prices


@dataclass(frozen=True)
class PodGroup:
    """One Deployment/StatefulSet/DaemonSet of a chart, as paths into its values."""

    what: str
    prefix: str = ""  # values path of the component ("" = top level)
    replicas: str = "replicaCount"
    default_replicas: int = 1
    hpa_enabled: str | None = None  # path of the HPA switch; its min replaces replicas
    hpa_enabled_default: bool = False
    hpa_min: str | None = None
    hpa_max: str | None = None  # path of the HPA's maximum (checked on pools of fixed size)
    hpa_max_default: int | None = None
    resources: str = "resources"
    default_requests: tuple[str, str] | None = None  # (cpu, memory) from the chart's values.yaml
    node_selector: tuple[str, ...] = ("nodeSelector",)
    tolerations: tuple[str, ...] = ("tolerations",)
    daemonset: bool = False
    enabled: str | None = None
    enabled_default: bool = True
    tolerates_all: bool = False  # the chart's default tolerations accept every NoSchedule taint
    # Other long-running containers of each pod: (values path of their resources, how many).
    sidecars: tuple[tuple[str, int], ...] = ()


_GLOBAL_SELECTOR = ("nodeSelector", "global.nodeSelector")
# The operator's config-reloader container in every Prometheus and Alertmanager pod.
_CONFIG_RELOADER = "prometheusOperator.prometheusConfigReloader.resources"

POD_GROUPS: dict[str, tuple[PodGroup, ...]] = {
    "istiod": (
        PodGroup(
            "istiod",
            hpa_enabled="autoscaleEnabled",
            hpa_enabled_default=True,
            hpa_min="autoscaleMin",
            hpa_max="autoscaleMax",
            hpa_max_default=5,
            default_requests=("500m", "2048Mi"),
        ),
    ),
    "gateway": (
        PodGroup(
            "gateway",
            hpa_enabled="autoscaling.enabled",
            hpa_enabled_default=True,
            hpa_min="autoscaling.minReplicas",
            hpa_max="autoscaling.maxReplicas",
            hpa_max_default=5,
            default_requests=("100m", "128Mi"),
        ),
    ),
    "base": (),
    "prometheus-operator-crds": (),  # CRDs only
    "metrics-server": (
        PodGroup("metrics-server", replicas="replicas", default_requests=("100m", "200Mi")),
    ),
    "cert-manager": (
        PodGroup("cert-manager", node_selector=_GLOBAL_SELECTOR),
        PodGroup("cert-manager webhook", "webhook", node_selector=_GLOBAL_SELECTOR),
        PodGroup(
            "cert-manager cainjector",
            "cainjector",
            node_selector=_GLOBAL_SELECTOR,
            enabled="cainjector.enabled",
        ),
    ),
    "kube-prometheus-stack": (
        PodGroup(
            "prometheus",
            "prometheus.prometheusSpec",
            replicas="replicas",
            sidecars=((_CONFIG_RELOADER, 1),),
        ),
        PodGroup(
            "alertmanager",
            "alertmanager.alertmanagerSpec",
            replicas="replicas",
            sidecars=((_CONFIG_RELOADER, 1),),
        ),
        PodGroup(
            "grafana",
            "grafana",
            replicas="replicas",
            enabled="grafana.enabled",
            sidecars=(("grafana.sidecar.resources", 2),),  # dashboards, data sources
        ),
        PodGroup("prometheus-operator", "prometheusOperator", replicas=""),
        PodGroup("kube-state-metrics", "kube-state-metrics", replicas="replicas"),
        PodGroup(
            "node-exporter",
            "prometheus-node-exporter",
            daemonset=True,
            tolerates_all=True,
            enabled="nodeExporter.enabled",
        ),
    ),
    "loki": (
        PodGroup("loki", "singleBinary", replicas="replicas", default_replicas=0),
        PodGroup("loki gateway", "gateway", replicas="replicas", enabled="gateway.enabled"),
    ),
    # The tempo chart takes its container's resources under `tempo:`, its replicas and
    # scheduling at the top level.
    "tempo": (PodGroup("tempo", replicas="replicas", resources="tempo.resources"),),
    "kiali-server": (
        PodGroup(
            "kiali",
            "deployment",
            replicas="replicas",
            node_selector=("node_selector",),
            default_requests=("10m", "64Mi"),
        ),
    ),
    "opentelemetry-collector": (PodGroup("log collector", daemonset=True),),
    "flagger": (PodGroup("flagger", default_requests=("10m", "32Mi")),),
    "loadtester": (PodGroup("flagger load tester", default_requests=("10m", "64Mi")),),
}


@dataclass(frozen=True)
class Pods:
    what: str
    chart: str
    replicas: int  # per node for a DaemonSet
    cpu: int | None  # millicores per pod; None = not set
    memory: int | None  # bytes per pod
    node_selector: Mapping[str, str]
    tolerations: tuple[Mapping[str, Any], ...]
    daemonset: bool
    tolerates_all: bool
    defaulted: bool = False
    max_replicas: int = 0  # the HPA's maximum, else `replicas`


def _at(values: Mapping[str, Any], prefix: str, path: str) -> Any:
    return get(values, f"{prefix}.{path}" if prefix else path)


def chart_pods(chart: str, values: Mapping[str, Any], release: str = "") -> list[Pods] | None:
    """The pods one chart release runs (None: the chart is not described in POD_GROUPS); a
    chart's main workload is named after its release (two gateways tell apart)."""
    groups = POD_GROUPS.get(chart)
    if groups is None:
        return None
    out = []
    for g in groups:
        on = get(values, g.enabled) if g.enabled else None
        if (on if on is not None else g.enabled_default) is False:
            continue
        replicas = _at(values, g.prefix, g.replicas) if g.replicas else None
        replicas = int(replicas if replicas is not None else g.default_replicas)
        most = replicas
        if g.hpa_enabled:
            hpa = _at(values, g.prefix, g.hpa_enabled)
            if (hpa if hpa is not None else g.hpa_enabled_default) and g.hpa_min:
                low = _at(values, g.prefix, g.hpa_min)
                replicas = int(low) if low is not None else replicas
                high = _at(values, g.prefix, g.hpa_max) if g.hpa_max else None
                most = int(high if high is not None else (g.hpa_max_default or replicas))
                most = max(most, replicas)
        if replicas <= 0 and not g.daemonset:
            continue
        requests = _at(values, g.prefix, g.resources) or {}
        requests = requests.get("requests") if isinstance(requests, Mapping) else None
        defaulted = False
        if not requests and g.default_requests:
            cpu, memory = g.default_requests
            requests, defaulted = {"cpu": cpu, "memory": memory}, True
        requests = requests or {}
        cpu = cpu_milli(requests["cpu"]) if "cpu" in requests else None
        memory = bytes_of(requests["memory"]) if "memory" in requests else None
        for path, count in g.sidecars:
            # A pod requests what its containers do: one without requests leaves it unknown.
            extra = get(values, path) or {}
            extra = (extra.get("requests") if isinstance(extra, Mapping) else None) or {}
            cpu = (
                cpu + count * cpu_milli(extra["cpu"])
                if cpu is not None and "cpu" in extra
                else None
            )
            memory = (
                memory + count * bytes_of(extra["memory"])
                if memory is not None and "memory" in extra
                else None
            )
        selector: dict[str, str] = {}
        for path in g.node_selector:
            found = get(values, path) if path.startswith("global.") else _at(values, g.prefix, path)
            if isinstance(found, Mapping) and found:
                selector = dict(found)
                break
        tolerations: list[Mapping[str, Any]] = []
        for path in g.tolerations:
            found = _at(values, g.prefix, path)
            if isinstance(found, list):
                tolerations += [t for t in found if isinstance(t, Mapping)]
        out.append(
            Pods(
                release if release and g.what == chart else g.what,
                chart,
                1 if g.daemonset else replicas,
                cpu,
                memory,
                selector,
                tuple(tolerations),
                g.daemonset,
                g.tolerates_all,
                defaulted,
                1 if g.daemonset else most,
            )
        )
    return out


def _tolerates(pods: Pods, taint: Mapping[str, Any]) -> bool:
    if pods.tolerates_all and taint.get("effect") in ("NoSchedule", "PreferNoSchedule"):
        return True
    for t in pods.tolerations:
        if t.get("effect") not in (None, "", taint.get("effect")):
            continue
        if t.get("operator") == "Exists" and t.get("key") in (None, "", taint.get("key")):
            return True
        if t.get("key") == taint.get("key") and str(t.get("value")) == str(taint.get("value")):
            return True
    return False


def fits_pool(pods: Pods, pool: Pool) -> bool:
    labels_ok = all(pool.labels.get(k) == v for k, v in pods.node_selector.items())
    return labels_ok and all(_tolerates(pods, t) for t in pool.taints)


@dataclass
class PoolLoad:
    pool: Pool
    cpu_allocatable: int  # millicores, all minimum nodes
    memory_allocatable: int  # bytes
    node_cpu: int
    node_memory: int
    cpu: int = 0
    memory: int = 0
    pods: list[str] = field(default_factory=list)
    oversized: list[str] = field(default_factory=list)
    # The same at every HPA's maximum: what a pool of fixed size must also hold under load.
    peak_cpu: int = 0
    peak_memory: int = 0
    scaled: list[str] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return (
            self.cpu <= self.cpu_allocatable
            and self.memory <= self.memory_allocatable
            and not self.oversized
        )


@dataclass
class Capacity:
    pools: list[PoolLoad] = field(default_factory=list)
    unplaced: list[str] = field(default_factory=list)  # no pool takes them
    unmodelled: list[str] = field(default_factory=list)  # charts POD_GROUPS does not describe
    no_requests: list[str] = field(default_factory=list)
    unknown_sizes: list[str] = field(default_factory=list)
    # Pools of fixed size that cannot hold their HPAs' maximum replicas: a warning, not a
    # refusal (the pods run at their minimum; more would stay Pending under load).
    ceilings: list[str] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return not self.unplaced and not self.unknown_sizes and all(p.fits for p in self.pools)


def allocatable(size: str) -> tuple[int, int] | None:
    """(millicores, bytes) a DOKS node of `size` offers pods, or None for an unknown size."""
    table = prices()
    spec = table["droplets"].get(size)
    if spec is None:
        return None
    memory = table["allocatableMemoryGiB"].get(f"{spec['memoryGiB']:g}")
    if memory is None:
        return None
    managed = table["managedPodsPerNode"]
    cpu = spec["vcpus"] * 1000 - table["allocatableCpuReservedMilli"] - managed["cpuMilli"]
    return cpu, round(memory * 2**30) - managed["memoryMi"] * 2**20


def capacity(resources: Iterable[Mapping[str, Any]]) -> Capacity:
    resources = list(resources)
    check = Capacity()
    for pool in pools(resources):
        node = allocatable(pool.size)
        if node is None:
            check.unknown_sizes.append(f"{pool.name}: no allocatable figure for {pool.size}")
            continue
        n = pool.min_nodes
        check.pools.append(PoolLoad(pool, node[0] * n, node[1] * n, node[0], node[1]))
    all_pods: list[Pods] = []
    for r in resources:
        if r["type"] in HELM:
            chart = str(r["inputs"].get("chart"))
            release = str(r["inputs"].get("name") or r["name"])
            found = chart_pods(chart, r["inputs"].get("values") or {}, release)
            if found is None:
                check.unmodelled.append(f"{chart} ({r['name']})")
            else:
                all_pods += found
    for pods in all_pods:
        label = f"{pods.what} x{pods.replicas}" + (" per node" if pods.daemonset else "")
        if pods.cpu is None and pods.memory is None:
            check.no_requests.append(label)
        targets = [p for p in check.pools if fits_pool(pods, p.pool)]
        if not targets:
            check.unplaced.append(f"{label}: no pool matches {dict(pods.node_selector) or '{}'}")
            continue
        cpu, memory = pods.cpu or 0, pods.memory or 0
        if pods.daemonset:
            for load in targets:
                load.cpu += cpu * load.pool.min_nodes
                load.memory += memory * load.pool.min_nodes
                load.peak_cpu += cpu * load.pool.min_nodes
                load.peak_memory += memory * load.pool.min_nodes
                load.pods.append(f"{pods.what} x{load.pool.min_nodes}")
            continue
        # Pods that may run on several pools go where the most memory is left.
        load = max(targets, key=lambda p: (p.memory_allocatable - p.memory, p.pool.default))
        load.cpu += cpu * pods.replicas
        load.memory += memory * pods.replicas
        load.peak_cpu += cpu * pods.max_replicas
        load.peak_memory += memory * pods.max_replicas
        load.pods.append(f"{pods.what} x{pods.replicas}")
        if pods.max_replicas > pods.replicas:
            load.scaled.append(f"{pods.what} x{pods.max_replicas}")
        if cpu > load.node_cpu or memory > load.node_memory:
            load.oversized.append(f"{pods.what} requests more than one {load.pool.size} node")
    for load in check.pools:
        fixed = load.pool.max_nodes <= load.pool.min_nodes
        over = load.peak_cpu > load.cpu_allocatable or load.peak_memory > load.memory_allocatable
        if fixed and over and load.scaled:
            check.ceilings.append(
                f"{load.pool.name} (fixed at {load.pool.min_nodes} x {load.pool.size}) cannot "
                f"hold its HPAs' maximum ({', '.join(load.scaled)}): CPU {load.peak_cpu}m of "
                f"{load.cpu_allocatable}m, memory {_gib(load.peak_memory)} of "
                f"{_gib(load.memory_allocatable)}; replicas past what fits stay Pending"
            )
    return check


def _gib(value: int) -> str:
    return f"{value / 2**30:.1f} GiB"


def capacity_lines(check: Capacity, indent: str = "  ") -> list[str]:
    verdict = "fits" if check.fits else "DOES NOT FIT: refused"
    lines = [
        "capacity (platform pods' requests vs allocatable of the pools at minimum nodes, "
        f"tools/data/prices.json): {verdict}"
    ]
    for p in check.pools:
        mark = "" if p.fits else "  << over"
        lines.append(
            f"{indent}{p.pool.name} ({p.pool.min_nodes} x {p.pool.size}): CPU {p.cpu}m of "
            f"{p.cpu_allocatable}m, memory {_gib(p.memory)} of {_gib(p.memory_allocatable)}"
            f"{mark}"
        )
        lines += [f"{indent}  {o}" for o in p.oversized]
    lines += [f"{indent}unschedulable: {u}" for u in check.unplaced]
    lines += [f"{indent}at maximum replicas: {c}" for c in check.ceilings]
    lines += [f"{indent}unknown size: {u}" for u in check.unknown_sizes]
    if check.unmodelled:
        lines.append(f"{indent}charts not modelled: {', '.join(check.unmodelled)}")
    if check.no_requests:
        lines.append(
            f"{indent}no requests set (not counted, nor by the scheduler): "
            f"{', '.join(check.no_requests)}"
        )
    return lines
