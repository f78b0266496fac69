"""What a real cluster needs that the mock engine cannot see, as invariants over each stack's
recorded plan: istiod discovers every namespace a route, a provider or a registry entry points
into; meshed pods keep DNS; each scrape target is scraped once; no default alert watches a
component DOKS does not expose; the validating webhook is left to Istio's own Ignore-to-Fail
flip; each project member has one owner; a failed Helm release is rolled back."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from components.base import mesh
from tests.conftest import STACKS, run_config, stack_config, stack_run
from tools.engine import Resource, Run
from tools.engine import run_stack as engine_run

RELEASE = "kubernetes:helm.sh/v3:Release"
CHART = "kubernetes:helm.sh/v4:Chart"
NAMESPACE = "kubernetes:core/v1:Namespace"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
SERVICE_MONITOR = "kubernetes:monitoring.coreos.com/v1:ServiceMonitor"
POD_MONITOR = "kubernetes:monitoring.coreos.com/v1:PodMonitor"
NAME_LABEL = "kubernetes.io/metadata.name"
# Namespaces DOKS creates; the program never does. Kubernetes labels each with its name.
CLUSTER_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def helm(run: Run, name: str) -> Resource:
    found = [r for r in run.resources if r.type in (RELEASE, CHART) and r.name == name]
    assert len(found) == 1, name
    return found[0]


def istiod(run: Run) -> Resource:
    found = [r for r in run.of_type(RELEASE) if r.inputs["chart"] == "istiod"]
    assert len(found) == 1
    return found[0]


# --- label selectors, as the API server evaluates them --------------------------------------


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A Kubernetes LabelSelector: matchLabels AND every matchExpression."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def test_selector_semantics():
    assert selects({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"})
    assert not selects({"matchLabels": {"a": "1"}}, {"a": "2"})
    tag = {"matchExpressions": [{"key": "t", "operator": "DoesNotExist"}]}
    assert selects(tag, {}) and not selects(tag, {"t": "x"})
    named = {"matchExpressions": [{"key": "n", "operator": "In", "values": ["a"]}]}
    assert selects(named, {"n": "a"}) and not selects(named, {"n": "b"})


def namespace_labels(run: Run) -> dict[str, dict[str, str]]:
    """Every namespace a pod of this stack could live in, with its labels as the API server
    sees them: those the program creates, and the cluster's own."""
    out = {ns: {NAME_LABEL: ns} for ns in CLUSTER_NAMESPACES}
    for r in run.of_type(NAMESPACE):
        meta = r.inputs["metadata"]
        out[meta["name"]] = {**meta.get("labels", {}), NAME_LABEL: meta["name"]}
    return out


def discovered(run: Run) -> set[str]:
    """Namespaces istiod watches: any of meshConfig.discoverySelectors matches (ORed)."""
    selectors = istiod(run).inputs["values"]["meshConfig"]["discoverySelectors"]
    return {
        ns
        for ns, labels in namespace_labels(run).items()
        if any(selects(s, labels) for s in selectors)
    }


def _cluster_local_namespace(host: str) -> str | None:
    """'svc.ns.svc.cluster.local' -> 'ns'; None for a host outside the cluster."""
    suffix = f".svc.{mesh.TRUST_DOMAIN}"
    if not host.endswith(suffix):
        return None
    return host.removesuffix(suffix).split(".")[-1]


def referenced_namespaces(run: Run) -> dict[str, str]:
    """Namespace -> what refers to it: mesh config extension providers, the hosts of every
    VirtualService and DestinationRule, and every declared service's own namespace."""
    refs: dict[str, str] = {}
    mesh_config = istiod(run).inputs["values"]["meshConfig"]
    for provider in mesh_config.get("extensionProviders", []):
        for kind in ("opentelemetry", "zipkin", "envoyOtelAls", "envoyExtAuthzGrpc"):
            if kind in provider and (ns := _cluster_local_namespace(provider[kind]["service"])):
                refs[ns] = f"extension provider {provider['name']}"
    for r in run.resources:
        kind = r.type.rsplit(":", 1)[-1]
        spec = r.inputs.get("spec") or {}
        hosts: list[str] = []
        if kind == "DestinationRule":
            hosts = [spec["host"]]
        elif kind == "VirtualService":
            for section in ("http", "tls", "tcp"):
                for route in spec.get(section, []):
                    hosts += [d["destination"]["host"] for d in route.get("route", [])]
        for host in hosts:
            if ns := _cluster_local_namespace(host):
                refs[ns] = f"{kind} {r.name} -> {host}"
    return refs


@pytest.mark.parametrize("stack", STACKS)
def test_istiod_discovers_every_namespace_a_route_or_provider_points_into(stack):
    run = stack_run(stack)
    seen = discovered(run)
    refs = referenced_namespaces(run)
    assert "monitoring" in refs, "the tracing provider's service lives in monitoring"
    missing = {ns: why for ns, why in refs.items() if ns not in seen}
    assert not missing, f"istiod does not discover: {missing}"


@pytest.mark.parametrize("stack", STACKS)
def test_every_namespace_running_sidecars_or_gateways_is_discovered(stack):
    run = stack_run(stack)
    labels = namespace_labels(run)
    injected = {ns for ns, lab in labels.items() if mesh.REVISION_LABEL in lab}
    assert {mesh.INGRESS_NAMESPACE, mesh.EGRESS_NAMESPACE} <= injected
    assert injected <= discovered(run)


def _egress_peers(run: Run, namespace: str) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """(peer, ports) of every egress rule the namespace's NetworkPolicies allow."""
    out = []
    for r in run.of_type(NETWORK_POLICY):
        if r.inputs["metadata"]["namespace"] != namespace:
            continue
        for rule in r.inputs["spec"].get("egress", []):
            for peer in rule.get("to", []):
                out.append((peer, rule.get("ports", [])))
    return out


@pytest.mark.parametrize("stack", STACKS)
def test_meshed_pods_reach_dns_over_udp_and_tcp_and_not_the_kubernetes_api(stack):
    """REGISTRY_ONLY black-holes what istiod does not know, so kube-system (kube-dns, DNS over
    TCP) and default (the `kubernetes` Service) are discovered. What pods may then reach is the
    NetworkPolicies' call: DNS on 53 in kube-system, nothing in default (the API stays closed to
    application namespaces; a workload that needs it is not a mesh tenant)."""
    run = stack_run(stack)
    seen = discovered(run)
    assert {"kube-system", "default"} <= seen
    labels = namespace_labels(run)
    mesh_namespaces = [
        ns
        for ns, lab in labels.items()
        if mesh.REVISION_LABEL in lab and ns not in (mesh.INGRESS_NAMESPACE, mesh.EGRESS_NAMESPACE)
    ]
    assert mesh_namespaces
    for ns in mesh_namespaces:
        dns = set()
        for peer, ports in _egress_peers(run, ns):
            selector = peer.get("namespaceSelector")
            if selector is None:
                continue
            assert not selects(selector, labels["default"]), f"{ns} may reach default: {peer}"
            if selects(selector, labels["kube-system"]):
                dns |= {(p["protocol"], p["port"]) for p in ports}
        assert dns == {("UDP", 53), ("TCP", 53)}, (ns, dns)


# --- scraping -------------------------------------------------------------------------------


SERVICE = "kubernetes:core/v1:Service"


def istiod_services(run: Run) -> list[dict[str, Any]]:
    """The Services over istiod pods: per istiod release, the `istiod-<revision>` Service its
    chart renders (istio 1.30 templates/service.yaml); per revision tag, the Service the
    program authors (`components/istio/tags.py`; no release renders tags), read from the
    plan."""
    out = []
    for release in run.of_type(RELEASE):
        if release.inputs["chart"] != "istiod":
            continue
        values = release.inputs["values"]
        assert values.get("revisionTags") == [], "tags have one owner: the authored objects"
        revision = values["revision"]
        labels = {"app": "istiod", "istio": "pilot", "istio.io/rev": revision}
        pods = {"app": "istiod", "istio.io/rev": revision}
        out.append({"name": f"istiod-{revision}", "labels": labels, "pods": pods})
    for svc in run.of_type(SERVICE):
        meta = svc.inputs["metadata"]
        pods = svc.inputs["spec"].get("selector", {})
        if meta.get("namespace") == mesh.ROOT_NAMESPACE and pods.get("app") == "istiod":
            out.append({"name": meta["name"], "labels": meta.get("labels", {}), "pods": pods})
    return out


def istiod_scrapes(run: Run) -> Counter[str]:
    """(pods, port) -> how many times the ServiceMonitors in istio-system scrape it."""
    scraped: Counter[str] = Counter()
    for monitor in run.of_type(SERVICE_MONITOR):
        spec = monitor.inputs["spec"]
        if mesh.ROOT_NAMESPACE not in spec["namespaceSelector"].get("matchNames", []):
            continue
        for svc in istiod_services(run):
            if selects(spec["selector"], svc["labels"]):
                for endpoint in spec["endpoints"]:
                    scraped[f"{sorted(svc['pods'].items())}:{endpoint['port']}"] += 1
    return scraped


@pytest.mark.parametrize("stack", STACKS)
def test_each_istiod_pod_is_scraped_once(stack):
    run = stack_run(stack)
    services = istiod_services(run)
    assert len(services) >= 2, "each revision tag is a second Service over istiod"
    scraped = istiod_scrapes(run)
    assert scraped, "istiod is scraped"
    assert all(n == 1 for n in scraped.values()), scraped


@pytest.mark.parametrize("stack", STACKS)
def test_each_namespace_s_envoys_are_scraped_by_one_pod_monitor(stack):
    run = stack_run(stack)
    covered = Counter(
        ns
        for r in run.of_type(POD_MONITOR)
        for ns in r.inputs["spec"]["namespaceSelector"]["matchNames"]
    )
    assert covered and all(n == 1 for n in covered.values()), covered


# --- alerts ---------------------------------------------------------------------------------

# What a DOKS cluster does not let Prometheus scrape (DigitalOcean manages the control plane;
# Cilium replaces kube-proxy) -> kube-prometheus-stack's switch for the component and the
# `defaultRules.rules` groups that alert on it (chart 88.5.3 values.yaml).
NOT_EXPOSED_BY_DOKS = {
    "kubeControllerManager": {"kubeControllerManager"},
    "kubeScheduler": {"kubeSchedulerAlerting", "kubeSchedulerRecording"},
    "kubeEtcd": {"etcd"},
    "kubeProxy": {"kubeProxy"},
}


@pytest.mark.parametrize("stack", STACKS)
def test_no_default_alert_watches_a_component_doks_does_not_expose(stack):
    values = helm(stack_run(stack), "kube-prometheus-stack").inputs["values"]
    rules = values.get("defaultRules", {}).get("rules", {})
    for component, groups in NOT_EXPOSED_BY_DOKS.items():
        assert values.get(component, {}).get("enabled") is False, component
        for group in groups:
            assert rules.get(group) is False, (component, group)
    # The ones DOKS does expose keep their alerts.
    assert values.get("kubelet", {}).get("enabled", True) is not False
    assert rules.get("kubelet", True) is not False


# --- webhooks, projects, releases -----------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_istio_webhooks_are_left_to_istiod_s_ignore_to_fail_flip(stack):
    """`helm.v3.Release` renders with `.Release.IsUpgrade`, so the charts start the validators at
    `Ignore` and istiod flips them to `Fail` after patching its caBundle; forcing `Fail` at the
    first install races that patch. (Only a locally rendered chart would need `Fail`.)"""
    run = stack_run(stack)
    istio = [
        r
        for r in run.resources
        if r.type in (RELEASE, CHART) and "istio" in r.inputs["repositoryOpts"]["repo"]
    ]
    assert {r.inputs["chart"] for r in istio} >= {"base", "istiod", "gateway"}
    for r in istio:
        policy = r.inputs["values"].get("base", {}).get("validationFailurePolicy")
        if r.type == RELEASE:
            assert policy is None, r.name
        else:
            assert policy == "Fail", r.name


@pytest.mark.parametrize("stack", STACKS)
def test_every_project_member_has_exactly_one_owner(stack):
    """A Project's own `resources` reads back every member on refresh; a `ProjectResources`
    manages only what it lists. Two owners of one membership fight on the next `up`."""
    run = stack_run(stack)
    projects = run.of_type("digitalocean:index/project:Project")
    assert len(projects) == 1
    assert not projects[0].inputs.get("resources"), "the Project lists no members itself"
    members: Counter[str] = Counter()
    for r in run.of_type("digitalocean:index/projectResources:ProjectResources"):
        assert projects[0].urn in r.dependencies
        members.update(r.inputs["resources"])
    assert len(members) >= 2 and all(n == 1 for n in members.values()), members
    cluster = run.one("digitalocean:index/kubernetesCluster:KubernetesCluster")
    lb = run.one("digitalocean:index/loadBalancer:LoadBalancer")
    owners = {
        dep
        for r in run.of_type("digitalocean:index/projectResources:ProjectResources")
        for dep in r.dependencies
    }
    assert {cluster.urn, lb.urn} <= owners


@pytest.mark.parametrize("stack", STACKS)
def test_every_helm_release_is_atomic(stack):
    """A failed install is purged and a failed upgrade rolled back, as the code says."""
    releases = stack_run(stack).of_type(RELEASE)
    assert releases
    for r in releases:
        assert r.inputs.get("atomic") is True and r.inputs.get("cleanupOnFail") is True, r.name


# --- autoscaling needs metrics-server -------------------------------------------------------


def _autoscaled(run: Run) -> list[str]:
    """The platform's HPAs, read off the chart values that create them."""
    out = []
    for r in run.of_type(RELEASE):
        v, chart = r.inputs["values"], r.inputs["chart"]
        if chart == "istiod" and v.get("autoscaleEnabled"):
            out.append(r.name)
        if chart == "gateway" and v.get("autoscaling", {}).get("enabled"):
            out.append(r.name)
    return out


def _tolerates(tolerations: list[dict[str, Any]], taint: dict[str, str]) -> bool:
    return any(
        t.get("key") == taint["key"]
        and t.get("effect") == taint["effect"]
        and (t.get("operator") == "Exists" or t.get("value") == taint["value"])
        for t in tolerations
    )


@pytest.mark.parametrize("stack", STACKS)
def test_every_hpa_has_a_metrics_server_on_the_system_pool(stack):
    """DOKS ships no metrics-server: without one no HPA ever leaves its minimum."""
    from tests.test_metrics import unknown_paths

    run = stack_run(stack)
    assert _autoscaled(run), "the stack autoscales something"
    (server,) = [r for r in run.of_type(CHART) if r.inputs["chart"] == "metrics-server"]
    assert server.inputs["namespace"] == "kube-system"
    assert server.inputs["version"] and "kubernetes-sigs" in server.inputs["repositoryOpts"]["repo"]
    values = server.inputs["values"]
    assert unknown_paths(values, "metrics-server") == []
    pool = run.one("digitalocean:index/kubernetesCluster:KubernetesCluster").inputs["nodePool"]
    assert values["nodeSelector"].items() <= pool["labels"].items()
    for taint in pool["taints"]:
        assert _tolerates(values["tolerations"], taint)
    replicas = values["replicas"]
    if replicas > 1:
        assert values["podDisruptionBudget"] == {"enabled": True, "maxUnavailable": 1}
    else:
        assert not values.get("podDisruptionBudget", {}).get("enabled")
    if stack == "production":
        assert replicas >= 2, "HA in production"
    provider = run.one("pulumi:providers:kubernetes")
    assert server.provider and server.provider.startswith(provider.urn)


# --- the log bucket's name ------------------------------------------------------------------


def _bucket_and_loki(run: Run) -> tuple[Resource, dict[str, Any]]:
    bucket = run.one("digitalocean:index/spacesBucket:SpacesBucket")
    loki = helm(run, "loki").inputs["values"]["loki"]["storage"]["bucketNames"]
    return bucket, loki


def test_the_default_log_bucket_name_is_unique_stable_and_what_loki_writes_to():
    """Spaces bucket names are shared by every DigitalOcean customer: `<name>-logs` would
    collide. The default carries a suffix random once and kept (protected) in state."""
    run = stack_run("production")
    bucket, loki = _bucket_and_loki(run)
    name = bucket.inputs["name"]
    suffix = run.one("random:index/randomId:RandomId")
    assert name.startswith("mesh-production-logs-") and name != "mesh-production-logs"
    assert suffix.urn in bucket.dependencies
    assert suffix.protect is True and bucket.protect is True
    assert loki == {"chunks": name, "ruler": name}
    assert bucket.urn in helm(run, "loki").dependencies
    again = engine_run("production")
    assert again.one("digitalocean:index/spacesBucket:SpacesBucket").inputs["name"] == name


def test_a_configured_log_bucket_name_is_used_as_is(tmp_path):
    cfg = stack_config("production")
    obs = {**cfg.get("service-mesh:observability", {}), "logs": {"bucket": "acme-mesh-logs"}}
    run = run_config(tmp_path, "production", {**cfg, "service-mesh:observability": obs})
    assert run.error is None, run.error
    bucket, loki = _bucket_and_loki(run)
    assert bucket.inputs["name"] == "acme-mesh-logs" == loki["chunks"]
    assert not run.of_type("random:index/randomId:RandomId")
    assert bucket.name == "mesh-production-logs", "the URN does not depend on the bucket's name"


def test_a_bad_bucket_name_is_refused(tmp_path):
    cfg = stack_config("production")
    obs = {"logs": {"bucket": "Mesh_Logs"}}
    run = run_config(tmp_path, "production", {**cfg, "service-mesh:observability": obs})
    assert run.error is not None and "service-mesh:observability.logs.bucket" in str(run.error)
    assert "Spaces bucket name" in str(run.error) and run.resources == []
