"""The observability layer in the whole program, per stack: pinned charts with the environment's
HA settings, the Istio monitors and Telemetry wired to the right dependencies and validated
against their CRDs, the tracing provider in istiod's mesh config matching Tempo's Service,
secrets only as secrets, and bad observability config refused before anything is registered."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.base import pins
from components.base.model import ConfigError
from components.observability import metrics
from tests.conftest import STACKS, run_config, stack_config, stack_run
from tests.schema import validate_crd, validate_istio, validate_k8s
from tools.engine import Resource, Run
from tools.plan import manifest

RELEASE = "kubernetes:helm.sh/v3:Release"
CHART = "kubernetes:helm.sh/v4:Chart"
SCHEMAS = Path(__file__).parent / "schemas"
PODMON = "kubernetes:monitoring.coreos.com/v1:PodMonitor"
SVCMON = "kubernetes:monitoring.coreos.com/v1:ServiceMonitor"
TELEMETRY = "kubernetes:telemetry.istio.io/v1:Telemetry"
SECRET = "kubernetes:core/v1:Secret"
NAMESPACE = "kubernetes:core/v1:Namespace"


def component(run: Run) -> Resource:
    return run.one("service-mesh:observability:Observability")


def owned(run: Run) -> list[Resource]:
    """Every resource under the Observability component."""
    root = component(run)
    out, frontier = [], [root.urn]
    while frontier:
        kids = [r for r in run.resources if r.parent in frontier]
        out += kids
        frontier = [r.urn for r in kids]
    return out


def helm(run: Run, name: str) -> Resource:
    found = [r for r in owned(run) if r.type in (RELEASE, CHART) and r.name == name]
    assert len(found) == 1, name
    return found[0]


def values(r: Resource) -> dict[str, Any]:
    return r.inputs["values"]


def by_name(run: Run, type_: str, name: str) -> Resource:
    found = [r for r in owned(run) if r.type == type_ and r.inputs["metadata"]["name"] == name]
    assert len(found) == 1, (type_, name)
    return found[0]


@pytest.fixture(params=STACKS)
def stack(request) -> tuple[str, Run]:
    return request.param, stack_run(request.param)


# --- charts ----------------------------------------------------------------------------------

PINNED = {
    "prometheus-operator-crds": (
        RELEASE,
        "31.0.1",
        "https://prometheus-community.github.io/helm-charts",
    ),
    "kube-prometheus-stack": (
        RELEASE,
        "88.5.3",
        "https://prometheus-community.github.io/helm-charts",
    ),
    "tempo": (CHART, "2.2.4", "https://grafana-community.github.io/helm-charts"),
    "loki": (CHART, "18.11.0", "https://grafana-community.github.io/helm-charts"),
    "kiali": (CHART, "2.29.0", "https://kiali.org/helm-charts"),
    "log-collector": (
        CHART,
        "0.170.0",
        "https://open-telemetry.github.io/opentelemetry-helm-charts",
    ),
}


def test_every_chart_is_pinned_in_monitoring_with_a_stable_release_name(stack):
    _, run = stack
    for name, (type_, version, repo) in PINNED.items():
        r = helm(run, name)
        assert r.type == type_, name
        assert r.inputs["version"] == version
        assert r.inputs["repositoryOpts"]["repo"] == repo
        assert r.inputs["namespace"] == "monitoring"
        assert r.inputs["name"] == name  # never auto-named: service names derive from it


@pytest.mark.parametrize(("stack_name", "prom", "am"), [("dev", 1, 1), ("production", 2, 3)])
def test_ha_settings_reach_the_prometheus_stack(stack_name, prom, am):
    v = values(helm(stack_run(stack_name), "kube-prometheus-stack"))
    assert v["prometheus"]["prometheusSpec"]["replicas"] == prom
    assert v["alertmanager"]["alertmanagerSpec"]["replicas"] == am
    assert v["prometheus"]["prometheusSpec"]["podMonitorSelectorNilUsesHelmValues"] is False
    # One replica down at a time (drains, autoscaler scale-downs); no budget over one pod,
    # which would block every drain. The chart renders each key but `enabled` into the spec.
    for part, replicas in (("prometheus", prom), ("alertmanager", am)):
        budget = v[part].get("podDisruptionBudget")
        expected = {"enabled": True, "minAvailable": replicas - 1} if replicas > 1 else None
        assert budget == expected, (stack_name, part)


def test_monitoring_namespace_is_ours_and_not_in_the_mesh(stack):
    _, run = stack
    (ns,) = [r for r in owned(run) if r.type == NAMESPACE]
    labels = ns.inputs["metadata"]["labels"]
    assert ns.inputs["metadata"]["name"] == "monitoring"
    assert labels["app.kubernetes.io/managed-by"] == "pulumi"
    assert "istio.io/rev" not in labels and "istio-injection" not in labels


# Which Prometheus Operator each pinned chart version carries (its Chart.yaml `appVersion`,
# prometheus-community/helm-charts at the chart's release tag). A bump of either pin fails
# here until its operator version is looked up and added.
OPERATOR_OF = {
    ("kube-prometheus-stack", "88.5.3"): "v0.93.1",
    ("prometheus-operator-crds", "31.0.1"): "v0.93.1",
}


def test_the_operator_s_crds_are_of_the_operator_s_own_version():
    """kube-prometheus-stack's CRDs are left to prometheus-operator-crds (Helm never
    upgrades a chart's `crds/` directory): both pins must carry the same operator."""
    for pin in (pins.KUBE_PROMETHEUS_STACK, pins.PROMETHEUS_OPERATOR_CRDS):
        assert OPERATOR_OF[(pin.chart, pin.version)] == pins.PROMETHEUS_OPERATOR_VERSION, pin
    # The CRD schemas the suite validates our monitors and rules against are that version's.
    for path in SCHEMAS.glob("monitoring.coreos.com_*.yaml"):
        version = yaml.safe_load(path.read_text())["metadata"]["annotations"]
        assert f"v{version['operator.prometheus.io/version']}" == pins.PROMETHEUS_OPERATOR_VERSION


def test_the_operator_crds_are_their_own_kept_release_and_the_stack_installs_none(stack):
    _, run = stack
    crds, kps = helm(run, "prometheus-operator-crds"), helm(run, "kube-prometheus-stack")
    assert values(kps)["crds"] == {"enabled": False}
    assert values(crds) == {"crds": {"annotations": {"helm.sh/resource-policy": "keep"}}}
    assert crds.urn in kps.dependencies
    # Every Prometheus Operator object of any layer waits for the CRDs and the operator.
    operator_objects = [r for r in run.resources if ":monitoring.coreos.com/" in r.type]
    assert operator_objects
    for r in operator_objects:
        assert {crds.urn, kps.urn} <= run.waits_for(r), r.name


# --- graph ------------------------------------------------------------------------------------


def test_monitors_depend_on_the_prometheus_stack_and_their_namespace(stack):
    _, run = stack
    release = helm(run, "kube-prometheus-stack")
    namespaces = {r.inputs["metadata"]["name"]: r.urn for r in run.of_type(NAMESPACE)}
    mesh = {ns["name"] for ns in stack_config(run.stack).get("service-mesh:meshNamespaces", [])}
    monitors = [r for r in owned(run) if r.type == PODMON]
    assert {m.inputs["metadata"]["namespace"] for m in monitors} == {
        "istio-ingress",
        "istio-egress",
        *mesh,
    }
    for m in monitors:
        assert release.urn in m.dependencies
        assert namespaces[m.inputs["metadata"]["namespace"]] in m.dependencies
    service_monitors = [r for r in owned(run) if r.type == SVCMON]
    assert {m.inputs["metadata"]["name"] for m in service_monitors} == {
        "istio-component-monitor",
        "tempo",
        "cert-manager",
    }
    for m in service_monitors:
        assert release.urn in m.dependencies


def test_no_chart_but_kube_prometheus_stack_renders_prometheus_operator_objects(stack):
    """helm.v4.Charts are applied without waiting for the Operator's CRDs: a chart's own
    ServiceMonitor or PrometheusRule there would fail on a fresh cluster."""
    _, run = stack
    for name in ("tempo", "loki", "kiali", "log-collector"):
        v = values(helm(run, name))
        assert not v.get("serviceMonitor", {}).get("enabled"), name
        assert not v.get("podMonitor", {}).get("enabled"), name
        monitoring = v.get("monitoring", {})
        for key in ("serviceMonitor", "rules", "alerts"):
            assert not monitoring.get(key, {}).get("enabled"), (name, key)


def test_telemetry_waits_for_istio_crds_and_nothing_else_waits_for_istio(stack):
    _, run = stack
    istio = run.one("service-mesh:istio:IstioControlPlane")
    istio_urns = {r.urn for r in run.resources if r.parent == istio.urn}
    (tel,) = [r for r in owned(run) if r.type == TELEMETRY]
    assert istio_urns & set(tel.dependencies)
    for r in owned(run):
        if r is not tel:
            assert not istio_urns & set(r.dependencies), r.name  # layers install in parallel


def test_charts_wait_for_their_namespace_and_secrets(stack):
    _, run = stack
    ns = next(r for r in owned(run) if r.type == NAMESPACE)
    for name in PINNED:
        assert ns.urn in helm(run, name).dependencies, name
    kps = helm(run, "kube-prometheus-stack")
    for secret in (metrics.GRAFANA_ADMIN_SECRET, metrics.RECEIVERS_SECRET):
        assert by_name(run, SECRET, secret).urn in kps.dependencies


def test_the_log_collector_takes_no_connections(stack):
    """Its host ports are closed, but the chart's OTLP, Jaeger and Zipkin receivers still
    listen on each pod's IP: a NetworkPolicy admits nothing to exactly its pods."""
    _, run = stack
    (policy,) = [r for r in owned(run) if r.type == "kubernetes:networking.k8s.io/v1:NetworkPolicy"]
    spec = policy.inputs["spec"]
    assert policy.inputs["metadata"]["namespace"] == "monitoring"
    assert spec["policyTypes"] == ["Ingress"] and "ingress" not in spec
    # The opentelemetry-collector 0.170.0 chart's selector labels for release log-collector.
    assert spec["podSelector"] == {
        "matchLabels": {
            "app.kubernetes.io/name": "opentelemetry-collector",
            "app.kubernetes.io/instance": "log-collector",
        }
    }
    assert values(helm(run, "log-collector"))["mode"] == "daemonset"
    assert "nameOverride" not in values(helm(run, "log-collector"))  # the name label holds


# --- schemas ----------------------------------------------------------------------------------


def test_every_authored_object_validates_against_its_schema(stack):
    _, run = stack
    checked = 0
    for r in owned(run):
        if not r.type.startswith("kubernetes:") or r.type in (RELEASE, CHART):
            continue
        obj = manifest(r)
        if obj["kind"] == "Secret":
            obj["stringData"] = {}  # masked as "[secret]" by the engine
        if obj["apiVersion"].startswith("telemetry.istio.io"):
            validate_istio(obj)
        elif "." in obj["apiVersion"].split("/")[0] and not obj["apiVersion"].startswith(
            "networking.k8s.io/"
        ):
            validate_crd(obj)
        else:
            validate_k8s(obj)
        checked += 1
    assert checked >= 8


# --- tracing: Telemetry <-> meshConfig <-> Tempo --------------------------------------------


@pytest.mark.parametrize(
    ("stack_name", "sampling"), [("dev", 100), ("staging", 10), ("production", 1)]
)
def test_telemetry_samples_per_environment_with_an_environment_tag(stack_name, sampling):
    run = stack_run(stack_name)
    (tel,) = [r for r in owned(run) if r.type == TELEMETRY]
    assert tel.inputs["metadata"]["namespace"] == "istio-system"
    spec = tel.inputs["spec"]
    assert "selector" not in spec and "targetRefs" not in spec  # mesh-wide
    (rule,) = spec["tracing"]
    assert rule["randomSamplingPercentage"] == sampling
    assert rule["customTags"] == {"environment": {"literal": {"value": stack_name}}}


def test_istiod_mesh_config_sends_spans_to_tempos_otlp_service(stack):
    _, run = stack
    istiod = [r for r in run.of_type(RELEASE) if r.inputs.get("chart") == "istiod"]
    assert len(istiod) == 1
    mesh_config = values(istiod[0])["meshConfig"]
    (tel,) = [r for r in owned(run) if r.type == TELEMETRY]
    provider_name = tel.inputs["spec"]["tracing"][0]["providers"][0]["name"]
    (provider,) = [p for p in mesh_config["extensionProviders"] if p["name"] == provider_name]
    tempo = helm(run, "tempo")
    # Tempo's Service is named after the release, in the release namespace.
    host = f"{tempo.inputs['name']}.{tempo.inputs['namespace']}.svc.cluster.local"
    assert provider["opentelemetry"]["service"] == host
    grpc = values(tempo)["tempo"]["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
    assert provider["opentelemetry"]["port"] == int(grpc.rsplit(":", 1)[1])
    assert mesh_config["enablePrometheusMerge"] is True


# --- secrets ----------------------------------------------------------------------------------


def test_secrets_are_pulumi_secrets_and_never_in_values(stack):
    stack_name, run = stack
    for name in (metrics.GRAFANA_ADMIN_SECRET, metrics.RECEIVERS_SECRET):
        assert by_name(run, SECRET, name).inputs["stringData"] == "[secret]"
    kps = values(helm(run, "kube-prometheus-stack"))
    assert kps["grafana"]["admin"]["existingSecret"] == metrics.GRAFANA_ADMIN_SECRET
    dump = json.dumps([r.inputs for r in run.resources])
    for placeholder in run.secret_values:
        assert placeholder not in dump
    if stack_name != "dev":
        receivers = {r["name"]: r for r in kps["alertmanager"]["config"]["receivers"]}
        assert receivers["pager"]["webhook_configs"][0]["url_file"].startswith(
            "/etc/alertmanager/secrets/alertmanager-receivers/"
        )


def test_grafana_password_is_generated_by_pulumi():
    run = stack_run("dev")
    passwords = {
        r.name: r for r in owned(run) if r.type == "random:index/randomPassword:RandomPassword"
    }
    pw = passwords["grafana-admin-password"]
    assert pw.inputs["length"] >= 32
    admin = by_name(run, SECRET, metrics.GRAFANA_ADMIN_SECRET)
    assert pw.urn in admin.dependencies


def test_kiali_signing_key_is_generated_once_and_mounted_from_a_secret():
    run = stack_run("production")
    key = next(
        r
        for r in owned(run)
        if r.name == "kiali-signing-key" and r.type == "random:index/randomPassword:RandomPassword"
    )
    assert key.inputs["length"] == 32 and key.inputs["special"] is False
    secret = by_name(run, SECRET, "kiali-signing-key")
    assert key.urn in secret.dependencies and secret.inputs["stringData"] == "[secret]"
    chart = helm(run, "kiali")
    assert secret.urn in chart.dependencies
    assert by_name(run, SECRET, metrics.GRAFANA_ADMIN_SECRET).urn in chart.dependencies
    assert values(chart)["login_token"]["signing_key"] == "secret:kiali-signing-key:key"


def test_production_logs_go_to_a_protected_spaces_bucket():
    run = stack_run("production")
    (bucket,) = [r for r in owned(run) if r.type == "digitalocean:index/spacesBucket:SpacesBucket"]
    assert bucket.protect and bucket.inputs["acl"] == "private"
    (key,) = [r for r in owned(run) if r.type == "digitalocean:index/spacesKey:SpacesKey"]
    assert key.inputs["grants"] == [{"bucket": bucket.inputs["name"], "permission": "readwrite"}]
    loki = helm(run, "loki")
    assert by_name(run, SECRET, "loki-spaces").urn in loki.dependencies
    assert values(loki)["loki"]["storage"]["bucketNames"]["chunks"] == bucket.inputs["name"]
    assert not [r for r in owned(stack_run("dev")) if r.type.startswith("digitalocean:")]


# --- bad config -------------------------------------------------------------------------------


def with_obs(stack_name: str, **changes: Any) -> dict[str, Any]:
    cfg = copy.deepcopy(stack_config(stack_name))
    obs = cfg.setdefault("service-mesh:observability", {})
    for path, value in changes.items():
        node = obs
        *parents, leaf = path.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return cfg


BAD = [
    (
        "production",
        with_obs("production", prometheus__replicas=1),
        "observability.prometheus.replicas",
        "at least 2",
    ),
    (
        "production",
        with_obs("production", alertmanager__replicas=2),
        "observability.alertmanager.replicas",
        "at least 3",
    ),
    (
        "production",
        with_obs("production", logs__storage="filesystem", logs__replicas=1),
        "observability.logs.storage",
        "'spaces'",
    ),
    (
        "production",
        with_obs("production", tracing__samplingPercentage=50),
        "observability.tracing.samplingPercentage",
        "at most 10",
    ),
    (
        "dev",
        with_obs("dev", tracing__samplingPercentage=101),
        "observability.tracing.samplingPercentage",
        "between 0 and 100",
    ),
    ("dev", with_obs("dev", logs__replicas=2), "observability.logs", "storage 'spaces'"),
    ("dev", with_obs("dev", kiali__auth="anonymous"), "observability.kiali.auth", "'token'"),
    ("dev", with_obs("dev", kiali__auth="openid"), "observability.kiali", "openid.issuerUri"),
    (
        "dev",
        with_obs("dev", prometheus__retention="30 days"),
        "observability.prometheus.retention",
        "15d",
    ),
    ("dev", with_obs("dev", grafana__size="10Gi"), "observability.grafana.size", "unknown key"),
    (
        "dev",
        with_obs("dev", prometheus__storageSize="lots"),
        "observability.prometheus.storageSize",
        "50Gi",
    ),
]


@pytest.mark.parametrize(
    ("stack_name", "cfg", "key", "words"), BAD, ids=[f"{s}-{k}-{w}" for s, _, k, w in BAD]
)
def test_bad_observability_config_is_refused_before_anything_is_registered(
    tmp_path, stack_name, cfg, key, words
):
    run = run_config(tmp_path, stack_name, cfg)
    assert isinstance(run.error, ConfigError)
    assert run.resources == []
    message = str(run.error)
    assert f"service-mesh:{key}" in message and words in message, message


def test_production_requires_both_alert_receivers(tmp_path):
    cfg = copy.deepcopy(stack_config("production"))
    del cfg["service-mesh:alertPagerUrl"]
    run = run_config(tmp_path, "production", cfg)
    assert isinstance(run.error, ConfigError) and run.resources == []
    assert "service-mesh:alertPagerUrl" in str(run.error)
    assert "--secret" in str(run.error)


def test_a_plaintext_receiver_url_is_refused_without_echoing_it(tmp_path):
    cfg = copy.deepcopy(stack_config("staging"))
    cfg["service-mesh:alertPagerUrl"] = "https://pager.example.com/hook?key=s3cr3t"
    run = run_config(tmp_path, "staging", cfg)
    assert isinstance(run.error, ConfigError) and run.resources == []
    assert "service-mesh:alertPagerUrl" in str(run.error)
    assert "s3cr3t" not in str(run.error)
