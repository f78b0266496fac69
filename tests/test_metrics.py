"""Builders of the observability layer, per environment: every Helm values key exists in the
pinned chart, HA and storage settings, Alertmanager routing, no credentials in values, and the
Istio monitors against the Prometheus Operator CRDs."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from components import config
from components.observability import dashboards, kiali, logs, metrics, scraping, tracing
from components.observability.config import ObservabilityConfig
from components.observability.metrics import grafana_datasources
from tests.schema import SchemaError, validate_crd

CHARTS = Path(__file__).resolve().parent / "charts"
ENVS = ("dev", "staging", "production")


def obs(env: str) -> ObservabilityConfig:
    return ObservabilityConfig.model_validate(ObservabilityConfig.PROFILES[env].defaults)


def kps(env: str, pager: bool = True, ticket: bool = True) -> dict[str, Any]:
    return metrics.prometheus_stack_values(
        env,
        obs(env),
        pager=pager,
        ticket=ticket,
        datasources=grafana_datasources(),
        dashboards=dashboards.istio_dashboards_values("1.30.3"),
    )


def loki(env: str) -> dict[str, Any]:
    bucket = "mesh-x-logs" if obs(env).logs.storage == "spaces" else None
    return logs.loki_values(obs(env), bucket=bucket, region="fra1")


# --- every values key path exists in the pinned chart ----------------------------------------


def chart_paths(name: str) -> set[str]:
    (path,) = CHARTS.glob(f"{name}-*.paths")
    return {ln for ln in path.read_text().splitlines() if ln and not ln.startswith("#")}


# Subtrees that are not chart keys but configuration of the software itself, or keys the chart
# documents only in comments. Each one says why it is open.
OPEN: dict[str, tuple[str, ...]] = {
    "kube-prometheus-stack": (
        "alertmanager.config",  # Alertmanager's own config file (tested below)
        "grafana.additionalDataSources",  # list of Grafana data source objects
        "grafana.persistence.storageClassName",  # grafana chart: documented in a comment
    ),
    "loki": (
        "loki.storage.bucketNames",  # documented in a comment beside loki.storage.type
        "loki.limits_config",  # Loki config block (schema: additionalProperties)
    ),
    "tempo": (
        "persistence.storageClassName",  # documented in a comment under persistence
    ),
    "kiali-server": (
        # The chart renders all values as the Kiali CR spec (kiali-operator crd-docs):
        "external_services.grafana",
        "external_services.tracing",
        "external_services.prometheus.url",
        "deployment.ingress.enabled",
        "auth.openid",
    ),
    "opentelemetry-collector": (
        "config.exporters",  # collector config: exporter ids are ours
    ),
}


def leaf_paths(values: Any, prefix: str = "") -> list[str]:
    """Key paths of a values dict; lists are leaves (Helm replaces them whole)."""
    if isinstance(values, dict) and values:
        out: list[str] = []
        for k, v in values.items():
            out += leaf_paths(v, f"{prefix}.{k}" if prefix else k)
        return out
    return [prefix]


def unknown_paths(values: dict[str, Any], chart: str) -> list[str]:
    allowed = chart_paths(chart)
    if chart == "kube-prometheus-stack":  # grafana is a subchart: its own keys apply
        allowed |= {f"grafana.{p}" for p in chart_paths("grafana")}
        # kube-state-metrics and prometheus-node-exporter are subcharts too; both charts'
        # values.yaml take the container's resources at the top level (`resources: {}`).
        allowed |= {
            f"{sub}.resources.*" for sub in ("kube-state-metrics", "prometheus-node-exporter")
        }
    open_ = OPEN.get(chart, ())
    bad = []
    for path in leaf_paths(values):
        parts = path.split(".")
        prefixes = [".".join(parts[:i]) for i in range(1, len(parts) + 1)]
        if path in allowed or any(p in open_ or f"{p}.*" in allowed for p in prefixes):
            continue
        bad.append(path)
    return bad


def all_values(env: str) -> dict[str, dict[str, Any]]:
    return {
        "prometheus-operator-crds": metrics.operator_crds_values(),
        "kube-prometheus-stack": kps(env),
        "tempo": tracing.tempo_values(obs(env)),
        "loki": loki(env),
        "kiali-server": kiali.kiali_values(obs(env)),
        "opentelemetry-collector": logs.collector_values(obs(env)),
    }


@pytest.mark.parametrize("env", ENVS)
def test_every_values_key_exists_in_the_pinned_chart(env):
    for chart, values in all_values(env).items():
        assert unknown_paths(values, chart) == [], chart


def test_the_key_path_check_catches_a_misspelled_key():
    values = kps("production")
    values["prometheus"]["prometheusSpec"]["retentionSise"] = "1GB"
    values["grafana"]["persistance"] = {"enabled": True}
    assert unknown_paths(values, "kube-prometheus-stack") == [
        "prometheus.prometheusSpec.retentionSise",
        "grafana.persistance.enabled",
    ]


# --- HA, storage, selectors ----------------------------------------------------------------


@pytest.mark.parametrize(("env", "prom", "am"), [("dev", 1, 1), ("production", 2, 3)])
def test_prometheus_and_alertmanager_replicas(env, prom, am):
    values = kps(env)
    assert values["prometheus"]["prometheusSpec"]["replicas"] == prom
    assert values["alertmanager"]["alertmanagerSpec"]["replicas"] == am


@pytest.mark.parametrize("env", ENVS)
def test_prometheus_storage_is_a_block_volume_sized_per_environment(env):
    spec = kps(env)["prometheus"]["prometheusSpec"]
    claim = spec["storageSpec"]["volumeClaimTemplate"]["spec"]
    assert claim["storageClassName"] == "do-block-storage"
    assert claim["resources"]["requests"]["storage"] == obs(env).prometheus.storage_size
    assert spec["retention"] == obs(env).prometheus.retention
    size_gb = int(re.fullmatch(r"(\d+)GB", spec["retentionSize"]).group(1))
    assert size_gb < int(obs(env).prometheus.storage_size.removesuffix("Gi"))


def test_prometheus_selects_every_monitor_and_rule_not_only_the_releases():
    spec = kps("production")["prometheus"]["prometheusSpec"]
    for kind in ("rule", "serviceMonitor", "podMonitor"):
        assert spec[f"{kind}SelectorNilUsesHelmValues"] is False
        assert not spec.get(f"{kind}Selector")  # unset/empty = all objects


def test_production_profile_sizes_differ_from_dev():
    assert obs("production").prometheus.storage_size != obs("dev").prometheus.storage_size
    assert obs("dev").tracing.sampling_percentage == 100
    assert obs("production").tracing.sampling_percentage <= 1


# --- Alertmanager ----------------------------------------------------------------------------


def _route_for(cfg: dict[str, Any], labels: dict[str, str]) -> str:
    """First matching child route (Alertmanager's default `continue: false`)."""
    for route in cfg["route"]["routes"]:
        if all(_matches(m, labels) for m in route["matchers"]):
            return route["receiver"]
    return cfg["route"]["receiver"]


def _matches(matcher: str, labels: dict[str, str]) -> bool:
    m = re.fullmatch(r'(\w+) (=~|=) "(.*)"', matcher)
    assert m, matcher
    name, op, value = m.groups()
    got = labels.get(name, "")
    return bool(re.fullmatch(value, got)) if op == "=~" else got == value


def test_alerts_route_by_severity():
    cfg = metrics.alertmanager_config(pager=True, ticket=True)
    assert _route_for(cfg, {"severity": "page", "slo": "x"}) == "pager"
    assert _route_for(cfg, {"severity": "ticket", "slo": "x"}) == "ticket"
    assert _route_for(cfg, {"alertname": "Watchdog", "severity": "none"}) == "null"
    # The chart's own alerts are not dropped silently.
    assert _route_for(cfg, {"severity": "critical"}) == "ticket"


def _inhibited(cfg: dict, source: dict[str, str], target: dict[str, str]) -> bool:
    """Alertmanager's inhibition: a source alert silences a target when both match their
    matchers and agree on every `equal` label."""

    def matches(matchers: list[str], labels: dict[str, str]) -> bool:
        for m in matchers:
            key, op, value = re.match(r'(\w+)\s*(=~|=)\s*"(.*)"', m).groups()
            actual = labels.get(key, "")
            if (op == "=" and actual != value) or (op == "=~" and not re.fullmatch(value, actual)):
                return False
        return True

    return any(
        matches(rule["source_matchers"], source)
        and matches(rule["target_matchers"], target)
        and all(source.get(k) == target.get(k) for k in rule["equal"])
        for rule in cfg["inhibit_rules"]
    )


def test_a_page_silences_the_ticket_of_the_same_sli_only():
    cfg = metrics.alertmanager_config(pager=True, ticket=True)
    page = {"severity": "page", "slo": "checkout", "sli": "availability"}
    assert _inhibited(cfg, page, {**page, "severity": "ticket"})
    assert not _inhibited(cfg, page, {**page, "severity": "ticket", "sli": "latency"})
    assert not _inhibited(cfg, page, {**page, "severity": "ticket", "slo": "payments"})


def test_receivers_read_urls_from_the_mounted_secret():
    values = kps("production")
    am = values["alertmanager"]
    assert am["alertmanagerSpec"]["secrets"] == [metrics.RECEIVERS_SECRET]
    by_name = {r["name"]: r for r in am["config"]["receivers"]}
    for name in ("pager", "ticket"):
        (hook,) = by_name[name]["webhook_configs"]
        assert set(hook) == {"url_file", "send_resolved"}
        assert hook["url_file"] == (
            f"/etc/alertmanager/secrets/{metrics.RECEIVERS_SECRET}/{metrics.RECEIVER_KEYS[name]}"
        )
    assert set(metrics.receivers_secret({"pager": "x", "ticket": "y"})["stringData"]) == set(
        metrics.RECEIVER_KEYS.values()
    )


def test_unconfigured_receivers_have_no_webhook():
    cfg = metrics.alertmanager_config(pager=False, ticket=True)
    by_name = {r["name"]: r for r in cfg["receivers"]}
    assert "webhook_configs" not in by_name["pager"]
    assert "webhook_configs" in by_name["ticket"]


# --- no credentials in values ----------------------------------------------------------------

_CREDENTIAL_KEYS = re.compile(
    r"(password|passwd|secret|token|api_?key|signing_key|accesskey|routing_key|webhook_url|url)$",
    re.I,
)
_CREDENTIAL_VALUES = re.compile(r"(://[^/\s:@]+:[^/\s@]+@|hooks\.slack\.com|events\.pagerduty)")


def credentials_in(values: Any, path: str = "") -> list[str]:
    """Keys that look like credentials holding a literal, and URLs with userinfo."""
    found: list[str] = []
    if isinstance(values, dict):
        for k, v in values.items():
            p = f"{path}.{k}"
            named = k.startswith("existing")  # the name of a Secret, not its content
            if isinstance(v, str) and _CREDENTIAL_KEYS.search(k) and not (named or _in_cluster(v)):
                found.append(p)
            else:
                found += credentials_in(v, p)
    elif isinstance(values, list):
        for i, v in enumerate(values):
            found += credentials_in(v, f"{path}[{i}]")
    elif isinstance(values, str) and _CREDENTIAL_VALUES.search(values):
        found.append(path)
    return found


def _in_cluster(value: str) -> bool:
    """In-cluster service URLs, a port-forward's bare localhost URL, env references, Kiali's
    `secret:<name>:<key>` references, file paths and the public, pinned Istio dashboard
    downloads are not credentials."""
    return (
        ".svc.cluster.local" in value
        or re.fullmatch(r"http://localhost:[0-9]+", value) is not None
        or re.fullmatch(r"\$\{[A-Z0-9_]+\}", value) is not None
        or re.fullmatch(r"secret:[a-z0-9-]+:[A-Za-z0-9._-]+", value) is not None
        or value.startswith("/")
        or value.startswith(dashboards.ISTIO_DASHBOARDS_URL.split("{")[0])
        or value in ("$${__value.raw}",)
    )


@pytest.mark.parametrize("env", ENVS)
def test_no_plaintext_credentials_in_any_values(env):
    for chart, values in all_values(env).items():
        assert credentials_in(values) == [], chart
    grafana = kps(env)["grafana"]
    assert "adminPassword" not in grafana
    assert grafana["admin"]["existingSecret"] == metrics.GRAFANA_ADMIN_SECRET


def test_the_credential_check_catches_a_password_in_values():
    values = kps("dev")
    values["grafana"]["adminPassword"] = "hunter2"
    values["alertmanager"]["config"]["receivers"][1]["webhook_configs"] = [
        {"url": "https://events.pagerduty.com/v2/enqueue?key=abc"}
    ]
    assert credentials_in(values) == [
        ".alertmanager.config.receivers[1].webhook_configs[0].url",
        ".grafana.adminPassword",
    ]
    k = kiali.kiali_values(obs("dev"))
    k["login_token"]["signing_key"] = "0123456789abcdef0123456789abcdef"
    k["external_services"]["grafana"]["auth"]["password"] = "hunter2"
    assert credentials_in(k) == [
        ".login_token.signing_key",
        ".external_services.grafana.auth.password",
    ]


def test_loki_spaces_keys_come_from_the_environment_not_values():
    values = loki("production")
    s3 = values["loki"]["storage"]["s3"]
    assert s3["accessKeyId"] == "${LOKI_S3_ACCESS_KEY_ID}"
    assert s3["secretAccessKey"] == "${LOKI_S3_SECRET_ACCESS_KEY}"
    assert values["singleBinary"]["extraEnvFrom"] == [{"secretRef": {"name": logs.SPACES_SECRET}}]
    # The chart passes -config.expand-env itself (loki 18.11.0 `_pod.tpl`); not a second time.
    assert "extraArgs" not in values["singleBinary"]


# --- Loki, Tempo, Kiali ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "store", "replicas"),
    [("dev", "filesystem", 1), ("staging", "filesystem", 1), ("production", "s3", 3)],
)
def test_loki_mode_per_environment(env, store, replicas):
    values = loki(env)
    assert values["deploymentMode"] == "Monolithic"
    assert values["loki"]["storage"]["type"] == store
    assert values["loki"]["schemaConfig"]["configs"][0]["object_store"] == store
    assert values["singleBinary"]["replicas"] == replicas
    assert values["loki"]["commonConfig"]["replication_factor"] == replicas
    assert all(values[t]["replicas"] == 0 for t in ("read", "write", "backend"))


def test_kiali_is_never_anonymous_and_uses_the_real_service_urls():
    values = kiali.kiali_values(obs("production"))
    assert values["auth"]["strategy"] == "token"
    ext = values["external_services"]
    assert ext["prometheus"]["url"] == (
        "http://kube-prometheus-stack-prometheus.monitoring.svc.cluster.local:9090"
    )
    assert ext["grafana"]["internal_url"] == (
        "http://kube-prometheus-stack-grafana.monitoring.svc.cluster.local:80"
    )
    assert ext["tracing"]["internal_url"] == "http://tempo.monitoring.svc.cluster.local:3200"
    assert ext["tracing"]["use_grpc"] is False
    # Off OpenShift, Kiali links to Grafana (and to traces through it) only with the URL a
    # browser opens: the port-forward README documents. Kiali >= 2.11 reads the root namespace
    # from istiod, not from `istio.root_namespace`.
    assert ext["grafana"]["external_url"] == "http://localhost:3000"
    assert "istio" not in ext
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert "port-forward svc/kube-prometheus-stack-grafana 3000:80" in readme


def test_kiali_reads_its_credentials_from_secrets_we_create():
    """The signing key is ours (the chart's default is a new random key per render: a diff
    and a restart on every `pulumi up`); Grafana's login is the admin Secret's."""
    values = kiali.kiali_values(obs("dev"))
    assert values["login_token"]["signing_key"] == "secret:kiali-signing-key:key"
    secret = kiali.signing_key_secret("k" * kiali.SIGNING_KEY_LENGTH)
    assert secret["metadata"]["name"] == "kiali-signing-key"
    assert set(secret["stringData"]) == {"key"}
    grafana_auth = values["external_services"]["grafana"]["auth"]
    assert grafana_auth == {
        "type": "basic",
        "username": "admin",
        "password": "secret:grafana-admin:admin-password",
    }
    admin = metrics.grafana_admin_secret("pw")
    assert admin["metadata"]["name"] == "grafana-admin"
    assert admin["stringData"] == {"admin-user": "admin", "admin-password": "pw"}


def test_kiali_openid_when_configured():
    cfg = ObservabilityConfig.model_validate(
        {
            **ObservabilityConfig.PROFILES["dev"].defaults,
            "kiali": {
                "auth": "openid",
                "openid": {"issuerUri": "https://login.example.com", "clientId": "kiali"},
            },
        }
    )
    auth = kiali.kiali_values(cfg)["auth"]
    assert auth == {
        "strategy": "openid",
        "openid": {"issuer_uri": "https://login.example.com", "client_id": "kiali"},
    }


def test_grafana_has_loki_and_tempo_data_sources_at_the_chart_service_urls():
    by_type = {d["type"]: d for d in kps("dev")["grafana"]["additionalDataSources"]}
    assert by_type["loki"]["url"] == "http://loki-gateway.monitoring.svc.cluster.local"
    assert by_type["tempo"]["url"] == "http://tempo.monitoring.svc.cluster.local:3200"
    assert kps("dev")["grafana"]["persistence"]["enabled"] is True


# --- Istio monitors --------------------------------------------------------------------------


def test_istio_monitors_validate_against_the_prometheus_operator_crds():
    validate_crd(scraping.envoy_pod_monitor("shop"))
    validate_crd(scraping.istiod_service_monitor())
    validate_crd(scraping.tempo_service_monitor())


def test_tempo_is_scraped_by_our_monitor_not_the_charts():
    """The chart's ServiceMonitor would be applied with the chart, possibly before the CRDs."""
    assert tracing.tempo_values(obs("dev"))["serviceMonitor"]["enabled"] is False
    sm = scraping.tempo_service_monitor()
    # The chart's Service: selector labels app.kubernetes.io/{name,instance}, port name
    # `tempo-prom-metrics` for 3200 (charts/tempo templates/_ports.tpl, 2.2.4).
    assert sm["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "tempo",
        "app.kubernetes.io/instance": tracing.TEMPO_RELEASE,
    }
    assert sm["spec"]["endpoints"][0]["port"] == "tempo-prom-metrics"


def test_loki_gateway_is_replicated_with_a_replicated_backend():
    assert loki("dev")["gateway"]["replicas"] == 1
    assert loki("production")["gateway"]["replicas"] == 2


@pytest.mark.parametrize("env", ENVS)
def test_replicated_loki_has_budgets_that_keep_the_write_quorum(env):
    """The chart renders a budget only when one is stated; with replication factor 3 a drain
    that evicts two replicas at once loses the write quorum. A budget over one pod would block
    every drain, so a single replica gets none."""
    values = loki(env)
    replicated = values["singleBinary"]["replicas"] > 1
    for part in ("singleBinary", "gateway"):
        budget = values[part].get("podDisruptionBudget")
        assert budget == ({"maxUnavailable": 1} if replicated else None), (env, part)
    assert replicated == (env == "production")


def test_loki_runs_no_container_without_requests():
    """The rules sidecar and the gateway's metrics exporter would be containers the sizing does
    not cover; neither is used (no Loki rules, nothing scrapes Loki)."""
    for env in ENVS:
        values = loki(env)
        assert values["sidecar"] == {"rules": {"enabled": False}}
        assert values["gateway"]["metrics"] == {"enabled": False}


def test_crd_validation_rejects_an_unknown_field():
    bad = scraping.envoy_pod_monitor("shop")
    bad["spec"]["podMetricsEndpoints"][0]["intervall"] = "15s"
    with pytest.raises(SchemaError, match="intervall"):
        validate_crd(bad)


def test_envoy_pod_monitor_follows_istios_sample_for_one_namespace():
    pm = scraping.envoy_pod_monitor("shop")
    assert pm["metadata"]["namespace"] == "shop"
    assert pm["spec"]["namespaceSelector"] == {"matchNames": ["shop"]}
    (endpoint,) = pm["spec"]["podMetricsEndpoints"]
    assert endpoint["path"] == "/stats/prometheus"
    keep = [r for r in endpoint["relabelings"] if r.get("action") == "keep"]
    assert keep[0]["regex"] == "istio-proxy"
    # Labels used by Istio's sample to select it (release label not needed: selectors are open).
    assert pm["metadata"]["labels"]["monitoring"] == "istio-proxies"


def test_istiod_service_monitor_scrapes_http_monitoring_in_istio_system():
    sm = scraping.istiod_service_monitor()
    assert sm["spec"]["namespaceSelector"] == {"matchNames": ["istio-system"]}
    assert sm["spec"]["endpoints"] == [{"port": "http-monitoring", "interval": "15s"}]


def test_config_profiles_parse_for_every_environment():
    for env in ENVS:
        parsed = config.profile(env)["observability"]
        assert json.loads(json.dumps(parsed)) == ObservabilityConfig.PROFILES[env].defaults
