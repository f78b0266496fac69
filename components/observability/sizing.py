"""Requests and memory limits of every container of the monitoring stack, per tier: the
`observability.resources` config keys (sidecars included; `SHORT_LIVED` for init containers
and Jobs). The charts request nothing for most of them, which
left Prometheus, Loki and the rest BestEffort (evicted first under memory pressure) and
invisible to the scheduler and to the plan's capacity check. Sized for the tier's retention
and replicas; a stack overrides one pod's figure, e.g. `resources.prometheus.memoryRequest`.
Pure: no Pulumi."""

from __future__ import annotations

from typing import Any

from pydantic.alias_generators import to_camel

from components.base.model import ConfigModel
from components.base.workload import PodResources, pod_resources


class ObservabilityResources(ConfigModel):
    """One entry per pod kind; each chart reads it at its own values path
    (`components/observability/{metrics,logs,tracing,kiali}.py`)."""

    prometheus: PodResources
    alertmanager: PodResources
    # The operator's config-reloader container in each Prometheus and Alertmanager pod.
    config_reloader: PodResources
    grafana: PodResources
    # Each of Grafana's two sidecars (dashboards, data sources): one figure, one chart key.
    grafana_sidecar: PodResources
    prometheus_operator: PodResources
    kube_state_metrics: PodResources
    node_exporter: PodResources  # one per node, on every pool
    loki: PodResources
    loki_gateway: PodResources
    tempo: PodResources
    kiali: PodResources
    log_collector: PodResources  # one per node


def _tier(**sizes: tuple[str, str, str]) -> dict[str, Any]:
    """A tier's `resources` as written in a profile (camelCase keys, as in a stack file)."""
    return {to_camel(pod): pod_resources(*figures) for pod, figures in sizes.items()}


# (cpu request, memory request, memory limit). Prometheus' memory follows its series and
# retention (production: 35 days of a large mesh); Loki and Tempo buffer before they flush.
RESOURCES: dict[str, dict[str, Any]] = {
    "dev": _tier(
        prometheus=("100m", "512Mi", "2Gi"),
        alertmanager=("10m", "64Mi", "256Mi"),
        config_reloader=("10m", "32Mi", "128Mi"),
        grafana=("50m", "128Mi", "512Mi"),
        grafana_sidecar=("10m", "64Mi", "256Mi"),
        prometheus_operator=("50m", "64Mi", "256Mi"),
        kube_state_metrics=("10m", "64Mi", "256Mi"),
        node_exporter=("10m", "32Mi", "128Mi"),
        loki=("100m", "256Mi", "1Gi"),
        loki_gateway=("10m", "32Mi", "128Mi"),
        tempo=("50m", "256Mi", "1Gi"),
        kiali=("10m", "64Mi", "1Gi"),
        log_collector=("50m", "128Mi", "512Mi"),
    ),
    "staging": _tier(
        prometheus=("250m", "1Gi", "4Gi"),
        alertmanager=("10m", "64Mi", "256Mi"),
        config_reloader=("10m", "32Mi", "128Mi"),
        grafana=("50m", "128Mi", "512Mi"),
        grafana_sidecar=("10m", "64Mi", "256Mi"),
        prometheus_operator=("50m", "128Mi", "512Mi"),
        kube_state_metrics=("20m", "128Mi", "512Mi"),
        node_exporter=("10m", "32Mi", "128Mi"),
        loki=("200m", "512Mi", "2Gi"),
        loki_gateway=("20m", "64Mi", "256Mi"),
        tempo=("100m", "512Mi", "2Gi"),
        kiali=("20m", "128Mi", "1Gi"),
        log_collector=("100m", "128Mi", "512Mi"),
    ),
    "production": _tier(
        prometheus=("500m", "2Gi", "6Gi"),
        alertmanager=("20m", "128Mi", "256Mi"),
        config_reloader=("20m", "32Mi", "128Mi"),
        grafana=("100m", "256Mi", "1Gi"),
        grafana_sidecar=("20m", "96Mi", "256Mi"),
        prometheus_operator=("100m", "128Mi", "512Mi"),
        kube_state_metrics=("50m", "128Mi", "512Mi"),
        node_exporter=("20m", "32Mi", "128Mi"),
        loki=("250m", "1Gi", "3Gi"),
        loki_gateway=("20m", "64Mi", "256Mi"),
        tempo=("250m", "1Gi", "3Gi"),
        kiali=("50m", "128Mi", "1Gi"),
        log_collector=("100m", "256Mi", "512Mi"),
    ),
}


# Containers that run to completion: Grafana's init containers (volume ownership, dashboard
# download) and the operator's admission-webhook certificate Jobs. They need little, but a
# container without requests is BestEffort and its pod is scheduled as if it took nothing.
SHORT_LIVED = PodResources(cpu_request="10m", memory_request="32Mi", memory_limit="128Mi")
