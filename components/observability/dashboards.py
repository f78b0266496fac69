"""Grafana dashboards: Istio's mesh, service, workload and control-plane dashboards, provisioned
by the chart from the istio/istio repository at the tag of the Istio release we run, and our own
SLO dashboard (error budget remaining, burn rates, SLI per objective) as a ConfigMap the Grafana
sidecar picks up. The SLO panels query the recording rules `components/slo.py` generates, by
the same names.

Why the git tag and not grafana.com revisions: Istio's release tooling uploads each dashboard to
grafana.com (7639, 7636, 7630, 7645) as a new revision per release, and the revision numbers
are neither documented per Istio version nor equal across dashboards, so a revision cannot be
checked against the Istio we deploy. The files at tag `<istio version>` are exactly the ones
that release ships (`samples/addons/grafana.yaml` bundles the same files)."""

from __future__ import annotations

import json
from typing import Any

from components.base import manifests, mesh
from components.observability.metrics import (
    DASHBOARD_LABEL,
    FOLDER_ANNOTATION,
    PROMETHEUS_DATASOURCE_UID,
)
from components.slo.names import (
    BUDGET_REMAINING,
    ERROR_BUDGET,
    OBJECTIVE,
    SLI_LABEL,
    SLO_LABEL,
    sli_error,
)

# Provider key -> file under manifests/addons/dashboards/ (verified present at tag 1.30.3).
ISTIO_DASHBOARDS = {
    "istio-mesh": "istio-mesh-dashboard.gen.json",
    "istio-service": "istio-service-dashboard.json",
    "istio-workload": "istio-workload-dashboard.json",
    "istio-control-plane": "pilot-dashboard.gen.json",
}
ISTIO_DASHBOARDS_URL = (
    "https://raw.githubusercontent.com/istio/istio/{tag}/manifests/addons/dashboards/{file}"
)
ISTIO_PROVIDER = "istio"

# The SLO series (components/slo/names.py) are plotted over these windows.
BURN_WINDOWS = ("5m", "1h", "6h", "1d", "3d")
SLO_DASHBOARD = "slo-overview"
SLO_DASHBOARD_UID = "mesh-slo-overview"


def istio_dashboards_values(istio_version: str) -> dict[str, Any]:
    """`dashboardProviders` + `dashboards` for the grafana subchart: downloaded at start-up
    from the Istio release's tag into their own `Istio` folder. No `datasource` rewrite: the
    dashboards pick their data source through their own `datasource` variable, which defaults
    to Grafana's default data source (Prometheus); the chart's rewrite is a line-based `sed`."""
    return {
        "dashboardProviders": {
            "dashboardproviders.yaml": {
                "apiVersion": 1,
                "providers": [
                    {
                        "name": ISTIO_PROVIDER,
                        "orgId": 1,
                        "folder": "Istio",
                        "type": "file",
                        "disableDeletion": True,
                        "editable": False,
                        "options": {"path": f"/var/lib/grafana/dashboards/{ISTIO_PROVIDER}"},
                    }
                ],
            }
        },
        "dashboards": {
            ISTIO_PROVIDER: {
                name: {"url": ISTIO_DASHBOARDS_URL.format(tag=istio_version, file=file)}
                for name, file in ISTIO_DASHBOARDS.items()
            }
        },
    }


def _ds() -> dict[str, str]:
    return {"type": "prometheus", "uid": PROMETHEUS_DATASOURCE_UID}


def _panel(
    pid: int,
    title: str,
    kind: str,
    targets: list[tuple[str, str]],
    grid: dict[str, int],
    unit: str,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "id": pid,
        "type": kind,
        "title": title,
        "datasource": _ds(),
        "gridPos": grid,
        "fieldConfig": {"defaults": {"unit": unit, **extra}, "overrides": []},
        "targets": [
            {"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend, "datasource": _ds()}
            for i, (expr, legend) in enumerate(targets)
        ],
    }


def slo_dashboard() -> dict[str, Any]:
    """One row per question an on-call engineer asks: how much budget is left, how fast is it
    burning (burn rate 1 = exactly on budget over the window), and what does the SLI look like."""
    sel = f'{{{SLO_LABEL}=~"$slo"}}'
    key = f"on({SLO_LABEL}, {SLI_LABEL})"
    name = f"{{{{{SLO_LABEL}}}}}/{{{{{SLI_LABEL}}}}}"
    burn = [
        (f"{sli_error(w)}{sel} / {key} {ERROR_BUDGET}{sel}", f"{name} {w}") for w in BURN_WINDOWS
    ]
    panels = [
        _panel(
            1,
            "Error budget remaining (30d)",
            "stat",
            [(f"{BUDGET_REMAINING}{sel}", name)],
            {"h": 6, "w": 24, "x": 0, "y": 0},
            "percentunit",
            max=1,
        ),
        _panel(
            2,
            "Burn rate per window (1 = on budget)",
            "timeseries",
            burn,
            {"h": 9, "w": 12, "x": 0, "y": 6},
            "none",
        ),
        _panel(
            3,
            "SLI (good ratio, 5m) and objective",
            "timeseries",
            [
                (f"1 - {sli_error('5m')}{sel}", f"{name} SLI"),
                (f"{OBJECTIVE}{sel}", f"{name} objective"),
            ],
            {"h": 9, "w": 12, "x": 12, "y": 6},
            "percentunit",
        ),
    ]
    return {
        "uid": SLO_DASHBOARD_UID,
        "title": "Mesh SLOs",
        "tags": ["slo", "istio"],
        "timezone": "utc",
        "schemaVersion": 39,
        "editable": False,
        "time": {"from": "now-7d", "to": "now"},
        "refresh": "1m",
        "templating": {
            "list": [
                {
                    "name": "slo",
                    "label": "SLO",
                    "type": "query",
                    "datasource": _ds(),
                    "query": f"label_values({OBJECTIVE}, {SLO_LABEL})",
                    "refresh": 2,
                    "multi": True,
                    "includeAll": True,
                    "current": {"text": "All", "value": "$__all"},
                }
            ]
        },
        "panels": panels,
    }


def slo_dashboard_configmap() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": f"grafana-dashboard-{SLO_DASHBOARD}",
            "namespace": mesh.MONITORING_NAMESPACE,
            "labels": manifests.labels("grafana-dashboards", **DASHBOARD_LABEL),
            "annotations": {FOLDER_ANNOTATION: "SLOs"},
        },
        "data": {f"{SLO_DASHBOARD}.json": json.dumps(slo_dashboard(), indent=2, sort_keys=True)},
    }


def all_promql(dashboard: dict[str, Any]) -> list[str]:
    """Every query a dashboard runs (panels and template variables), for checks."""
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    for var in dashboard.get("templating", {}).get("list", []):
        q = var.get("query", "")
        if q.startswith("label_values("):
            exprs.append(q[len("label_values(") : q.rindex(",")])
    return exprs
