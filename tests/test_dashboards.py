"""Dashboards: Istio's four dashboards provisioned at a pinned revision, and the SLO dashboard
ConfigMap that the Grafana sidecar picks up, querying exactly the recording rules
`components/slo.py` generates, with PromQL that promtool parses and evaluates as intended."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import yaml

from components.observability import dashboards
from components.slo import rules as slo
from components.slo.config import SloObjective
from tests.conftest import stack_run
from tests.schema import validate_k8s
from tools.plan import manifest

PROMTOOL = shutil.which("promtool") or "promtool"  # Debian's prometheus package (.ci/run)


def objective(**extra) -> SloObjective:
    return SloObjective.model_validate(
        {
            "name": "checkout",
            "service": "checkout",
            "namespace": "shop",
            "availability": 99.9,
            **extra,
        }
    )


def recorded_names() -> set[str]:
    o = objective(latency={"thresholdMs": 250, "target": 99})
    return {r["record"] for g in slo.rule_groups(o, "dev") for r in g["rules"] if "record" in r}


# Files under istio/istio manifests/addons/dashboards/ at tag 1.30.3 (checked by hand against
# the tag; the release publishes these same files to grafana.com 7639/7636/7630/7645).
ISTIO_FILES = {
    "istio-mesh-dashboard.gen.json",
    "istio-service-dashboard.json",
    "istio-workload-dashboard.json",
    "pilot-dashboard.gen.json",
}


def test_istio_dashboards_are_pinned_to_the_istio_release_we_run():
    run = stack_run("production")
    kps = next(
        r
        for r in run.of_type("kubernetes:helm.sh/v3:Release")
        if r.inputs["name"] == "kube-prometheus-stack"
    )
    istiod = next(
        r for r in run.of_type("kubernetes:helm.sh/v3:Release") if r.inputs["chart"] == "istiod"
    )
    grafana = kps.inputs["values"]["grafana"]
    (provider,) = grafana["dashboardProviders"]["dashboardproviders.yaml"]["providers"]
    boards = grafana["dashboards"][provider["name"]]
    assert set(boards) == {"istio-mesh", "istio-service", "istio-workload", "istio-control-plane"}
    prefix = (
        "https://raw.githubusercontent.com/istio/istio/"
        f"{istiod.inputs['version']}/manifests/addons/dashboards/"
    )
    assert {b["url"].removeprefix(prefix) for b in boards.values()} == ISTIO_FILES
    # No line-based `datasource` rewrite: the dashboards use their own datasource variable.
    assert all(set(b) == {"url"} for b in boards.values())
    assert provider["options"]["path"] == f"/var/lib/grafana/dashboards/{provider['name']}"
    assert provider["folder"] == "Istio"


def test_slo_dashboard_configmap_is_picked_up_by_the_grafana_sidecar():
    run = stack_run("dev")
    (cm,) = [
        r
        for r in run.of_type("kubernetes:core/v1:ConfigMap")
        if r.inputs["metadata"]["name"].startswith("grafana-dashboard-")
    ]
    kps = next(
        r
        for r in run.of_type("kubernetes:helm.sh/v3:Release")
        if r.inputs["name"] == "kube-prometheus-stack"
    )
    sidecar = kps.inputs["values"]["grafana"]["sidecar"]["dashboards"]
    labels = cm.inputs["metadata"]["labels"]
    assert labels[sidecar["label"]] == sidecar["labelValue"]
    assert cm.inputs["metadata"]["annotations"][sidecar["folderAnnotation"]] == "SLOs"
    validate_k8s(manifest(cm))
    (body,) = cm.inputs["data"].values()
    board = json.loads(body)
    assert board["uid"] == dashboards.SLO_DASHBOARD_UID
    assert {p["title"].split(" (")[0] for p in board["panels"]} >= {
        "Error budget remaining",
        "Burn rate per window",
    }


def test_every_metric_the_slo_dashboard_queries_is_recorded_by_the_slo_rules():
    queried = set()
    for expr in dashboards.all_promql(dashboards.slo_dashboard()):
        queried |= set(re.findall(r"slo:[a-z0-9_]+:[a-z0-9_]+", expr))
    assert queried, "the dashboard queries no SLO recording rule"
    assert queried <= recorded_names(), queried - recorded_names()
    # One burn-rate series per SLI window the alerts use.
    assert {f"slo:sli_error:ratio_rate{w}" for w in ("5m", "1h", "6h", "1d", "3d")} <= queried


def test_slo_dashboard_labels_exist_on_the_recorded_series():
    o = objective()
    for group in slo.rule_groups(o, "dev"):
        for rule in group["rules"]:
            if "record" in rule:
                assert {dashboards.SLO_LABEL, dashboards.SLI_LABEL} <= set(rule["labels"])


def _concrete(expr: str) -> str:
    return expr.replace('"$slo"', '".*"')


def test_slo_dashboard_promql_parses(tmp_path: Path):
    exprs = dashboards.all_promql(dashboards.slo_dashboard())
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query{i}:check", "expr": _concrete(e)}
                    for i, e in enumerate(exprs)
                ],
            }
        ]
    }
    path = tmp_path / "dashboard.yml"
    path.write_text(yaml.safe_dump(rules))
    done = subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_burn_rate_panel_divides_the_error_ratio_by_the_budget(tmp_path: Path):
    """2 % errors against a 99.9 % objective burn the budget 20 times too fast."""
    (panel,) = [p for p in dashboards.slo_dashboard()["panels"] if p["title"].startswith("Burn")]
    expr = _concrete(panel["targets"][1]["expr"])  # the 1h window
    assert "ratio_rate1h" in expr
    labels = '{slo="checkout",sli="availability",destination_service_name="checkout"}'
    rules = tmp_path / "none.yml"
    rules.write_text("groups: []\n")
    test = {
        "rule_files": [str(rules)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": f"slo:sli_error:ratio_rate1h{labels}", "values": "0.02x10"},
                    {"series": f"slo:error_budget:ratio{labels}", "values": "0.001x10"},
                ],
                "promql_expr_test": [
                    {
                        "expr": expr,
                        "eval_time": "5m",
                        "exp_samples": [
                            {"labels": '{slo="checkout",sli="availability"}', "value": 20}
                        ],
                    }
                ],
            }
        ],
    }
    path = tmp_path / "test.yml"
    path.write_text(yaml.safe_dump(test))
    done = subprocess.run([PROMTOOL, "test", "rules", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
