"""Logs: Loki (grafana-community chart) and an OpenTelemetry Collector DaemonSet that tails every
container's stdout (including Envoy access logs) into it.

Loki runs in Monolithic mode everywhere; what changes is where chunks live. Dev and staging keep
them on one block volume (one pod, cheapest). Production keeps them in a DigitalOcean Spaces
bucket with three replicated pods: a DO volume is attached to one node, so a node or volume loss
would otherwise lose logs and stop ingestion, and object storage is what lets Loki replicate and
reschedule freely. The Distributed mode would add a dozen workloads for volumes we do not have."""

from __future__ import annotations

from typing import Any

from components.base import manifests, mesh
from components.cluster.pools import SYSTEM_POOL_TAINT
from components.observability.config import ObservabilityConfig
from components.security.network_policy import network_policy

LOKI_RELEASE = "loki"  # pins.LOKI
OTEL_RELEASE = "log-collector"

# The gateway (nginx) is the chart's one entry point in every mode: reads and OTLP pushes.
LOKI_URL = f"http://{LOKI_RELEASE}-gateway.{mesh.MONITORING_NAMESPACE}.svc.cluster.local"
LOKI_DATASOURCE_UID = "loki"
SPACES_SECRET = "loki-spaces"
SPACES_ENV = ("LOKI_S3_ACCESS_KEY_ID", "LOKI_S3_SECRET_ACCESS_KEY")
SCHEMA_FROM = "2026-01-01"  # first day of the v13/tsdb schema; never change once deployed


def bucket_resource_name(stack_name: str) -> str:
    """The Pulumi name of the log bucket (its URN), whatever the bucket is called."""
    return f"{stack_name}-logs"


def derived_bucket_name(stack_name: str, suffix: str) -> str:
    """The default bucket name: Spaces names are global across DigitalOcean's customers, so the
    stack name alone would collide; `suffix` is random once and kept in state."""
    return f"{stack_name}-logs-{suffix}"


def spaces_endpoint(region: str) -> str:
    return f"{region}.digitaloceanspaces.com"


def loki_values(cfg: ObservabilityConfig, *, bucket: Any, region: str) -> dict[str, Any]:
    logs = cfg.logs
    spaces = logs.storage == "spaces"
    store = "s3" if spaces else "filesystem"
    storage: dict[str, Any] = {"type": store}
    single: dict[str, Any] = {
        "replicas": logs.replicas,
        "persistence": {
            "enabled": True,
            "size": logs.storage_size,
            "storageClass": cfg.storage_class,
        },
    }
    if spaces:
        assert bucket, "a Spaces bucket is required for storage 'spaces'"
        key_id, secret = SPACES_ENV
        storage |= {
            "bucketNames": {"chunks": bucket, "ruler": bucket},
            "s3": {
                "endpoint": spaces_endpoint(region),
                "region": region,
                # Expanded by Loki from the pod environment (the chart always passes
                # -config.expand-env), which comes from the `loki-spaces` Secret: the keys never
                # enter chart values.
                "accessKeyId": f"${{{key_id}}}",
                "secretAccessKey": f"${{{secret}}}",
                "s3ForcePathStyle": False,
            },
        }
        single |= {"extraEnvFrom": [{"secretRef": {"name": SPACES_SECRET}}]}
    replicated = logs.replicas > 1
    # A drain or a surge upgrade evicts one pod at a time: two of three Loki replicas gone at
    # once lose the write quorum. The chart renders a budget only when one is stated.
    budget = {"podDisruptionBudget": {"maxUnavailable": 1}} if replicated else {}
    return {
        "deploymentMode": "Monolithic",
        "loki": {
            # One tenant: the mesh. Grafana and the collector need no X-Scope-OrgID.
            "auth_enabled": False,
            "commonConfig": {"replication_factor": logs.replicas},
            "storage": storage,
            "schemaConfig": {
                "configs": [
                    {
                        "from": SCHEMA_FROM,
                        "store": "tsdb",
                        "object_store": store,
                        "schema": "v13",
                        "index": {"prefix": "index_", "period": "24h"},
                    }
                ]
            },
            "limits_config": {"retention_period": logs.retention},
            "compactor": {"retention_enabled": True, "delete_request_store": store},
        },
        "singleBinary": {**single, **budget, "resources": cfg.resources.loki.helm()},
        # The gateway is the one entry point for pushes and queries: not a single pod when the
        # backend itself is replicated. Its access-log metrics exporter is off: nothing scrapes
        # Loki (the chart's monitors are off), and it would be a container without requests.
        "gateway": {
            "replicas": 2 if replicated else 1,
            **budget,
            "resources": cfg.resources.loki_gateway.helm(),
            "metrics": {"enabled": False},
        },
        # No Loki ruler rules are declared: no sidecar watching ConfigMaps for them (it would be
        # a container without requests in every Loki pod).
        "sidecar": {"rules": {"enabled": False}},
        # Monolithic mode: the other targets run nothing.
        "read": {"replicas": 0},
        "write": {"replicas": 0},
        "backend": {"replicas": 0},
        # The memcached caches reserve GBs of memory; not worth it at this volume.
        "chunksCache": {"enabled": False},
        "resultsCache": {"enabled": False},
        "lokiCanary": {"enabled": False},
        "test": {"enabled": False},
    }


def spaces_secret(access_key: Any, secret_key: Any) -> dict[str, Any]:
    """The Spaces key Loki reads from its environment (`-config.expand-env`)."""
    key_id, secret = SPACES_ENV
    return manifests.secret(
        SPACES_SECRET, mesh.MONITORING_NAMESPACE, "loki", {key_id: access_key, secret: secret_key}
    )


# The chart's selector labels (opentelemetry-collector 0.170.0 `_helpers.tpl` selectorLabels).
COLLECTOR_POD_LABELS = {
    "app.kubernetes.io/name": "opentelemetry-collector",
    "app.kubernetes.io/instance": OTEL_RELEASE,
}


def collector_values(cfg: ObservabilityConfig) -> dict[str, Any]:
    """A DaemonSet (on every node, the tainted system pool included) that tails container logs
    and pushes them to Loki's OTLP endpoint. It receives nothing from the network: the chart's
    host ports are closed, and `collector_network_policy` admits nothing to the receivers the
    chart still configures on each pod's own IP."""
    closed = ("otlp", "otlp-http", "jaeger-compact", "jaeger-thrift", "jaeger-grpc", "zipkin")
    return {
        "mode": "daemonset",
        "resources": cfg.resources.log_collector.helm(),
        "image": {
            "repository": "ghcr.io/open-telemetry/opentelemetry-collector-releases/"
            "opentelemetry-collector-k8s"
        },
        "command": {"name": "otelcol-k8s"},
        "presets": {
            "logsCollection": {"enabled": True},
            "kubernetesAttributes": {"enabled": True},
        },
        "ports": {name: {"enabled": False} for name in closed},
        "tolerations": [{**SYSTEM_POOL_TAINT, "operator": "Equal"}],
        "config": {
            "exporters": {"otlphttp/loki": {"endpoint": f"{LOKI_URL}/otlp"}},
            "service": {
                "pipelines": {
                    # Receivers and processors are the chart's, plus what the presets add
                    # (filelog, k8sattributes); only the destination is ours.
                    "logs": {"exporters": ["otlphttp/loki"]}
                }
            },
        },
    }


def collector_network_policy() -> dict[str, Any]:
    """No ingress to the log collector's pods: it only reads files and pushes to Loki, and the
    chart's default OTLP, Jaeger and Zipkin receivers would otherwise take spans and logs from
    any pod in the cluster (the node's own traffic, its probes, is always allowed)."""
    return network_policy(
        mesh.MONITORING_NAMESPACE,
        f"{OTEL_RELEASE}-deny-ingress",
        {"podSelector": {"matchLabels": dict(COLLECTOR_POD_LABELS)}, "policyTypes": ["Ingress"]},
    )
