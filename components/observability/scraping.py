"""What Prometheus scrapes beyond kube-prometheus-stack's own targets: Istio's data plane and
control plane, as Istio documents them for the Prometheus Operator, and Tempo. Ours rather than
the charts' monitors: a chart's ServiceMonitor is applied with the chart, before the Prometheus
Operator CRDs may exist, while these wait for kube-prometheus-stack in the resource graph."""

from __future__ import annotations

from typing import Any

from components.base import manifests, mesh
from components.observability.tracing import TEMPO_METRICS_PORT_NAME, TEMPO_RELEASE

API_VERSION = "monitoring.coreos.com/v1"
REVISION_TAG_LABEL = "istio.io/tag"  # on the istiod chart's per-tag Services only


def envoy_pod_monitor(namespace: str) -> dict[str, Any]:
    """Istio's `envoy-stats-monitor`, scoped to one mesh namespace. It scrapes the merged
    metrics the sidecar agent serves in plain text on :15020 (the port the injector writes into
    `prometheus.io/port`), which the sidecar does not intercept: it works under STRICT mTLS."""
    return {
        "apiVersion": API_VERSION,
        "kind": "PodMonitor",
        "metadata": {
            "name": "envoy-stats-monitor",
            "namespace": namespace,
            "labels": manifests.labels("envoy-stats-monitor", monitoring="istio-proxies"),
        },
        "spec": {
            "selector": {
                "matchExpressions": [{"key": "istio-prometheus-ignore", "operator": "DoesNotExist"}]
            },
            "namespaceSelector": {"matchNames": [namespace]},
            "jobLabel": "envoy-stats",
            "podMetricsEndpoints": [
                {
                    "path": "/stats/prometheus",
                    "interval": "15s",
                    "relabelings": _envoy_relabelings(),
                }
            ],
        },
    }


def _envoy_relabelings() -> list[dict[str, Any]]:
    """Verbatim from istio/istio samples/addons/extras/prometheus-operator.yaml (1.30.3)."""
    port_ip = [
        "__meta_kubernetes_pod_annotation_prometheus_io_port",
        "__meta_kubernetes_pod_ip",
    ]
    return [
        {
            "action": "keep",
            "sourceLabels": ["__meta_kubernetes_pod_container_name"],
            "regex": "istio-proxy",
        },
        {
            "action": "keep",
            "sourceLabels": ["__meta_kubernetes_pod_annotationpresent_prometheus_io_scrape"],
        },
        {
            "action": "replace",
            "regex": r"(\d+);(([A-Fa-f0-9]{1,4}::?){1,7}[A-Fa-f0-9]{1,4})",
            "replacement": "[$2]:$1",
            "sourceLabels": port_ip,
            "targetLabel": "__address__",
        },
        {
            "action": "replace",
            "regex": r"(\d+);((([0-9]+?)(\.|$)){4})",
            "replacement": "$2:$1",
            "sourceLabels": port_ip,
            "targetLabel": "__address__",
        },
        {"action": "labeldrop", "regex": "__meta_kubernetes_pod_label_(.+)"},
        {
            "sourceLabels": ["__meta_kubernetes_namespace"],
            "action": "replace",
            "targetLabel": "namespace",
        },
        {
            "sourceLabels": ["__meta_kubernetes_pod_name"],
            "action": "replace",
            "targetLabel": "pod",
        },
    ]


def istiod_service_monitor() -> dict[str, Any]:
    """Istio's `istio-component-monitor`: istiod's plain-text `http-monitoring` port (15014).

    The istiod chart renders two Services labelled `istio: pilot` over the same pods:
    `istiod-<revision>` and, per revision tag, `istiod-revision-tag-<tag>` (which also carries
    `istio.io/tag`; istio 1.30 `templates/revision-tags-svc.yaml`). Selecting only the Service
    without that label scrapes each istiod pod once, not once per tag."""
    return {
        "apiVersion": API_VERSION,
        "kind": "ServiceMonitor",
        "metadata": {
            "name": "istio-component-monitor",
            "namespace": mesh.MONITORING_NAMESPACE,
            "labels": manifests.labels("istio-component-monitor", monitoring="istio-components"),
        },
        "spec": {
            "jobLabel": "istio",
            "targetLabels": ["app"],
            "selector": {
                "matchExpressions": [
                    {"key": "istio", "operator": "In", "values": ["pilot"]},
                    {"key": REVISION_TAG_LABEL, "operator": "DoesNotExist"},
                ]
            },
            "namespaceSelector": {"matchNames": [mesh.ROOT_NAMESPACE]},
            "endpoints": [{"port": "http-monitoring", "interval": "15s"}],
        },
    }


def tempo_service_monitor() -> dict[str, Any]:
    """Tempo's own metrics (ingestion, dropped spans) on its `tempo-prom-metrics` port (3200),
    selected by the chart's selector labels (`app.kubernetes.io/{name,instance}`)."""
    return {
        "apiVersion": API_VERSION,
        "kind": "ServiceMonitor",
        "metadata": {
            "name": TEMPO_RELEASE,
            "namespace": mesh.MONITORING_NAMESPACE,
            "labels": manifests.labels("tempo"),
        },
        "spec": {
            "selector": {
                "matchLabels": {
                    "app.kubernetes.io/name": "tempo",
                    "app.kubernetes.io/instance": TEMPO_RELEASE,
                }
            },
            "namespaceSelector": {"matchNames": [mesh.MONITORING_NAMESPACE]},
            "endpoints": [{"port": TEMPO_METRICS_PORT_NAME, "interval": "30s"}],
        },
    }


def scraped_namespaces(mesh_namespaces: tuple[str, ...]) -> list[str]:
    """Namespaces running Envoy: the gateways' and every declared mesh namespace."""
    return [mesh.INGRESS_NAMESPACE, mesh.EGRESS_NAMESPACE, *mesh_namespaces]
