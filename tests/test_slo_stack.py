"""SLO objectives in the real stacks: one PrometheusRule per objective, wired after the
Prometheus Operator, the rules the program registers for each stack passing promtool and the
generated promtool tests, and bad objectives refused with the key named before anything
registers."""

from __future__ import annotations

import re

import pytest

from components.base.model import ConfigError
from components.slo.config import SloObjective
from tests import slo_promtool as slo_tests
from tests.conftest import STACKS, parsed_stack, run_config, stack_config, stack_run

RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
RELEASE = "kubernetes:helm.sh/v3:Release"


def test_one_prometheus_rule_per_declared_objective():
    run = stack_run("production")
    declared = stack_config("production")["service-mesh:slos"]["objectives"]
    slo_rules = [r for r in run.of_type(RULE) if r.inputs["metadata"].get("labels", {}).get("slo")]
    assert sorted(r.inputs["metadata"]["labels"]["slo"] for r in slo_rules) == sorted(
        o["name"] for o in declared
    )


def test_rules_carry_all_windows_and_the_four_burn_rate_alerts():
    run = stack_run("production")
    rule = next(
        r
        for r in run.of_type(RULE)
        if r.inputs["metadata"].get("labels", {}).get("slo") == "checkout-availability"
    )
    rules = [x for g in rule.inputs["spec"]["groups"] for x in g["rules"]]
    exprs = "\n".join(x["expr"] for x in rules)
    for window in ("5m", "30m", "1h", "2h", "6h", "1d", "3d"):
        assert f"[{window}]" in exprs, window
    alerts = [x for x in rules if "alert" in x]
    severities = sorted(a["labels"]["severity"] for a in alerts)
    # availability + latency SLIs, each: two page tiers and two ticket tiers.
    assert severities.count("page") >= 2 and severities.count("ticket") >= 2
    assert 'reporter="destination"' in exprs


SLO_STACKS = [s for s in STACKS if s != "dev"]  # dev declares none


def _registered(stack: str) -> tuple[list[dict], list[dict]]:
    """The groups of every PrometheusRule the program registered, and the declared objectives."""
    run = stack_run(stack)
    groups = [g for r in run.of_type(RULE) for g in r.inputs["spec"]["groups"]]
    return groups, stack_config(stack)["service-mesh:slos"]["objectives"]


def promtool_jobs() -> dict[str, slo_tests.Job]:
    """Per stack, the registered rules against the tests generated for its objectives; run in
    the background from collection on (`tests/conftest.py`)."""
    jobs = {}
    for stack in SLO_STACKS:
        groups, declared = _registered(stack)
        objectives = [SloObjective.model_validate(o) for o in declared]
        services = {s.name: s.service_names for s in parsed_stack(stack).graph.services}
        tests = slo_tests.promtool_tests(objectives, stack, services=services)
        jobs[stack] = slo_tests.Job({"groups": groups}, tests)
    return jobs


@pytest.mark.parametrize("stack", SLO_STACKS)
def test_the_registered_rules_pass_promtool_and_their_generated_tests(promtool_runs, stack):
    """What `pulumi up` would apply, not a builder called on the side: the spec of every
    PrometheusRule the program registered, against the tests generated for the declared
    objectives (a full outage pages, near-threshold burns, slow burn, no traffic)."""
    groups, declared = _registered(stack)
    assert groups and declared
    for done in (promtool_runs.check(stack), promtool_runs.test(stack)):
        assert done.ok, done.output
        assert "SUCCESS" in done.output


ISTIO_SERVICE = re.compile(r'istio_\w+\{[^}]*destination_service_name(=~?)"([^"]*)"')


@pytest.mark.parametrize("stack", SLO_STACKS)
def test_every_objective_counts_every_service_in_front_of_its_pods(stack):
    """A canaried service's requests are reported under Flagger's `-primary` and `-canary`
    Services too: each objective's rule selects exactly the Services of its service."""
    run, graph = stack_run(stack), parsed_stack(stack).graph
    canaried = 0
    for o in parsed_stack(stack).slos.objectives:
        names = graph.by_name[o.service].service_names
        canaried += len(names) > 1
        rule = run.one(RULE, f"slo-{o.name}")
        exprs = [r["expr"] for g in rule.inputs["spec"]["groups"] for r in g["rules"]]
        found = {m for e in exprs for m in ISTIO_SERVICE.findall(e)}
        expected = ("=", names[0]) if len(names) == 1 else ("=~", "|".join(names))
        assert found == {expected}, (o.name, found)
    if stack == "production":
        assert canaried, "production canaries checkout: the case this guards"


def test_slo_rules_wait_for_the_prometheus_operator():
    run = stack_run("production")
    stack = next(
        r for r in run.of_type(RELEASE) if r.inputs.get("chart") == "kube-prometheus-stack"
    )
    for rule in run.of_type(RULE):
        assert stack.urn in rule.dependencies, rule.name


def test_dev_declares_no_objectives_and_gets_no_slo_rules():
    run = stack_run("dev")
    assert not [r for r in run.of_type(RULE) if r.inputs["metadata"].get("labels", {}).get("slo")]


def _with_objective(objective: dict) -> dict:
    cfg = stack_config("production")
    cfg = {**cfg, "service-mesh:slos": {"objectives": [objective]}}
    return cfg


GOOD = {
    "name": "x",
    "service": "checkout",
    "namespace": "shop",
    "availability": 99.9,
    "runbookUrl": "https://runbooks.example.com/slo/x",
}


@pytest.mark.parametrize(
    "change,key,words",
    [
        ({"service": "cart"}, "slos.objectives[0].service", "declared in `services`"),
        ({"namespace": "other"}, "slos.objectives[0].namespace", "'shop'"),
        ({"availability": 100}, "slos.objectives[0].availability", "strictly between 0 and"),
        ({"availability": 0}, "slos.objectives[0].availability", "strictly between 0 and"),
        ({"latency": {"thresholdMs": 300, "target": 99}}, "latency.thresholdMs", "250, 500"),
        ({"latency": {"thresholdMs": 500, "target": 120}}, "latency.target", "between 0 and 100"),
        ({"window": "28d"}, "slos.objectives[0].window", "unknown key"),
    ],
)
def test_bad_objectives_are_refused_with_the_key_named(tmp_path, change, key, words):
    run = run_config(tmp_path, "production", _with_objective({**GOOD, **change}))
    assert isinstance(run.error, ConfigError), run.error
    assert key in str(run.error) and words in str(run.error)
    assert run.resources == []


def test_production_objectives_must_link_a_runbook(tmp_path):
    no_runbook = {k: v for k, v in GOOD.items() if k != "runbookUrl"}
    run = run_config(tmp_path, "production", _with_objective(no_runbook))
    assert isinstance(run.error, ConfigError), run.error
    assert "service-mesh:slos.objectives[0].runbookUrl" in str(run.error)
    assert run.resources == []
    staging = {**stack_config("staging"), "service-mesh:slos": {"objectives": [no_runbook]}}
    assert run_config(tmp_path, "staging", staging).error is None


def test_duplicate_objective_names_are_refused(tmp_path):
    cfg = stack_config("production")
    cfg = {**cfg, "service-mesh:slos": {"objectives": [GOOD, GOOD]}}
    run = run_config(tmp_path, "production", cfg)
    assert isinstance(run.error, ConfigError)
    assert "slos.objectives" in str(run.error) and "'x' repeats" in str(run.error)
    assert run.resources == []


def test_objectives_need_prometheus_to_keep_the_whole_budget_window(tmp_path):
    cfg = {
        **stack_config("production"),
        "service-mesh:observability": {"prometheus": {"retention": "14d"}},
    }
    run = run_config(tmp_path, "production", cfg)
    assert isinstance(run.error, ConfigError)
    assert "service-mesh:observability.prometheus.retention = '14d'" in str(run.error)
    assert "31d" in str(run.error)
    assert run.resources == []
