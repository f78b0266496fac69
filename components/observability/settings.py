"""The settings of each part of the monitoring stack (`observability.prometheus`,
`.alertmanager`, `.grafana`, `.tracing`, `.logs`, `.kiali`): their shapes and field checks.
The section, its profiles and its tier rules are in `config.py`. Pure: no Pulumi."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import field_validator, model_validator

from components.base.model import ConfigModel, between, hostname
from components.cluster.catalog import SPACES_REGIONS, suggestion

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
    # Protect the Spaces bucket (storage 'spaces') against deletion: it holds the logs.
    protect: bool
    # Spaces bucket name (storage 'spaces'). Bucket names are shared by every DigitalOcean
    # customer, so the default is `<name>-logs-<8 hex>`, the suffix random once and kept in the
    # stack's state; set it to keep a bucket across a rebuild into a new state.
    bucket: str | None = None

    _size = field_validator("storage_size")(_size)
    _retention = field_validator("retention")(_hours)
    _replicas = field_validator("replicas")(_replicas)

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]", v):
            raise ValueError(
                "must be a Spaces bucket name: 3 to 63 lowercase letters, digits and '-', "
                "starting and ending with a letter or digit"
            )
        return v

    @field_validator("spaces_region")
    @classmethod
    def _region(cls, v: str | None) -> str | None:
        if v is not None and v not in SPACES_REGIONS:
            raise ValueError(
                f"must be a DigitalOcean region with Spaces{suggestion(v, SPACES_REGIONS)}: "
                f"{', '.join(SPACES_REGIONS)}"
            )
        return v

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
