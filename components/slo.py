"""Service level objectives for mesh services: the `slos` config section, the Prometheus
recording and alerting rules derived from Istio's request metrics (SLIs over the SRE Workbook
windows, multi-window multi-burn-rate alerts, 30-day error budget), and the `SloRules` component
that registers one Prometheus Operator `PrometheusRule` per objective.

Generated promtool unit tests for these rules live in `slo_tests.py`."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, ClassVar, Literal, NamedTuple

import pulumi
from pulumi_kubernetes.apiextensions import CustomResource
from pydantic import field_validator

from components.model import ConfigModel, dns_label

# Envoy's default histogram bounds (ms) for istio_request_duration_milliseconds, Istio 1.30.
# A latency threshold must sit on one of them: Prometheus cannot count requests below any
# other value.
ISTIO_DURATION_BUCKETS_MS: tuple[float, ...] = (
    0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000,
    300000, 600000, 1800000, 3600000,
)
SLI_WINDOWS: tuple[str, ...] = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
PERIOD = "30d"


class BurnTier(NamedTuple):
    severity: str
    long: str
    short: str
    factor: float


# SRE Workbook ch. 5 multi-window multi-burn-rate tiers for a 30-day period (as Sloth's
# google-30d windows): 2 % of the budget in 1h or 5 % in 6h pages; 10 % in 1d or 3d tickets.
BURN_TIERS: tuple[BurnTier, ...] = (
    BurnTier("page", "1h", "5m", 14.4),
    BurnTier("page", "6h", "30m", 6.0),
    BurnTier("ticket", "1d", "2h", 3.0),
    BurnTier("ticket", "3d", "6h", 1.0),
)
# The short window already stops blips from paging; `for` only rides out one bad scrape.
ALERT_FOR: dict[str, str] = {"page": "2m", "ticket": "15m"}
# Below this target even a total outage burns less than 14.4x, so nothing could ever page.
MIN_TARGET = 100 * (1 - 1 / max(t.factor for t in BURN_TIERS))
RULE_NAMESPACE = "monitoring"
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


def _bound(value: float) -> str:
    """As Envoy writes `le` in its Prometheus text output: 0.5, 250, 3600000."""
    return format(float(value), ".32g")


class LatencyObjective(ConfigModel):
    """Share of requests served within `thresholdMs` (a histogram bucket bound)."""

    threshold_ms: float
    target: float

    _target = field_validator("target")(_percent)

    @field_validator("threshold_ms")
    @classmethod
    def _bucket(cls, v: float) -> float:
        if v not in ISTIO_DURATION_BUCKETS_MS:
            valid = ", ".join(_bound(b) for b in ISTIO_DURATION_BUCKETS_MS)
            raise ValueError(
                "must be a bucket bound of Istio's default istio_request_duration_milliseconds "
                f"histogram (ms), one of: {valid}"
            )
        return float(v)


class SloObjective(ConfigModel):
    """One mesh service's objective: availability (non-5xx share) and optionally latency."""

    name: str
    service: str
    namespace: str
    availability: float
    latency: LatencyObjective | None = None
    runbook_url: str | None = None

    _labels = field_validator("name", "service", "namespace")(dns_label)
    _availability = field_validator("availability")(_percent)

    @field_validator("runbook_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"https?://[^\s/]+\S*", v):
            raise ValueError("must be an http(s) URL such as 'https://runbooks.example.com/slo'")
        return v


class SloConfig(ConfigModel):
    """The `slos` section: objectives evaluated over a fixed 30-day window."""

    objectives: tuple[SloObjective, ...] = ()
    window: Literal["30d"] = "30d"

    DEFAULTS: ClassVar[dict[str, dict[str, Any]]] = {
        env: {"objectives": [], "window": PERIOD} for env in ("dev", "staging", "production")
    }

    @field_validator("objectives")
    @classmethod
    def _unique(cls, v: tuple[SloObjective, ...]) -> tuple[SloObjective, ...]:
        seen: set[str] = set()
        for objective in v:
            if objective.name in seen:
                raise ValueError(f"objective names must be unique; {objective.name!r} repeats")
            seen.add(objective.name)
        return v


# --- PromQL ------------------------------------------------------------------------------------


class Sli(NamedTuple):
    """One indicator of an objective, with the PromQL for its bad and total request rates."""

    kind: str  # "availability" | "latency"
    target: float  # percent
    bad: str  # PromQL with "$window" for the range
    total: str
    meaning: str

    def at(self, expr: str, window: str) -> str:
        return expr.replace("$window", window)


def budget(target: float) -> Decimal:
    """Allowed error ratio, exact in decimal so that 99.9 yields 0.001, not 0.0010000000000009."""
    return (Decimal(100) - Decimal(str(target))) / 100


def num(value: Decimal | float) -> str:
    """A PromQL literal without float noise or exponent: 0.001, 14.4."""
    return format(Decimal(str(value)).normalize(), "f")


def prometheus3_le(bound: float) -> str:
    """`le` as Prometheus 3 stores it (Go FormatOpenMetricsFloat: 250 -> 250.0, 3.6e6 ->
    3.6e+06); Prometheus 2 kept Envoy's text form ("250", "3600000")."""
    d = Decimal(repr(float(bound))).normalize()
    _, digits, exponent = d.as_tuple()
    exp = len(digits) + int(exponent) - 1
    if exp < -4 or exp >= 6:
        mantissa = str(digits[0]) + ("." + "".join(map(str, digits[1:])) if digits[1:] else "")
        return f"{mantissa}e{'+' if exp >= 0 else '-'}{abs(exp):02d}"
    text = format(d, "f")
    return text if "." in text else text + ".0"


def le_matcher(bound: float) -> str:
    """Match the bucket in both Envoy/Prometheus 2 and Prometheus 3 spellings of `le`."""
    forms = sorted({_bound(bound), prometheus3_le(bound)})
    regex = "|".join(re.escape(f) for f in forms).replace("\\", "\\\\")
    return f'le=~"{regex}"'


def _selector(o: SloObjective, *extra: str) -> str:
    # One reporter only: the server-side proxy. Adding reporter="source" double counts.
    base = [
        'reporter="destination"',
        f'destination_service_name="{o.service}"',
        f'destination_service_namespace="{o.namespace}"',
    ]
    return "{" + ",".join([*base, *extra]) + "}"


def slis(o: SloObjective) -> list[Sli]:
    def rate(metric: str, *extra: str) -> str:
        return f"sum(rate({metric}{_selector(o, *extra)}[$window]))"

    requests = "istio_requests_total"
    out = [Sli("availability", o.availability, rate(requests, 'response_code=~"5.."'),
               rate(requests), "requests answered without a 5xx")]
    if o.latency:
        hist = "istio_request_duration_milliseconds_bucket"
        total = rate(hist, 'le="+Inf"')
        fast = rate(hist, le_matcher(o.latency.threshold_ms))
        out.append(Sli("latency", o.latency.target, f"({total} - {fast})", total,
                       f"requests served within {_bound(o.latency.threshold_ms)} ms"))
    return out


def _labels(o: SloObjective, sli: Sli) -> dict[str, str]:
    return {
        "slo": o.name,
        "sli": sli.kind,
        "destination_service_name": o.service,
        "destination_service_namespace": o.namespace,
    }


def _record(name: str, expr: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"record": name, "expr": expr, "labels": dict(labels)}


def alert_name(sli: str, severity: str) -> str:
    return f"SLO{sli.capitalize()}BudgetBurn{severity.capitalize()}"


def alert_labels(o: SloObjective, sli: Sli, severity: str, environment: str) -> dict[str, str]:
    """Every label a firing alert carries (rule labels plus those of the recorded SLI)."""
    return {**_labels(o, sli), "severity": severity, "environment": environment}


def alert_annotations(o: SloObjective, sli: Sli, severity: str) -> dict[str, str]:
    """Plain text (no $value) so promtool tests can state them exactly."""
    tiers = [t for t in BURN_TIERS if t.severity == severity]
    burns = " or ".join(f"{t.factor:g}x over {t.long} and {t.short}" for t in tiers)
    out = {
        "summary": f"SLO {o.name}: {o.service}.{o.namespace} is burning its {sli.kind} error "
        f"budget too fast ({severity})",
        "description": f"{o.service} in namespace {o.namespace} has a {sli.kind} objective of "
        f"{sli.target:g}% of {sli.meaning} over {PERIOD}; its error ratio exceeds {burns} the "
        "allowed rate.",
    }
    if o.runbook_url:
        out["runbook_url"] = o.runbook_url
    return out


def _alert(o: SloObjective, sli: Sli, severity: str, environment: str) -> dict[str, Any]:
    sel = '{slo="%s",sli="%s"}' % (o.name, sli.kind)
    b = num(budget(sli.target))
    # Each tier fires only while BOTH its long and short windows burn too fast; tiers are ORed.
    tiers = [
        f"(\n  slo:sli_error:ratio_rate{t.long}{sel} > ({t.factor:g} * {b})\nand\n"
        f"  slo:sli_error:ratio_rate{t.short}{sel} > ({t.factor:g} * {b})\n)"
        for t in BURN_TIERS
        if t.severity == severity
    ]
    return {
        "alert": alert_name(sli.kind, severity),
        "expr": "\nor\n".join(tiers),
        "for": ALERT_FOR[severity],
        "labels": {"severity": severity, "slo": o.name, "sli": sli.kind, "environment": environment},
        "annotations": alert_annotations(o, sli, severity),
    }


def rule_groups(o: SloObjective, environment: str) -> list[dict[str, Any]]:
    """Two groups: SLIs then alerts in one (rules in a group run in order, so alerts read this
    evaluation's SLIs), and the 30-day budget accounting the dashboard reads."""
    sli_rules: list[dict[str, Any]] = []
    alerts: list[dict[str, Any]] = []
    budget_rules: list[dict[str, Any]] = []
    for sli in slis(o):
        labels = _labels(o, sli)
        sel = '{slo="%s",sli="%s"}' % (o.name, sli.kind)
        b = num(budget(sli.target))
        for w in SLI_WINDOWS:
            # No traffic: the denominator filter leaves no sample, hence no alert and no NaN.
            ratio = f"({sli.at(sli.bad, w)} or vector(0)) / ({sli.at(sli.total, w)} > 0)"
            sli_rules.append(_record(f"slo:sli_error:ratio_rate{w}", ratio, labels))
        sli_rules.append(_record("slo:sli_requests:rate5m", sli.at(sli.total, "5m"), labels))
        sli_rules.append(_record(
            "slo:sli_bad_requests:rate5m", f"{sli.at(sli.bad, '5m')} or vector(0)", labels))
        alerts += [_alert(o, sli, sev, environment) for sev in ("page", "ticket")]
        budget_rules += [
            _record("slo:objective:ratio", f"vector({num(Decimal(str(sli.target)) / 100)})", labels),
            _record("slo:error_budget:ratio", f"vector({b})", labels),
            # Ratio of sums over the period: traffic-weighted, read from the 5m recordings.
            _record(f"slo:sli_error:ratio_rate{PERIOD}",
                    f"sum_over_time(slo:sli_bad_requests:rate5m{sel}[{PERIOD}]) / "
                    f"(sum_over_time(slo:sli_requests:rate5m{sel}[{PERIOD}]) > 0)", labels),
            _record("slo:current_burn_rate:ratio", f"slo:sli_error:ratio_rate5m{sel} / {b}", labels),
            _record("slo:period_burn_rate:ratio",
                    f"slo:sli_error:ratio_rate{PERIOD}{sel} / {b}", labels),
            _record("slo:period_error_budget_remaining:ratio",
                    f"1 - slo:period_burn_rate:ratio{sel}", labels),
        ]
    return [
        {"name": f"slo-{o.name}", "rules": sli_rules + alerts},
        {"name": f"slo-{o.name}-budget", "rules": budget_rules},
    ]


def prometheus_rule(
    objective: SloObjective, environment: str, extra_labels: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The PrometheusRule object for one objective. `extra_labels` is for the Prometheus
    ruleSelector (e.g. kube-prometheus-stack's `release` label) if it is not left open."""
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
    """All objectives' groups as one plain Prometheus rule file, for promtool."""
    return {"groups": [g for o in objectives for g in rule_groups(o, environment)]}


# --- Pulumi ------------------------------------------------------------------------------------


class SloRules(pulumi.ComponentResource):
    """One PrometheusRule per objective, after the Prometheus Operator CRDs exist."""

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
        self.rules: dict[str, CustomResource] = {}
        for objective in objectives:
            body = prometheus_rule(objective, environment, extra_labels)
            self.rules[objective.name] = CustomResource(
                f"{name}-{objective.name}",
                api_version=body["apiVersion"],
                kind=body["kind"],
                metadata=body["metadata"],
                spec=body["spec"],
                opts=pulumi.ResourceOptions(parent=self, depends_on=list(depends_on)),
            )
        self.register_outputs({"ruleNames": [f"slo-{o.name}" for o in objectives]})
