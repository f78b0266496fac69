"""Service level objectives for mesh services: the `slos` config section, the Prometheus rules
derived from Istio's request metrics (error-ratio SLIs over the SRE Workbook windows,
multi-window multi-burn-rate alerts, 30-day error budget) and the `SloRules` component that
registers one Prometheus Operator `PrometheusRule` per objective.

The generated promtool unit tests for these rules live in `slo_tests.py`."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, ClassVar, Literal, NamedTuple

import pulumi
from pydantic import field_validator

from components import mesh
from components.model import ConfigModel, dns_label
from components.objects import register

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
SLI_WINDOWS: tuple[str, ...] = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
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
# The short windows already keep blips from alerting; `for` only rides out a bad evaluation.
ALERT_FOR: dict[str, str] = {"page": "2m", "ticket": "15m"}
# At or below this target even a total outage burns less than 14.4x: nothing could ever page.
MIN_TARGET = 100 * (1 - 1 / max(t.factor for t in BURN_TIERS))
RULE_NAMESPACE = mesh.MONITORING_NAMESPACE
API_VERSION = "monitoring.coreos.com/v1"
KIND = "PrometheusRule"


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
    """Share of requests served within `thresholdMs`, a histogram bucket bound."""

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
    """One mesh service's objective: availability (share of non-5xx answers), optionally
    latency."""

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


class SloConfig(ConfigModel):
    """The `slos` section: objectives, judged over a fixed 30-day window."""

    objectives: tuple[SloObjective, ...] = ()
    window: Literal["30d"] = "30d"

    DEFAULTS: ClassVar[dict[str, dict[str, Any]]] = {
        env: {"objectives": [], "window": PERIOD} for env in ("dev", "staging", "production")
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


# --- PromQL ------------------------------------------------------------------------------------


class Sli(NamedTuple):
    """One indicator of an objective: PromQL for its bad and total request rates, with
    `$window` standing for the range."""

    kind: str  # "availability" | "latency"
    target: float  # percent
    bad: str
    total: str
    meaning: str

    def at(self, expr: str, window: str) -> str:
        return expr.replace("$window", window)


def budget(target: float) -> Decimal:
    """Allowed error ratio, in decimal so that 99.9 gives 0.001, not 0.0010000000000000009."""
    return (Decimal(100) - Decimal(str(target))) / 100


def num(value: Decimal | float) -> str:
    """A PromQL literal without float noise or exponent: 0.001, 14.4."""
    return format(Decimal(str(value)).normalize(), "f")


def le_matcher(bound: float) -> str:
    """Matches the bucket in both spellings of `le`, so the rules survive Prometheus 2 -> 3."""
    forms = sorted({envoy_le(bound), prometheus3_le(bound)})
    regex = "|".join(re.escape(f) for f in forms).replace("\\", "\\\\")  # in a PromQL string
    return f'le=~"{regex}"'


def slis(o: SloObjective) -> list[Sli]:
    """Availability always, latency when configured; both count server-side reports only
    (reporter="destination"): adding the client-side ones would count each request twice."""

    def rate(metric: str, *extra: str) -> str:
        sel = [
            'reporter="destination"',
            f'destination_service_name="{o.service}"',
            f'destination_service_namespace="{o.namespace}"',
            *extra,
        ]
        return f"sum(rate({metric}{{{','.join(sel)}}}[$window]))"

    out = [
        Sli(
            "availability",
            o.availability,
            rate("istio_requests_total", 'response_code=~"5.."'),
            rate("istio_requests_total"),
            "requests answered without a 5xx",
        )
    ]
    if o.latency:
        hist = "istio_request_duration_milliseconds_bucket"
        total = rate(hist, 'le="+Inf"')
        fast = rate(hist, le_matcher(o.latency.threshold_ms))
        out.append(
            Sli(
                "latency",
                o.latency.target,
                f"({total} - {fast})",
                total,
                f"requests served within {envoy_le(o.latency.threshold_ms)} ms",
            )
        )
    return out


def sli_labels(o: SloObjective, sli: Sli) -> dict[str, str]:
    """Labels of every recorded series: what the dashboard and alert routing select on."""
    return {
        "slo": o.name,
        "sli": sli.kind,
        "destination_service_name": o.service,
        "destination_service_namespace": o.namespace,
    }


def _sel(o: SloObjective, sli: Sli) -> str:
    return f'{{slo="{o.name}",sli="{sli.kind}"}}'


def alert_name(sli: str, severity: str) -> str:
    """One alert per SLI and severity, e.g. SLOLatencyBudgetBurnPage."""
    return f"SLO{sli.capitalize()}BudgetBurn{severity.capitalize()}"


def _rule_labels(o: SloObjective, sli: Sli, severity: str, environment: str) -> dict[str, str]:
    # `namespace` is the service's, as Alertmanager routes and groups by it.
    return {
        "severity": severity,
        "slo": o.name,
        "sli": sli.kind,
        "namespace": o.namespace,
        "environment": environment,
    }


def alert_labels(o: SloObjective, sli: Sli, severity: str, environment: str) -> dict[str, str]:
    """Every label a firing alert carries: the rule's plus those of the recorded SLI."""
    return {**sli_labels(o, sli), **_rule_labels(o, sli, severity, environment)}


def alert_annotations(o: SloObjective, sli: Sli, severity: str) -> dict[str, str]:
    """Plain text, no `$value`, so that the promtool tests can state them exactly."""
    burns = ", or ".join(
        f"{t.factor:g}x over both {t.long} and {t.short}"
        for t in BURN_TIERS
        if t.severity == severity
    )
    out = {
        "summary": f"SLO {o.name}: {o.service}.{o.namespace} burns its {sli.kind} error budget "
        f"too fast ({severity})",
        "description": f"{o.service} in namespace {o.namespace} promises {sli.target:g}% of "
        f"{sli.meaning} over {PERIOD}. Its error budget is burning faster than {burns}.",
    }
    if o.runbook_url:
        out["runbook_url"] = o.runbook_url
    return out


def _alert(o: SloObjective, sli: Sli, severity: str, environment: str) -> dict[str, Any]:
    b = num(budget(sli.target))
    # A tier fires only while BOTH its windows burn too fast: the long one proves the budget
    # spent, the short one that it is still burning (so the alert resets soon after recovery).
    tiers = [
        f"(\n  slo:sli_error:ratio_rate{t.long}{_sel(o, sli)} > ({t.factor:g} * {b})\nand\n"
        f"  slo:sli_error:ratio_rate{t.short}{_sel(o, sli)} > ({t.factor:g} * {b})\n)"
        for t in BURN_TIERS
        if t.severity == severity
    ]
    return {
        "alert": alert_name(sli.kind, severity),
        "expr": "\nor\n".join(tiers),
        "for": ALERT_FOR[severity],
        "labels": _rule_labels(o, sli, severity, environment),
        "annotations": alert_annotations(o, sli, severity),
    }


def rule_groups(o: SloObjective, environment: str) -> list[dict[str, Any]]:
    """SLIs and alerts share a group (rules in a group run in order, so alerts read this
    evaluation's SLIs); the 30-day accounting for the dashboard is a group of its own."""
    live: list[dict[str, Any]] = []
    alerts: list[dict[str, Any]] = []
    period: list[dict[str, Any]] = []
    for sli in slis(o):

        def rec(name: str, expr: str, sli: Sli = sli) -> dict[str, Any]:
            return {"record": name, "expr": expr, "labels": sli_labels(o, sli)}

        sel, b = _sel(o, sli), num(budget(sli.target))
        # No traffic: the `> 0` leaves no sample, so no alert and no NaN. No 5xx series yet
        # (Envoy exports a response code once seen): `or vector(0)` makes the ratio 0.
        live += [
            rec(
                f"slo:sli_error:ratio_rate{w}",
                f"({sli.at(sli.bad, w)} or vector(0)) / ({sli.at(sli.total, w)} > 0)",
            )
            for w in SLI_WINDOWS
        ]
        live += [
            rec("slo:sli_requests:rate5m", sli.at(sli.total, "5m")),
            rec("slo:sli_bad_requests:rate5m", f"{sli.at(sli.bad, '5m')} or vector(0)"),
        ]
        alerts += [_alert(o, sli, severity, environment) for severity in ("page", "ticket")]
        period += [
            rec("slo:objective:ratio", f"vector({num(Decimal(str(sli.target)) / 100)})"),
            rec("slo:error_budget:ratio", f"vector({b})"),
            # A ratio of sums over the period (traffic-weighted), from the 5m recordings.
            rec(
                f"slo:sli_error:ratio_rate{PERIOD}",
                f"sum_over_time(slo:sli_bad_requests:rate5m{sel}[{PERIOD}]) / "
                f"(sum_over_time(slo:sli_requests:rate5m{sel}[{PERIOD}]) > 0)",
            ),
            rec("slo:current_burn_rate:ratio", f"slo:sli_error:ratio_rate5m{sel} / {b}"),
            rec("slo:period_burn_rate:ratio", f"slo:sli_error:ratio_rate{PERIOD}{sel} / {b}"),
            rec("slo:period_error_budget_remaining:ratio", f"1 - slo:period_burn_rate:ratio{sel}"),
        ]
    return [
        {"name": f"slo-{o.name}", "rules": live + alerts},
        {"name": f"slo-{o.name}-budget", "rules": period},
    ]


def prometheus_rule(
    objective: SloObjective, environment: str, extra_labels: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The PrometheusRule for one objective. `extra_labels` serve a Prometheus `ruleSelector`
    that is not left open (kube-prometheus-stack selects `release: <name>` by default)."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": f"slo-{objective.name}",
            "namespace": RULE_NAMESPACE,
            "labels": {
                **(extra_labels or {}),
                "app.kubernetes.io/name": "slo",
                "app.kubernetes.io/part-of": "service-mesh",
                "app.kubernetes.io/managed-by": "pulumi",
                "slo": objective.name,
            },
        },
        "spec": {"groups": rule_groups(objective, environment)},
    }


def promtool_rule_file(objectives: Sequence[SloObjective], environment: str) -> dict[str, Any]:
    """Every objective's groups as one plain rule file (what promtool reads, not the CR)."""
    return {"groups": [g for o in objectives for g in rule_groups(o, environment)]}


# --- Pulumi ------------------------------------------------------------------------------------


class SloRules(pulumi.ComponentResource):
    """One PrometheusRule per objective, registered after the Prometheus Operator CRDs."""

    def __init__(
        self,
        name: str,
        objectives: Sequence[SloObjective],
        environment: str,
        opts: pulumi.ResourceOptions | None = None,
        depends_on: Sequence[pulumi.Resource] = (),
        extra_labels: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__("service-mesh:slo:SloRules", name, None, opts)
        self.rules: dict[str, pulumi.CustomResource] = {}
        for objective in objectives:
            self.rules[objective.name] = register(
                f"{name}-{objective.name}",
                prometheus_rule(objective, environment, extra_labels),
                pulumi.ResourceOptions(parent=self, depends_on=list(depends_on)),
            )
        self.register_outputs({"ruleNames": [f"slo-{o.name}" for o in objectives]})
