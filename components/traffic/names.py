"""Names the traffic layer shares with authorization, network policies and sidecar scoping: the
Flagger namespace, releases and load tester identity, a service's hosts, and how Flagger names
and labels what it generates for a canary.

Flagger (1.44, pkg/canary/deployment_controller.go) takes the first of its selector labels
(`app`, `name`, `app.kubernetes.io/name`) found in the target Deployment's selector, and gives
the `<name>-primary` Deployment's pods the same labels with that one set to `<value>-primary`;
the canary pods keep the original labels. It generates the Services `<name>`, `<name>-primary`
and `<name>-canary` (pkg/router/kubernetes_default.go), the DestinationRules `<name>-primary`
and `<name>-canary` and the VirtualService `<name>` (pkg/router/istio.go). Pure: no Pulumi.
"""

from __future__ import annotations

from components.base import mesh
from components.graph.checks import ServiceGraph
from components.graph.model import MeshService

FLAGGER_NAMESPACE = "flagger"
FLAGGER_RELEASE = "flagger"  # the chart's fullname is the release name
FLAGGER_POD_LABELS = {"app.kubernetes.io/name": "flagger"}
FLAGGER_SERVICE_ACCOUNT = FLAGGER_RELEASE  # serviceAccount.create: named by the fullname
FLAGGER_PRINCIPAL = mesh.principal(FLAGGER_NAMESPACE, FLAGGER_SERVICE_ACCOUNT)
FLAGGER_METRICS_PORT = 8080  # /metrics, scraped through the chart's ServiceMonitor
LOADTESTER_RELEASE = "flagger-loadtester"  # contains the chart name: its fullname
LOADTESTER_SERVICE_ACCOUNT = LOADTESTER_RELEASE  # rbac.create: the chart's own account
LOADTESTER_LABELS = {"app": "loadtester"}  # the chart's pod selector
LOADTESTER_PORT = 8080  # container port; the Service's port 80 targets it
LOADTESTER_URL = f"http://{LOADTESTER_RELEASE}.{FLAGGER_NAMESPACE}/"
LOADTESTER_PRINCIPAL = mesh.principal(FLAGGER_NAMESPACE, LOADTESTER_SERVICE_ACCOUNT)

# Flagger's default `-selector-labels`, in the order it looks for them.
FLAGGER_SELECTOR_LABELS = ("app", "name", "app.kubernetes.io/name")


def fqdn(name: str, namespace: str) -> str:
    return f"{name}.{namespace}.svc.cluster.local"


def host(svc: MeshService) -> str:
    """The service's in-mesh host name."""
    return fqdn(svc.name, svc.namespace)


def flagger_label(svc: MeshService) -> str | None:
    """The selector label Flagger rewrites for the primary, None if the workload has none."""
    labels = svc.workload_labels
    return next((k for k in FLAGGER_SELECTOR_LABELS if k in labels), None)


def primary_labels(svc: MeshService) -> dict[str, str]:
    """Pod labels of the `<name>-primary` workload Flagger generates for a canaried service."""
    labels = svc.workload_labels
    label = flagger_label(svc)
    assert label is not None, f"{svc.name}: refused by config (no Flagger selector label)"
    return {**labels, label: f"{labels[label]}-primary"}


def generated_names(svc: MeshService) -> tuple[str, str, str]:
    """The Services Flagger generates for a canaried service: apex, primary, canary."""
    assert svc.canary is not None, f"{svc.name}: not canaried"
    apex, primary, canary = svc.service_names
    return apex, primary, canary


def service_hosts(svc: MeshService) -> list[str]:
    """Every host a caller of `svc` may be routed to: the service's own, and for a canary the
    primary and canary Services Flagger's VirtualService sends it to."""
    return [fqdn(n, svc.namespace) for n in svc.service_names]


def canaried(graph: ServiceGraph) -> list[MeshService]:
    return [s for s in graph.services if s.canary is not None]


def workload_label_sets(svc: MeshService) -> list[dict[str, str]]:
    """The pod label sets of the service's workloads: its own, and Flagger's primary."""
    out = [svc.workload_labels]
    if svc.canary is not None:
        out.append(primary_labels(svc))
    return out
