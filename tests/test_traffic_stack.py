"""The traffic layer in whole-stack runs (issue 10): every authored object schema-valid against
its CRD (unknown fields rejected); production exposes `frontend` through the public Gateway,
has one DestinationRule with outlier detection per routed host, Sidecars scoped to the graph,
Flagger pinned and HA, and a Canary for `checkout` judged by its SLO's SLIs with no VS/DR of
ours for its host; staging shows the A/B split, the mirror and the fault; the canaried
workloads are still admitted by authorization and network policies; and the graph orders it."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from components.base import mesh
from components.observability.metrics import KPS_RELEASE, PROMETHEUS_URL
from components.slo import names as slo_names
from components.slo.rules import budget, num
from components.traffic import flagger as flagger_values
from components.traffic import names
from components.traffic.config import TrafficConfig
from components.traffic.resilience import RETRY_ON_TOKENS
from tests.conftest import STACKS, run_config, stack_config, stack_run
from tests.schema import validate_crd, validate_k8s
from tests.test_authorization import Request, Workload, allowed
from tests.test_metrics import unknown_paths
from tools.engine import Resource, Run
from tools.plan import chart as chart_of
from tools.plan import is_manifest, manifest

TRAFFIC = "service-mesh:traffic:TrafficManagement"
CHART = "kubernetes:helm.sh/v4:Chart"
VS = "kubernetes:networking.istio.io/v1:VirtualService"
DR = "kubernetes:networking.istio.io/v1:DestinationRule"
SIDECAR = "kubernetes:networking.istio.io/v1:Sidecar"
CANARY = "kubernetes:flagger.app/v1beta1:Canary"
TEMPLATE = "kubernetes:flagger.app/v1beta1:MetricTemplate"
AP = "kubernetes:security.istio.io/v1:AuthorizationPolicy"
NP = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
PLATFORM = (mesh.ROOT_NAMESPACE, mesh.INGRESS_NAMESPACE, mesh.EGRESS_NAMESPACE)


def children(run: Run) -> list[Resource]:
    return run.children(run.one(TRAFFIC))


def objects(run: Run, type_: str) -> list[dict[str, Any]]:
    return [manifest(r) for r in run.of_type(type_)]


def named(run: Run, type_: str, namespace: str, name: str) -> dict[str, Any]:
    (found,) = [
        o
        for o in objects(run, type_)
        if o["metadata"]["name"] == name and o["metadata"].get("namespace") == namespace
    ]
    return found


def fqdn(host: str, namespace: str) -> str:
    return host if "." in host else f"{host}.{namespace}.svc.cluster.local"


def hosts_of(vs: dict[str, Any]) -> set[str]:
    return {fqdn(h, vs["metadata"]["namespace"]) for h in vs["spec"]["hosts"]}


def http_destinations(vs: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for rule in vs["spec"].get("http", []):
        out += [d["destination"] for d in rule.get("route", [])]
        if "mirror" in rule:
            out.append(rule["mirror"])
    return out


# --- schemas --------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_every_traffic_object_is_schema_valid(stack):
    run = stack_run(stack)
    kinds = set()
    for r in children(run):
        if not is_manifest(r):
            continue
        obj = manifest(r)
        kinds.add(obj["kind"])
        group = obj["apiVersion"].split("/")[0]
        if group.endswith("istio.io") or group == "flagger.app":
            validate_crd(obj)
        else:
            validate_k8s(obj)
    assert {"VirtualService", "DestinationRule", "Sidecar"} <= kinds
    if stack == "production":
        assert {"Canary", "MetricTemplate", "Namespace", "NetworkPolicy"} <= kinds


# --- exposure -----------------------------------------------------------------------------


def test_production_exposes_frontend_through_the_public_gateway():
    run = stack_run("production")
    gateway = named(run, "kubernetes:networking.istio.io/v1:Gateway", "istio-ingress", "public")
    served = set(gateway["spec"]["servers"][1]["hosts"])
    public = [v for v in objects(run, VS) if v["spec"].get("gateways") == ["istio-ingress/public"]]
    assert (
        {h for v in public for h in v["spec"]["hosts"]}
        == served
        == {
            "shop.example.com",
            "www.example.com",
        }
    )
    for vs in public:
        assert vs["metadata"]["namespace"] == mesh.INGRESS_NAMESPACE
        (rule,) = vs["spec"]["http"]
        assert rule["match"] == [{"uri": {"prefix": "/"}}]
        assert rule["route"] == [
            {"destination": {"host": "frontend.shop.svc.cluster.local", "port": {"number": 8080}}}
        ]
        assert rule["timeout"] == "10s" and rule["retries"]["attempts"] == 2


# --- one DestinationRule per host, with outlier detection and every routed subset ----------


@pytest.mark.parametrize("stack", STACKS)
def test_each_routed_host_has_one_destination_rule_that_ejects_and_defines_its_subsets(stack):
    run = stack_run(stack)
    rules: dict[str, list[dict[str, Any]]] = {}
    for dr in objects(run, DR):
        rules.setdefault(fqdn(dr["spec"]["host"], dr["metadata"]["namespace"]), []).append(dr)
    assert all(len(v) == 1 for v in rules.values()), "one DestinationRule per host"
    routed = 0
    for vs in objects(run, VS):
        for dest in http_destinations(vs):
            host = fqdn(dest["host"], vs["metadata"]["namespace"])
            if host.split(".")[1] in PLATFORM:
                continue
            (dr,) = rules[host]
            detection = dr["spec"]["trafficPolicy"]["outlierDetection"]
            assert detection["consecutive5xxErrors"] > 0
            # Envoy ejects at least one host and Istio disables panic routing unless this is
            # set: without it a pool of one answers 503 for the whole ejection.
            assert detection["minHealthPercent"] > 0
            if "subset" in dest:
                assert dest["subset"] in {s["name"] for s in dr["spec"].get("subsets", [])}
            routed += 1
    assert routed >= 3


@pytest.mark.parametrize("stack", STACKS)
def test_resilience_is_the_tiers_and_retries_only_what_never_ran(stack):
    run = stack_run(stack)
    tier = TrafficConfig.PROFILES[stack].defaults["resilience"]
    for vs in objects(run, VS):
        if vs["metadata"]["labels"]["app.kubernetes.io/name"] != "traffic":
            continue
        for rule in vs["spec"]["http"]:
            if "fault" in rule:
                assert "timeout" not in rule and "retries" not in rule
                continue
            assert rule["timeout"] == tier["timeout"]
            tokens = rule["retries"]["retryOn"].split(",")
            assert set(tokens) <= set(RETRY_ON_TOKENS) and "5xx" not in tokens
            assert "reset" not in tokens and "gateway-error" not in tokens


# --- staging: A/B split, mirror, fault -------------------------------------------------------


def test_staging_shows_a_header_split_a_mirror_and_a_fault():
    run = stack_run("staging")
    vs = named(run, VS, "shop", "checkout")
    by_name = {r["name"]: r for r in vs["spec"]["http"]}
    assert by_name["beta"]["match"][0] == {"headers": {"x-variant": {"exact": "beta"}}}
    assert by_name["beta"]["route"][0]["destination"]["subset"] == "v2"
    assert by_name["default-mirrored"]["mirror"]["subset"] == "v2"  # reads only
    assert "mirror" not in by_name["default"]
    assert by_name["delay-drill"]["fault"]["delay"]["fixedDelay"] == "2s"
    assert not any(
        "fault" in r
        for v in objects(stack_run("production"), VS)
        for r in v["spec"].get("http", [])
    )


# --- canaries ---------------------------------------------------------------------------------


def test_flagger_owns_the_canaried_host():
    run = stack_run("production")
    owned = {names.fqdn(n, "shop") for n in ("checkout", "checkout-primary", "checkout-canary")}
    for vs in objects(run, VS):
        assert not hosts_of(vs) & owned, vs["metadata"]
    for dr in objects(run, DR):
        assert fqdn(dr["spec"]["host"], dr["metadata"]["namespace"]) not in owned
    canary = named(run, CANARY, "shop", "checkout")
    spec = canary["spec"]
    assert spec["provider"] == "istio" and spec["targetRef"]["name"] == "checkout"
    assert spec["service"]["trafficPolicy"]["tls"] == {"mode": "ISTIO_MUTUAL"}
    # Istio reads the protocol of Flagger's Services from appProtocol, whatever the port name.
    assert spec["service"]["appProtocol"] == "http"
    assert spec["service"]["trafficPolicy"]["outlierDetection"]["consecutive5xxErrors"] == 5
    assert spec["service"]["trafficPolicy"]["outlierDetection"]["minHealthPercent"] == 50
    assert spec["analysis"]["stepWeight"] == 10 and spec["analysis"]["maxWeight"] == 50
    # Load before the first step too (a query without data is a failed check in Flagger 1.44),
    # and each run shorter than the 1m interval (the load tester skips a command still running).
    warm_up, during = spec["analysis"]["webhooks"]
    assert (warm_up["type"], during["type"]) == ("pre-rollout", "rollout")
    for hook in (warm_up, during):
        assert hook["url"] == "http://flagger-loadtester.flagger/"
        assert hook["retries"] == 2  # a briefly absent load tester is not a failed check
        assert hook["metadata"] == {
            "type": "cmd",
            "cmd": "hey -z 50s -q 10 -c 2 -m GET http://checkout-canary.shop:8080/api/cart",
        }


@pytest.mark.parametrize("stack", STACKS)
def test_no_plan_mirrors_a_request_that_changes_something(stack):
    """A mirrored copy is served for real: only GET, HEAD and OPTIONS may be copied."""
    from components.traffic.routing import MIRRORED_METHODS

    mirrored = 0
    for vs in objects(stack_run(stack), VS):
        for rule in vs["spec"].get("http", []):
            if "mirror" not in rule:
                continue
            mirrored += 1
            for block in rule["match"]:
                method = block["method"]
                assert method.get("exact") in MIRRORED_METHODS or method == {
                    "regex": "|".join(MIRRORED_METHODS)
                }, (vs["metadata"]["name"], rule["name"])
    assert mirrored or stack != "staging", "staging mirrors checkout to v2"


def test_a_canary_with_an_autoscaler_gives_its_primary_a_copy(tmp_path):
    """Flagger copies the HPA named in autoscalerRef for the primary; without one the primary
    is never autoscaled. The committed canary has none, so it carries no reference."""
    assert "autoscalerRef" not in named(stack_run("production"), CANARY, "shop", "checkout")["spec"]
    config = stack_config("production")
    services = copy.deepcopy(config["service-mesh:services"])
    (checkout,) = [s for s in services if s["name"] == "checkout"]
    checkout["traffic"]["canary"]["autoscaler"] = "checkout"
    run = run_config(tmp_path, "production", {**config, "service-mesh:services": services})
    assert run.error is None, run.error
    canary = named(run, CANARY, "shop", "checkout")
    assert canary["spec"]["autoscalerRef"] == {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "name": "checkout",
    }
    validate_crd(canary)
    checkout["traffic"]["canary"]["autoscaler"] = "Checkout HPA"
    (tmp_path / "bad").mkdir()
    bad = run_config(tmp_path / "bad", "production", {**config, "service-mesh:services": services})
    assert bad.error is not None and "autoscaler" in str(bad.error) and bad.resources == []


@pytest.mark.parametrize(("interval", "window"), [("1m", "50s"), ("30s", "20s"), ("10s", "5s")])
def test_a_load_test_run_ends_before_the_next_interval_starts_it(interval, window):
    from components.traffic.canary import load_window

    assert load_window(interval) == window


def test_the_canary_is_judged_by_the_slis_of_its_burn_rate_alerts():
    run = stack_run("production")
    canary = named(run, CANARY, "shop", "checkout")
    metrics = canary["spec"]["analysis"]["metrics"]
    rule = named(
        run,
        "kubernetes:monitoring.coreos.com/v1:PrometheusRule",
        "monitoring",
        "slo-checkout-availability",
    )
    recorded = {
        r["labels"][slo_names.SLI_LABEL]: r["expr"]
        for g in rule["spec"]["groups"]
        for r in g["rules"]
        if r.get("record") == slo_names.sli_error("5m")
    }
    targets = {"availability": 99.9, "latency": 99}
    assert {m["templateRef"]["name"] for m in metrics} == {
        f"slo-checkout-availability-{sli}" for sli in targets
    }
    for m in metrics:
        sli = m["templateRef"]["name"].rsplit("-", 1)[1]
        template = named(run, TEMPLATE, m["templateRef"]["namespace"], m["templateRef"]["name"])
        assert template["spec"]["provider"] == {"type": "prometheus", "address": PROMETHEUS_URL}
        assert f"{KPS_RELEASE}-prometheus.{mesh.MONITORING_NAMESPACE}" in PROMETHEUS_URL
        # The alert's SLI, on the workload under analysis, over the analysis interval, as a
        # burn rate of the objective's budget.
        # (checkout is canaried: its rules count the Services Flagger puts in front of it too)
        service = (
            'destination_service_name=~"checkout|checkout-primary|checkout-canary",'
            'destination_service_namespace="shop"'
        )
        workload = (
            'destination_workload="{{ target }}",destination_workload_namespace="{{ namespace }}"'
        )
        same_sli = recorded[sli].replace(service, workload).replace("[5m]", "[{{ interval }}]")
        assert template["spec"]["query"] == f"({same_sli}) / {num(budget(targets[sli]))}"
        assert m["thresholdRange"] == {"max": 1} and m["interval"] == "1m"


def test_flagger_and_its_load_tester_are_pinned_ha_and_use_chart_keys():
    run = stack_run("production")
    charts = {
        chart_of(r)["name"]: chart_of(r)
        for r in run.of_type(CHART)
        if r.parent == run.one(TRAFFIC).urn
    }
    flagger, loadtester = charts["flagger"], charts["flagger-loadtester"]
    assert (flagger["chart"], flagger["version"], flagger["repository"]) == (
        "flagger",
        "1.44.0",
        "https://flagger.app",
    )
    assert (loadtester["chart"], loadtester["version"]) == ("loadtester", "0.38.0")
    assert flagger["namespace"] == loadtester["namespace"] == names.FLAGGER_NAMESPACE
    values = flagger["values"]
    assert values["meshProvider"] == "istio" and values["metricsServer"] == PROMETHEUS_URL
    assert values["leaderElection"] == {"enabled": True, "replicaCount": 2}
    assert values["podDisruptionBudget"] == {"enabled": True, "minAvailable": 1}
    assert values["podLabels"] == {mesh.REVISION_LABEL: "stable"}
    assert loadtester["values"]["podLabels"] == {mesh.REVISION_LABEL: "stable"}


@pytest.mark.parametrize("tier", STACKS)
def test_flagger_values_keys_exist_in_the_pinned_charts(tier):
    cfg = TrafficConfig.model_validate(TrafficConfig.PROFILES[tier].defaults)
    assert unknown_paths(flagger_values.flagger_values(cfg.flagger, "stable"), "flagger") == []
    values = flagger_values.loadtester_values(cfg.loadtester, "stable")
    assert unknown_paths(values, "loadtester") == []
    ha = cfg.flagger.replicas > 1
    assert flagger_values.flagger_values(cfg.flagger, "x")["podDisruptionBudget"]["enabled"] == ha


def test_the_key_path_check_catches_a_misspelled_flagger_key():
    values = flagger_values.flagger_values(
        TrafficConfig.model_validate(TrafficConfig.PROFILES["production"].defaults).flagger, "x"
    )
    values["leaderElection"]["replicas"] = 2
    assert unknown_paths(values, "flagger") == ["leaderElection.replicas"]


def test_dev_installs_no_flagger_without_canaries():
    run = stack_run("dev")
    assert not run.of_type(CANARY) and not [r for r in run.of_type(CHART) if "flagger" in r.name]
    assert objects(run, SIDECAR) and objects(run, DR)


# --- authorization and network policies admit the generated workloads ----------------------


def policies(run: Run) -> list[dict[str, Any]]:
    return objects(run, AP)


@pytest.mark.parametrize("labels", [{"app": "checkout"}, {"app": "checkout-primary"}])
def test_canary_and_primary_admit_their_callers_and_the_load_tester_only(labels):
    aps = policies(stack_run("production"))
    workload = Workload("shop", labels)
    frontend = mesh.principal("shop", "frontend")
    assert allowed(aps, workload, Request(frontend, "shop", "POST", "/api/checkout", 8080))
    tester = names.LOADTESTER_PRINCIPAL
    assert allowed(aps, workload, Request(tester, "flagger", "GET", "/api/cart", 8080))
    assert not allowed(aps, workload, Request(tester, "flagger", "POST", "/api/checkout", 8080))
    other = mesh.principal("shop", "payments")
    assert not allowed(aps, workload, Request(other, "shop", "GET", "/api/cart", 8080))
    assert not allowed(
        aps,
        Workload("shop", {"app": "payments"}),
        Request(tester, "flagger", "POST", "/payments.v1.Payments/Pay", 9090),
    )


def test_the_webhook_admits_flagger_only():
    aps = policies(stack_run("production"))
    tester = Workload(names.FLAGGER_NAMESPACE, dict(names.LOADTESTER_LABELS))
    hook = Request(names.FLAGGER_PRINCIPAL, "flagger", "POST", "/", names.LOADTESTER_PORT)
    assert allowed(aps, tester, hook)
    frontend = mesh.principal("shop", "frontend")
    assert not allowed(aps, tester, Request(frontend, "shop", "POST", "/", names.LOADTESTER_PORT))
    assert not allowed(aps, tester, Request(None, None, "POST", "/", names.LOADTESTER_PORT))


def test_network_policies_open_the_load_test_both_ways():
    run = stack_run("production")
    into_shop = named(run, NP, "shop", "allow-from-loadtester")["spec"]
    (rule,) = into_shop["ingress"]
    assert rule["from"] == [
        {
            "namespaceSelector": {"matchLabels": {mesh.NAMESPACE_NAME_LABEL: "flagger"}},
            "podSelector": {"matchLabels": dict(names.LOADTESTER_LABELS)},
        }
    ]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8080}]
    out = named(run, NP, "flagger", "loadtester-egress")["spec"]
    to_shop = [
        e
        for e in out["egress"]
        if e["to"][0]["namespaceSelector"]["matchLabels"][mesh.NAMESPACE_NAME_LABEL] == "shop"
    ]
    assert to_shop == [
        {
            "to": [{"namespaceSelector": {"matchLabels": {mesh.NAMESPACE_NAME_LABEL: "shop"}}}],
            "ports": [{"protocol": "TCP", "port": 8080}],
        }
    ]
    webhook_in = named(run, NP, "flagger", "loadtester-ingress")["spec"]
    assert webhook_in["ingress"][0]["from"] == [
        {"podSelector": {"matchLabels": dict(names.FLAGGER_POD_LABELS)}}
    ]


# --- sidecars in the committed graph -------------------------------------------------------


def egress_hosts(run: Run, namespace: str, name: str) -> set[str]:
    return set(named(run, SIDECAR, namespace, name)["spec"]["egress"][0]["hosts"])


def test_production_sidecars_see_their_callees_only():
    run = stack_run("production")
    checkout = {
        f"shop/{names.fqdn(n, 'shop')}" for n in ("checkout", "checkout-primary", "checkout-canary")
    }
    payments = {"shop/payments.shop.svc.cluster.local"}
    mesh_hosts = checkout | payments | {"shop/frontend.shop.svc.cluster.local"}
    assert egress_hosts(run, "shop", "frontend") & mesh_hosts == checkout
    for name in ("checkout", "checkout-primary"):
        assert egress_hosts(run, "shop", name) & mesh_hosts == payments
    assert egress_hosts(run, "shop", "payments") & mesh_hosts == set()
    assert egress_hosts(run, "shop", "default") & mesh_hosts == set()
    assert egress_hosts(run, "flagger", "loadtester") & mesh_hosts == checkout
    primary = named(run, SIDECAR, "shop", "checkout-primary")["spec"]["workloadSelector"]
    assert primary == {"labels": {"app": "checkout-primary"}}


# --- ordering -----------------------------------------------------------------------------


def test_the_graph_orders_flagger_and_the_canary():
    run = stack_run("production")

    def urn(type_: str, name: str) -> str:
        return run.one(type_, name).urn

    canary = run.one(CANARY, "shop-checkout")
    flagger = urn(CHART, "flagger")
    loadtester = urn(CHART, "flagger-loadtester")
    templates = [r.urn for r in run.of_type(TEMPLATE)]
    primary_policy = urn(AP, "shop-allow-checkout-primary")
    assert {flagger, loadtester, primary_policy, *templates} <= set(canary.dependencies)
    for t in run.of_type(TEMPLATE):
        assert flagger in t.dependencies
    kps = urn("kubernetes:helm.sh/v3:Release", KPS_RELEASE)
    istiod = [
        r.urn for r in run.of_type("kubernetes:helm.sh/v3:Release") if r.name.startswith("istiod-")
    ]
    assert kps in run.one(CHART, "flagger").dependencies
    for name in ("flagger", "flagger-loadtester"):
        assert set(istiod) <= set(run.one(CHART, name).dependencies)
    for r in children(run):
        if r.type in (VS, DR, SIDECAR):
            assert set(istiod) <= set(r.dependencies), r.name


@pytest.mark.parametrize(
    ("canary", "exposed"),
    [
        ({"kind": "progressive"}, False),
        (
            {"kind": "ab", "match": [{"headers": {"x-beta": {"exact": "1"}}}, {"cookie": "b=1"}]},
            True,
        ),
        ({"kind": "mirror", "analysis": {"mirrorWeight": 20, "iterations": 5}}, False),
    ],
)
def test_every_canary_kind_is_schema_valid_and_shaped_as_flagger_reads_it(canary, exposed):
    from components import config as platform_config
    from components.traffic import canary as canaries
    from tests.test_traffic_checks import raw_config, traffic

    data, secrets = raw_config("production")
    load = {"path": "/api/cart"}
    if canary["kind"] == "mirror":  # 20% mirrored: qps 50 x 2 x 50 s gives the canary 1,000
        load["qps"] = 50
    traffic(data, "checkout")["canary"] = {**canary, "loadTest": load}
    if canary["kind"] == "mirror":  # refused for a service that takes writes: reads only here
        for caller in next(s for s in data["services"] if s["name"] == "checkout")["callers"]:
            caller["methods"] = ["GET"]
    if exposed:
        # checkout alone on www: frontend keeps shop.example.com
        next(s for s in data["services"] if s["name"] == "frontend")["ingress"]["hosts"] = [
            "shop.example.com"
        ]
        next(s for s in data["services"] if s["name"] == "checkout")["ingress"] = {
            "paths": ["/"],
            "hosts": ["www.example.com"],
        }
    cfg = platform_config.parse(data, secrets)
    svc = cfg.graph.by_name["checkout"]
    obj = canaries.canary(
        svc, cfg.traffic.resilience, cfg.traffic.canary, cfg.ingress.hosts, cfg.slos.objectives
    )
    validate_crd(obj)
    for template in canaries.metric_templates(svc, cfg.slos.objectives):
        validate_crd(template)
    analysis, service = obj["spec"]["analysis"], obj["spec"]["service"]
    cmd = analysis["webhooks"][0]["metadata"]["cmd"]
    if canary["kind"] == "ab":
        assert analysis["iterations"] == 10 and "stepWeight" not in analysis
        assert analysis["match"] == [
            {"headers": {"x-beta": {"exact": "1"}}},
            {"headers": {"cookie": {"regex": "^(.*?;\\s*)?(b=1)(;.*)?$"}}},
        ]
        assert "-H 'x-beta: 1' http://checkout.shop:8080/api/cart" in cmd
        assert service["gateways"] == ["istio-ingress/public", "mesh"]
        assert service["hosts"] == ["www.example.com"]
    elif canary["kind"] == "mirror":
        assert analysis["mirror"] is True and analysis["mirrorWeight"] == 20
        assert analysis["iterations"] == 5 and cmd.endswith("http://checkout.shop:8080/api/cart")
    else:
        assert cmd.endswith("http://checkout-canary.shop:8080/api/cart")
        assert "gateways" not in service
