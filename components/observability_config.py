"""The `observability` config section: sizes, retention, HA and access of the monitoring stack,
per environment. Kept apart from the builders so that `config.py` can import it without pulling
in Pulumi providers; the environment rules that need the full key path are in
`observability_problems`, called from `PlatformConfig._environment_rules`."""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

from pydantic import field_validator, model_validator

from components.model import MISSING, ConfigModel, Problem, between, hostname, region_slug

_SIZE = re.compile(r"^[1-9][0-9]*(Gi|Ti)$")
_PROM_DURATION = re.compile(r"^[1-9][0-9]*(h|d|w)$")
_HOURS = re.compile(r"^[1-9][0-9]*h$")


def _size(v: str) -> str:
    if not _SIZE.match(v):
        raise ValueError("must be a volume size in Gi or Ti, e.g. '50Gi'")
    return v


def _hours(v: str) -> str:
    if not _HOURS.match(v):
        raise ValueError("must be a whole number of hours, e.g. '72h'")
    return v


_replicas = between(1, 5)


class PrometheusSettings(ConfigModel):
    replicas: int
    retention: str
    storage_size: str

    _size = field_validator("storage_size")(_size)
    _replicas = field_validator("replicas")(_replicas)

    @field_validator("retention")
    @classmethod
    def _retention(cls, v: str) -> str:
        if not _PROM_DURATION.match(v):
            raise ValueError("must be a Prometheus duration in h, d or w, e.g. '15d'")
        return v


class AlertmanagerSettings(ConfigModel):
    replicas: int
    storage_size: str

    _size = field_validator("storage_size")(_size)
    _replicas = field_validator("replicas")(_replicas)


class GrafanaSettings(ConfigModel):
    storage_size: str

    _size = field_validator("storage_size")(_size)


class TracingSettings(ConfigModel):
    """Tempo (single binary) and the mesh-wide Telemetry sampling."""

    sampling_percentage: float
    retention: str
    storage_size: str

    _size = field_validator("storage_size")(_size)
    _retention = field_validator("retention")(_hours)

    @field_validator("sampling_percentage")
    @classmethod
    def _sampling(cls, v: float) -> float:
        if not 0 <= v <= 100 or round(v, 2) != v:
            raise ValueError("must be a percentage between 0 and 100 in steps of 0.01")
        return v


class LogsSettings(ConfigModel):
    """Loki. `filesystem`: one single-binary pod on a block volume (cheap, not HA).
    `spaces`: replicated single-binary pods sharing a DigitalOcean Spaces bucket, so losing a
    node or a volume loses no logs and the pods can be rescheduled anywhere."""

    storage: Literal["filesystem", "spaces"]
    replicas: int
    retention: str
    storage_size: str
    # Spaces region of the log bucket; defaults to the cluster's region.
    spaces_region: str | None = None

    _size = field_validator("storage_size")(_size)
    _retention = field_validator("retention")(_hours)
    _replicas = field_validator("replicas")(_replicas)

    @field_validator("spaces_region")
    @classmethod
    def _region(cls, v: str | None) -> str | None:
        return None if v is None else region_slug(v)

    @model_validator(mode="after")
    def _replication(self) -> LogsSettings:
        if self.storage == "filesystem" and self.replicas != 1:
            raise ValueError(
                "replicas must be 1 with storage 'filesystem' (a block volume is not shared); "
                "use storage 'spaces' for more replicas"
            )
        return self


class OpenIdSettings(ConfigModel):
    issuer_uri: str
    client_id: str

    @field_validator("issuer_uri")
    @classmethod
    def _issuer(cls, v: str) -> str:
        if not v.startswith("https://"):
            raise ValueError("must be an https:// URL of the OpenID issuer")
        hostname(v.removeprefix("https://").split("/")[0])
        return v


class KialiSettings(ConfigModel):
    """Kiali login: `token` (a Kubernetes ServiceAccount token) or `openid`. Never anonymous."""

    auth: Literal["token", "openid"]
    openid: OpenIdSettings | None = None

    @model_validator(mode="after")
    def _openid(self) -> KialiSettings:
        if self.auth == "openid" and self.openid is None:
            raise ValueError("auth 'openid' needs openid.issuerUri and openid.clientId")
        return self


class ObservabilityConfig(ConfigModel):
    """Metrics, alerting, dashboards, tracing, logs and Kiali in the `monitoring` namespace."""

    storage_class: str
    prometheus: PrometheusSettings
    alertmanager: AlertmanagerSettings
    grafana: GrafanaSettings
    tracing: TracingSettings
    logs: LogsSettings
    kiali: KialiSettings

    DEFAULTS: ClassVar[dict[str, dict[str, Any]]] = {
        "dev": {
            "storageClass": "do-block-storage",
            "prometheus": {"replicas": 1, "retention": "3d", "storageSize": "20Gi"},
            "alertmanager": {"replicas": 1, "storageSize": "1Gi"},
            "grafana": {"storageSize": "5Gi"},
            "tracing": {"samplingPercentage": 100, "retention": "24h", "storageSize": "10Gi"},
            "logs": {
                "storage": "filesystem",
                "replicas": 1,
                "retention": "72h",
                "storageSize": "10Gi",
            },
            "kiali": {"auth": "token"},
        },
        "staging": {
            "storageClass": "do-block-storage",
            "prometheus": {"replicas": 2, "retention": "31d", "storageSize": "50Gi"},
            "alertmanager": {"replicas": 2, "storageSize": "2Gi"},
            "grafana": {"storageSize": "5Gi"},
            "tracing": {"samplingPercentage": 10, "retention": "72h", "storageSize": "20Gi"},
            "logs": {
                "storage": "filesystem",
                "replicas": 1,
                "retention": "168h",
                "storageSize": "30Gi",
            },
            "kiali": {"auth": "token"},
        },
        "production": {
            "storageClass": "do-block-storage",
            "prometheus": {"replicas": 2, "retention": "35d", "storageSize": "250Gi"},
            "alertmanager": {"replicas": 3, "storageSize": "5Gi"},
            "grafana": {"storageSize": "10Gi"},
            "tracing": {"samplingPercentage": 1, "retention": "168h", "storageSize": "50Gi"},
            "logs": {
                "storage": "spaces",
                "replicas": 3,
                "retention": "720h",
                "storageSize": "20Gi",
            },
            "kiali": {"auth": "token"},
        },
    }

    @field_validator("storage_class")
    @classmethod
    def _storage_class(cls, v: str) -> str:
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", v):
            raise ValueError("must be a StorageClass name such as 'do-block-storage'")
        return v


# Production floors: HA that the issue requires, and a sampling rate the collector can afford.
PRODUCTION_MAX_SAMPLING = 10.0


def observability_problems(
    environment: str, obs: ObservabilityConfig, pager_set: bool, ticket_set: bool
) -> list[Problem]:
    """Rules that depend on the environment, with the key path a user must fix."""
    if environment != "production":
        return []
    problems: list[Problem] = []
    floors = (
        ("observability.prometheus.replicas", obs.prometheus.replicas, 2),
        ("observability.alertmanager.replicas", obs.alertmanager.replicas, 3),
        ("observability.logs.replicas", obs.logs.replicas, 3),
    )
    for key, value, floor in floors:
        if value < floor:
            problems.append(Problem(key, value, f"must be at least {floor} in production (HA)"))
    if obs.logs.storage != "spaces":
        problems.append(
            Problem(
                "observability.logs.storage",
                obs.logs.storage,
                "must be 'spaces' in production (logs survive losing a node or a volume)",
            )
        )
    if obs.tracing.sampling_percentage > PRODUCTION_MAX_SAMPLING:
        problems.append(
            Problem(
                "observability.tracing.samplingPercentage",
                obs.tracing.sampling_percentage,
                f"must be at most {PRODUCTION_MAX_SAMPLING:g} in production",
            )
        )
    for key, present in (("alertPagerUrl", pager_set), ("alertTicketUrl", ticket_set)):
        if not present:
            problems.append(
                Problem(
                    key,
                    MISSING,
                    "is required in production so that alerts reach someone: "
                    f"pulumi config set --secret service-mesh:{key} https://...",
                )
            )
    return problems
