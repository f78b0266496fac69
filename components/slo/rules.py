"""Service level objectives for mesh services: the Prometheus rules derived from Istio's request
metrics (error-ratio SLIs over the SRE Workbook windows, multi-window multi-burn-rate alerts,
30-day error budget), one Prometheus Operator `PrometheusRule` per objective.

The config models are in `config.py`, the series names in `names.py`, the `SloRules` component
in `component.py`; the promtool unit tests generated from these rules are in
`tests/slo_promtool.py`. Pure: no Pulumi."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, NamedTuple

from components.base import manifests, mesh
from components.slo import names
from components.slo.config import (
    BURN_TIERS,
    PERIOD,
    SloObjective,
    envoy_le,
    prometheus3_le,
)

SLI_WINDOWS: tuple[str, ...] = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
# The short windows already keep blips from alerting; `for` only rides out a bad evaluation.
ALERT_FOR: dict[str, str] = {"page": "2m", "ticket": "15m"}
RULE_NAMESPACE = mesh.MONITORING_NAMESPACE
API_VERSION = "monitoring.coreos.com/v1"
KIND = "PrometheusRule"
# A failed request: the server answered 5xx, or (gRPC, answered with HTTP 200) a gRPC status
# that is the server's fault: UNKNOWN, DEADLINE_EXCEEDED, INTERNAL, UNAVAILABLE, DATA_LOSS.
# Client mistakes (4xx, INVALID_ARGUMENT, NOT_FOUND, ...) do not spend the budget.
HTTP_ERROR = 'response_code=~"5.."'
GRPC_ERROR = 'grpc_response_status=~"2|4|13|14|15"'
NOT_FAILED = ('response_code!~"5.."', 'grpc_response_status!~"2|4|13|14|15"')
# A request that never reached the service: the client's own Envoy answered 5xx because no
# endpoint was healthy (UH), the connection failed (UF) or the pool overflowed (UO). No
# destination sidecar saw it, so only the client reports it (reporter="source"): when every pod
# is gone, these are the only requests left, and without them a full outage had no data and
# paged nobody. Envoy joins several flags with commas.
UNREACHED = ('response_code=~"5.."', 'response_flags=~"(.*,)?(UH|UF|UO)(,.*)?"')


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


def slis(
    o: SloObjective, selector: Sequence[str] | None = None, services: Sequence[str] = ()
) -> list[Sli]:
    """Availability always, latency when configured; both count server-side reports
    (reporter="destination"): adding the client-side ones would count each request twice. The
    exception is what no server saw (`UNREACHED`), which only a client can report.
    `services`: every Kubernetes Service the requests may be reported under (default: the
    objective's own; a canaried service's are `MeshService.service_names`, so its canary's
    failures spend the budget too). `selector` replaces the service's label matchers: a
    canary's MetricTemplate judges one workload by the same SLI
    (components/traffic/canary.py).

    Availability: failed requests (HTTP 5xx, or a gRPC server error behind HTTP 200) over all,
    counting requests no endpoint could take (`UNREACHED`, client-reported) as failed.
    Latency: among requests that did NOT fail, the share slower than the threshold. A failure
    spends the availability budget only; counting it in latency too would let a flood of fast
    503s make the latency SLI look better, and slow timeouts spend two budgets at once."""

    target = selector or service_matchers(o, services)

    def rate(metric: str, *extra: str) -> str:
        return f"sum({_rate(metric, target, *extra)})"

    requests = "istio_requests_total"
    unreached = _rate(requests, target, *UNREACHED, reporter="source")
    # `or`: a series with both a 5xx and a gRPC error counts once; the unreached ones are other
    # series (another reporter), so `or` adds them, and a sum over no series is no sample.
    failed = (
        f"sum({_rate(requests, target, HTTP_ERROR)} or "
        f"{_rate(requests, target, GRPC_ERROR)} or {unreached})"
    )
    out = [
        Sli(
            "availability",
            o.availability,
            failed,
            f"sum({_rate(requests, target)} or {unreached})",
            "requests answered without a server error (HTTP 5xx or gRPC server status, or no "
            "healthy endpoint to answer)",
        )
    ]
    if o.latency:
        hist = "istio_request_duration_milliseconds_bucket"
        total = rate(hist, *NOT_FAILED, 'le="+Inf"')
        fast = rate(hist, *NOT_FAILED, le_matcher(o.latency.threshold_ms))
        out.append(
            Sli(
                "latency",
                o.latency.target,
                f"({total} - {fast})",
                total,
                f"successful requests served within {envoy_le(o.latency.threshold_ms)} ms",
            )
        )
    return out


def service_matchers(o: SloObjective, services: Sequence[str] = ()) -> tuple[str, str]:
    """The label matchers of the objective's requests: one of `services` (default: its own
    service; DNS labels, so no regex escaping), in its namespace."""
    reported = tuple(services) or (o.service,)
    name = f'="{reported[0]}"' if len(reported) == 1 else f'=~"{"|".join(reported)}"'
    return (
        f"destination_service_name{name}",
        f'destination_service_namespace="{o.namespace}"',
    )


def _rate(metric: str, target: Sequence[str], *extra: str, reporter: str = "destination") -> str:
    sel = [f'reporter="{reporter}"', *target, *extra]
    return f"rate({metric}{{{','.join(sel)}}}[$window])"


def sli_labels(o: SloObjective, sli: Sli) -> dict[str, str]:
    """Labels of every recorded series: what the dashboard and alert routing select on."""
    return {
        names.SLO_LABEL: o.name,
        names.SLI_LABEL: sli.kind,
        "destination_service_name": o.service,
        "destination_service_namespace": o.namespace,
    }


def _sel(o: SloObjective, sli: Sli) -> str:
    return f'{{{names.SLO_LABEL}="{o.name}",{names.SLI_LABEL}="{sli.kind}"}}'


def alert_name(sli: str, severity: str) -> str:
    """One alert per SLI and severity, e.g. SLOLatencyBudgetBurnPage."""
    return f"SLO{sli.capitalize()}BudgetBurn{severity.capitalize()}"


def _rule_labels(o: SloObjective, sli: Sli, severity: str, environment: str) -> dict[str, str]:
    # `namespace` is the service's, as Alertmanager routes and groups by it.
    return {
        "severity": severity,
        names.SLO_LABEL: o.name,
        names.SLI_LABEL: sli.kind,
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
        f"(\n  {names.sli_error(t.long)}{_sel(o, sli)} > ({t.factor:g} * {b})\nand\n"
        f"  {names.sli_error(t.short)}{_sel(o, sli)} > ({t.factor:g} * {b})\n)"
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


def rule_groups(
    o: SloObjective, environment: str, services: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """SLIs and alerts share a group (rules in a group run in order, so alerts read this
    evaluation's SLIs); the 30-day accounting for the dashboard is a group of its own.
    `services`: as for `slis`."""
    live: list[dict[str, Any]] = []
    alerts: list[dict[str, Any]] = []
    period: list[dict[str, Any]] = []
    for sli in slis(o, services=services):

        def rec(name: str, expr: str, sli: Sli = sli) -> dict[str, Any]:
            return {"record": name, "expr": expr, "labels": sli_labels(o, sli)}

        sel, b = _sel(o, sli), num(budget(sli.target))
        # No traffic: the `> 0` leaves no sample, so no alert and no NaN. No 5xx series yet
        # (Envoy exports a response code once seen): `or vector(0)` makes the ratio 0.
        live += [
            rec(
                names.sli_error(w),
                f"({sli.at(sli.bad, w)} or vector(0)) / ({sli.at(sli.total, w)} > 0)",
            )
            for w in SLI_WINDOWS
        ]
        live += [
            rec(names.SLI_REQUESTS, sli.at(sli.total, "5m")),
            rec(names.SLI_BAD_REQUESTS, f"{sli.at(sli.bad, '5m')} or vector(0)"),
        ]
        alerts += [_alert(o, sli, severity, environment) for severity in ("page", "ticket")]
        period += [
            rec(names.OBJECTIVE, f"vector({num(Decimal(str(sli.target)) / 100)})"),
            rec(names.ERROR_BUDGET, f"vector({b})"),
            # A ratio of sums over the period (traffic-weighted), from the 5m recordings.
            rec(
                names.sli_error(PERIOD),
                f"sum_over_time({names.SLI_BAD_REQUESTS}{sel}[{PERIOD}]) / "
                f"(sum_over_time({names.SLI_REQUESTS}{sel}[{PERIOD}]) > 0)",
            ),
            rec(names.CURRENT_BURN_RATE, f"{names.sli_error('5m')}{sel} / {b}"),
            rec(names.PERIOD_BURN_RATE, f"{names.sli_error(PERIOD)}{sel} / {b}"),
            rec(names.BUDGET_REMAINING, f"1 - {names.PERIOD_BURN_RATE}{sel}"),
        ]
    return [
        {"name": f"slo-{o.name}", "rules": live + alerts},
        {"name": f"slo-{o.name}-budget", "rules": period},
    ]


def prometheus_rule(
    objective: SloObjective, environment: str, services: Sequence[str] = ()
) -> dict[str, Any]:
    """The PrometheusRule for one objective (Prometheus selects every rule: its
    `ruleSelectorNilUsesHelmValues` is off, so no `release` label is needed). `services`: as
    for `slis`."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": manifests.metadata(
            f"slo-{objective.name}",
            RULE_NAMESPACE,
            "slo",
            **{names.SLO_LABEL: objective.name},
        ),
        "spec": {"groups": rule_groups(objective, environment, services)},
    }


def promtool_rule_file(
    objectives: Sequence[SloObjective],
    environment: str,
    services: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """Every objective's groups as one plain rule file (what promtool reads, not the CR).
    `services`: per service name, the Services its requests are reported under."""
    found = services or {}
    return {
        "groups": [
            g for o in objectives for g in rule_groups(o, environment, found.get(o.service, ()))
        ]
    }
