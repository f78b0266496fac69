"""Metrics and alerting: kube-prometheus-stack values (Prometheus, Alertmanager, Grafana), the
Alertmanager routing by `severity`, and the Secrets holding receiver URLs and Grafana's admin
login. What Prometheus scrapes is in `scraping.py`. Pure builders only: `component.py`
registers what they return."""

from __future__ import annotations

import re
from typing import Any

from components.base import manifests, mesh
from components.observability import logs, tracing
from components.observability.config import ObservabilityConfig
from components.observability.sizing import SHORT_LIVED

# kube-prometheus-stack (pins.KUBE_PROMETHEUS_STACK: 88.5.3, prometheus-operator v0.93.1).
# Grafana comes as its subchart (grafana 12.11.1 from grafana-community), so the dashboards
# sidecar and data sources live here.
CRDS_RELEASE = "prometheus-operator-crds"
KPS_RELEASE = "kube-prometheus-stack"  # <= 26 chars: the chart's fullname is the release name

PROMETHEUS_URL = (
    f"http://{KPS_RELEASE}-prometheus.{mesh.MONITORING_NAMESPACE}.svc.cluster.local:9090"
)
GRAFANA_SERVICE = f"{KPS_RELEASE}-grafana"  # grafana subchart fullname: <release>-grafana
GRAFANA_URL = f"http://{GRAFANA_SERVICE}.{mesh.MONITORING_NAMESPACE}.svc.cluster.local:80"
# Where a browser reaches Grafana: it is not exposed, so through the documented port-forward
# (`kubectl -n monitoring port-forward svc/kube-prometheus-stack-grafana 3000:80`).
GRAFANA_BROWSER_URL = "http://localhost:3000"
PROMETHEUS_DATASOURCE_UID = "prometheus"  # kps default: grafana.sidecar.datasources.uid

GRAFANA_ADMIN_SECRET = "grafana-admin"
GRAFANA_ADMIN_USER = "admin"
GRAFANA_USER_KEY, GRAFANA_PASSWORD_KEY = "admin-user", "admin-password"  # keys in that Secret
RECEIVERS_SECRET = "alertmanager-receivers"
# alertmanagerSpec.secrets are mounted at /etc/alertmanager/secrets/<secret>/<key>.
RECEIVER_KEYS = {"pager": "pager-url", "ticket": "ticket-url"}
DASHBOARD_LABEL = {"grafana_dashboard": "1"}  # what the Grafana sidecar watches
FOLDER_ANNOTATION = "grafana_folder"  # ConfigMap annotation naming the dashboard's folder


# Control-plane components a DOKS cluster does not expose -> the chart's default rule groups
# that target them (kube-prometheus-stack values.yaml, `defaultRules.rules`).
DOKS_UNEXPOSED: dict[str, tuple[str, ...]] = {
    "kubeControllerManager": ("kubeControllerManager",),
    "kubeScheduler": ("kubeSchedulerAlerting", "kubeSchedulerRecording"),
    "kubeEtcd": ("etcd",),
    "kubeProxy": ("kubeProxy",),
}


def receiver_file(receiver: str) -> str:
    return f"/etc/alertmanager/secrets/{RECEIVERS_SECRET}/{RECEIVER_KEYS[receiver]}"


def _volume(storage_class: str, size: str) -> dict[str, Any]:
    return {
        "volumeClaimTemplate": {
            "spec": {
                "storageClassName": storage_class,
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": size}},
            }
        }
    }


def retention_size(storage_size: str) -> str:
    """Stop at 85 % of the volume: Prometheus deletes old blocks before the disk fills up."""
    m = re.fullmatch(r"(\d+)(Gi|Ti)", storage_size)
    assert m, storage_size
    gib = int(m.group(1)) * (1024 if m.group(2) == "Ti" else 1)
    return f"{gib * 85 // 100}GB"


def alertmanager_config(pager: bool, ticket: bool) -> dict[str, Any]:
    """Routing by `severity`: `page` wakes someone up, `ticket` (and the chart's own
    critical/warning alerts) files work for office hours. Receiver URLs are read from files in
    the mounted Secret (`url_file`), so no URL or key ever appears in chart values."""

    def receiver(name: str, configured: bool) -> dict[str, Any]:
        if not configured:  # dev without receivers: alerts are visible in Alertmanager only
            return {"name": name}
        return {
            "name": name,
            "webhook_configs": [{"url_file": receiver_file(name), "send_resolved": True}],
        }

    return {
        "global": {"resolve_timeout": "5m"},
        "route": {
            "receiver": "ticket",
            "group_by": ["alertname", "namespace", "slo"],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "12h",
            "routes": [
                {"receiver": "null", "matchers": ['alertname = "Watchdog"']},
                {"receiver": "null", "matchers": ['alertname = "InfoInhibitor"']},
                {
                    "receiver": "pager",
                    "matchers": ['severity = "page"'],
                    "group_wait": "10s",
                    "repeat_interval": "1h",
                },
                {"receiver": "ticket", "matchers": ['severity =~ "ticket|critical|warning"']},
                {"receiver": "null", "matchers": ['severity = "info"']},
            ],
        },
        "inhibit_rules": [
            # A page already covers the same SLI of the same SLO: no ticket for it too. (A latency
            # ticket still opens while availability pages: a different problem.)
            {
                "source_matchers": ['severity = "page"'],
                "target_matchers": ['severity = "ticket"'],
                "equal": ["slo", "sli"],
            },
            {
                "source_matchers": ['severity = "critical"'],
                "target_matchers": ['severity =~ "warning|info"'],
                "equal": ["namespace", "alertname"],
            },
        ],
        "receivers": [
            {"name": "null"},
            receiver("pager", pager),
            receiver("ticket", ticket),
        ],
        "templates": ["/etc/alertmanager/config/*.tmpl"],
    }


def operator_crds_values() -> dict[str, Any]:
    """prometheus-operator-crds: every CRD of the operator, as templates, so a chart bump
    upgrades them. Kept when the release is removed: the chart's own uninstall deletes the
    CRDs, and a deleted CRD takes every object of its kind with it (the ServiceMonitors and
    PrometheusRules of every layer), so every CRD carries Helm's `resource-policy: keep`."""
    return {"crds": {"annotations": {"helm.sh/resource-policy": "keep"}}}


def _budget(replicas: int) -> dict[str, Any]:
    """At most one replica down at a time, for drains and the autoscaler's scale-downs: the
    chart's budget takes `minAvailable` (it renders every key but `enabled`, and its default
    `minAvailable: 1` would sit beside a `maxUnavailable`). None over a single replica: that
    budget would block every drain."""
    if replicas < 2:
        return {}
    return {"podDisruptionBudget": {"enabled": True, "minAvailable": replicas - 1}}


def prometheus_stack_values(
    environment: str,
    cfg: ObservabilityConfig,
    *,
    pager: bool,
    ticket: bool,
    datasources: list[dict[str, Any]],
    dashboards: dict[str, Any],
) -> dict[str, Any]:
    """Values for kube-prometheus-stack. Selectors are opened (`*NilUsesHelmValues: false`) so
    Prometheus picks up every ServiceMonitor, PodMonitor and PrometheusRule in any namespace,
    not only objects labelled `release: kube-prometheus-stack`."""
    prom, am = cfg.prometheus, cfg.alertmanager
    return {
        # The CRDs are the prometheus-operator-crds release's (`operator_crds_values`): the
        # chart's own are in a `crds/` directory, which Helm installs once and never upgrades.
        "crds": {"enabled": False},
        # DOKS runs the control plane for us: controller-manager, scheduler and etcd are not
        # reachable from the cluster, and Cilium replaces kube-proxy (whose metrics would bind to
        # localhost anyway). Their monitors would only ever find nothing, and their default
        # "absent" alerts (KubeControllerManagerDown, KubeSchedulerDown, etcd...) would fire
        # forever. Off: the component and its rule groups.
        **{component: {"enabled": False} for component in DOKS_UNEXPOSED},
        "defaultRules": {
            "rules": {rule: False for rules in DOKS_UNEXPOSED.values() for rule in rules}
        },
        "prometheus": {
            **_budget(prom.replicas),
            "prometheusSpec": {
                "replicas": prom.replicas,
                "resources": cfg.resources.prometheus.helm(),
                "retention": prom.retention,
                "retentionSize": retention_size(prom.storage_size),
                "storageSpec": _volume(cfg.storage_class, prom.storage_size),
                "podAntiAffinity": "hard" if prom.replicas > 1 else "soft",
                "externalLabels": {"environment": environment},
                "ruleSelectorNilUsesHelmValues": False,
                "serviceMonitorSelectorNilUsesHelmValues": False,
                "podMonitorSelectorNilUsesHelmValues": False,
                "probeSelectorNilUsesHelmValues": False,
            },
        },
        "alertmanager": {
            **_budget(am.replicas),
            "config": alertmanager_config(pager, ticket),
            "alertmanagerSpec": {
                "replicas": am.replicas,
                "resources": cfg.resources.alertmanager.helm(),
                "storage": _volume(cfg.storage_class, am.storage_size),
                "podAntiAffinity": "hard" if am.replicas > 1 else "soft",
                "secrets": [RECEIVERS_SECRET],
            },
        },
        "prometheusOperator": {
            "resources": cfg.resources.prometheus_operator.helm(),
            # The operator adds a config-reloader to every Prometheus and Alertmanager pod with
            # these (the chart passes them as flags; unset, the container requests nothing).
            "prometheusConfigReloader": {"resources": cfg.resources.config_reloader.helm()},
            "admissionWebhooks": {"patch": {"resources": SHORT_LIVED.helm()}},
        },
        "kube-state-metrics": {"resources": cfg.resources.kube_state_metrics.helm()},
        "prometheus-node-exporter": {"resources": cfg.resources.node_exporter.helm()},
        "grafana": {
            "resources": cfg.resources.grafana.helm(),
            "admin": {
                "existingSecret": GRAFANA_ADMIN_SECRET,
                "userKey": GRAFANA_USER_KEY,
                "passwordKey": GRAFANA_PASSWORD_KEY,
            },
            "persistence": {
                "enabled": True,
                "type": "pvc",
                "storageClassName": cfg.storage_class,
                "accessModes": ["ReadWriteOnce"],
                "size": cfg.grafana.storage_size,
            },
            # A ReadWriteOnce volume cannot be attached to the old and new pod at once.
            "deploymentStrategy": {"type": "Recreate"},
            # Both sidecars (dashboards, data sources) and both init containers request too.
            "initChownData": {"resources": SHORT_LIVED.helm()},
            "downloadDashboards": {"resources": SHORT_LIVED.helm()},
            "sidecar": {
                "resources": cfg.resources.grafana_sidecar.helm(),
                "dashboards": {
                    "enabled": True,
                    "label": next(iter(DASHBOARD_LABEL)),
                    "labelValue": DASHBOARD_LABEL["grafana_dashboard"],
                    "searchNamespace": "ALL",
                    "folderAnnotation": FOLDER_ANNOTATION,
                    "provider": {"foldersFromFilesStructure": True},
                },
            },
            "additionalDataSources": datasources,
            **dashboards,
        },
    }


def grafana_admin_secret(password: Any) -> dict[str, Any]:
    """Grafana's admin login, from a Pulumi-generated password (never in chart values)."""
    return manifests.secret(
        GRAFANA_ADMIN_SECRET,
        mesh.MONITORING_NAMESPACE,
        "grafana",
        {GRAFANA_USER_KEY: GRAFANA_ADMIN_USER, GRAFANA_PASSWORD_KEY: password},
    )


def receivers_secret(urls: dict[str, Any]) -> dict[str, Any]:
    """Alertmanager receiver URLs (with their keys), mounted into Alertmanager as files."""
    return manifests.secret(
        RECEIVERS_SECRET,
        mesh.MONITORING_NAMESPACE,
        "alertmanager",
        {RECEIVER_KEYS[name]: url for name, url in urls.items()},
    )


def grafana_datasources() -> list[dict[str, Any]]:
    """Loki and Tempo beside the chart's default Prometheus data source (uid `prometheus`),
    linked both ways: a trace id in an application's log line (logfmt `trace_id=<id>`) opens
    Tempo, and spans open their logs and metrics. Envoy's access logs carry no trace id (Istio
    1.30's JSON format has `request_id`, not the trace's), so they link from spans only."""
    return [
        {
            "name": "Loki",
            "type": "loki",
            "uid": logs.LOKI_DATASOURCE_UID,
            "access": "proxy",
            "url": logs.LOKI_URL,
            "jsonData": {
                "derivedFields": [
                    {
                        "name": "trace_id",
                        "matcherRegex": r"trace_id=(\w+)",
                        "datasourceUid": tracing.TEMPO_DATASOURCE_UID,
                        "url": "$${__value.raw}",
                    }
                ]
            },
        },
        {
            "name": "Tempo",
            "type": "tempo",
            "uid": tracing.TEMPO_DATASOURCE_UID,
            "access": "proxy",
            "url": tracing.TEMPO_URL,
            "jsonData": {
                "tracesToLogsV2": {"datasourceUid": logs.LOKI_DATASOURCE_UID},
                "tracesToMetrics": {"datasourceUid": PROMETHEUS_DATASOURCE_UID},
                "serviceMap": {"datasourceUid": PROMETHEUS_DATASOURCE_UID},
            },
        },
    ]
