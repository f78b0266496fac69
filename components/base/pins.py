"""Every third-party Helm chart the platform installs, pinned by version, in one place: a bump is
one reviewed line, and the review tool and policy pack read the same pins the program installs.

Each pin was checked against the chart's own `values.yaml` at that version (the keys we set are
tested against it); change a version only together with those values.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ChartPin:
    """A chart at one version from one repository."""

    chart: str
    version: str
    repository: str


# Istio chart versions a stack may install (`istio.revisions[].version`, `istio.baseVersion`),
# oldest first. Each was checked against the charts' values at that version: `base`, `istiod`
# and `gateway` come from one repository at one version each. A new Istio release is one entry
# here (with its values checked), then a canary revision in config (docs/ingress.md).
ISTIO_VERSIONS: tuple[str, ...] = ("1.30.3",)
ISTIO_REPOSITORY = "https://istio-release.storage.googleapis.com/charts"
ISTIO_CHARTS = ("base", "istiod", "gateway")


def istio_chart(chart: str, version: str) -> ChartPin:
    """One of the Istio charts at a pinned version (config has already refused any other)."""
    if chart not in ISTIO_CHARTS or version not in ISTIO_VERSIONS:
        raise ValueError(f"no pinned Istio chart {chart} {version}")
    return ChartPin(chart, version, ISTIO_REPOSITORY)


CERT_MANAGER = ChartPin("cert-manager", "v1.21.1", "https://charts.jetstack.io")

# kube-prometheus-stack 88.5.3 runs Prometheus Operator v0.93.1. Its own CRDs sit in its `crds`
# subchart's `crds/` directory, which Helm installs once and never upgrades, so they come from
# prometheus-operator-crds instead (CRDs as templates: upgraded with the release), at the same
# operator version. Bump the two together: PROMETHEUS_OPERATOR_VERSION says which pair.
PROMETHEUS_OPERATOR_VERSION = "v0.93.1"
KUBE_PROMETHEUS_STACK = ChartPin(
    "kube-prometheus-stack", "88.5.3", "https://prometheus-community.github.io/helm-charts"
)
PROMETHEUS_OPERATOR_CRDS = ChartPin(
    "prometheus-operator-crds", "31.0.1", "https://prometheus-community.github.io/helm-charts"
)
TEMPO = ChartPin("tempo", "2.2.4", "https://grafana-community.github.io/helm-charts")
# Loki 3.7.6; the OSS chart moved to grafana-community in March 2026.
LOKI = ChartPin("loki", "18.11.0", "https://grafana-community.github.io/helm-charts")
# Collector 0.158.0.
OTEL_COLLECTOR = ChartPin(
    "opentelemetry-collector",
    "0.170.0",
    "https://open-telemetry.github.io/opentelemetry-helm-charts",
)
KIALI = ChartPin("kiali-server", "2.29.0", "https://kiali.org/helm-charts")
# metrics-server 0.8.1: DOKS ships none, and every HPA needs the metrics.k8s.io API it serves.
METRICS_SERVER = ChartPin(
    "metrics-server", "3.13.1", "https://kubernetes-sigs.github.io/metrics-server/"
)
# Flagger 1.44.0 (progressive delivery; its CRDs come with the chart) and its load tester
# 0.38.0, both from the Flagger repository.
FLAGGER = ChartPin("flagger", "1.44.0", "https://flagger.app")
FLAGGER_LOADTESTER = ChartPin("loadtester", "0.38.0", "https://flagger.app")
