"""The `observability` config section: sizes, retention, HA and access of the monitoring stack,
with per-tier profiles; the rules the tier sets are in `observability_problems`, called from the
stack's composition so that each refusal names its full key path. Each part's settings are in
`settings.py`, the pods' requests in `sizing.py`. Pure: no Pulumi."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import field_validator

from components.base.model import MISSING, ConfigModel, Problem
from components.base.profiles import Profile
from components.cluster.catalog import SPACES_REGIONS
from components.observability.settings import (
    AlertmanagerSettings,
    GrafanaSettings,
    KialiSettings,
    LogsSettings,
    PrometheusSettings,
    TracingSettings,
)
from components.observability.sizing import RESOURCES, ObservabilityResources


@dataclass(frozen=True)
class ObservabilityRules:
    """What a tier demands of the monitoring stack: HA floors, durable and protected logs, a
    sampling rate the collector can afford, and alert receivers that reach someone."""

    min_prometheus_replicas: int
    min_alertmanager_replicas: int
    min_logs_replicas: int
    logs_on_spaces: bool
    protect_logs: bool
    max_sampling_percentage: float
    receivers_required: bool

    @classmethod
    def none(cls) -> ObservabilityRules:
        return cls(1, 1, 1, False, False, 100.0, False)


def _defaults(
    *,
    prometheus: dict[str, Any],
    alertmanager: dict[str, Any],
    grafana_size: str,
    tracing: dict[str, Any],
    logs: dict[str, Any],
    access_logs: str,
    resources: dict[str, Any],
) -> dict[str, Any]:
    return {
        "storageClass": "do-block-storage",
        "prometheus": prometheus,
        "alertmanager": alertmanager,
        "grafana": {"storageSize": grafana_size},
        "tracing": tracing,
        "logs": logs,
        "kiali": {"auth": "token"},
        "accessLogs": access_logs,
        "resources": resources,
    }


class ObservabilityConfig(ConfigModel):
    """Metrics, alerting, dashboards, tracing, logs and Kiali in the `monitoring` namespace."""

    storage_class: str
    prometheus: PrometheusSettings
    alertmanager: AlertmanagerSettings
    grafana: GrafanaSettings
    tracing: TracingSettings
    logs: LogsSettings
    kiali: KialiSettings
    # Envoy access logs (to stdout, into Loki): every request, or only those answered >= 400.
    access_logs: Literal["all", "errors"]
    # Requests and memory limit of each monitoring pod (`components/observability/sizing.py`).
    resources: ObservabilityResources

    PROFILES: ClassVar[dict[str, Profile[ObservabilityRules]]] = {
        "dev": Profile(
            _defaults(
                prometheus={"replicas": 1, "retention": "3d", "storageSize": "20Gi"},
                alertmanager={"replicas": 1, "storageSize": "1Gi"},
                grafana_size="5Gi",
                tracing={"samplingPercentage": 100, "retention": "24h", "storageSize": "10Gi"},
                logs={
                    "storage": "filesystem",
                    "replicas": 1,
                    "retention": "72h",
                    "storageSize": "10Gi",
                    "protect": False,
                },
                access_logs="all",
                resources=RESOURCES["dev"],
            ),
            ObservabilityRules.none(),
        ),
        "staging": Profile(
            _defaults(
                prometheus={"replicas": 2, "retention": "31d", "storageSize": "50Gi"},
                alertmanager={"replicas": 2, "storageSize": "2Gi"},
                grafana_size="5Gi",
                tracing={"samplingPercentage": 10, "retention": "72h", "storageSize": "20Gi"},
                logs={
                    "storage": "filesystem",
                    "replicas": 1,
                    "retention": "168h",
                    "storageSize": "30Gi",
                    "protect": False,
                },
                access_logs="all",
                resources=RESOURCES["staging"],
            ),
            ObservabilityRules.none(),
        ),
        "production": Profile(
            _defaults(
                prometheus={"replicas": 2, "retention": "35d", "storageSize": "250Gi"},
                alertmanager={"replicas": 3, "storageSize": "5Gi"},
                grafana_size="10Gi",
                tracing={"samplingPercentage": 1, "retention": "168h", "storageSize": "50Gi"},
                logs={
                    "storage": "spaces",
                    "replicas": 3,
                    "retention": "720h",
                    "storageSize": "20Gi",
                    "protect": True,
                },
                access_logs="errors",
                resources=RESOURCES["production"],
            ),
            ObservabilityRules(
                min_prometheus_replicas=2,
                min_alertmanager_replicas=3,
                min_logs_replicas=3,
                logs_on_spaces=True,
                protect_logs=True,
                max_sampling_percentage=10.0,
                receivers_required=True,
            ),
        ),
    }

    @field_validator("storage_class")
    @classmethod
    def _storage_class(cls, v: str) -> str:
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", v):
            raise ValueError("must be a StorageClass name such as 'do-block-storage'")
        return v


def observability_problems(
    obs: ObservabilityConfig,
    rules: ObservabilityRules,
    environment: str,
    pager_set: bool,
    ticket_set: bool,
    cluster_region: str | None = None,
) -> list[Problem]:
    """Rules the tier sets, with the key path a user must fix (`environment` only in messages).
    The log bucket defaults to `cluster_region`, which may be a region without Spaces."""
    problems: list[Problem] = []
    if (
        obs.logs.storage == "spaces"
        and obs.logs.spaces_region is None
        and cluster_region is not None
        and cluster_region not in SPACES_REGIONS
    ):
        problems.append(
            Problem(
                "observability.logs.spacesRegion",
                MISSING,
                f"is required with storage 'spaces': the cluster's region {cluster_region!r} has "
                f"no Spaces; choose one of: {', '.join(SPACES_REGIONS)}",
            )
        )
    floors = (
        (
            "observability.prometheus.replicas",
            obs.prometheus.replicas,
            rules.min_prometheus_replicas,
        ),
        (
            "observability.alertmanager.replicas",
            obs.alertmanager.replicas,
            rules.min_alertmanager_replicas,
        ),
        ("observability.logs.replicas", obs.logs.replicas, rules.min_logs_replicas),
    )
    for key, value, floor in floors:
        if value < floor:
            problems.append(Problem(key, value, f"must be at least {floor} in {environment} (HA)"))
    if rules.logs_on_spaces and obs.logs.storage != "spaces":
        problems.append(
            Problem(
                "observability.logs.storage",
                obs.logs.storage,
                f"must be 'spaces' in {environment} (logs survive losing a node or a volume)",
            )
        )
    if rules.protect_logs and obs.logs.storage == "spaces" and not obs.logs.protect:
        problems.append(
            Problem(
                "observability.logs.protect",
                False,
                f"must be true in {environment} (the log bucket holds state)",
            )
        )
    if obs.tracing.sampling_percentage > rules.max_sampling_percentage:
        problems.append(
            Problem(
                "observability.tracing.samplingPercentage",
                obs.tracing.sampling_percentage,
                f"must be at most {rules.max_sampling_percentage:g} in {environment}",
            )
        )
    for key, present in (("alertPagerUrl", pager_set), ("alertTicketUrl", ticket_set)):
        if rules.receivers_required and not present:
            problems.append(
                Problem(
                    key,
                    MISSING,
                    f"is required in {environment} so that alerts reach someone: "
                    f"pulumi config set --secret service-mesh:{key} https://...",
                )
            )
    return problems
