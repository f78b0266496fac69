"""What a service in the graph declares about its traffic (`services[i].traffic`): its versions
(DestinationRule subsets: name -> pod labels), an ordered list of HTTP routes (matches from
`matches.py`, weighted destinations by version, a mirror, a fault), resilience overrides, and
either those static routes or a Flagger `canary` (never both: Flagger owns the routing of a
canaried host).

Why on the graph: authorization, network policies and sidecar scoping must see a canary (its
generated `-primary` workload and the load tester are callers and callees too), and they read
only the graph. The models here are plain data; the checks that need the whole graph, the tier
or the Gateway are in `checks.py`, `canary_checks.py` and `exposure.py`. Pure: no Pulumi.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from components.base.model import ConfigModel, between, dns_label
from components.traffic.matches import RouteMatch, check_method, check_uri
from components.traffic.resilience import Resilience, Retries, duration

GRPC_STATUSES = (
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
)


class Destination(ConfigModel):
    """A version of the service; `weight` is relative to the route's other destinations."""

    version: str
    weight: int | None = None


class Mirror(ConfigModel):
    """A copy of `percentage` % of the route's requests goes to `version` (responses dropped)."""

    version: str
    percentage: float = 100.0

    @field_validator("percentage")
    @classmethod
    def _share(cls, v: float) -> float:
        if not 0 < v <= 100:
            raise ValueError("must be a percentage above 0 and at most 100")
        return v


class Delay(ConfigModel):
    fixed_delay: str
    percentage: float

    _delay = field_validator("fixed_delay")(duration)


class Abort(ConfigModel):
    http_status: int | None = None
    grpc_status: str | None = None
    percentage: float

    @model_validator(mode="after")
    def _one(self) -> Abort:
        if (self.http_status is None) == (self.grpc_status is None):
            raise ValueError("set exactly one of httpStatus or grpcStatus")
        if self.http_status is not None and not 200 <= self.http_status <= 599:
            raise ValueError("httpStatus must be an HTTP status code 200-599")
        if self.grpc_status is not None and self.grpc_status not in GRPC_STATUSES:
            raise ValueError(f"grpcStatus must be one of: {', '.join(GRPC_STATUSES)}")
        return self


class Fault(ConfigModel):
    """Client-side fault injection on this route: a delay and/or an abort, each on a share of
    requests. Istio applies no timeout or retries on a route with a fault."""

    delay: Delay | None = None
    abort: Abort | None = None

    @field_validator("delay", "abort")
    @classmethod
    def _share(cls, v: Any) -> Any:
        if v is not None and not 0 < v.percentage <= 100:
            raise ValueError("percentage must be above 0 and at most 100")
        return v

    @model_validator(mode="after")
    def _some(self) -> Fault:
        if self.delay is None and self.abort is None:
            raise ValueError("set delay, abort or both")
        return self

    def istio(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.delay is not None:
            out["delay"] = {
                "fixedDelay": self.delay.fixed_delay,
                "percentage": {"value": self.delay.percentage},
            }
        if self.abort is not None:
            code = (
                {"httpStatus": self.abort.http_status}
                if self.abort.http_status is not None
                else {"grpcStatus": self.abort.grpc_status}
            )
            out["abort"] = {**code, "percentage": {"value": self.abort.percentage}}
        return out


class HttpRoute(ConfigModel):
    """One rule of the service's VirtualService. Rules are tried in order and the first whose
    match holds wins; the last rule has no `match` and takes everything else."""

    name: str | None = None
    match: tuple[RouteMatch, ...] = ()
    destinations: tuple[Destination, ...] = Field(min_length=1)
    mirror: Mirror | None = None
    fault: Fault | None = None
    # Override the service's timeout and retries on this route only.
    timeout: str | None = None
    retries: Retries | None = None

    _timeout = field_validator("timeout")(duration)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        return None if v is None else dns_label(v)


class LoadTest(ConfigModel):
    """Traffic the Flagger load tester sends during an analysis, so that a quiet service still
    produces the metrics it is judged on ("no values found" would stall it). The service's
    authorization admits exactly this method on this path from the load tester, on the
    service's first HTTP port (what a `cmd` must call too)."""

    method: str = "GET"
    path: str = "/"
    qps: int = 10
    concurrency: int = 2
    # A full command for the load tester instead of `hey` (e.g. `ghz` for a gRPC service).
    cmd: str | None = None

    _method = field_validator("method")(check_method)
    _path = field_validator("path")(check_uri)
    _qps = field_validator("qps")(between(1, 1000, " requests per second"))
    _concurrency = field_validator("concurrency")(between(1, 100))


class CanaryAnalysis(ConfigModel):
    """How Flagger judges a canary. The tier's defaults are `traffic.canary`; a service's
    `canary.analysis` overrides the keys it states."""

    interval: str | None = None
    threshold: int | None = None  # failed checks before rollback
    step_weight: int | None = None  # progressive: canary weight added per interval
    max_weight: int | None = None  # progressive: promoted once reached
    iterations: int | None = None  # ab and mirror: intervals before promotion
    mirror_weight: int | None = None  # mirror: % of traffic copied to the canary
    # Rolled back when the canary spends its SLO's error budget faster than this.
    max_burn_rate: float | None = None
    progress_deadline_seconds: int | None = None

    @field_validator("interval")
    @classmethod
    def _interval(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[1-9][0-9]*(s|m)", v):
            raise ValueError("must be whole seconds or minutes such as '30s' or '1m'")
        return v

    @field_validator("step_weight", "max_weight", "mirror_weight")
    @classmethod
    def _weight(cls, v: int | None) -> int | None:
        if v is not None and not 1 <= v <= 100:
            raise ValueError("must be a percentage between 1 and 100")
        return v

    @field_validator("threshold", "iterations")
    @classmethod
    def _count(cls, v: int | None) -> int | None:
        if v is not None and not 1 <= v <= 100:
            raise ValueError("must be between 1 and 100")
        return v

    @field_validator("max_burn_rate")
    @classmethod
    def _burn(cls, v: float | None) -> float | None:
        if v is not None and not 0 < v <= 1000:
            raise ValueError("must be a burn rate above 0, e.g. 1 (exactly the SLO's budget)")
        return v

    @field_validator("progress_deadline_seconds")
    @classmethod
    def _deadline(cls, v: int | None) -> int | None:
        if v is not None and not 60 <= v <= 86400:
            raise ValueError("must be between 60 and 86400 seconds")
        return v


class Canary(ConfigModel):
    """A Flagger canary for the service: `progressive` shifts weight step by step, `ab` sends
    the requests that `match` (headers or a cookie) to the canary, `mirror` copies traffic to it;
    judged by the service's SLO objectives, fed by the load tester."""

    kind: Literal["progressive", "ab", "mirror"] = "progressive"
    match: tuple[RouteMatch, ...] = ()
    analysis: CanaryAnalysis | None = None
    load_test: LoadTest = Field(default_factory=LoadTest)
    # The HorizontalPodAutoscaler (autoscaling/v2) of the service's Deployment, if it has one.
    # Flagger then gives the primary a copy of it; without it the primary runs the replica
    # count it was created with, never autoscaled, while the HPA fights Flagger over the
    # Deployment it scales to zero after every promotion.
    autoscaler: str | None = None

    @field_validator("autoscaler")
    @classmethod
    def _autoscaler(cls, v: str | None) -> str | None:
        return None if v is None else dns_label(v)


class ServiceTraffic(ConfigModel):
    """Everything a service declares about its traffic (`services[i].traffic`)."""

    # Version (subset) name -> pod labels that select it among the service's pods.
    versions: dict[str, dict[str, str]] = Field(default_factory=dict)
    routes: tuple[HttpRoute, ...] = ()
    resilience: Resilience | None = None
    canary: Canary | None = None
    # Where the tier refuses fault injection (production), the reason it is allowed here.
    fault_exception: str | None = None

    @field_validator("versions")
    @classmethod
    def _versions(cls, v: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        for name, labels in v.items():
            try:
                dns_label(name)
            except ValueError as error:
                raise ValueError(f"version name {name!r} {error}") from None
            if not labels:
                raise ValueError(f"version {name!r} needs the pod labels that select it")
        return v
