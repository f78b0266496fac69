"""SLO layer: the `slos` config models, the PrometheusRule builders (SLI windows, burn-rate tiers,
selectors, labels, CRD schema), the generated promtool rule tests run by the real promtool
(including proof that they fail when the rules are wrong), and the SloRules component under
Pulumi mocks."""

from __future__ import annotations

import copy
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from components.graph.checks import ServiceGraph
from components.graph.model import MeshService
from components.slo import config as slo_config
from components.slo import rules as slo
from components.slo.component import SloRules, SloRulesArgs
from components.slo.config import SloConfig, SloObjective
from tests import slo_promtool as slo_tests
from tests.schema import SchemaError, validate_crd
from tools.engine import attempt

BUCKETS = (
    "0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, "
    "300000, 600000, 1800000, 3600000"
)


def objective(**over: Any) -> SloObjective:
    raw = {"name": "checkout", "service": "checkout", "namespace": "shop", "availability": 99.9}
    return SloObjective.model_validate({**raw, **over})


SEARCH = objective(name="search", service="search", availability=99)  # availability only
CHECKOUT = objective(latency={"thresholdMs": 250, "target": 99})
PAYMENTS = objective(
    name="payments",
    service="payments",
    namespace="pay",
    availability=99.95,
    latency={"thresholdMs": 3600000, "target": 99.5},
    runbookUrl="https://runbooks.example.com/slo/payments",
)
ALL = (SEARCH, CHECKOUT, PAYMENTS)


def mesh_service(name: str, namespace: str, **over: Any) -> MeshService:
    raw = {"name": name, "namespace": namespace, "serviceAccount": name}
    return MeshService.model_validate({**raw, "ports": [{"name": "http", "port": 8080}], **over})


# The services of ALL; checkout is canaried, so Flagger puts two Services of its own in front.
GRAPH = ServiceGraph(
    services=(
        mesh_service("search", "shop"),
        mesh_service("checkout", "shop", traffic={"canary": {}}),
        mesh_service("payments", "pay"),
    )
)
CANARIED = ("checkout", "checkout-primary", "checkout-canary")


def rules(o: SloObjective, env: str = "staging") -> list[dict[str, Any]]:
    return [r for g in slo.rule_groups(o, env) for r in g["rules"]]


def alerts(o: SloObjective) -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for r in rules(o) if "alert" in r}


def refusal(raw: dict[str, Any], model: type = SloObjective) -> tuple[tuple, str]:
    with pytest.raises(ValidationError) as info:
        model.model_validate(raw)
    (error,) = info.value.errors()
    return tuple(error["loc"]), error["msg"]


# --- config models ------------------------------------------------------------------------------


def test_objective_reads_the_stack_file_shape():
    o = PAYMENTS
    assert (o.name, o.service, o.namespace) == ("payments", "payments", "pay")
    assert o.availability == 99.95
    assert o.latency is not None and (o.latency.threshold_ms, o.latency.target) == (3600000, 99.5)
    assert o.runbook_url == "https://runbooks.example.com/slo/payments"
    assert objective().latency is None and objective().runbook_url is None


def test_every_environment_defaults_to_no_objectives_over_30_days():
    assert set(SloConfig.PROFILES) == {"dev", "staging", "production"}
    for defaults in (p.defaults for p in SloConfig.PROFILES.values()):
        cfg = SloConfig.model_validate(defaults)
        assert cfg.objectives == () and cfg.window == "30d"
    assert refusal({"window": "28d"}, SloConfig)[0] == ("window",)


BASE = {"name": "checkout", "service": "checkout", "namespace": "shop", "availability": 99.9}


@pytest.mark.parametrize("value", [0, 100, -1, 100.5, 1e9])
def test_targets_outside_0_to_100_are_refused_with_the_field_named(value):
    loc, msg = refusal({**BASE, "availability": value})
    assert loc == ("availability",) and "strictly between 0 and 100" in msg
    loc, msg = refusal({**BASE, "latency": {"thresholdMs": 250, "target": value}})
    assert loc == ("latency", "target") and "strictly between 0 and 100" in msg


@given(
    st.floats(min_value=slo_config.MIN_TARGET, max_value=100, exclude_min=True, exclude_max=True)
)
def test_any_target_that_can_page_is_accepted(value):
    assert objective(availability=value, latency={"thresholdMs": 1, "target": value})


@given(st.floats(min_value=0, max_value=slo_config.MIN_TARGET, exclude_min=True))
def test_targets_no_outage_could_page_for_are_refused(value):
    """Below ~93.06 % even 100 % errors stay under 14.4x the budget: a page that never fires."""
    loc, msg = refusal({**BASE, "availability": value})
    assert loc == ("availability",) and "never page" in msg


def test_latency_threshold_must_be_an_istio_bucket_bound_and_the_error_lists_them():
    loc, msg = refusal({**BASE, "latency": {"thresholdMs": 300, "target": 99}})
    assert loc == ("latency", "thresholdMs")
    assert BUCKETS in msg


@given(st.sampled_from(slo_config.ISTIO_DURATION_BUCKETS_MS))
def test_every_default_bucket_bound_is_a_valid_threshold(bound):
    assert objective(latency={"thresholdMs": bound, "target": 99}).latency.threshold_ms == bound


@given(
    st.floats(min_value=0, max_value=4e6).filter(
        lambda v: v not in slo_config.ISTIO_DURATION_BUCKETS_MS
    )
)
def test_any_other_threshold_is_refused(value):
    assert refusal({**BASE, "latency": {"thresholdMs": value, "target": 99}})[0] == (
        "latency",
        "thresholdMs",
    )


def test_buckets_are_istio_1_30_defaults():
    bounds = slo_config.ISTIO_DURATION_BUCKETS_MS
    assert ", ".join(slo_config.envoy_le(b) for b in bounds) == BUCKETS


def test_duplicate_objective_names_are_refused_naming_the_duplicate():
    loc, msg = refusal({"objectives": [BASE, {**BASE, "service": "cart"}]}, SloConfig)
    assert loc == ("objectives",) and "'checkout' repeats" in msg


@pytest.mark.parametrize(
    "change,loc",
    [
        ({"name": "Checkout"}, ("name",)),
        ({"service": "checkout.shop"}, ("service",)),
        ({"namespace": ""}, ("namespace",)),
        ({"runbookUrl": "runbooks/checkout"}, ("runbookUrl",)),
        ({"target": 99.9}, ("target",)),  # unknown key
        ({"latency": {"thresholdMs": 250}}, ("latency", "target")),  # missing
    ],
)
def test_bad_objectives_are_refused_with_the_field_named(change, loc):
    assert refusal({**BASE, **change})[0] == loc


# --- PrometheusRule builders --------------------------------------------------------------------


def test_sli_error_ratios_are_recorded_over_exactly_the_workbook_windows():
    for o in ALL:
        for sli in slo.slis(o):
            recorded = {
                r["record"] for r in rules(o) if "record" in r and r["labels"]["sli"] == sli.kind
            }
            windows = {
                n.removeprefix("slo:sli_error:ratio_rate")
                for n in recorded
                if n.startswith("slo:sli_error:ratio_rate")
            }
            assert windows == {"5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d"}, (o.name, sli)
            for w in slo.SLI_WINDOWS:
                (rule,) = [
                    r
                    for r in rules(o)
                    if r.get("record") == f"slo:sli_error:ratio_rate{w}"
                    and r["labels"]["sli"] == sli.kind
                ]
                ranges = re.findall(r"\[(\w+)\]", rule["expr"])
                assert ranges and set(ranges) == {w}, rule["expr"]


TIER = re.compile(
    r"\(\n  slo:sli_error:ratio_rate(\w+)\{(.*?)\} > \(([\d.]+) \* ([\d.]+)\)\nand\n"
    r"  slo:sli_error:ratio_rate(\w+)\{(.*?)\} > \(([\d.]+) \* ([\d.]+)\)\n\)"
)


def test_alerts_are_multiwindow_multi_burn_rate_per_the_workbook():
    expected = {
        "page": {("1h", "5m", 14.4), ("6h", "30m", 6.0)},
        "ticket": {("1d", "2h", 3.0), ("3d", "6h", 1.0)},
    }
    for o in ALL:
        for sli in slo.slis(o):
            b = str(slo.budget(sli.target))
            for severity, tiers in expected.items():
                rule = alerts(o)[slo.alert_name(sli.kind, severity)]
                found = TIER.findall(rule["expr"])
                # Each tier is `long > f*b AND short > f*b`; the tiers are ORed, nothing else.
                tiers_text = [m.group(0) for m in TIER.finditer(rule["expr"])]
                assert "\nor\n".join(tiers_text) == rule["expr"]
                assert {(f[0], f[4], float(f[2])) for f in found} == tiers
                for f in found:
                    assert f[2] == f[6] and f[3] == f[7] == b, f
                    assert f[1] == f[5] == f'slo="{o.name}",sli="{sli.kind}"'
    assert str(slo.budget(99.9)) == "0.001" and slo.num(slo.budget(99.95)) == "0.0005"


def test_alerts_are_separate_per_sli_with_labels_annotations_and_for():
    assert set(alerts(SEARCH)) == {
        "SLOAvailabilityBudgetBurnPage",
        "SLOAvailabilityBudgetBurnTicket",
    }
    assert set(alerts(PAYMENTS)) == set(alerts(SEARCH)) | {
        "SLOLatencyBudgetBurnPage",
        "SLOLatencyBudgetBurnTicket",
    }
    for name, rule in alerts(PAYMENTS).items():
        severity = "page" if name.endswith("Page") else "ticket"
        sli = "latency" if "Latency" in name else "availability"
        assert rule["labels"] == {
            "severity": severity,
            "slo": "payments",
            "sli": sli,
            "namespace": "pay",
            "environment": "staging",
        }
        assert rule["for"] == {"page": "2m", "ticket": "15m"}[severity]
        assert set(rule["annotations"]) == {"summary", "description", "runbook_url"}
        assert rule["annotations"]["runbook_url"] == "https://runbooks.example.com/slo/payments"
        assert f'sli="{sli}"' in rule["expr"] and "$value" not in str(rule["annotations"])
    assert "runbook_url" not in alerts(SEARCH)["SLOAvailabilityBudgetBurnPage"]["annotations"]


def test_every_recorded_series_names_its_objective_and_service():
    for o in ALL:
        for rule in rules(o):
            if "record" in rule:
                assert rule["labels"]["slo"] == o.name
                assert rule["labels"]["sli"] in ("availability", "latency")
                assert rule["labels"]["destination_service_name"] == o.service
                assert rule["labels"]["destination_service_namespace"] == o.namespace


ISTIO_SELECTOR = re.compile(r"(istio_\w+)\{([^}]*)\}")


def test_the_server_reports_are_counted_and_the_client_s_only_for_what_no_server_saw():
    """Every selector is this service's; the server-side reporter everywhere, except the
    requests the client's Envoy failed for want of an endpoint (UH, UF, UO), which no server
    reports, and which only the availability SLI counts."""
    for o in ALL:
        selectors = [m for r in rules(o) for m in ISTIO_SELECTOR.findall(r["expr"])]
        assert selectors
        sources = 0
        for _, sel in selectors:
            matchers = sel.split(",")
            assert matchers[1:3] == [
                f'destination_service_name="{o.service}"',
                f'destination_service_namespace="{o.namespace}"',
            ], sel
            assert sum(m.startswith("reporter") for m in matchers) == 1
            if matchers[0] == 'reporter="source"':
                assert sel.endswith("," + ",".join(slo.UNREACHED)), sel
                sources += 1
            else:
                assert matchers[0] == 'reporter="destination"', sel
        assert sources > 0


def test_a_canaried_service_is_counted_under_every_service_in_front_of_its_pods():
    """Flagger's canary pods sit behind `<name>-canary` only, and the primary's are reported
    as `<name>` or `<name>-primary`: an SLO that selected `<name>` alone would not see a
    failing canary burn its budget."""
    for o in (CHECKOUT, SEARCH):
        services = GRAPH.by_name[o.service].service_names
        selectors = [
            sel
            for g in slo.rule_groups(o, "staging", services)
            for r in g["rules"]
            for _, sel in ISTIO_SELECTOR.findall(r["expr"])
        ]
        assert selectors
        for sel in selectors:
            (name,) = [m for m in sel.split(",") if m.split("=")[0] == "destination_service_name"]
            if o is CHECKOUT:
                assert (
                    name == 'destination_service_name=~"checkout|checkout-primary|checkout-canary"'
                )
            else:
                assert name == f'destination_service_name="{o.service}"'
    assert GRAPH.by_name["checkout"].service_names == CANARIED


def test_availability_counts_5xx_and_grpc_server_errors_latency_only_successful_requests():
    avail, latency = slo.slis(PAYMENTS)
    http, grpc, unreached = re.findall(r"rate\(istio_requests_total\{([^}]*)\}", avail.bad)
    assert http.endswith(',response_code=~"5.."') and "grpc" not in http
    assert grpc.endswith(',grpc_response_status=~"2|4|13|14|15"') and "response_code" not in grpc
    assert unreached.startswith('reporter="source"') and "grpc" not in unreached
    assert avail.bad.startswith("sum(rate(") and " or rate(" in avail.bad  # one count per series
    served, unreached_too = re.findall(r"rate\(istio_requests_total\{([^}]*)\}", avail.total)
    assert "response_code" not in served and "grpc" not in served
    assert unreached_too == unreached, "what no server saw is in both, or the ratio is off"
    assert avail.total.startswith("sum(rate(istio_requests_total{")
    plus_inf = latency.total
    assert plus_inf.startswith("sum(rate(istio_request_duration_milliseconds_bucket{")
    assert plus_inf.endswith(
        ',response_code!~"5..",grpc_response_status!~"2|4|13|14|15",le="+Inf"}[$window]))'
    )
    assert latency.bad.startswith(f"({plus_inf} - sum(rate(")
    fast = latency.bad.removeprefix(f"({plus_inf} - ")
    assert 'response_code!~"5..",grpc_response_status!~"2|4|13|14|15",le=~' in fast
    assert (
        'le=~"3600000|3\\\\.6e\\\\+06"' in latency.bad
        or 'le=~"3\\\\.6e\\\\+06|3600000"' in latency.bad
    )


@pytest.mark.parametrize(
    "bound,spellings,not_matched",
    [
        (250, ("250", "250.0"), ("2500", "25", "250.5")),
        (0.5, ("0.5",), ("0.50", "5")),
        (1, ("1", "1.0"), ("10", "1.5")),
        (600000, ("600000", "600000.0"), ("6e+05",)),
        (1800000, ("1800000", "1.8e+06"), ("1.8e+6", "18000000")),
        (3600000, ("3600000", "3.6e+06"), ("3.6e06",)),
    ],
)
def test_the_threshold_bucket_matches_prometheus_2_and_3_spellings_of_le(
    bound, spellings, not_matched
):
    """Prometheus 3 (kube-prometheus-stack 88 ships 3.x) stores le="250" as "250.0" and
    le="3600000" as "3.6e+06"; both forms are matched so an upgrade doesn't blank the SLI."""
    promql = slo.le_matcher(bound)
    assert promql.startswith('le=~"') and promql.endswith('"')
    regex = re.compile(promql[5:-1].encode().decode("unicode_escape"))
    for text in spellings:
        assert regex.fullmatch(text), text
    for text in not_matched:
        assert not regex.fullmatch(text), text
    assert slo_config.prometheus3_le(bound) == spellings[-1]


def test_ratios_leave_no_sample_without_traffic_rather_than_nan():
    for o in ALL:
        for rule in rules(o):
            if rule.get("record", "").startswith("slo:sli_error:ratio_rate"):
                assert rule["expr"].endswith(" > 0)"), rule["expr"]


def test_error_budget_and_burn_rates_are_recorded_for_the_dashboard():
    recorded = {
        (r["record"], r["labels"]["sli"]): r["expr"] for r in rules(CHECKOUT) if "record" in r
    }
    for sli, b in (("availability", "0.001"), ("latency", "0.01")):
        assert recorded[("slo:error_budget:ratio", sli)] == f"vector({b})"
        assert recorded[("slo:period_error_budget_remaining:ratio", sli)].startswith(
            "1 - slo:period_burn_rate:ratio{"
        )
        assert "[30d]" in recorded[("slo:sli_error:ratio_rate30d", sli)]
        assert recorded[("slo:current_burn_rate:ratio", sli)].endswith(f" / {b}")
    assert recorded[("slo:objective:ratio", "availability")] == "vector(0.999)"


def test_prometheus_rule_object():
    rule = slo.prometheus_rule(PAYMENTS, "production")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1" and rule["kind"] == "PrometheusRule"
    assert rule["metadata"] == {
        "name": "slo-payments",
        "namespace": "monitoring",
        "labels": {
            "app.kubernetes.io/name": "slo",
            "app.kubernetes.io/part-of": "service-mesh",
            "app.kubernetes.io/managed-by": "pulumi",
            "slo": "payments",
        },
    }
    assert [g["name"] for g in rule["spec"]["groups"]] == ["slo-payments", "slo-payments-budget"]
    assert rule == slo.prometheus_rule(PAYMENTS, "production")  # stable, derived from config


@pytest.mark.parametrize("o", ALL, ids=lambda o: o.name)
def test_every_prometheus_rule_validates_against_the_crd_schema(o):
    validate_crd(slo.prometheus_rule(o, "production"))


def test_the_crd_check_refuses_unknown_fields():
    bad = slo.prometheus_rule(CHECKOUT, "dev")
    bad["spec"]["groups"][0]["rules"][0]["severity"] = "page"
    with pytest.raises(SchemaError, match="severity"):
        validate_crd(bad)
    bad = slo.prometheus_rule(CHECKOUT, "dev")
    bad["spec"]["groups"][1]["interval"] = "five minutes"
    with pytest.raises(SchemaError, match="interval"):
        validate_crd(bad)


def test_rule_file_holds_every_objective_with_unique_group_names():
    groups = slo.promtool_rule_file(ALL, "dev")["groups"]
    assert [g["name"] for g in groups] == [
        "slo-search",
        "slo-search-budget",
        "slo-checkout",
        "slo-checkout-budget",
        "slo-payments",
        "slo-payments-budget",
    ]


# --- generated promtool tests -------------------------------------------------------------------


def test_a_full_outage_pages_within_5_minutes_where_the_target_allows():
    """A 99.9 % SLO pages a minute into a total outage (+2m `for`); 99 % needs ~9 minutes of
    outage before the 1h window burns 14.4x, so 5 minutes is unreachable with the Workbook tiers."""
    assert slo_tests.page_deadline(99.9) == 5 and slo_tests.page_deadline(99.95) == 5
    assert slo_tests.page_deadline(99) == 12
    (outage,) = [
        t
        for t in slo_tests.promtool_tests([CHECKOUT], "dev")["tests"]
        if t["name"] == "checkout availability: full outage pages, and stops once "
        "the short windows recover"
    ]
    firing = [a for a in outage["alert_rule_test"] if a["exp_alerts"]]
    assert [(a["eval_time"], a["alertname"]) for a in firing] == [
        ("65m", "SLOAvailabilityBudgetBurnPage")
    ]  # the outage starts at minute 60


def test_docs_state_the_page_deadline_the_generated_tests_assert():
    text = (Path(__file__).resolve().parents[1] / "docs" / "observability.md").read_text()
    rows = re.findall(r"^\| (\d+(?:\.\d+)?) %( and above)? \| (\d+) minutes \|$", text, re.M)
    assert len(rows) >= 4, "docs/observability.md lost its page-deadline table"
    for target, and_above, minutes in rows:
        targets = [float(target)] + ([99.95, 99.99, 99.999] if and_above else [])
        for t in targets:
            assert slo_tests.page_deadline(t) == int(minutes), (t, minutes)


def test_generated_tests_cover_every_scenario_for_every_sli_and_state_full_labels():
    tests = slo_tests.promtool_tests(ALL, "dev")["tests"]
    scenarios = {t["name"].split(": ", 1)[1] for t in tests}
    assert {
        "full outage pages, and stops once the short windows recover",
        "burn just under 14.4x over 1h",
        "burn just over 14.4x over 1h",
        "burn just under 6x over 6h",
        "burn just over 6x over 6h",
        "slow burn (2x) tickets and does not page",
        "no traffic raises nothing",
        PODS_GONE,
    } <= scenarios
    # search: 1 SLI, checkout and payments: 2 each; the pods-gone outage for availability only
    assert len(tests) == (len(scenarios) - 1) * 5 + 3
    for t in tests:
        for case in t["alert_rule_test"]:
            for exp in case["exp_alerts"]:
                assert {
                    "severity",
                    "slo",
                    "sli",
                    "namespace",
                    "environment",
                    "destination_service_name",
                } <= set(exp["exp_labels"])
        assert any('reporter="source"' in s["series"] for s in t["input_series"])


def _prometheus3(tests: dict[str, Any]) -> dict[str, Any]:
    """The same tests as Prometheus 3 ingests them: `le` normalised (250 -> 250.0)."""

    def normal(m: re.Match[str]) -> str:
        value = m.group(1)
        if value == "+Inf":
            return m.group(0)
        d = Decimal(value)
        return f'le="{value}.0"' if d == d.to_integral() and d < 10**6 else f'le="{float(d):.2g}"'

    out = copy.deepcopy(tests)
    keep = (
        "latency: full outage",
        "latency: burn just under 14.4x",
        "latency: burn just over 14.4x",
    )
    out["tests"] = [t for t in out["tests"] if any(k in t["name"] for k in keep)]
    for t in out["tests"]:
        for s in t["input_series"]:
            s["series"] = re.sub(r'le="([^"]+)"', normal, s["series"])
    return out


CASES: dict[str, tuple[tuple[SloObjective, ...], Any]] = {
    "availability only, 99%": ((SEARCH,), None),
    "availability 99.9% + latency 250ms/99%": ((CHECKOUT,), None),
    "availability 99.95% + latency 3600000ms/99.5%": ((PAYMENTS,), None),
    "latency as Prometheus 3 stores le": ((CHECKOUT, PAYMENTS), _prometheus3),
    "canaried: availability 99.9% + latency 250ms/99%": ((CHECKOUT,), None),
}
# The Services each case's requests are reported under (default: the objective's own).
CASE_SERVICES: dict[str, dict[str, tuple[str, ...]]] = {
    "canaried: availability 99.9% + latency 250ms/99%": {"checkout": CANARIED},
}
CANARY_MISSED = "broken: a canaried service's rules select its own Service only"
OUTAGE = "full outage pages, and stops once the short windows recover"
PODS_GONE = "every pod gone: the clients' 503s (no healthy upstream) page"


def _case_tests(name: str) -> dict[str, Any]:
    objectives, transform = CASES[name]
    tests = slo_tests.promtool_tests(objectives, "dev", services=CASE_SERVICES.get(name))
    return transform(tests) if transform else tests


def _subset(tests: dict[str, Any], *names: str) -> dict[str, Any]:
    return {**tests, "tests": [t for t in tests["tests"] if t["name"].split(": ", 1)[1] in names]}


def _wrong_expectation() -> dict[str, Any]:
    """The outage test with the page expected under the wrong severity label."""
    tests = slo_tests.promtool_tests([CHECKOUT], "dev")
    for t in tests["tests"]:
        for case in t["alert_rule_test"]:
            for exp in case["exp_alerts"]:
                exp["exp_labels"]["severity"] = "ticket"
    return _subset(tests, OUTAGE)


def _mutate(rule_file: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    out = copy.deepcopy(rule_file)
    for g in out["groups"]:
        for r in g["rules"]:
            assert isinstance(r["expr"], str)
            r["expr"] = r["expr"].replace(old, new)
    assert out != rule_file, f"{old!r} not found"
    return out


MUTATIONS = [
    # Counting client-side reports too: the decoys page although the service is idle.
    ('reporter="destination"', 'reporter=~"destination|source"', ["no traffic raises nothing"]),
    # A fast tier a hair looser or tighter than 14.4x is caught by the just under/over pair.
    ("(14.4 *", "(14.5 *", ["burn just over 14.4x over 1h"]),
    ("(14.4 *", "(14.3 *", ["burn just under 14.4x over 1h"]),
    # The 6h tier judged over 2h pages too early.
    ("ratio_rate6h{", "ratio_rate2h{", ["burn just over 6x over 6h"]),
    # Without the short windows an alert keeps paging long after recovery.
    ("\nand\n", "\nor\n", [OUTAGE]),
    # Without the traffic guard an idle service records NaN ratios.
    (" > 0)", ")", ["no traffic raises nothing"]),
    # gRPC errors behind HTTP 200 missed: a burn just over 14.4x looks like 11x.
    (
        'grpc_response_status=~"2|4|13|14|15"',
        'grpc_response_status=~"99"',
        ["burn just over 14.4x over 1h"],
    ),
    # A request that is both a 5xx and a gRPC error counted twice: 1.25x the real burn.
    (
        ' or rate(istio_requests_total{reporter="destination"',
        ') + sum(rate(istio_requests_total{reporter="destination"',
        ["burn just under 14.4x over 1h"],
    ),
    # The requests no server saw (every pod gone) not counted: the outage has no data.
    (
        'response_flags=~"(.*,)?(UH|UF|UO)(,.*)?"',
        'response_flags=~"NONE"',
        [PODS_GONE],
    ),
    # Every client-reported 5xx counted, not only those no server saw: each failure twice, and
    # the decoy (another client's 503s) spends the budget of a healthy service.
    (
        ',response_code=~"5..",response_flags=~"(.*,)?(UH|UF|UO)(,.*)?"',
        "",
        ["healthy traffic without a single error"],
    ),
    # Latency over all requests: this service's slow 503s spend the latency budget.
    (
        'response_code!~"5..",grpc_response_status!~"2|4|13|14|15",',
        "",
        ["no traffic raises nothing"],
    ),
]


def _mutation_key(old: str, new: str) -> str:
    return f"broken: {old!r} -> {new!r}"


def promtool_jobs() -> dict[str, slo_tests.Job]:
    """Every promtool case of this module, run in the background from collection on
    (`tests/conftest.py`), many files per promtool process; each test reads its own verdict."""
    checkout = slo.promtool_rule_file([CHECKOUT], "dev")
    checkout_tests = slo_tests.promtool_tests([CHECKOUT], "dev")
    jobs = {
        f"case: {name}": slo_tests.Job(
            slo.promtool_rule_file(CASES[name][0], "dev", CASE_SERVICES.get(name)),
            _case_tests(name),
        )
        for name in CASES
    }
    # The failures come from the canary, behind `checkout-canary`: rules that select
    # `checkout` alone see the primary's successes only and never page.
    canaried = slo_tests.promtool_tests([CHECKOUT], "dev", services={"checkout": CANARIED})
    jobs[CANARY_MISSED] = slo_tests.Job(checkout, _subset(canaried, OUTAGE))
    jobs["all objectives"] = slo_tests.Job(slo.promtool_rule_file(ALL, "dev"))
    jobs["outage as expected"] = slo_tests.Job(checkout, _subset(checkout_tests, OUTAGE))
    jobs["outage, wrong severity"] = slo_tests.Job(checkout, _wrong_expectation())
    for old, new, scenarios in MUTATIONS:
        jobs[_mutation_key(old, new)] = slo_tests.Job(
            _mutate(checkout, old, new), _subset(checkout_tests, *scenarios)
        )
    return jobs


@pytest.mark.parametrize("case", CASES)
def test_promtool_accepts_the_rules_and_the_generated_tests_pass(promtool_runs, case):
    assert _case_tests(case)["tests"], case
    check = promtool_runs.check(f"case: {case}")
    assert check.ok and "SUCCESS" in check.output, check.output
    test = promtool_runs.test(f"case: {case}")
    assert test.ok and "SUCCESS" in test.output, test.output


def test_promtool_checks_all_objectives_in_one_rule_file(promtool_runs):
    rule_file = slo.promtool_rule_file(ALL, "dev")
    done = promtool_runs.check("all objectives")
    assert done.ok, done.output
    count = sum(len(g["rules"]) for g in rule_file["groups"])
    assert f"SUCCESS: {count} rules found" in done.output


def test_promtool_fails_a_wrong_expectation(promtool_runs):
    """The harness can fail: the page is expected with the wrong severity label."""
    assert len(_subset(slo_tests.promtool_tests([CHECKOUT], "dev"), OUTAGE)["tests"]) >= 1
    assert promtool_runs.test("outage as expected").ok
    done = promtool_runs.test("outage, wrong severity")
    assert not done.ok and "SLOAvailabilityBudgetBurnPage" in done.output, done.output


def test_generated_tests_fail_when_a_canary_s_failures_are_not_counted(promtool_runs):
    done = promtool_runs.test(CANARY_MISSED)
    assert not done.ok and "SLOAvailabilityBudgetBurnPage" in done.output, done.output


@pytest.mark.parametrize("old,new,scenarios", MUTATIONS)
def test_generated_tests_fail_when_the_rules_are_wrong(promtool_runs, old, new, scenarios):
    subset = _subset(slo_tests.promtool_tests([CHECKOUT], "dev"), *scenarios)
    assert len(subset["tests"]) >= len(scenarios)
    done = promtool_runs.test(_mutation_key(old, new))
    assert not done.ok, done.output
    assert "FAILED" in done.output


# --- SloRules under the offline engine -----------------------------------------------------------


def _slo_rules_run(objectives, environment: str = "production"):
    """`SloRules` alone under the one offline engine, behind a provider and an operator."""

    def program():
        provider = k8s.Provider("k8s", kubeconfig="fake")
        operator = k8s.core.v1.Namespace(
            "monitoring", opts=pulumi.ResourceOptions(provider=provider)
        )
        SloRules(
            "slo",
            SloRulesArgs(tuple(objectives), environment, GRAPH, [operator]),
            opts=pulumi.ResourceOptions(provider=provider),
        )

    run = attempt("dev", program=program)
    assert run.error is None, run.error
    return run


RULE_TYPE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"


def test_slo_rules_registers_one_prometheus_rule_per_objective():
    run = _slo_rules_run(ALL)
    component = run.one("service-mesh:slo:SloRules", "slo")
    operator = run.one("kubernetes:core/v1:Namespace", "monitoring")
    provider = run.one("pulumi:providers:kubernetes", "k8s")
    rules = run.of_type(RULE_TYPE)
    assert sorted(r.name for r in rules) == ["slo-checkout", "slo-payments", "slo-search"]
    for r in rules:
        assert r.parent == component.urn
        assert r.provider is not None and r.provider.startswith(provider.urn + "::")
        assert operator.urn in r.dependencies


def test_slo_rules_sends_the_built_object_as_inputs():
    run = _slo_rules_run([CHECKOUT], "staging")
    sent = run.one(RULE_TYPE, "slo-checkout").inputs
    expected = slo.prometheus_rule(CHECKOUT, "staging", CANARIED)
    assert (sent["apiVersion"], sent["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    assert sent["metadata"] == expected["metadata"] and sent["spec"] == expected["spec"]
    validate_crd({k: sent[k] for k in ("apiVersion", "kind", "metadata", "spec")})


def test_slo_rules_without_objectives_registers_nothing_but_itself():
    run = _slo_rules_run(())
    owned = [r for r in run.resources if r.type.startswith("service-mesh:") or r.type == RULE_TYPE]
    assert [r.type for r in owned] == ["service-mesh:slo:SloRules"]
