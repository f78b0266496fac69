"""`Observability`: registers the metrics, alerting, dashboards, tracing, logs and Kiali that the
builders in `metrics.py`, `tracing.py`, `logs.py`, `kiali.py` and `dashboards.py` describe, all
in the `monitoring` namespace (not in the mesh: no sidecars), plus the Istio scraping monitors
(`scraping.py`) and the mesh-wide Telemetry.

Helm: kube-prometheus-stack is a `helm.v3.Release` because the chart relies on hooks (the
admission-webhook certificate Jobs run as pre/post-install hooks) that `helm.v4.Chart` drops.
The Prometheus Operator CRDs are a release of their own (prometheus-operator-crds, at the
operator's version): the stack's chart ships them in a `crds/` directory, which Helm never
upgrades, so a chart bump would run a new operator on old CRDs. A Release, not a v4 Chart,
because Helm honours the chart's `resource-policy: keep`: removing it never deletes the CRDs
and with them every monitor and rule.
Tempo, Loki, the log collector and Kiali have no hooks we use, so they are `helm.v4.Chart`s:
one preview diff per rendered object for review. None of those charts renders a Prometheus
Operator object (their monitors are off; ours are in `scraping.py`), so none needs the CRDs.

Graph: everything waits only for the namespace (and its Secrets); the stack waits for the
CRDs release, and Prometheus Operator objects for the stack (the CRDs and the operator); the
Telemetry waits for Istio's CRDs.
Nothing here waits for istiod, so this layer installs in parallel with the mesh."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_digitalocean as do
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.base import manifests, mesh, pins
from components.base.manifests import qualified_name
from components.base.resources import chart, register, release
from components.observability import (
    certificates,
    dashboards,
    kiali,
    logs,
    metrics,
    scraping,
    tracing,
)
from components.observability.config import ObservabilityConfig


@dataclass(frozen=True)
class ObservabilityArgs:
    stack_name: str  # names the log bucket
    environment: str  # Prometheus' external label and the spans' tag
    region: str  # the cluster's: the log bucket's region unless `logs.spacesRegion` is set
    observability: ObservabilityConfig
    # Alertmanager receiver URLs (Pulumi secrets), None when not configured.
    pager_url: pulumi.Input[str] | None
    ticket_url: pulumi.Input[str] | None
    mesh_namespaces: tuple[str, ...]  # scraped for Envoy metrics, beside the gateways'
    namespaces: Mapping[str, pulumi.Resource]  # the scraped namespaces' Namespace objects
    crds_ready: Sequence[pulumi.Resource]  # Istio CRDs and istiod's webhook (the Telemetry)


class Observability(pulumi.ComponentResource):
    """The monitoring stack. `.prometheus_stack` is what Prometheus Operator objects (SLO
    PrometheusRules) depend on; `.namespace` is the `monitoring` Namespace."""

    def __init__(
        self, name: str, args: ObservabilityArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("service-mesh:observability:Observability", name, None, opts)
        obs = args.observability
        ns_name = mesh.MONITORING_NAMESPACE
        self.namespace = k8s.core.v1.Namespace(
            f"ns-{ns_name}",
            # Discovered by istiod: Envoy sends spans to Tempo here through the `tempo-otlp`
            # extension provider, whose service istiod only resolves in a namespace it sees.
            # Not injected: the monitoring stack runs without sidecars.
            metadata={
                "name": ns_name,
                "labels": {**manifests.labels(ns_name), **mesh.DISCOVERY_LABEL},
            },
            opts=self._opts(),
        )
        in_ns = self._opts(depends_on=[self.namespace])

        password = random.RandomPassword(
            "grafana-admin-password", length=32, special=False, opts=self._opts()
        )
        grafana_secret = self._secret(metrics.grafana_admin_secret(password.result), in_ns)
        urls = {"pager": args.pager_url, "ticket": args.ticket_url}
        configured = {k: pulumi.Output.secret(v) for k, v in urls.items() if v is not None}
        receivers = self._secret(metrics.receivers_secret(configured), in_ns)

        kps_values = metrics.prometheus_stack_values(
            args.environment,
            obs,
            pager="pager" in configured,
            ticket="ticket" in configured,
            datasources=metrics.grafana_datasources(),
            dashboards=dashboards.istio_dashboards_values(pins.ISTIO_VERSIONS[-1]),
        )
        # The operator's CRDs first, as a release of their own (the operator needs them).
        self.operator_crds = release(
            metrics.CRDS_RELEASE,
            pins.PROMETHEUS_OPERATOR_CRDS,
            ns_name,
            metrics.operator_crds_values(),
            in_ns,
        )
        self.prometheus_stack = release(
            metrics.KPS_RELEASE,
            pins.KUBE_PROMETHEUS_STACK,
            ns_name,
            kps_values,
            self._opts(depends_on=[self.namespace, self.operator_crds, grafana_secret, receivers]),
        )

        self._chart(tracing.TEMPO_RELEASE, pins.TEMPO, tracing.tempo_values(obs), in_ns)
        self._logs(args, in_ns)
        self._chart(logs.OTEL_RELEASE, pins.OTEL_COLLECTOR, logs.collector_values(obs), in_ns)
        self._object(logs.collector_network_policy(), in_ns)
        signing_key = random.RandomPassword(
            "kiali-signing-key", length=kiali.SIGNING_KEY_LENGTH, special=False, opts=self._opts()
        )
        signing = self._secret(kiali.signing_key_secret(signing_key.result), in_ns)
        self._chart(
            kiali.KIALI_RELEASE,
            pins.KIALI,
            kiali.kiali_values(obs),
            # The Secrets it mounts (signing key, Grafana login) exist before its pod starts.
            self._opts(depends_on=[self.namespace, signing, grafana_secret]),
        )
        self._object(dashboards.slo_dashboard_configmap(), in_ns)

        # Prometheus Operator objects need the operator's CRDs, i.e. the release.
        for ns in scraping.scraped_namespaces(args.mesh_namespaces):
            self._object(
                scraping.envoy_pod_monitor(ns),
                self._opts(depends_on=[self.prometheus_stack, args.namespaces[ns]]),
            )
        for monitor in (
            scraping.istiod_service_monitor(),
            scraping.tempo_service_monitor(),
            certificates.cert_manager_service_monitor(),
            certificates.certificate_rule(args.environment),
        ):
            self._object(monitor, self._opts(depends_on=[self.prometheus_stack]))
        self.telemetry = self._object(
            tracing.telemetry(obs, args.environment), self._opts(depends_on=list(args.crds_ready))
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
        """A Secret is named by its own name (its namespace is always `monitoring`)."""
        return register(body["metadata"]["name"], body, opts)

    def _object(self, body: dict[str, Any], opts: pulumi.ResourceOptions) -> pulumi.Resource:
        return register(qualified_name(body), body, opts)

    def _chart(
        self,
        release_name: str,
        pin: pins.ChartPin,
        values: dict[str, Any],
        opts: pulumi.ResourceOptions,
    ) -> pulumi.Resource:
        """A hook-free chart in the monitoring namespace: one preview diff per object."""
        return chart(release_name, pin, mesh.MONITORING_NAMESPACE, values, opts)

    def _logs(self, args: ObservabilityArgs, in_ns: pulumi.ResourceOptions) -> None:
        """Loki, and in `spaces` mode its bucket (protected per `logs.protect`) and a key that
        can only read and write that bucket."""
        obs = args.observability
        region = obs.logs.spaces_region or args.region
        bucket: pulumi.Input[str] | None = None
        opts = in_ns
        if obs.logs.storage == "spaces":
            resource = logs.bucket_resource_name(args.stack_name)
            bucket = obs.logs.bucket
            if bucket is None:
                # Random once, kept (and protected) in state: the bucket's name never changes
                # by itself, which would replace the bucket.
                suffix = random.RandomId(
                    f"{resource}-suffix",
                    byte_length=4,
                    opts=self._opts(protect=obs.logs.protect),
                )
                bucket = suffix.hex.apply(lambda h: logs.derived_bucket_name(args.stack_name, h))
            space = do.SpacesBucket(
                resource,
                name=bucket,
                region=region,
                acl="private",
                opts=self._opts(protect=obs.logs.protect),
            )
            bucket = space.name  # Loki waits for the bucket it writes to
            key = do.SpacesKey(
                f"{resource}-loki",
                name=f"{resource}-loki",
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
            pins.LOKI,
            logs.loki_values(obs, bucket=bucket, region=region),
            opts,
        )
