"""Monthly cost and capacity of the three stacks against figures checked by hand from the
profiles, the stack files and the dated price table; a platform that does not fit its minimum
pools is refused, by `tools.plan` (exit 1) and by the review."""

from __future__ import annotations

import copy
import json
from datetime import date

import pytest

from tests.conftest import stack_config, stack_run, write_stack_file
from tests.forked import run_module
from tools import cost as cost_tool
from tools.review_capacity import POD_GROUPS, capacity

GIB = 2**30
MIB = 2**20


def records(stack: str) -> list[dict]:
    return [r.to_json() for r in stack_run(stack).resources]


def test_the_price_table_is_dated_and_names_its_sources():
    table = cost_tool.prices()
    assert date.fromisoformat(table["asOf"]) <= date.today()
    for key in ("droplets", "haControlPlane", "loadBalancerNode", "volumeGiB", "spaces"):
        assert key in table["sources"] and "digitalocean.com" in table["sources"][key]
    assert "allocatable" in table["sources"]
    for size, spec in table["droplets"].items():
        assert f"{spec['memoryGiB']:g}" in table["allocatableMemoryGiB"], size


# Hand-checked (prices.json of 2026-12-01: s-2vcpu-4gb 24, s-4vcpu-8gb 48, HA control plane 40,
# load balancer 12 per size unit, volumes 0.10/GiB, Spaces 5):
# dev: system 1 x s-2vcpu-4gb = 24; workload 1-3 x s-2vcpu-4gb = 24-72; LB 1 unit = 12;
#   volumes prometheus 20 + alertmanager 1 + grafana 5 + loki 10 + tempo 10 = 46 GiB = 4.60;
#   no HA, logs on the filesystem (no bucket): 64.60-112.60.
# staging: system 2 x 24 = 48; workload 2-5 x 48 = 96-240; HA 40; LB 12; volumes prometheus
#   2 x 50 + alertmanager 2 x 2 + grafana 5 + loki 30 + tempo 20 = 159 GiB = 15.90: 211.90-355.90.
# production: system 3 x 48 = 144; workload 3-20 (maxNodes 20 in the stack file) x 48 =
#   144-960; HA 40; LB 2 units = 24; volumes prometheus 2 x 250 + alertmanager 3 x 5 + grafana
#   10 + loki 3 x 20 + tempo 50 = 635 GiB = 63.50; Spaces 5: 420.50-1,236.50.
COSTS = {
    "dev": (64.60, 112.60, 46, False),
    "staging": (211.90, 355.90, 159, False),
    "production": (420.50, 1236.50, 635, True),
}


@pytest.mark.parametrize("stack", sorted(COSTS))
def test_monthly_cost_of_each_stack(stack):
    low, high, volume_gib, spaces = COSTS[stack]
    got = cost_tool.stack_cost(records(stack))
    assert (round(got.minimum, 2), round(got.maximum, 2)) == (low, high)
    assert sum(v.count * v.size_gib for v in cost_tool.volumes(records(stack))) == volume_gib
    assert any(w == "Spaces" for w, *_ in got.items) is spaces
    assert got.unpriced == []


# Hand-checked requests (the plan's chart values) against allocatable (prices.json: 4 GB node
# 2.5 GiB, 8 GB node 6 GiB; CPU = vCPUs). On every node of both pools: node-exporter (it
# tolerates every taint) and the log collector (it tolerates the system pool's).
# dev system (1 x s-2vcpu-4gb: 2000m, 2.5 GiB): istiod 1 x (250m, 512Mi) + metrics-server
#   1 x (100m, 200Mi) + node-exporter (10m, 32Mi) + log collector (50m, 128Mi) = 410m, 872Mi.
#   workload: two gateways 1 x (100m, 128Mi) + kiali (10m, 64Mi) + prometheus (100m, 512Mi)
#   + alertmanager (10m, 64Mi), each with a config reloader (10m, 32Mi) + grafana (50m,
#   128Mi) with two sidecars 2 x (10m, 64Mi) + operator (50m, 64Mi) + kube-state-metrics
#   (10m, 64Mi) + node-exporter (10m, 32Mi) + loki (100m, 256Mi) + loki gateway (10m, 32Mi) +
#   tempo (50m, 256Mi) + log collector (50m, 128Mi) + cert-manager controller, webhook,
#   cainjector (10m, 64Mi), (10m, 32Mi), (10m, 64Mi) = 720m, 2208Mi.
# staging system (2 x s-2vcpu-4gb: 4000m, 5 GiB): istiod 2 x (500m, 1Gi) + metrics-server
#   2 x (100m, 200Mi) + node-exporter 2 x (10m, 32Mi) + log collector 2 x (100m, 128Mi)
#   = 1420m, 2768Mi. workload (2 x s-4vcpu-8gb: 8000m, 12 GiB): ingress 2 x (250m, 256Mi) +
#   egress 2 x (100m, 128Mi) + kiali (20m, 128Mi) + prometheus 2 x (250m, 1Gi) + alertmanager
#   2 x (10m, 64Mi), each pod with a config reloader (10m, 32Mi) + grafana (50m, 128Mi) with
#   2 x (10m, 64Mi) + operator (50m, 128Mi) + kube-state-metrics (20m, 128Mi) + node-exporter
#   2 x (10m, 32Mi) + loki (200m, 512Mi) + loki gateway (20m, 64Mi) + tempo (100m, 512Mi) +
#   log collector 2 x (100m, 128Mi) + cert-manager 2 x (10m, 64Mi), webhook 2 x (10m, 32Mi),
#   cainjector (10m, 64Mi) = 2010m, 5376Mi.
# production system (3 x s-4vcpu-8gb: 12000m, 18 GiB): istiod 3 x (1, 2Gi) + metrics-server
#   2 x (100m, 200Mi) + node-exporter 3 x (20m, 32Mi) + log collector 3 x (100m, 256Mi)
#   = 3560m, 7408Mi. workload: ingress 3 x (500m, 512Mi) + egress 2 x (250m, 256Mi) + kiali
#   (50m, 128Mi) + prometheus 2 x (500m, 2Gi) + alertmanager 3 x (20m, 128Mi), each pod with a
#   config reloader (20m, 32Mi) + grafana (100m, 256Mi) with 2 x (20m, 96Mi) + operator (100m,
#   128Mi) + kube-state-metrics (50m, 128Mi) + node-exporter 3 x (20m, 32Mi) + loki 3 x (250m,
#   1Gi) + loki gateway 2 x (20m, 64Mi) + tempo (250m, 1Gi) + log collector 3 x (100m, 256Mi)
#   + cert-manager 2 x (50m, 128Mi), webhook 2 x (20m, 64Mi), cainjector (20m, 128Mi) =
#   5060m, 13120Mi, plus Flagger's pods where a canary is declared.
SYSTEM = {
    "dev": (410, 872 * MIB, 2000, 2.5 * GIB),
    "staging": (1420, 2768 * MIB, 4000, 5 * GIB),
    "production": (3560, 7408 * MIB, 12000, 18 * GIB),
}
_FLAGGER = ("flagger", "loadtester")
WORKLOAD = {
    "dev": (720, 2208 * MIB),
    "staging": (2010, 5376 * MIB),
    "production": (5060, 13120 * MIB),
}


@pytest.mark.parametrize("stack", sorted(SYSTEM))
def test_capacity_of_each_stack(stack):
    check = capacity(records(stack))
    assert check.fits and check.unplaced == [] and check.unmodelled == []
    system, workload = check.pools
    assert system.pool.default and not workload.pool.default
    assert (system.cpu, system.memory, system.cpu_allocatable, system.memory_allocatable) == (
        SYSTEM[stack]
    )
    flagger = [p for p in workload.pods if p.startswith("flagger")]
    cpu, memory = WORKLOAD[stack]
    if not flagger:
        assert (workload.cpu, workload.memory) == (cpu, memory)
    else:
        assert workload.cpu > cpu and workload.memory > memory
        without = [r for r in records(stack) if r["inputs"].get("chart") not in _FLAGGER]
        _, platform = capacity(without).pools
        assert (platform.cpu, platform.memory) == (cpu, memory)
    assert any(p.startswith("istio-ingressgateway") for p in workload.pods)


def test_every_chart_the_stacks_install_is_modelled():
    charts = {
        r.inputs.get("chart")
        for s in SYSTEM
        for r in stack_run(s).resources
        if r.type in cost_tool.HELM
    }
    assert charts <= set(POD_GROUPS), f"describe in POD_GROUPS: {sorted(charts - set(POD_GROUPS))}"


def _shrunk(stack: str, size: str) -> list[dict]:
    out = copy.deepcopy(records(stack))
    for r in out:
        if r["type"] == cost_tool.CLUSTER:
            r["inputs"]["nodePool"]["size"] = size
    return out


def test_a_platform_that_does_not_fit_its_minimum_pools_is_refused():
    # 3 x s-2vcpu-2gb offers 3 x 1 GiB; istiod alone requests 3 x 2 GiB, and one istiod pod
    # (2 GiB) is larger than a node.
    check = capacity(_shrunk("production", "s-2vcpu-2gb"))
    assert not check.fits
    system = check.pools[0]
    assert system.memory > system.memory_allocatable
    assert any("istiod" in o for o in system.oversized)
    lines, fits = cost_tool.plan_lines(_shrunk("production", "s-2vcpu-2gb"))
    assert not fits and any("DOES NOT FIT" in line for line in lines)


def _istiod_max(stack: str, most: int) -> list[dict]:
    out = copy.deepcopy(records(stack))
    for r in out:
        if r["type"] in cost_tool.HELM and r["inputs"].get("chart") == "istiod":
            r["inputs"]["values"]["autoscaleMax"] = most
    return out


def test_a_fixed_pool_that_cannot_hold_its_hpas_maximum_is_said_so():
    """The system pool does not autoscale: istiod's HPA maximum must fit it too, or replicas
    past what fits stay Pending under load. Said, not refused (the platform runs at its
    minimum); every committed stack holds its maximum; an autoscaled pool is never flagged."""
    for stack in SYSTEM:
        assert capacity(records(stack)).ceilings == [], stack
    check = capacity(_istiod_max("production", 10))
    (ceiling,) = check.ceilings
    assert check.fits and "mesh-production-system" in ceiling and "istiod-1-30 x10" in ceiling
    assert "21.2 GiB of 18.0 GiB" in ceiling
    lines, fits = cost_tool.plan_lines(_istiod_max("production", 10))
    assert fits and any(line.strip().startswith("at maximum replicas:") for line in lines)
    # The ingress gateway scales on the workload pool, which the autoscaler grows: no ceiling.
    gateways = copy.deepcopy(records("production"))
    for r in gateways:
        if r["type"] in cost_tool.HELM and r["inputs"].get("chart") == "gateway":
            r["inputs"]["values"]["autoscaling"]["maxReplicas"] = 500
    assert capacity(gateways).ceilings == []


def test_an_unknown_size_is_unpriced_not_guessed():
    got = cost_tool.stack_cost(_shrunk("dev", "m-2vcpu-16gb"))
    assert any("m-2vcpu-16gb" in u for u in got.unpriced)
    assert not capacity(_shrunk("dev", "m-2vcpu-16gb")).fits


def test_the_plan_tool_prints_cost_and_capacity_and_refuses_what_does_not_fit(tmp_path):
    config = stack_config("production")
    config["service-mesh:cluster"] = {
        **config["service-mesh:cluster"],
        "systemPool": {"size": "s-2vcpu-2gb", "nodeCount": 3},
    }
    small = write_stack_file(tmp_path, config)
    args = ["production", "--stack-file", str(small), "--out", str(tmp_path / "plan")]
    done = run_module("tools.plan", *args)
    assert done.returncode == 1, done.stderr
    assert "monthly cost (USD" in done.stdout and "DOES NOT FIT: refused" in done.stdout
    assert (tmp_path / "plan" / "resources.json").is_file(), "written, then refused"
    assert json.loads((tmp_path / "plan" / "digests.json").read_text())["resources"]


def test_requests_are_read_where_each_chart_takes_them_and_its_defaults_counted():
    """Pinned charts' own layouts (their values.yaml): tempo's container resources under
    `tempo:`; kiali, flagger and its load tester request 10m/64Mi, 10m/32Mi and 10m/64Mi
    when the release sets nothing."""
    from tools.review_capacity import chart_pods

    requests = {"requests": {"cpu": "250m", "memory": "1Gi"}}
    (tempo,) = chart_pods("tempo", {"tempo": {"resources": requests}})
    assert (tempo.cpu, tempo.memory, tempo.defaulted) == (250, 2**30, False)
    (unset,) = chart_pods("tempo", {"resources": requests})  # not where the chart reads it
    assert unset.cpu is None and unset.memory is None
    for chart, cpu, memory in (
        ("kiali-server", 10, 64 * 2**20),
        ("flagger", 10, 32 * 2**20),
        ("loadtester", 10, 64 * 2**20),
    ):
        (pods,) = chart_pods(chart, {})
        assert (pods.cpu, pods.memory, pods.defaulted) == (cpu, memory, True), chart


def test_a_pod_s_requests_count_its_sidecars_and_are_unknown_without_theirs():
    """Prometheus and Alertmanager pods run the operator's config reloader, Grafana's two
    sidecars: a pod requests what all its containers do, and a sidecar without requests leaves
    the pod listed as one whose requests are not set."""
    from tools.review_capacity import chart_pods

    kps = next(r for r in records("dev") if r["inputs"].get("chart") == "kube-prometheus-stack")
    values = copy.deepcopy(kps["inputs"]["values"])
    pods = {p.what: p for p in chart_pods("kube-prometheus-stack", values)}
    assert (pods["prometheus"].cpu, pods["prometheus"].memory) == (110, (512 + 32) * MIB)
    assert (pods["grafana"].cpu, pods["grafana"].memory) == (70, (128 + 2 * 64) * MIB)
    del values["prometheusOperator"]["prometheusConfigReloader"]
    del values["grafana"]["sidecar"]["resources"]
    pods = {p.what: p for p in chart_pods("kube-prometheus-stack", values)}
    for what in ("prometheus", "alertmanager", "grafana"):
        assert pods[what].cpu is None and pods[what].memory is None, what
    assert pods["prometheus-operator"].cpu == 50  # no sidecar: unaffected


@pytest.mark.parametrize("stack", sorted(SYSTEM))
def test_every_platform_pod_requests_cpu_and_memory(stack):
    """No pod of the platform is BestEffort (evicted first, invisible to the scheduler and to
    this check): each chart's pods get requests from our values or the chart's own defaults,
    and a memory limit from ours wherever we set requests."""
    check = capacity(records(stack))
    assert check.no_requests == []
    for r in records(stack):
        if r["type"] != cost_tool.HELM or r["inputs"].get("chart") in _FLAGGER:
            continue
        for path, found in _resources_in(r["inputs"].get("values") or {}):
            assert set(found) == {"requests", "limits"}, (r["name"], path)
            assert {"cpu", "memory"} <= set(found["requests"]), (r["name"], path)
            assert "memory" in found["limits"], (r["name"], path)


def _resources_in(values, path=""):
    """Every `resources` map a values tree sets (container resources, not storage requests)."""
    if not isinstance(values, dict):
        return
    for key, value in values.items():
        here = f"{path}.{key}" if path else key
        if key == "resources" and isinstance(value, dict) and "requests" in value:
            if "storage" not in value["requests"]:
                yield here, value
        else:
            yield from _resources_in(value, here)


def test_a_stack_overrides_one_pods_sizes_and_a_bad_one_is_refused(tmp_path):
    from tests.conftest import run_config

    config = stack_config("production")
    config["service-mesh:observability"] = {
        **config.get("service-mesh:observability", {}),
        "resources": {"prometheus": {"memoryRequest": "3Gi", "memoryLimit": "8Gi"}},
    }
    run = run_config(tmp_path, "production", config)
    assert run.error is None, run.error
    (kps,) = [r for r in run.resources if r.inputs.get("chart") == "kube-prometheus-stack"]
    spec = kps.inputs["values"]["prometheus"]["prometheusSpec"]["resources"]
    assert spec == {"requests": {"cpu": "500m", "memory": "3Gi"}, "limits": {"memory": "8Gi"}}

    config["service-mesh:observability"]["resources"] = {
        "loki": {"memoryRequest": "4Gi", "memoryLimit": "1Gi"}
    }
    refused = run_config(tmp_path, "production", config)
    assert refused.resources == []
    assert "observability.resources.loki" in str(refused.error)
    assert "memoryRequest (4Gi) must not exceed memoryLimit" in str(refused.error)
