"""Resilience a client proxy applies to a service: the route's timeout and retries
(VirtualService) and the destination's load balancer, connection pool and outlier detection
(DestinationRule), as one typed block. The tier's defaults are `traffic.resilience`; a service
(`services[i].traffic.resilience`) and a route (`routes[j].timeout`/`retries`) override only the
keys they state (`overlay`).

Every field is optional so that an override can state one key; the tier's profile states all of
them. `timeout: null` in an override removes the tier's timeout (a streaming gRPC service).
`circuitBreaker` and `consecutiveErrors`, which old examples use, are refused with what to use
instead (`seed_mistakes`). Pure: no Pulumi.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import Field, PrivateAttr, field_validator, model_validator

from components.base.model import ConfigModel, Problem, between

_DURATION = re.compile(r"^([0-9]+)(ms|s|m|h)$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}

# Istio 1.30's allowed `retryOn` policies (pilot validation; an HTTP status code is allowed too
# and implies `retriable-status-codes`).
RETRY_ON_TOKENS: tuple[str, ...] = (
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "envoy-ratelimited",
    "http3-post-connect-failure",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
)

# Keys old examples use that Istio does not have (or deprecated), and what to write instead.
SEED_MISTAKES: dict[str, str] = {
    "circuitBreaker": (
        "is not an Istio field: use connectionPool (limits: maxConnections, "
        "http1MaxPendingRequests, http2MaxRequests, maxRetries) and outlierDetection "
        "(ejection: consecutive5xxErrors, interval, baseEjectionTime, maxEjectionPercent) "
        "instead, which together are Istio's circuit breaking"
    ),
    "consecutiveErrors": (
        "is deprecated in Istio and ignored once consecutive5xxErrors is set: use "
        "consecutive5xxErrors (any 5xx), or consecutiveGatewayErrors (502, 503, 504 only)"
    ),
}


def duration_ms(value: str) -> int:
    """'500ms' -> 500, '2s' -> 2000 (a validated duration)."""
    m = _DURATION.match(value)
    if not m:
        raise ValueError(value)
    return int(m.group(1)) * _UNIT_MS[m.group(2)]


def duration(value: str | None) -> str | None:
    """A duration Istio accepts: at least 1ms, in ms, s, m or h."""
    if value is None:
        return None
    if not _DURATION.match(value) or duration_ms(value) < 1:
        raise ValueError("must be a duration of at least 1ms such as '500ms', '2s' or '1m'")
    return value


def _percent(value: float | int | None) -> Any:
    if value is not None and not 0 <= value <= 100:
        raise ValueError("must be a percentage between 0 and 100")
    return value


class _Refusing(ConfigModel):
    """A block whose seed-mistake keys are taken out before validation and kept in `refused`,
    so that the config checks can name the exact key (`...resilience.circuitBreaker`)."""

    REFUSED_KEYS: ClassVar[tuple[str, ...]] = ()
    _refused: tuple[tuple[str, Any], ...] = PrivateAttr(default=())

    @model_validator(mode="wrap")
    @classmethod
    def _take_out_seed_mistakes(cls, data: Any, handler: Any) -> Any:
        found: list[tuple[str, Any]] = []
        if isinstance(data, dict) and cls.REFUSED_KEYS:
            data = dict(data)
            found = [(k, data.pop(k)) for k in cls.REFUSED_KEYS if k in data]
        instance = handler(data)
        if found:
            instance._refused = tuple(found)
        return instance

    @property
    def refused(self) -> tuple[tuple[str, Any], ...]:
        return self._refused


class Retries(ConfigModel):
    """Retries after the first try (`attempts: 0` disables them), each try bounded by
    `perTryTimeout`, on the `retryOn` conditions (Istio's tokens or HTTP status codes)."""

    attempts: int | None = None
    per_try_timeout: str | None = None
    retry_on: tuple[str, ...] | None = None

    _attempts = field_validator("attempts")(lambda v: v if v is None else between(0, 10)(v))
    _per_try = field_validator("per_try_timeout")(duration)

    @field_validator("retry_on")
    @classmethod
    def _tokens(cls, v: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for token in v or ():
            if token not in RETRY_ON_TOKENS and not (token.isdigit() and 100 <= int(token) <= 599):
                raise ValueError(
                    f"{token!r} is not a retry condition Istio accepts; use an HTTP status code "
                    f"(quoted, e.g. '503') or one of: {', '.join(RETRY_ON_TOKENS)}"
                )
        return v

    def istio(self) -> dict[str, Any]:
        """The route's `retries`; with no retries only `attempts: 0` (Istio refuses a
        perTryTimeout or retryOn beside it)."""
        if self.attempts == 0:
            return {"attempts": 0}
        out: dict[str, Any] = {}
        if self.attempts is not None:
            out["attempts"] = self.attempts
        if self.per_try_timeout is not None:
            out["perTryTimeout"] = self.per_try_timeout
        if self.retry_on:
            out["retryOn"] = ",".join(self.retry_on)
        return out


class OutlierDetection(_Refusing):
    """Passive health checking: a host answering `consecutive5xxErrors` 5xx in a row is ejected
    for `baseEjectionTime` (growing with each ejection), never more than `maxEjectionPercent`
    of the pool at once."""

    REFUSED_KEYS: ClassVar[tuple[str, ...]] = ("consecutiveErrors", "circuitBreaker")

    consecutive_5xx_errors: int | None = Field(default=None, alias="consecutive5xxErrors")
    consecutive_gateway_errors: int | None = None
    interval: str | None = None
    base_ejection_time: str | None = None
    max_ejection_percent: int | None = None
    min_health_percent: int | None = None

    _durations = field_validator("interval", "base_ejection_time")(duration)
    _percents = field_validator("max_ejection_percent", "min_health_percent")(_percent)

    @field_validator("consecutive_5xx_errors", "consecutive_gateway_errors")
    @classmethod
    def _count(cls, v: int | None) -> int | None:
        if v is not None and not 0 <= v <= 1000:
            raise ValueError("must be between 0 (off) and 1000 errors in a row")
        return v

    def istio(self) -> dict[str, Any]:
        return _camel(self)


class ConnectionPool(_Refusing):
    """Limits towards one destination (Istio's circuit breaking, with outlier detection):
    connections, queued and active requests, concurrent retries, connect and idle timeouts."""

    REFUSED_KEYS: ClassVar[tuple[str, ...]] = ("circuitBreaker",)

    max_connections: int | None = None
    connect_timeout: str | None = None
    http1_max_pending_requests: int | None = None
    http2_max_requests: int | None = None
    max_requests_per_connection: int | None = None
    max_retries: int | None = None
    idle_timeout: str | None = None

    _durations = field_validator("connect_timeout", "idle_timeout")(duration)

    @field_validator(
        "max_connections",
        "http1_max_pending_requests",
        "http2_max_requests",
        "max_requests_per_connection",
        "max_retries",
    )
    @classmethod
    def _limit(cls, v: int | None) -> int | None:
        if v is not None and not 0 <= v <= 2**31 - 1:
            raise ValueError("must be between 0 and 2147483647")
        return v

    def istio(self, http: bool = True) -> dict[str, Any]:
        tcp = {
            k: v
            for k, v in (
                ("maxConnections", self.max_connections),
                ("connectTimeout", self.connect_timeout),
            )
            if v is not None
        }
        pool: dict[str, Any] = {"tcp": tcp} if tcp else {}
        if http:
            fields = (
                ("http1MaxPendingRequests", self.http1_max_pending_requests),
                ("http2MaxRequests", self.http2_max_requests),
                ("maxRequestsPerConnection", self.max_requests_per_connection),
                ("maxRetries", self.max_retries),
                ("idleTimeout", self.idle_timeout),
            )
            if h := {k: v for k, v in fields if v is not None}:
                pool["http"] = h
        return pool


class HttpCookie(ConfigModel):
    """Hash on a cookie; with `ttl` the proxy sets the cookie when the client has none."""

    name: str
    ttl: str | None = None
    path: str | None = None

    _ttl = field_validator("ttl")(duration)


class ConsistentHash(ConfigModel):
    http_header_name: str | None = None
    http_cookie: HttpCookie | None = None

    @model_validator(mode="after")
    def _one(self) -> ConsistentHash:
        if (self.http_header_name is None) == (self.http_cookie is None):
            raise ValueError("set exactly one of httpHeaderName or httpCookie")
        return self


class LoadBalancer(ConfigModel):
    """`simple`, or `consistentHash` on a header or cookie (sticky sessions). An override
    replaces the whole block: the two are exclusive."""

    WHOLE: ClassVar[bool] = True

    simple: Literal["LEAST_REQUEST", "ROUND_ROBIN", "RANDOM"] | None = None
    consistent_hash: ConsistentHash | None = None

    @model_validator(mode="after")
    def _one(self) -> LoadBalancer:
        if (self.simple is None) == (self.consistent_hash is None):
            raise ValueError("set exactly one of simple or consistentHash")
        return self

    def istio(self) -> dict[str, Any]:
        return _camel(self)


class Resilience(_Refusing):
    """Timeout and retries of the routes to a service, and the load balancer, connection pool
    and outlier detection of its DestinationRule."""

    REFUSED_KEYS: ClassVar[tuple[str, ...]] = ("circuitBreaker",)

    timeout: str | None = None
    retries: Retries | None = None
    outlier_detection: OutlierDetection | None = None
    connection_pool: ConnectionPool | None = None
    load_balancer: LoadBalancer | None = None

    _timeout = field_validator("timeout")(duration)

    def traffic_policy(self, http: bool) -> dict[str, Any]:
        """The DestinationRule's `trafficPolicy`. TLS is left to Istio's automatic mTLS, which
        also keeps plaintext working towards a workload still without a sidecar."""
        out: dict[str, Any] = {}
        if self.load_balancer is not None:
            out["loadBalancer"] = self.load_balancer.istio()
        if self.connection_pool is not None and (pool := self.connection_pool.istio(http)):
            out["connectionPool"] = pool
        if self.outlier_detection is not None and (od := self.outlier_detection.istio()):
            out["outlierDetection"] = od
        return out

    def route_policy(self) -> dict[str, Any]:
        """`timeout` and `retries` of an HTTP route."""
        out: dict[str, Any] = {}
        if self.timeout is not None:
            out["timeout"] = self.timeout
        if self.retries is not None and (retries := self.retries.istio()):
            out["retries"] = retries
        return out


M = TypeVar("M", bound=ConfigModel)


def overlay(base: M | None, override: M | None) -> M | None:
    """`override` over `base`: only the keys the override states replace, nested blocks merge
    key by key (except a `WHOLE` block such as the load balancer, which replaces)."""
    if override is None:
        return base
    if base is None or getattr(type(override), "WHOLE", False):
        return override
    updates: dict[str, Any] = {}
    for name in override.model_fields_set:
        new, old = getattr(override, name), getattr(base, name)
        if isinstance(new, ConfigModel) and isinstance(old, ConfigModel):
            updates[name] = overlay(old, new)
        else:
            updates[name] = new
    return base.model_copy(update=updates)


def retry_budget_problem(key: str, resilience: Resilience) -> Problem | None:
    """`perTryTimeout * (attempts + 1)` must fit in the timeout, else the last tries are cut
    off by the timeout and the stated retries never happen."""
    retries, timeout = resilience.retries, resilience.timeout
    if retries is None or timeout is None or not retries.attempts or not retries.per_try_timeout:
        return None
    tries = retries.attempts + 1
    needed = duration_ms(retries.per_try_timeout) * tries
    if needed <= duration_ms(timeout):
        return None
    return Problem(
        f"{key}.retries.perTryTimeout",
        retries.per_try_timeout,
        f"{tries} tries (attempts {retries.attempts} + the first) of {retries.per_try_timeout} "
        f"need {needed} ms, more than the timeout {timeout}: lower perTryTimeout or attempts, "
        "or raise the timeout",
    )


def seed_mistakes(key: str, block: Resilience | None) -> list[Problem]:
    """The seed-mistake keys taken out of a resilience block, each under its exact key."""
    if block is None:
        return []
    found = [(key, k, v) for k, v in block.refused]
    for sub, child in (
        ("outlierDetection", block.outlier_detection),
        ("connectionPool", block.connection_pool),
    ):
        if child is not None:
            found += [(f"{key}.{sub}", k, v) for k, v in child.refused]
    return [Problem(f"{where}.{k}", v, SEED_MISTAKES[k]) for where, k, v in found]


def _camel(model: ConfigModel) -> dict[str, Any]:
    return model.model_dump(by_alias=True, exclude_none=True)
