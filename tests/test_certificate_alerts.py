"""Certificate alerts (components/observability/certificates.py): the PrometheusRule the program
registers in every stack passes `promtool check rules`, and promtool's own evaluation proves
when each alert fires — a ticket with 21 days left, a page with 7, a ticket for a Certificate
stuck not ready — counting a Certificate once although both controller replicas export it.
The ServiceMonitor selects the Service cert-manager's chart renders."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from components.base import mesh
from components.observability import certificates
from tests import slo_promtool
from tests.conftest import STACKS, stack_run

RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
SVCMON = "kubernetes:monitoring.coreos.com/v1:ServiceMonitor"
DAY = 86_400
CERT = {"namespace": mesh.INGRESS_NAMESPACE, "name": "ingress-tls"}


def registered_groups(stack: str) -> list[dict[str, Any]]:
    rule = stack_run(stack).one(RULE, f"prometheusrule-monitoring-{certificates.RULE_NAME}")
    return rule.inputs["spec"]["groups"]


def _series(metric: str, value: str, **labels: str) -> dict[str, str]:
    text = ",".join(f'{k}="{v}"' for k, v in {**CERT, **labels}.items())
    return {"series": f"{metric}{{{text}}}", "values": value}


def _expiring(days: int) -> list[dict[str, str]]:
    """The same Certificate from both controller replicas, `days` from the test's epoch."""
    value = f"{days * DAY}x200"
    metric = "certmanager_certificate_expiration_timestamp_seconds"
    return [_series(metric, value, pod=pod) for pod in ("cert-manager-a", "cert-manager-b")]


def _fired(alert: str, severity: str, environment: str) -> dict[str, Any]:
    (rule,) = [r for r in certificates.certificate_alerts(environment) if r["alert"] == alert]
    where = f"Certificate {CERT['namespace']}/{CERT['name']}"
    return {
        "exp_labels": {**CERT, "severity": severity, "environment": environment},
        "exp_annotations": {
            "summary": rule["annotations"]["summary"].replace(
                "Certificate {{ $labels.namespace }}/{{ $labels.name }}", where
            ),
            "description": rule["annotations"]["description"],
        },
    }


def alert_tests(environment: str) -> dict[str, Any]:
    def check(minute: int, alert: str, fired: list[dict[str, Any]]) -> dict[str, Any]:
        return {"eval_time": f"{minute}m", "alertname": alert, "exp_alerts": fired}

    soon, now, stuck = (
        "CertificateExpiresSoon",
        "CertificateExpiresImminently",
        "CertificateNotReady",
    )
    ready = "certmanager_certificate_ready_status"
    return {
        "rule_files": [slo_promtool.RULE_FILE],
        "evaluation_interval": "1m",
        "tests": [
            {
                "name": "20 days left: a ticket after an hour, no page",
                "interval": "1m",
                "input_series": _expiring(20),
                "alert_rule_test": [
                    check(50, soon, []),
                    check(70, soon, [_fired(soon, "ticket", environment)]),
                    check(70, now, []),
                ],
            },
            {
                "name": "6 days left: a page within minutes, the ticket too",
                "interval": "1m",
                "input_series": _expiring(6),
                "alert_rule_test": [
                    check(15, now, [_fired(now, "page", environment)]),
                    check(70, soon, [_fired(soon, "ticket", environment)]),
                ],
            },
            {
                "name": "60 days left and ready: nothing",
                "interval": "1m",
                "input_series": [
                    *_expiring(60),
                    _series(ready, "1x200", condition="True"),
                    _series(ready, "0x200", condition="False"),
                ],
                "alert_rule_test": [check(120, a, []) for a in (soon, now, stuck)],
            },
            {
                "name": "not ready for half an hour: a ticket",
                "interval": "1m",
                "input_series": [
                    *_expiring(60),
                    _series(ready, "0x200", condition="True", pod="cert-manager-a"),
                    _series(ready, "1x200", condition="False", pod="cert-manager-a"),
                    _series(ready, "1x200", condition="False", pod="cert-manager-b"),
                ],
                "alert_rule_test": [
                    check(20, stuck, []),
                    check(35, stuck, [_fired(stuck, "ticket", environment)]),
                ],
            },
        ],
    }


def _wrong() -> dict[str, Any]:
    """20 days left expected to page: the harness must say no."""
    tests = copy.deepcopy(alert_tests("production"))
    first = tests["tests"][0]
    first["alert_rule_test"] = [
        {
            "eval_time": "70m",
            "alertname": "CertificateExpiresImminently",
            "exp_alerts": [_fired("CertificateExpiresImminently", "page", "production")],
        }
    ]
    tests["tests"] = [first]
    return tests


def promtool_jobs() -> dict[str, slo_promtool.Job]:
    jobs = {
        stack: slo_promtool.Job({"groups": registered_groups(stack)}, alert_tests(stack))
        for stack in STACKS
    }
    jobs["wrong expectation"] = slo_promtool.Job(
        {"groups": registered_groups("production")}, _wrong()
    )
    return jobs


@pytest.mark.parametrize("stack", STACKS)
def test_the_registered_certificate_alerts_fire_as_promised(promtool_runs, stack):
    """What `pulumi up` applies (the registered PrometheusRule), under promtool's evaluation."""
    assert registered_groups(stack)
    for done in (promtool_runs.check(stack), promtool_runs.test(stack)):
        assert done.ok and "SUCCESS" in done.output, done.output


def test_the_alert_tests_can_fail(promtool_runs):
    done = promtool_runs.test("wrong expectation")
    assert not done.ok and "CertificateExpiresImminently" in done.output, done.output


@pytest.mark.parametrize("stack", STACKS)
def test_cert_manager_is_scraped_where_its_chart_serves_metrics(stack):
    """cert-manager v1.21.1 renders the Service `cert-manager` (port `http-metrics`, 9402) while
    `prometheus.enabled` holds its default, with these labels."""
    run = stack_run(stack)
    monitor = run.one(SVCMON, "servicemonitor-monitoring-cert-manager")
    spec = monitor.inputs["spec"]
    assert spec["namespaceSelector"] == {"matchNames": [mesh.CERT_MANAGER_NAMESPACE]}
    assert spec["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "cert-manager",
        "app.kubernetes.io/instance": "cert-manager",
        "app.kubernetes.io/component": "controller",
    }
    assert [e["port"] for e in spec["endpoints"]] == ["http-metrics"]
    release = next(
        r
        for r in run.of_type("kubernetes:helm.sh/v3:Release")
        if r.inputs["name"] == "cert-manager"
    )
    assert release.inputs["values"].get("prometheus", {}).get("enabled", True) is True
    kps = next(
        r
        for r in run.of_type("kubernetes:helm.sh/v3:Release")
        if r.inputs["name"] == "kube-prometheus-stack"
    )
    rule = run.one(RULE, f"prometheusrule-monitoring-{certificates.RULE_NAME}")
    assert kps.urn in monitor.dependencies and kps.urn in rule.dependencies
