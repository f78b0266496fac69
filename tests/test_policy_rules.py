"""Every rule of the policy pack on fixtures: the production plan with one resource changed the
way a real mistake would change it (the rule reports it, at that resource), and a compliant
neighbour (a close, legitimate variant the rule must not report). Traffic-layer objects
(VirtualService, DestinationRule, Sidecar, Flagger Canary) are constructed in their API shapes.

All of it runs through `tools.policy.analyze`: pulumi_policy's analyzer servicer, with
properties as Structs (numbers as floats, read-only proxies on the policy side) and the
production policy config (mandatory), exactly as `python -m tools.policy` runs.
"""

from __future__ import annotations

import copy
import functools
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from policies.pack import RULES
from tests.conftest import stack_run
from tools import policy as tool

STACK = "production"
PROJECT = "service-mesh"

Records = list[dict[str, Any]]


@functools.cache
def _records(stack: str) -> bytes:
    return pickle.dumps(tool.plan_resources(stack_run(stack)))


def records(stack: str = STACK) -> Records:
    """A fresh deep copy of the stack's plan records for each caller to change (unpickled: a
    tenth of what `copy.deepcopy` takes)."""
    return pickle.loads(_records(stack))


@functools.cache
def _svc():
    return tool.servicer()


@functools.cache
def _infos():
    return _svc().GetAnalyzerInfo(None, None).policies


def config(stack: str = STACK, extra: dict[str, Any] | None = None):
    given = tool.parse_config((tool.CONFIG_DIR / f"{stack}.json").read_text(), stack)
    for name, props in (extra or {}).items():
        level, old = given.get(name, (None, {}))
        given[name] = (level, {**old, **props})
    return tool.reconcile(_infos(), given, stack)


_CACHE: dict[bytes, Any] = {}  # Analyze responses of unchanged resources (see tool.analyze)


def analyze(
    recs: Records, stack: str = STACK, extra: dict[str, Any] | None = None, mode: str = tool.PLAN
):
    return tool.analyze(recs, stack, config(stack, extra), _svc(), _CACHE, mode)


def stack_urn(stack: str = STACK) -> str:
    return f"urn:pulumi:{stack}::{PROJECT}::pulumi:pulumi:Stack::{PROJECT}-{stack}"


# --- building and changing records -----------------------------------------------------------


def res(recs: Records, name: str, type_: str | None = None) -> dict[str, Any]:
    found = [r for r in recs if r["name"] == name and (type_ is None or r["type"] == type_)]
    if len(found) > 1:  # a component and its main resource share a name: the resource
        found = [r for r in found if not r["type"].startswith(f"{PROJECT}:")]
    assert len(found) == 1, (name, type_, len(found))
    return found[0]


def add(recs: Records, type_: str, name: str, inputs: dict[str, Any], protect=False) -> str:
    urn = f"urn:pulumi:{STACK}::{PROJECT}::{type_}::{name}"
    recs.append(
        {
            "urn": urn,
            "type": type_,
            "name": name,
            "parent": None,
            "provider": None,
            "dependencies": [],
            "protect": protect,
            "inputs": inputs,
        }
    )
    return urn


def k8s(kind: str, api: str, name: str, ns: str | None, spec: Any = None, **top: Any) -> dict:
    meta: dict[str, Any] = {"name": name, "labels": {"app.kubernetes.io/managed-by": "pulumi"}}
    if ns is not None:
        meta["namespace"] = ns
    out = {"apiVersion": api, "kind": kind, "metadata": meta, **top}
    if spec is not None:
        out["spec"] = spec
    return out


def add_k8s(recs: Records, kind: str, api: str, name: str, ns: str | None, spec=None, **top):
    group = api.split("/")[0] if "/" in api else "core"
    version = api.split("/")[-1]
    type_ = f"kubernetes:{group}/{version}:{kind}"
    return add(recs, type_, f"{ns or 'cluster'}-{name}", k8s(kind, api, name, ns, spec, **top))


V4_CHART = "kubernetes:helm.sh/v4:Chart"


def add_rendered(recs: Records, chart: str, type_: str, body: dict[str, Any]) -> str:
    """An object a `helm.v4.Chart` of the plan rendered, as a real preview registers it: a
    child of the Chart (its URN's type qualified by the Chart's). The offline engine renders
    no chart, so these are constructed."""
    parent = res(recs, chart, V4_CHART)
    qualified = parent["urn"].split("::")[2]
    name = f"{chart}:{body['metadata'].get('namespace', '')}/{body['metadata']['name']}"
    urn = f"urn:pulumi:{STACK}::{PROJECT}::{qualified}${type_}::{name}"
    recs.append(
        {
            "urn": urn,
            "type": type_,
            "name": name,
            "parent": parent["urn"],
            "provider": parent["provider"],
            "dependencies": [],
            "protect": False,
            "inputs": body,
        }
    )
    return urn


def rendered_deployment(recs: Records, label: str | None, chart: str = "metrics-server") -> str:
    """metrics-server's Deployment as its chart renders it, labelled `helm.sh/chart: label`."""
    ns = res(recs, chart, V4_CHART)["inputs"]["namespace"]
    body = k8s(
        "Deployment",
        "apps/v1",
        chart,
        ns,
        {
            "selector": {"matchLabels": {"app.kubernetes.io/name": chart}},
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": chart}},
                "spec": {"containers": [{"name": chart, "image": "registry.k8s.io/ms:v0.8.1"}]},
            },
        },
    )
    body["metadata"]["labels"] = {"app.kubernetes.io/name": chart}
    if label is not None:
        body["metadata"]["labels"]["helm.sh/chart"] = label
    return add_rendered(recs, chart, "kubernetes:apps/v1:Deployment", body)


NET, SEC, FLAGGER = "networking.istio.io/v1", "security.istio.io/v1", "flagger.app/v1beta1"
ORDERS = "orders.shop.svc.cluster.local"


def values(recs: Records, release: str) -> dict[str, Any]:
    return res(recs, release)["inputs"]["values"]


def spec(recs: Records, name: str) -> dict[str, Any]:
    return res(recs, name)["inputs"]["spec"]


def vs(recs: Records, name: str, http: list[dict], ns: str = "shop", **extra) -> str:
    return add_k8s(recs, "VirtualService", NET, name, ns, {"hosts": [name], "http": http, **extra})


def dr(recs: Records, name: str, ns: str = "shop", host: str | None = None, **extra) -> str:
    return add_k8s(recs, "DestinationRule", NET, name, ns, {"host": host or name, **extra})


OUTLIER = {"outlierDetection": {"consecutive5xxErrors": 5, "interval": "10s"}}


def route(host: str = "orders", subset: str | None = None, **extra) -> dict[str, Any]:
    dest: dict[str, Any] = {"host": host}
    if subset:
        dest["subset"] = subset
    return {"route": [{"destination": dest}], **extra}


def canary(
    recs: Records, name: str = "orders", tls: str | None = "ISTIO_MUTUAL", outlier=True, **svc
):
    policy: dict[str, Any] = dict(OUTLIER) if outlier else {}
    if tls:
        policy["tls"] = {"mode": tls}
    service = {"port": 8080, "trafficPolicy": policy, **svc}
    return add_k8s(
        recs,
        "Canary",
        FLAGGER,
        name,
        "shop",
        {
            "provider": "istio",
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "service": service,
            "analysis": {"interval": "1m", "threshold": 5, "maxWeight": 50, "stepWeight": 10},
        },
    )


def deployment(recs: Records, name: str, image: str = "ghcr.io/acme/app:1.4.2", **spec_extra):
    pod = {"containers": [{"name": name, "image": image}]}
    body = {
        "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}}, "spec": pod},
        **spec_extra,
    }
    return add_k8s(recs, "Deployment", "apps/v1", name, "shop", body)


# --- cases -----------------------------------------------------------------------------------

Change = Callable[[Records], str | None]  # changes the records, returns the URN to be reported


@dataclass(frozen=True)
class Case:
    policy: str
    id: str
    violating: Change
    compliant: Change
    config: dict[str, Any] = field(default_factory=dict)  # extra policy config for both
    compliant_config: dict[str, Any] | None = None  # config of the compliant neighbour
    also: frozenset[str] = frozenset()  # other policies the same mistake rightly trips


def _pa(recs: Records, ns: str, mode: str, ports: dict | None = None, selector=None) -> str:
    body: dict[str, Any] = {"mtls": {"mode": mode}}
    if ports:
        body["portLevelMtls"] = ports
    if selector:
        body["selector"] = {"matchLabels": selector}
    return add_k8s(
        recs, "PeerAuthentication", SEC, "default" if not selector else "ports", ns, body
    )


def _mesh_wide(mode: str) -> Change:
    def change(recs: Records) -> str:
        r = res(recs, "istio-system-default")
        r["inputs"]["spec"]["mtls"]["mode"] = mode
        return r["urn"]

    return change


def _drop(name: str, returns: str | None = None) -> Change:
    def change(recs: Records) -> str | None:
        recs.remove(res(recs, name))
        return res(recs, returns)["urn"] if returns else stack_urn()

    return change


def _authz_rules(rules: list[dict[str, Any]], action: str | None = None) -> Change:
    def change(recs: Records) -> str:
        r = res(recs, "shop-allow-checkout")
        r["inputs"]["spec"]["rules"] = rules
        if action:
            r["inputs"]["spec"]["action"] = action
        return r["urn"]

    return change


FRONTEND = {"source": {"principals": ["cluster.local/ns/shop/sa/frontend"]}}
CART = {"operation": {"methods": ["GET"], "paths": ["/api/cart"], "ports": ["8080"]}}
IN_SHOP = {"key": "source.namespace", "values": ["shop"]}


def _principal(value: str, key: str = "principals") -> Change:
    return _authz_rules([{"from": [{"source": {key: [value]}}], "to": [CART]}])


def _set(name: str, path: str | tuple[str, ...], value: Any, returns: str | None = None) -> Change:
    """Set `inputs.<path>` (dotted or a tuple of keys, list indexes as digits) of `name`."""

    def change(recs: Records) -> str:
        r = res(recs, name)
        node: Any = r["inputs"]
        keys = path.split(".") if isinstance(path, str) else list(path)
        for key in keys[:-1]:
            node = node[int(key)] if key.isdigit() else node.setdefault(key, {})
        if value is _DELETE:
            node.pop(keys[-1], None)
        else:
            node[keys[-1]] = value
        return res(recs, returns)["urn"] if returns else r["urn"]

    return change


_DELETE = object()


def _unchanged(name: str | None = None) -> Change:
    return lambda recs: None


def _both(*changes: Change) -> Change:
    def change(recs: Records) -> str | None:
        found = None
        for c in changes:
            found = c(recs) or found
        return found

    return change


def _protect(name: str, value: bool) -> Change:
    def change(recs: Records) -> str:
        r = res(recs, name)
        r["protect"] = value
        return r["urn"]

    return change


def _pdb_workload(replicas: int, min_available: Any, hpa_min: int | None = None) -> Change:
    def change(recs: Records) -> str:
        deployment(recs, "orders", replicas=replicas)
        if hpa_min is not None:
            add_k8s(
                recs,
                "HorizontalPodAutoscaler",
                "autoscaling/v2",
                "orders",
                "shop",
                {
                    "scaleTargetRef": {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": "orders",
                    },
                    "minReplicas": hpa_min,
                    "maxReplicas": 10,
                },
            )
        return add_k8s(
            recs,
            "PodDisruptionBudget",
            "policy/v1",
            "orders",
            "shop",
            {"selector": {"matchLabels": {"app": "orders"}}, "minAvailable": min_available},
        )

    return change


def _vs_dr(route_extra: dict | None = None, dr_extra: dict | None = None, subset=None) -> Change:
    def change(recs: Records) -> str:
        urn = vs(recs, "orders", [route(subset=subset, **(route_extra or {}))])
        if dr_extra is not None:
            dr(recs, "orders", **dr_extra)
        return urn

    return change


def _second_dr(recs: Records) -> str:
    dr(recs, "orders", trafficPolicy=OUTLIER)
    return add_k8s(
        recs,
        "DestinationRule",
        NET,
        "orders-extra",
        "shop",
        {"host": ORDERS, "trafficPolicy": {"connectionPool": {"tcp": {"maxConnections": 10}}}},
    )


def _canary_with(*others: str) -> Change:
    def change(recs: Records) -> str | None:
        canary(recs)
        found = None
        if "vs" in others:
            found = vs(recs, "orders", [route()])
        if "dr" in others:
            found = dr(recs, "orders-primary", trafficPolicy=OUTLIER)
        if "service" in others:
            found = add_k8s(recs, "Service", "v1", "orders-canary", "shop", {"ports": []})
        if "replicas" in others:
            found = deployment(recs, "orders", replicas=3)
        if "deployment" in others:
            deployment(recs, "orders")
        return found

    return change


def _second_holder(tag: str, revision: str) -> Change:
    def change(recs: Records) -> str:
        original = res(recs, f"istio-revision-tag-{tag}")
        clone = copy.deepcopy(original["inputs"])
        clone["metadata"]["name"] = f"istio-revision-tag-{tag}-{revision}"
        clone["metadata"]["labels"]["istio.io/rev"] = revision
        return add(recs, original["type"], f"istio-revision-tag-{tag}-{revision}", clone)

    return change


def _lb_service(recs: Records) -> str:
    return add_k8s(recs, "Service", "v1", "orders", "shop", {"type": "LoadBalancer", "ports": []})


def _second_lb(recs: Records) -> str:
    original = res(recs, "ingress-lb")
    return add(recs, original["type"], "ingress-lb-2", copy.deepcopy(original["inputs"]), True)


def _gateway_canary(service_type: str) -> Change:
    def change(recs: Records) -> str:
        original = res(recs, "istio-ingressgateway")
        clone = copy.deepcopy(original["inputs"])
        clone["name"] = "istio-ingressgateway-canary"
        clone["values"]["service"] = {"type": service_type}
        return add(recs, original["type"], "istio-ingressgateway-canary", clone)

    return change


SECRET_PASSWORD = "Sup3r-S3cret-Grafana-Pa55"
SECRET_URL = "https://alerts:hunter2-token@hooks.example.net/page"

CASES = [
    # mTLS
    Case(
        "mtls-strict",
        "namespace-permissive",
        lambda r: _pa(r, "shop", "PERMISSIVE"),
        lambda r: _pa(r, "shop", "PERMISSIVE"),
        compliant_config={"mtls-strict": {"exceptions": {"shop": "migrating from VMs to 2027"}}},
    ),
    Case("mtls-strict", "mesh-wide-permissive", _mesh_wide("PERMISSIVE"), _mesh_wide("STRICT")),
    Case(
        "mtls-strict",
        "mesh-wide-missing",
        _drop("istio-system-default"),
        lambda r: _pa(r, "shop", "STRICT"),
    ),
    Case(
        "mtls-strict",
        "port-disable-despite-exception",
        lambda r: _pa(r, "shop", "UNSET", {"8080": {"mode": "DISABLE"}}, {"app": "orders"}),
        lambda r: _pa(r, "shop", "UNSET", {"8080": {"mode": "PERMISSIVE"}}, {"app": "orders"}),
        config={"mtls-strict": {"exceptions": {"shop": "legacy health checker, until 2027"}}},
    ),
    # authorization
    Case(
        "authz-allow-needs-source",
        "rule-without-from",
        _authz_rules([{"to": [CART], "when": [IN_SHOP]}]),
        _authz_rules([{"to": [CART]}], action="DENY"),
    ),
    Case("authz-allow-needs-source", "empty-rule-allows-all", _authz_rules([{}]), _authz_rules([])),
    Case(
        "authz-no-split-rules",
        "or-mistake",
        _authz_rules([{"from": [FRONTEND]}, {"to": [CART], "when": [IN_SHOP]}]),
        _authz_rules(
            [
                {"from": [FRONTEND], "to": [CART], "when": [IN_SHOP]},
                {"from": [FRONTEND], "to": [CART]},
            ]
        ),
        also=frozenset({"authz-allow-needs-source"}),
    ),
    Case(
        "authz-no-wildcard-principals",
        "any-namespace-principal",
        _principal("cluster.local/ns/*/sa/frontend"),
        _principal("cluster.local/ns/shop/sa/front*"),
    ),
    Case(
        "authz-no-wildcard-principals",
        "namespace-prefix",
        _principal("sho*", "namespaces"),
        _principal("shop", "namespaces"),
    ),
    Case(
        "authz-no-wildcard-principals",
        "when-principal",
        _authz_rules(
            [
                {
                    "from": [FRONTEND],
                    "to": [CART],
                    "when": [{"key": "source.principal", "values": ["*"]}],
                }
            ]
        ),
        _authz_rules([{"from": [{"source": {"notPrincipals": ["*"]}}], "to": [CART]}]),
    ),
    # isolation
    Case(
        "namespace-default-deny",
        "authz-deny-removed",
        _drop("shop-allow-nothing", "ns-shop"),
        _unchanged(),
    ),
    Case(
        "namespace-default-deny",
        "network-egress-not-denied",
        _set("shop-default-deny", "spec.policyTypes", ["Ingress"], returns="ns-shop"),
        _set("shop-default-deny", "spec.policyTypes", ["Egress", "Ingress"]),
    ),
    # availability
    Case(
        "pdb-allows-drain",
        "istiod-min-available",
        _set("istiod-1-30", "values.pdb", {"minAvailable": 3}),
        _set("istiod-1-30", "values.pdb", {"minAvailable": 2}),
    ),
    Case(
        "pdb-allows-drain",
        "istiod-chart-default-budget",
        _both(
            _set("istiod-1-30", "values.pdb", _DELETE),
            _set("istiod-1-30", "values.autoscaleMin", 1),
        ),
        _both(
            _set("istiod-1-30", "values.pdb", _DELETE),
            _set("istiod-1-30", "values.autoscaleMin", 2),
        ),
        also=frozenset({"platform-ha"}),
    ),
    Case(
        "pdb-allows-drain",
        "cert-manager-webhook",
        _both(
            _set("cert-manager", "values.webhook.replicaCount", 1),
            _set("cert-manager", "values.webhook.podDisruptionBudget", {"enabled": True}),
        ),
        _set(
            "cert-manager",
            "values.webhook.podDisruptionBudget",
            {"enabled": True, "maxUnavailable": "50%"},
        ),
    ),
    Case("pdb-allows-drain", "authored-pdb", _pdb_workload(2, 2), _pdb_workload(2, 2, hpa_min=3)),
    Case(
        "pdb-allows-drain",
        "alertmanager-budget-of-all-replicas",
        _set(
            "kube-prometheus-stack",
            "values.alertmanager.podDisruptionBudget",
            {"enabled": True, "minAvailable": 3},
        ),
        _set(
            "kube-prometheus-stack",
            "values.alertmanager.podDisruptionBudget",
            {"enabled": True, "minAvailable": "60%"},
        ),
    ),
    Case(
        "platform-ha",
        "single-istiod",
        _set("istiod-1-30", "values.autoscaleMin", 1),
        _set("istiod-1-30", "values.autoscaleMin", 2),
    ),
    Case(
        "platform-ha",
        "gateway-without-budget",
        _set("istio-egressgateway", "values.podDisruptionBudget", {}),
        _set("istio-egressgateway", "values.podDisruptionBudget", {"minAvailable": 1}),
    ),
    # cluster
    Case(
        "cluster-production-settings",
        "no-ha",
        _set("mesh-production", "ha", False),
        _set("mesh-production", "ha", True),
    ),
    Case(
        "cluster-production-settings",
        "no-surge",
        _set("mesh-production", "surgeUpgrade", False),
        _unchanged(),
    ),
    Case(
        "cluster-production-settings",
        "no-maintenance-window",
        _set("mesh-production", "maintenancePolicy", _DELETE),
        _unchanged(),
    ),
    Case(
        "cluster-production-settings",
        "open-api",
        _set("mesh-production", "controlPlaneFirewall", _DELETE),
        _set("mesh-production", "controlPlaneFirewall", _DELETE),
        compliant_config={
            "cluster-production-settings": {
                "exceptions": {"controlPlaneAllowList": "GitHub-hosted runners have no fixed IPs"}
            }
        },
    ),
    Case(
        "cluster-production-settings",
        "allow-list-open-to-all",
        _set("mesh-production", "controlPlaneFirewall.allowedAddresses", ["0.0.0.0/0"]),
        _set("mesh-production", "controlPlaneFirewall.allowedAddresses", ["203.0.113.0/24"]),
    ),
    # protection
    Case(
        "protect-stateful-resources",
        "load-balancer",
        _protect("ingress-lb", False),
        _protect("ingress-lb", True),
    ),
    Case(
        "protect-stateful-resources",
        "mesh-ca-secret",
        _protect("mesh-ca-cacerts", False),
        _protect("mesh-ca-intermediate-key", False),
    ),
    Case(
        "protect-stateful-resources",
        "dns-record",
        _protect("ingress-dns-shop-example-com", False),
        _unchanged(),
    ),
    # supply chain
    Case(
        "helm-chart-pinned",
        "version-range",
        _set("kiali", "version", "^2.29.0"),
        _set("kiali", "version", "2.29.0"),
    ),
    Case(
        "helm-chart-pinned",
        "unofficial-repository",
        _set("kiali", "repositoryOpts.repo", "https://charts.example.net/mirror"),
        _set("kiali", "repositoryOpts.repo", "https://kiali.org/helm-charts/"),
    ),
    Case(
        "helm-chart-pinned",
        "exact-but-not-the-pin",
        _set("istiod-1-30", "version", "1.30.2"),
        _unchanged(),
    ),
    Case(
        "helm-chart-pinned",
        "v4-chart-rendered-another-version",
        lambda r: rendered_deployment(r, "metrics-server-3.12.2"),
        lambda r: rendered_deployment(r, "metrics-server-3.13.1"),
    ),
    Case(
        "no-latest-images",
        "chart-value-latest",
        _set("log-collector", "values.image.tag", "latest"),
        _set("log-collector", "values.image.tag", "0.158.0"),
    ),
    Case(
        "no-latest-images",
        "untagged-container",
        lambda r: deployment(r, "orders", image="ghcr.io/acme/orders"),
        lambda r: deployment(r, "orders", image="ghcr.io/acme/orders@sha256:" + "a" * 64),
    ),
    # egress
    Case(
        "egress-registry-only",
        "allow-any",
        _set("istiod-1-30", "values.meshConfig.outboundTrafficPolicy.mode", "ALLOW_ANY"),
        _unchanged(),
    ),
    Case(
        "egress-registry-only",
        "chart-default-allow-any",
        _set("istiod-1-30", "values.meshConfig.outboundTrafficPolicy", _DELETE),
        _unchanged(),
    ),
    Case(
        "egress-registry-only",
        "sidecar-override",
        lambda r: add_k8s(
            r, "Sidecar", NET, "default", "shop", {"outboundTrafficPolicy": {"mode": "ALLOW_ANY"}}
        ),
        lambda r: add_k8s(
            r,
            "Sidecar",
            NET,
            "default",
            "shop",
            {
                "egress": [{"hosts": ["./*", "istio-system/*"]}],
                "outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"},
            },
        ),
    ),
    Case(
        "egress-declared-service-entries",
        "wildcard-host",
        _set("shop-external-api-stripe-com", "spec.hosts", ["*.stripe.com"]),
        _set("shop-external-api-stripe-com", "spec.hosts", ["api.stripe.com", "files.stripe.com"]),
    ),
    Case(
        "egress-declared-service-entries",
        "exported-everywhere",
        _set("shop-external-api-stripe-com", "spec.exportTo", _DELETE),
        _set("shop-external-api-stripe-com", "spec.exportTo", ["."]),
    ),
    Case(
        "egress-declared-service-entries",
        "undeclared-sni",
        _set(
            "istio-egress-allow-declared-hosts",
            "spec.rules.0.when.0.values",
            ["api.stripe.com", "paste.example.net"],
        ),
        _unchanged(),
    ),
    # traffic
    Case(
        "traffic-no-deprecated-fields",
        "circuit-breaker",
        lambda r: dr(r, "orders", trafficPolicy={"circuitBreaker": {"maxConnections": 1}}),
        lambda r: dr(r, "orders", trafficPolicy={"connectionPool": {"tcp": {"maxConnections": 1}}}),
    ),
    Case(
        "traffic-no-deprecated-fields",
        "consecutive-errors",
        lambda r: dr(r, "orders", trafficPolicy={"outlierDetection": {"consecutiveErrors": 5}}),
        lambda r: dr(r, "orders", trafficPolicy=OUTLIER),
    ),
    Case(
        "traffic-outlier-detection",
        "routed-without-detection",
        _vs_dr(dr_extra={"trafficPolicy": {"connectionPool": {"tcp": {"maxConnections": 100}}}}),
        _vs_dr(dr_extra={"trafficPolicy": OUTLIER}),
    ),
    Case(
        "traffic-outlier-detection",
        "detection-switched-off",
        _vs_dr(dr_extra={"trafficPolicy": {"outlierDetection": {"consecutive5xxErrors": 0}}}),
        _vs_dr(dr_extra={"trafficPolicy": {"outlierDetection": {}}}),
    ),
    Case(
        "traffic-outlier-detection",
        "canary-without-detection",
        lambda r: canary(r, outlier=False),
        lambda r: canary(r),
    ),
    Case(
        "traffic-no-faults",
        "abort-in-production",
        _vs_dr(
            route_extra={"fault": {"abort": {"httpStatus": 503, "percentage": {"value": 5}}}},
            dr_extra={"trafficPolicy": OUTLIER},
        ),
        _vs_dr(
            route_extra={"fault": {"abort": {"httpStatus": 503, "percentage": {"value": 5}}}},
            dr_extra={"trafficPolicy": OUTLIER},
        ),
        compliant_config={
            "traffic-no-faults": {"exceptions": {ORDERS: "game day 2027-01-12, removed after"}}
        },
    ),
    Case(
        "traffic-subsets-defined",
        "undefined-subset",
        _vs_dr(
            subset="v2",
            dr_extra={
                "trafficPolicy": OUTLIER,
                "subsets": [{"name": "v1", "labels": {"version": "v1"}}],
            },
        ),
        _vs_dr(
            subset="v1",
            dr_extra={
                "trafficPolicy": OUTLIER,
                "subsets": [{"name": "v1", "labels": {"version": "v1"}}],
            },
        ),
    ),
    Case(
        "traffic-subsets-defined",
        "no-destination-rule",
        _vs_dr(subset="v1"),
        _vs_dr(dr_extra={"trafficPolicy": OUTLIER}),
        also=frozenset({"traffic-outlier-detection"}),
    ),
    Case(
        "traffic-subsets-defined",
        "two-rules-for-a-host",
        _second_dr,
        lambda r: dr(r, "orders", trafficPolicy=OUTLIER),
    ),
    Case(
        "traffic-canary-owns-routing",
        "our-virtual-service",
        _canary_with("vs"),
        _canary_with("deployment"),
        also=frozenset({"traffic-outlier-detection"}),
    ),
    Case("traffic-canary-owns-routing", "our-destination-rule", _canary_with("dr"), _canary_with()),
    Case("traffic-canary-owns-routing", "our-service", _canary_with("service"), _canary_with()),
    Case(
        "traffic-canary-owns-routing",
        "target-replicas",
        _canary_with("replicas"),
        _canary_with("deployment"),
    ),
    Case(
        "traffic-istio-mutual",
        "canary-disable",
        lambda r: canary(r, tls="DISABLE"),
        lambda r: canary(r),
    ),
    Case(
        "traffic-istio-mutual",
        "canary-without-tls",
        lambda r: canary(r, tls=None),
        lambda r: canary(r),
    ),
    Case(
        "traffic-istio-mutual",
        "mesh-host-simple-tls",
        lambda r: dr(r, "orders", trafficPolicy={**OUTLIER, "tls": {"mode": "SIMPLE"}}),
        lambda r: dr(
            r,
            "stripe",
            host="api.stripe.com",
            trafficPolicy={"tls": {"mode": "SIMPLE", "sni": "api.stripe.com"}},
        ),
    ),
    # revisions
    Case(
        "istio-default-revision",
        "default-revision-mismatch",
        _set("istio-base", "values.defaultRevision", "1-31"),
        _set("istio-base", "values.defaultRevision", "1-30"),
    ),
    Case(
        "istio-default-revision",
        "chart-and-webhook-both-default",
        _set("istiod-1-30", "values.revisionTags", ["default"]),
        _unchanged(),
    ),
    Case(
        "istio-default-revision",
        "tag-two-holders",
        _second_holder("stable", "1-31"),
        _unchanged(),
        also=frozenset({"istio-revision-references"}),
    ),
    Case(
        "istio-revision-references",
        "namespace-unknown-tag",
        _set("ns-shop", ("metadata", "labels", "istio.io/rev"), "x"),
        _unchanged(),
    ),
    Case(
        "istio-revision-references",
        "gateway-unknown-revision",
        _set("istio-egressgateway", "values.revision", "1-29"),
        _set("istio-egressgateway", "values.revision", "1-30"),
    ),
    # load balancers
    Case(
        "single-load-balancer",
        "egress-gateway-load-balancer",
        _set("istio-egressgateway", "values.service.type", "LoadBalancer"),
        _set("istio-egressgateway", "values.service.type", "ClusterIP"),
    ),
    Case(
        "single-load-balancer",
        "gateway-canary-default-service",
        _gateway_canary("LoadBalancer"),
        _gateway_canary("None"),
    ),
    Case(
        "single-load-balancer",
        "service-load-balancer",
        _lb_service,
        lambda r: add_k8s(r, "Service", "v1", "orders", "shop", {"type": "ClusterIP"}),
    ),
    Case("single-load-balancer", "second-do-load-balancer", _second_lb, _unchanged()),
    Case(
        "single-load-balancer",
        "chart-value",
        _set("kube-prometheus-stack", "values.grafana.service.type", "LoadBalancer"),
        _set("kube-prometheus-stack", "values.grafana.service.type", "ClusterIP"),
    ),
    # secrets
    Case(
        "no-plaintext-secrets",
        "password-in-values",
        _set("kube-prometheus-stack", "values.grafana.adminPassword", SECRET_PASSWORD),
        _set("kube-prometheus-stack", "values.grafana.admin.existingSecret", "grafana-admin"),
    ),
    Case(
        "no-plaintext-secrets",
        "url-with-credentials",
        _set(
            "kube-prometheus-stack",
            "values.alertmanager.config.receivers.1.webhook_configs.0.url",
            SECRET_URL,
        ),
        _set("cert-manager-dns-token", "stringData", {"access-token": "dop_v1_" + "b" * 64}),
    ),
]


def _run(case: Case, change: Change, extra: dict[str, Any] | None) -> tuple[str | None, list]:
    recs = records()
    urn = change(recs)
    return urn, analyze(recs, extra={**case.config, **(extra or {})})


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.policy}:{c.id}")
def test_the_rule_reports_the_mistake_at_the_changed_resource(case):
    urn, findings = _run(case, case.violating, None)
    mine = [f for f in findings if f.policy == case.policy]
    assert mine, f"{case.policy} did not report {case.id}"
    assert urn in {f.urn for f in mine}, [f.urn for f in mine]
    assert all(f.level == "mandatory" for f in mine)  # production config: mandatory
    assert all("Why:" in f.message and "Fix:" in f.message for f in mine)
    # Only this policy objects: the change is the one mistake.
    assert {f.policy for f in findings} <= {case.policy, *case.also}, [f.line() for f in findings]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.policy}:{c.id}")
def test_the_compliant_neighbour_passes(case):
    _, findings = _run(case, case.compliant, case.compliant_config)
    assert not findings, [f.line() for f in findings]


def test_every_rule_has_a_violating_and_a_compliant_fixture():
    assert {c.policy for c in CASES} == {r.name for r in RULES}


@pytest.mark.parametrize("stack", ["dev", "staging", "production"])
def test_the_committed_stacks_pass_with_no_violation(stack):
    findings = analyze(records(stack), stack)
    assert findings == [], [f.line() for f in findings]


def test_messages_never_show_a_secret_value():
    recs = records()
    for change in (
        _set("kube-prometheus-stack", "values.grafana.adminPassword", SECRET_PASSWORD),
        _set("kiali", "values.external_services.grafana.auth.token", "dop_v1_" + "c" * 64),
        _set("loki", "values.loki.storage.s3.endpoint", SECRET_URL),
        _set("tempo", "repositoryOpts.repo", SECRET_URL),
    ):
        change(recs)
    findings = analyze(recs)
    assert len([f for f in findings if f.policy == "no-plaintext-secrets"]) == 4
    assert {f.policy for f in findings if f.urn == res(recs, "tempo")["urn"]} == {
        "helm-chart-pinned",
        "no-plaintext-secrets",
    }
    for f in findings:
        for secret in (SECRET_PASSWORD, "hunter2-token", "c" * 64):
            assert secret not in f.message


def test_plaintext_secrets_as_a_preview_sends_them_are_neither_reported_nor_echoed():
    """A preview sends secrets in plaintext with no marker: replace every masked secret of
    the plan with a realistic one; the inputs meant for secrets are exempt, and nothing is
    echoed."""
    recs = records()
    planted: list[str] = []

    def unmask(value: Any) -> Any:
        if value == tool.SECRET_MASK:
            planted.append(f"dop_v1_{len(planted):064x}")
            return planted[-1]
        if isinstance(value, dict):
            return {k: unmask(v) for k, v in value.items()}
        if isinstance(value, list):
            return [unmask(v) for v in value]
        return value

    for r in recs:
        r["inputs"] = unmask(r["inputs"])
    assert planted
    assert analyze(recs) == []
