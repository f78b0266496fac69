"""The `slos` config section: objectives per mesh service (availability, optional latency),
judged over a fixed 30-day window, with per-tier profiles; `slo_problems` holds the checks that
need the service graph, Prometheus' retention or the tier. Pure: no Pulumi."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import ClassVar, Literal, NamedTuple

from pydantic import field_validator

from components.base.model import MISSING, ConfigModel, Problem, dns_label
from components.base.profiles import Profile
from components.graph.checks import ServiceGraph

# Envoy's default bounds (ms) of istio_request_duration_milliseconds in Istio 1.30. Prometheus
# can only count requests under a bucket bound, so a latency threshold must be one of them.
ISTIO_DURATION_BUCKETS_MS: tuple[float, ...] = (
    0.5,
    1,
    5,
    10,
    25,
    50,
    100,
    250,
    500,
    1000,
    2500,
    5000,
    10000,
    30000,
    60000,
    300000,
    600000,
    1800000,
    3600000,
)
PERIOD = "30d"


class BurnTier(NamedTuple):
    severity: str
    long: str
    short: str
    factor: float


# SRE Workbook ch. 5 tiers for a 30-day period (Sloth's google-30d windows): 2 % of the budget
# spent in 1h or 5 % in 6h pages; 10 % in 1d or in 3d raises a ticket.
BURN_TIERS: tuple[BurnTier, ...] = (
    BurnTier("page", "1h", "5m", 14.4),
    BurnTier("page", "6h", "30m", 6.0),
    BurnTier("ticket", "1d", "2h", 3.0),
    BurnTier("ticket", "3d", "6h", 1.0),
)
# At or below this target even a total outage burns less than 14.4x: nothing could ever page.
MIN_TARGET = 100 * (1 - 1 / max(t.factor for t in BURN_TIERS))


def _percent(value: float) -> float:
    if not 0 < value < 100:
        raise ValueError("must be a percentage strictly between 0 and 100, e.g. 99.9")
    if value <= MIN_TARGET:
        raise ValueError(
            f"must be above {MIN_TARGET:.2f}: at lower targets even a total outage burns the "
            "error budget less than 14.4 times as fast as allowed, so it would never page"
        )
    return value


def envoy_le(bound: float) -> str:
    """`le` as Envoy writes it (fmt `{:.32g}`) and Prometheus 2 stores it: 0.5, 250, 3600000."""
    return format(float(bound), ".32g")


def prometheus3_le(bound: float) -> str:
    """`le` as Prometheus 3 normalises it on ingestion (Go FormatOpenMetricsFloat): 250.0,
    0.5, 3.6e+06. Rules that only match "250" find nothing after an upgrade to Prometheus 3."""
    d = Decimal(repr(float(bound))).normalize()
    _, digits, exponent = d.as_tuple()
    exp = len(digits) + int(exponent) - 1
    if exp < -4 or exp >= 6:
        mantissa = str(digits[0]) + ("." + "".join(map(str, digits[1:])) if digits[1:] else "")
        return f"{mantissa}e{'+' if exp >= 0 else '-'}{abs(exp):02d}"
    text = format(d, "f")
    return text if "." in text else text + ".0"


class LatencyObjective(ConfigModel):
    """Share of successful requests served within `thresholdMs`, a histogram bucket bound."""

    threshold_ms: float
    target: float

    _target = field_validator("target")(_percent)

    @field_validator("threshold_ms")
    @classmethod
    def _bucket(cls, v: float) -> float:
        if v not in ISTIO_DURATION_BUCKETS_MS:
            valid = ", ".join(envoy_le(b) for b in ISTIO_DURATION_BUCKETS_MS)
            raise ValueError(
                "must be a bucket bound of Istio's default istio_request_duration_milliseconds "
                f"histogram (ms), one of: {valid}"
            )
        return float(v)


class SloObjective(ConfigModel):
    """One mesh service's objective: availability (share of requests that did not fail with a
    5xx or a gRPC server error), optionally latency."""

    name: str
    service: str
    namespace: str
    availability: float
    latency: LatencyObjective | None = None
    runbook_url: str | None = None

    _names = field_validator("name", "service", "namespace")(dns_label)
    _availability = field_validator("availability")(_percent)

    @field_validator("runbook_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"https?://[^\s/]+\S*", v):
            raise ValueError("must be an http(s) URL such as 'https://runbooks.example.com/slo'")
        return v


@dataclass(frozen=True)
class SloRules:
    """What a tier demands of objectives: a runbook on each (their alerts page someone)."""

    runbook_required: bool


class SloConfig(ConfigModel):
    """The `slos` section: objectives, judged over a fixed 30-day window."""

    objectives: tuple[SloObjective, ...] = ()
    window: Literal["30d"] = "30d"

    PROFILES: ClassVar[dict[str, Profile[SloRules]]] = {
        "dev": Profile({"objectives": [], "window": PERIOD}, SloRules(runbook_required=False)),
        "staging": Profile({"objectives": [], "window": PERIOD}, SloRules(runbook_required=False)),
        "production": Profile(
            {"objectives": [], "window": PERIOD}, SloRules(runbook_required=True)
        ),
    }

    @field_validator("objectives")
    @classmethod
    def _unique(cls, v: tuple[SloObjective, ...]) -> tuple[SloObjective, ...]:
        """Names become rule, group and resource names, and the `slo` label."""
        seen: set[str] = set()
        for objective in v:
            if objective.name in seen:
                raise ValueError(f"objective names must be unique; {objective.name!r} repeats")
            seen.add(objective.name)
        return v


_DURATION_DAYS = {"h": 1 / 24, "d": 1, "w": 7}


def _days(duration: str) -> float:
    """'35d' -> 35.0; validated Prometheus durations only (h, d, w)."""
    return float(duration[:-1]) * _DURATION_DAYS[duration[-1]]


def slo_problems(
    slos: SloConfig, rules: SloRules, environment: str, graph: ServiceGraph, retention: str
) -> list[Problem]:
    """An objective must name a declared service, in that service's namespace, and Prometheus
    must keep the whole 30-day error-budget window (plus a day of margin). Where the tier says
    so, every objective links a runbook: its alerts page someone."""
    problems = []
    if slos.objectives and _days(retention) < 31:
        problems.append(
            Problem(
                "observability.prometheus.retention",
                retention,
                "must be at least 31d while SLO objectives are declared: the error budget is "
                "computed over 30 days of data",
            )
        )
    for i, objective in enumerate(slos.objectives):
        key = f"slos.objectives[{i}]"
        if rules.runbook_required and objective.runbook_url is None:
            problems.append(
                Problem(
                    f"{key}.runbookUrl",
                    MISSING,
                    f"is required in {environment}: every page links the runbook of its objective",
                )
            )
        unknown = graph.unknown_service(f"{key}.service", objective.service)
        if unknown:
            problems.append(unknown)
        elif graph.by_name[objective.service].namespace != objective.namespace:
            declared = graph.by_name[objective.service].namespace
            problems.append(
                Problem(
                    f"{key}.namespace",
                    objective.namespace,
                    f"must be {declared!r}, the namespace service {objective.service!r} is in",
                )
            )
    return problems
