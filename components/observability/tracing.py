"""Tracing: Tempo (single binary) as the backend, the OpenTelemetry extension provider istiod
needs to send spans to it, and the mesh-wide Telemetry resource that turns tracing on with a
per-environment sampling rate and an `environment` tag. Envoy exports OTLP/gRPC straight to
Tempo's receiver: no collector hop to run, scale or lose spans in."""

from __future__ import annotations

from typing import Any

from components.base import manifests, mesh
from components.observability.config import ObservabilityConfig

# pins.TEMPO: grafana-community/helm-charts (tempo moved there in 2026); Tempo 2.10.8.
TEMPO_RELEASE = "tempo"  # the chart's fullname is the release name when it contains "tempo"

TEMPO_HOST = f"{TEMPO_RELEASE}.{mesh.MONITORING_NAMESPACE}.svc.cluster.local"
TEMPO_OTLP_GRPC_PORT = 4317  # tempo.receivers.otlp.protocols.grpc
TEMPO_HTTP_PORT = 3200  # tempo.server.http_listen_port: query API (Grafana, Kiali)
TEMPO_METRICS_PORT_NAME = "tempo-prom-metrics"  # the chart's Service name for port 3200
TEMPO_URL = f"http://{TEMPO_HOST}:{TEMPO_HTTP_PORT}"
TEMPO_DATASOURCE_UID = "tempo"

TRACING_PROVIDER = "tempo-otlp"  # meshConfig.extensionProviders[].name
TELEMETRY_NAME = "mesh-default"


def tempo_values(cfg: ObservabilityConfig) -> dict[str, Any]:
    """Tempo on a block volume with the environment's retention, receiving OTLP from Envoy.
    The chart's default Jaeger receivers stay on (Helm deletes a default key only for a null
    value, which the Pulumi Python SDK drops); nothing in the mesh sends to them. The chart's
    ServiceMonitor is off: `scraping.tempo_service_monitor` waits for the Operator's CRDs."""
    return {
        "tempo": {
            "resources": cfg.resources.tempo.helm(),
            "retention": cfg.tracing.retention,
            "reportingEnabled": False,
            "receivers": {
                "otlp": {
                    "protocols": {
                        "grpc": {"endpoint": f"0.0.0.0:{TEMPO_OTLP_GRPC_PORT}"},
                        "http": {"endpoint": "0.0.0.0:4318"},
                    }
                }
            },
        },
        "persistence": {
            "enabled": True,
            "storageClassName": cfg.storage_class,
            "accessModes": ["ReadWriteOnce"],
            "size": cfg.tracing.storage_size,
        },
        "serviceMonitor": {"enabled": False},
    }


def mesh_config() -> dict[str, Any]:
    """istiod's meshConfig fragment this layer needs: the Tempo OpenTelemetry (OTLP/gRPC)
    provider, and metrics merging (the envoy PodMonitors read the `prometheus.io/*` annotations
    it writes)."""
    return {
        "enablePrometheusMerge": True,
        "extensionProviders": [
            {
                "name": TRACING_PROVIDER,
                "opentelemetry": {"service": TEMPO_HOST, "port": TEMPO_OTLP_GRPC_PORT},
            }
        ],
    }


def telemetry(cfg: ObservabilityConfig, environment: str) -> dict[str, Any]:
    """One selector-less Telemetry in the root namespace: applies to the whole mesh. Envoy
    access logs go to stdout (collected into Loki), all of them or (`accessLogs: errors`) only
    requests answered with 4xx or 5xx. Spans carry the environment's name as a tag."""
    access_log: dict[str, Any] = {"providers": [{"name": "envoy"}]}
    if cfg.access_logs == "errors":
        access_log["filter"] = {"expression": "response.code >= 400"}
    return {
        "apiVersion": "telemetry.istio.io/v1",
        "kind": "Telemetry",
        "metadata": {
            "name": TELEMETRY_NAME,
            "namespace": mesh.ROOT_NAMESPACE,
            "labels": manifests.labels(TELEMETRY_NAME),
        },
        "spec": {
            "tracing": [
                {
                    "providers": [{"name": TRACING_PROVIDER}],
                    "randomSamplingPercentage": cfg.tracing.sampling_percentage,
                    "customTags": {"environment": {"literal": {"value": environment}}},
                }
            ],
            "accessLogging": [access_log],
        },
    }
