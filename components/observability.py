"""Observability layer: registers the metrics, alerting, dashboards, tracing, logs and Kiali that
the builders in `metrics.py`, `tracing.py`, `logs.py`, `kiali.py` and `dashboards.py` describe,
all in the `monitoring` namespace (not in the mesh: no sidecars), plus the Istio scraping
monitors and the mesh-wide Telemetry.

Helm: kube-prometheus-stack is a `helm.v3.Release` because the chart relies on hooks (the
admission-webhook certificate Jobs run as pre/post-install hooks) that `helm.v4.Chart` drops.
Tempo, Loki, the log collector and Kiali have no hooks we use, so they are `helm.v4.Chart`s:
one preview diff per rendered object for review. None of those charts renders a Prometheus
Operator object (their monitors are off; ours are in `scraping.py`), so none needs the CRDs.

Graph: everything waits only for the namespace (and its Secrets); Prometheus Operator objects
wait for the kube-prometheus-stack release (its CRDs); the Telemetry waits for Istio's CRDs.
Nothing here waits for istiod, so this layer installs in parallel with the mesh."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pulumi
import pulumi_digitalocean as do
import pulumi_kubernetes as k8s
import pulumi_random as random

from components import dashboards, kiali, logs, mesh, metrics, scraping, tracing
from components.charts import chart, release
from components.istio import ISTIO_VERSION
from components.objects import register

if TYPE_CHECKING:
    from components.config import PlatformConfig
    from components.namespaces import PlatformNamespaces

__all__ = ["Observability", "mesh_config", "scraped_namespaces"]


def mesh_config(cfg: PlatformConfig) -> dict[str, Any]:
    """istiod's meshConfig fragment this layer needs: the Tempo OpenTelemetry provider, and
    metrics merging (the envoy PodMonitors read the `prometheus.io/*` annotations it writes)."""
    return {"enablePrometheusMerge": True, **tracing.tracing_mesh_config()}


def scraped_namespaces(cfg: PlatformConfig) -> list[str]:
    """Namespaces running Envoy: the gateways' and every declared mesh namespace."""
    return [mesh.INGRESS_NAMESPACE, mesh.EGRESS_NAMESPACE, *(n.name for n in cfg.mesh_namespaces)]


def _secret_or_none(value: Any) -> pulumi.Output[str] | None:
    return None if value is None else pulumi.Output.secret(value.get_secret_value())


class Observability(pulumi.ComponentResource):
    """The monitoring stack. `.prometheus_stack` is what Prometheus Operator objects (SLO
    PrometheusRules) depend on; `.namespace` is the `monitoring` Namespace."""

    def __init__(
        self,
        name: str,
        cfg: PlatformConfig,
        *,
        namespaces: PlatformNamespaces,
        crds_ready: Sequence[pulumi.Resource],
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("service-mesh:observability:Observability", name, None, opts)
        obs = cfg.observability
        self._cfg = cfg
        ns_name = mesh.MONITORING_NAMESPACE
        self.namespace = k8s.core.v1.Namespace(
            f"ns-{ns_name}",
            metadata={"name": ns_name, "labels": mesh.labels(ns_name)},
            opts=self._opts(),
        )
        in_ns = self._opts(depends_on=[self.namespace])

        password = random.RandomPassword(
            "grafana-admin-password", length=32, special=False, opts=self._opts()
        )
        grafana_secret = self._secret(metrics.grafana_admin_secret(password.result), in_ns)
        urls = {
            "pager": _secret_or_none(cfg.alert_pager_url),
            "ticket": _secret_or_none(cfg.alert_ticket_url),
        }
        configured = {k: v for k, v in urls.items() if v is not None}
        receivers = self._secret(metrics.receivers_secret(configured), in_ns)

        kps_values = metrics.prometheus_stack_values(
            cfg.environment,
            obs,
            pager="pager" in configured,
            ticket="ticket" in configured,
            datasources=grafana_datasources(),
            dashboards=dashboards.istio_dashboards_values(ISTIO_VERSION),
        )
        self.prometheus_stack = release(
            metrics.KPS_RELEASE,
            metrics.KPS_CHART,
            ns_name,
            kps_values,
            self._opts(depends_on=[self.namespace, grafana_secret, receivers]),
            version=metrics.KPS_VERSION,
            repository=metrics.KPS_REPO,
        )

        self._chart(
            "tempo",
            tracing.TEMPO_CHART,
            tracing.TEMPO_VERSION,
            tracing.TEMPO_REPO,
            tracing.tempo_values(obs),
            in_ns,
        )
        self._logs(name, in_ns)
        self._chart(
            logs.OTEL_RELEASE,
            logs.OTEL_CHART,
            logs.OTEL_VERSION,
            logs.OTEL_REPO,
            logs.collector_values(),
            in_ns,
        )
        signing_key = random.RandomPassword(
            "kiali-signing-key", length=kiali.SIGNING_KEY_LENGTH, special=False, opts=self._opts()
        )
        signing = self._secret(kiali.signing_key_secret(signing_key.result), in_ns)
        self._chart(
            kiali.KIALI_RELEASE,
            kiali.KIALI_CHART,
            kiali.KIALI_VERSION,
            kiali.KIALI_REPO,
            kiali.kiali_values(obs),
            # The Secrets it mounts (signing key, Grafana login) exist before its pod starts.
            self._opts(depends_on=[self.namespace, signing, grafana_secret]),
        )
        self._object(dashboards.slo_dashboard_configmap(), in_ns)

        # Prometheus Operator objects need the operator's CRDs, i.e. the release.
        for ns in scraped_namespaces(cfg):
            self._object(
                scraping.envoy_pod_monitor(ns),
                self._opts(depends_on=[self.prometheus_stack, namespaces.get(ns)]),
            )
        for monitor in (scraping.istiod_service_monitor(), scraping.tempo_service_monitor()):
            self._object(monitor, self._opts(depends_on=[self.prometheus_stack]))
        self.telemetry = self._object(
            tracing.telemetry(cfg.environment, obs), self._opts(depends_on=list(crds_ready))
        )
        self.register_outputs(
            {
                "namespace": ns_name,
                "grafanaService": metrics.GRAFANA_SERVICE,
                "prometheusUrl": metrics.PROMETHEUS_URL,
            }
        )

    # --- helpers --------------------------------------------------------------------------

    def _opts(self, **kwargs: Any) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self, **kwargs)

    def _secret(self, body: dict[str, Any], opts: pulumi.ResourceOptions) -> pulumi.Resource:
        return register(body["metadata"]["name"], body, opts)

    def _object(self, body: dict[str, Any], opts: pulumi.ResourceOptions) -> pulumi.Resource:
        meta = body["metadata"]
        return register(f"{body['kind'].lower()}-{meta['namespace']}-{meta['name']}", body, opts)

    def _chart(
        self,
        release: str,
        chart_name: str,
        version: str,
        repo: str,
        values: dict[str, Any],
        opts: pulumi.ResourceOptions,
    ) -> pulumi.Resource:
        """A hook-free chart in the monitoring namespace: one preview diff per object."""
        return chart(
            release,
            chart_name,
            mesh.MONITORING_NAMESPACE,
            values,
            opts,
            version=version,
            repository=repo,
        )

    def _logs(self, name: str, in_ns: pulumi.ResourceOptions) -> None:
        """Loki, and in `spaces` mode its bucket (protected in production) and a key that can
        only read and write that bucket."""
        cfg = self._cfg
        obs = cfg.observability
        region = obs.logs.spaces_region or cfg.cluster.region
        bucket: str | None = None
        opts = in_ns
        if obs.logs.storage == "spaces":
            bucket = logs.bucket_name(cfg.name)
            space = do.SpacesBucket(
                bucket,
                name=bucket,
                region=region,
                acl="private",
                opts=self._opts(protect=cfg.environment == "production"),
            )
            key = do.SpacesKey(
                f"{bucket}-loki",
                name=f"{bucket}-loki",
                grants=[do.SpacesKeyGrantArgs(bucket=space.name, permission="readwrite")],
                opts=self._opts(),
            )
            secret = self._secret(
                logs.spaces_secret(
                    pulumi.Output.secret(key.access_key), pulumi.Output.secret(key.secret_key)
                ),
                in_ns,
            )
            opts = self._opts(depends_on=[self.namespace, secret])
        self._chart(
            logs.LOKI_RELEASE,
            logs.LOKI_CHART,
            logs.LOKI_VERSION,
            logs.LOKI_REPO,
            logs.loki_values(obs, bucket=bucket, region=region),
            opts,
        )


def grafana_datasources() -> list[dict[str, Any]]:
    """Loki and Tempo beside the chart's default Prometheus data source (uid `prometheus`),
    linked both ways: trace ids in logs open Tempo, spans open their logs and metrics."""
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
                "tracesToMetrics": {"datasourceUid": metrics.PROMETHEUS_DATASOURCE_UID},
                "serviceMap": {"datasourceUid": metrics.PROMETHEUS_DATASOURCE_UID},
            },
        },
    ]
