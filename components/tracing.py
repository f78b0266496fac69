"""Tracing: Tempo (single binary) as the backend, the OpenTelemetry extension provider istiod
needs to send spans to it, and the mesh-wide Telemetry resource that turns tracing on with a
per-environment sampling rate and an `environment` tag. Envoy exports OTLP/gRPC straight to
Tempo's receiver: no collector hop to run, scale or lose spans in."""

from __future__ import annotations

from typing import Any

from components import mesh
from components.observability_config import ObservabilityConfig

# grafana-community/helm-charts (tempo moved there in 2026); Tempo 2.10.8.
TEMPO_CHART = "tempo"
TEMPO_VERSION = "2.2.4"
TEMPO_REPO = "https://grafana-community.github.io/helm-charts"
TEMPO_RELEASE = "tempo"  # the chart's fullname is the release name when it contains "tempo"

NS = mesh.MONITORING_NAMESPACE
TEMPO_HOST = f"{TEMPO_RELEASE}.{NS}.svc.cluster.local"
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


def tracing_mesh_config() -> dict[str, Any]:
    """The meshConfig fragment naming Tempo as an OpenTelemetry (OTLP/gRPC) provider."""
    return {
        "extensionProviders": [
            {
                "name": TRACING_PROVIDER,
                "opentelemetry": {"service": TEMPO_HOST, "port": TEMPO_OTLP_GRPC_PORT},
            }
        ]
    }


def telemetry(environment: str, cfg: ObservabilityConfig) -> dict[str, Any]:
    """One selector-less Telemetry in the root namespace: applies to the whole mesh. Envoy
    access logs go to stdout (collected into Loki); production keeps only failed requests."""
    access_log: dict[str, Any] = {"providers": [{"name": "envoy"}]}
    if environment == "production":
        access_log["filter"] = {"expression": "response.code >= 400"}
    return {
        "apiVersion": "telemetry.istio.io/v1",
        "kind": "Telemetry",
        "metadata": {
            "name": TELEMETRY_NAME,
            "namespace": mesh.ROOT_NAMESPACE,
            "labels": mesh.labels(TELEMETRY_NAME),
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
