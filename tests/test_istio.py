"""Istio control plane and gateways: pinned charts, revision + tags, HA per environment, mesh
config, values that exist in the pinned charts, ordering in the recorded graph, bad HA config.
(Upgrades across revisions, the tag objects and their preconditions: test_istio_upgrade.py.)"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from components.base import mesh, pins
from components.base.workload import cpu_milli, memory_mi
from components.cluster.pools import SYSTEM_POOL_LABEL, SYSTEM_POOL_TAINT
from components.config import parse
from components.edge.gateway import ingress_gateway_values
from components.istio.gateways import egress_gateway_values
from components.istio.values import base_values, istiod_values
from tests.conftest import STACKS, parsed_stack, run_config, stack_config, stack_run
from tests.schema import normalize, validate_istio, validate_k8s
from tools.engine import Resource, Run, attempt

RELEASE = "kubernetes:helm.sh/v3:Release"
NAMESPACE = "kubernetes:core/v1:Namespace"
SCHEMAS = Path(__file__).parent / "schemas"


load_cfg = parsed_stack


def release(run: Run, name: str) -> Resource:
    return next(r for r in run.of_type(RELEASE) if r.inputs["name"] == name)


def values(run: Run, name: str) -> dict[str, Any]:
    return normalize(release(run, name).inputs["values"])


def platform_namespaces(run: Run) -> list[Resource]:
    """Namespaces created by PlatformNamespaces (other layers create their own, e.g. monitoring)."""
    owner = run.one("service-mesh:namespaces:PlatformNamespaces")
    return [r for r in run.children(owner) if r.type == NAMESPACE]


def istiod_name(stack: str) -> str:
    return f"istiod-{load_cfg(stack).istio.revision}"


# --- pinned charts, revision, no IstioOperator --------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_istio_charts_are_pinned_releases_with_fixed_names(stack):
    run = stack_run(stack)
    expected = {
        "istio-base": ("base", mesh.ROOT_NAMESPACE),
        istiod_name(stack): ("istiod", mesh.ROOT_NAMESPACE),
        mesh.INGRESS_GATEWAY: ("gateway", mesh.INGRESS_NAMESPACE),
        mesh.EGRESS_GATEWAY: ("gateway", mesh.EGRESS_NAMESPACE),
    }
    for name, (chart, namespace) in expected.items():
        inputs = release(run, name).inputs
        assert inputs["chart"] == chart
        assert inputs["version"] == "1.30.3"
        assert inputs["repositoryOpts"]["repo"] == (
            "https://istio-release.storage.googleapis.com/charts"
        )
        assert inputs["namespace"] == namespace
    assert not [
        r for r in run.resources if "IstioOperator" in r.type or "install.istio.io" in r.type
    ]
    assert "IstioOperator" not in json.dumps([r.inputs for r in run.resources])


@pytest.mark.parametrize("stack", STACKS)
def test_revision_tag_is_what_namespaces_and_gateways_select(stack):
    cfg, run = load_cfg(stack), stack_run(stack)
    # Today's identity: one control plane, istiod-1-30, holding `stable` and `default`.
    assert [(r.name, r.version, r.tags) for r in cfg.istio.revisions] == [
        ("1-30", "1.30.3", ("stable", "default"))
    ]
    istiod = values(run, istiod_name(stack))
    assert istiod["revision"] == cfg.istio.revision == "1-30"
    assert istiod["revisionTags"] == [], "tags are authored objects, never chart-rendered"
    webhooks = run.of_type(
        "kubernetes:admissionregistration.k8s.io/v1:MutatingWebhookConfiguration"
    )
    assert sorted(r.inputs["metadata"]["name"] for r in webhooks) == [
        "istio-revision-tag-default",
        "istio-revision-tag-stable",
    ]
    assert values(run, "istio-base")["defaultRevision"] == cfg.istio.revision
    for gw in (mesh.INGRESS_GATEWAY, mesh.EGRESS_GATEWAY):
        assert values(run, gw)["revision"] == cfg.istio.revision_tag
    namespaces = {
        r.inputs["metadata"]["name"]: r.inputs["metadata"] for r in platform_namespaces(run)
    }
    meshed = [mesh.INGRESS_NAMESPACE, mesh.EGRESS_NAMESPACE, *(n.name for n in cfg.mesh_namespaces)]
    assert cfg.mesh_namespaces, "stack files declare at least one mesh namespace"
    for name in meshed:
        labels = namespaces[name]["labels"]
        assert labels[mesh.REVISION_LABEL] == cfg.istio.revision_tag
        assert "istio-injection" not in labels
    for name in (mesh.ROOT_NAMESPACE, mesh.CERT_MANAGER_NAMESPACE):
        assert mesh.REVISION_LABEL not in namespaces[name].get("labels", {})
    assert mesh.MONITORING_NAMESPACE not in namespaces


# --- HA per environment -------------------------------------------------------------------------


def istiod_min_replicas(v: dict[str, Any]) -> int:
    """What the chart runs at the minimum: autoscaleMin with the HPA on, else replicaCount."""
    return v["autoscaleMin"] if v.get("autoscaleEnabled", True) else v.get("replicaCount", 1)


def istiod_pdb_evictions(v: dict[str, Any], replicas: int) -> int | None:
    """Evictions the istiod chart's PDB allows (None: the chart renders no PDB)."""
    if replicas <= 1:
        return None
    pdb = {"minAvailable": 1, **v.get("pdb", {})}  # chart default minAvailable: 1
    if "maxUnavailable" in pdb:
        return min(pdb["maxUnavailable"], replicas)
    return replicas - pdb["minAvailable"]


def gateway_pdb_evictions(v: dict[str, Any], replicas: int) -> int | None:
    pdb = v.get("podDisruptionBudget") or {}
    if replicas <= 1 or not pdb:
        return None
    if "maxUnavailable" in pdb:
        return min(pdb["maxUnavailable"], replicas)
    return replicas - pdb["minAvailable"]


@pytest.mark.parametrize(
    ("stack", "minimum", "maximum"), [("dev", 1, 1), ("staging", 2, 2), ("production", 3, 6)]
)
def test_istiod_replicas_per_environment(stack, minimum, maximum):
    v = values(stack_run(stack), istiod_name(stack))
    assert istiod_min_replicas(v) >= minimum
    if stack == "production":
        assert v["autoscaleEnabled"] is True and v["autoscaleMax"] == maximum
    if stack == "dev":
        assert v == {**v, "autoscaleEnabled": False, "replicaCount": 1}


@pytest.mark.parametrize("stack", STACKS)
def test_istiod_pdb_always_allows_one_eviction_when_more_than_one_replica(stack):
    v = values(stack_run(stack), istiod_name(stack))
    replicas = istiod_min_replicas(v)
    evictions = istiod_pdb_evictions(v, replicas)
    if replicas > 1:
        assert v["global"]["defaultPodDisruptionBudget"]["enabled"] is True
        assert evictions is not None and evictions >= 1
        assert evictions < replicas  # and it still protects something


@pytest.mark.parametrize("stack", STACKS)
def test_istiod_rolls_one_pod_at_a_time_and_budgets_let_unhealthy_pods_go(stack):
    """The chart's 100% surge would need a second full set of istiod pods on the system pool
    (none fits beside two revisions: Pending, then Helm's rollback); one extra pod at a time,
    and one old pod first only where others still serve the webhook. Every Istio budget lets a
    pod that is not Ready be evicted, so one crashlooping pod never blocks node drains."""
    run = stack_run(stack)
    seen = []
    for r in run.of_type(RELEASE):
        v = normalize(r.inputs["values"])
        chart = r.inputs["chart"]
        seen.append(chart)
        if chart == "istiod":
            replicas = istiod_min_replicas(v)
            assert v["rollingMaxSurge"] == 1
            assert v["rollingMaxUnavailable"] == (1 if replicas > 1 else 0)
            assert v["pdb"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
            assert "podAnnotations" not in v, "istiod runs no proxy: nothing to re-inject"
        elif chart == "gateway":
            assert v["podDisruptionBudget"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    assert seen.count("istiod") >= 1 and seen.count("gateway") >= 2, seen


@pytest.mark.parametrize(
    ("stack", "ingress", "egress"),
    [("dev", (1, 2), (1, 1)), ("staging", (2, 5), (2, 3)), ("production", (3, 10), (2, 5))],
)
def test_gateway_autoscaling_and_pdb(stack, ingress, egress):
    run = stack_run(stack)
    for name, (lo, hi) in ((mesh.INGRESS_GATEWAY, ingress), (mesh.EGRESS_GATEWAY, egress)):
        v = values(run, name)
        scaling = v["autoscaling"]
        assert (scaling["minReplicas"], scaling["maxReplicas"]) == (lo, hi)
        assert scaling["enabled"] is (hi > lo)
        evictions = gateway_pdb_evictions(v, lo)
        if lo > 1:
            assert evictions is not None and 1 <= evictions < lo


@pytest.mark.parametrize("stack", STACKS)
def test_istiod_on_system_pool_spread_across_nodes_with_cpu_limit(stack):
    cfg = load_cfg(stack)
    v = values(stack_run(stack), istiod_name(stack))
    assert v["nodeSelector"] == SYSTEM_POOL_LABEL
    assert any(
        t.get("key") == SYSTEM_POOL_TAINT["key"]
        and t.get("effect") == SYSTEM_POOL_TAINT["effect"]
        and (t.get("operator") == "Exists" or t.get("value") == SYSTEM_POOL_TAINT["value"])
        for t in v["tolerations"]
    )
    # Labels the 1.30.3 chart puts on istiod pods when a revision is set (deployment.yaml).
    pod_labels = {"app": "istiod", "istio": "istiod", mesh.REVISION_LABEL: cfg.istio.revision}
    (tsc,) = v["topologySpreadConstraints"]
    assert tsc["topologyKey"] == "kubernetes.io/hostname"
    assert tsc["whenUnsatisfiable"] == "DoNotSchedule" and tsc["maxSkew"] == 1
    assert tsc["labelSelector"]["matchLabels"].items() <= pod_labels.items()
    resources = v["resources"]
    assert cpu_milli(resources["requests"]["cpu"]) <= cpu_milli(resources["limits"]["cpu"])
    assert memory_mi(resources["requests"]["memory"]) > 0


def test_istiod_resources_grow_with_the_environment():
    cpu = [
        cpu_milli(values(stack_run(s), istiod_name(s))["resources"]["requests"]["cpu"])
        for s in STACKS
    ]
    assert cpu == sorted(cpu) and cpu[0] < cpu[-1]


@pytest.mark.parametrize("stack", STACKS)
def test_gateways_spread_across_nodes_off_the_system_pool(stack):
    run = stack_run(stack)
    for name, selector in (
        (mesh.INGRESS_GATEWAY, mesh.INGRESS_SELECTOR),
        (mesh.EGRESS_GATEWAY, mesh.EGRESS_SELECTOR),
    ):
        v = values(run, name)
        assert v["labels"].items() >= selector.items()
        (tsc,) = v["topologySpreadConstraints"]
        assert tsc["topologyKey"] == "kubernetes.io/hostname"
        assert tsc["labelSelector"]["matchLabels"] == selector
        assert v["nodeSelector"] != SYSTEM_POOL_LABEL
        assert "tolerations" not in v


# --- mesh config ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stack", "sampling"), [("dev", 100.0), ("staging", 10.0), ("production", 1.0)]
)
def test_mesh_config(stack, sampling):
    run = stack_run(stack)
    v = values(run, istiod_name(stack))
    mc = v["meshConfig"]
    assert mc["accessLogFile"] == "/dev/stdout" and mc["accessLogEncoding"] == "JSON"
    assert mc["defaultConfig"]["holdApplicationUntilProxyStarts"] is True
    assert mc["discoverySelectors"][0] == {"matchLabels": mesh.DISCOVERY_LABEL}
    (by_name,) = mc["discoverySelectors"][1]["matchExpressions"]
    assert by_name["key"] == "kubernetes.io/metadata.name" and by_name["operator"] == "In"
    assert set(by_name["values"]) == {"kube-system", "default"}
    assert v["traceSampling"] == sampling
    proxy = v["global"]["proxy"]["resources"]["requests"]
    assert cpu_milli(proxy["cpu"]) <= 100 and memory_mi(proxy["memory"]) <= 128
    # Everything istiod must see is selected: root, gateway and every mesh namespace.
    selected = {
        r.inputs["metadata"]["name"]
        for r in platform_namespaces(run)
        if r.inputs["metadata"].get("labels", {}).items() >= mesh.DISCOVERY_LABEL.items()
    }
    cfg = load_cfg(stack)
    assert selected == {
        mesh.ROOT_NAMESPACE,
        mesh.INGRESS_NAMESPACE,
        mesh.EGRESS_NAMESPACE,
        *(n.name for n in cfg.mesh_namespaces),
    }


def test_istiod_values_deep_merges_other_layers_mesh_config():
    cfg = load_cfg("production")
    extra = {
        "outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"},
        "extensionProviders": [{"name": "otel", "opentelemetry": {"service": "c", "port": 4317}}],
        "defaultConfig": {"proxyMetadata": {"X": "1"}},
    }
    before = copy.deepcopy(extra)
    revision = cfg.istio.revisions[0]
    mc = istiod_values(cfg.istio, revision, extra, 1.0)["meshConfig"]
    assert mc["outboundTrafficPolicy"] == {"mode": "REGISTRY_ONLY"}
    assert mc["extensionProviders"][0]["name"] == "otel"
    assert mc["defaultConfig"] == {
        "holdApplicationUntilProxyStarts": True,
        "proxyMetadata": {"X": "1"},
    }
    assert mc["accessLogEncoding"] == "JSON"
    assert extra == before  # inputs are not mutated
    assert "outboundTrafficPolicy" not in istiod_values(cfg.istio, revision, {}, 1.0)["meshConfig"]


# --- values exist in the pinned charts ------------------------------------------------------------

# Key paths taken from the pinned charts' values.yaml (Istio 1.30.3; cert-manager v1.21.1), as
# documented there (commented-out keys included, noted). `name.*` means a free-form map or an
# object passed through to Kubernetes (any key below it is the API's, not the chart's).
# The Istio versions whose charts these paths were checked against: a new pin adds its version
# here once its values.yaml has been read (and a key that differs is handled in values.py).
ISTIO_VALUES_CHECKED = {"1.30.3"}
ALLOWED: dict[str, set[str]] = {
    "base": {
        "defaultRevision",
        "base.excludedCRDs",
        "base.enableCRDTemplates",
        "base.validationCABundle",
        "base.validationFailurePolicy",  # read by the validator template; notes/istio.md §3
    },
    "istiod": {
        "revision",
        "revisionTags",
        "autoscaleEnabled",
        "autoscaleMin",
        "autoscaleMax",
        "autoscaleBehavior.*",
        "replicaCount",
        "rollingMaxSurge",
        "rollingMaxUnavailable",
        "traceSampling",
        "resources.*",
        "nodeSelector.*",
        "tolerations",
        "affinity.*",
        "topologySpreadConstraints",
        "podAnnotations.*",
        "podLabels.*",
        "env.*",
        "cpu.targetAverageUtilization",
        "meshConfig.*",
        "keepaliveMaxServerConnectionAge",
        "pdb.minAvailable",
        "pdb.unhealthyPodEvictionPolicy",
        "pdb.maxUnavailable",  # commented in values.yaml: "If set, 'minAvailable' is ignored"
        "base.enableIstioConfigCRDs",
        "base.validationFailurePolicy",  # commented in values.yaml ("Set to Fail ...")
        "global.logAsJson",
        "global.logging.level",
        "global.priorityClassName",
        "global.defaultPodDisruptionBudget.enabled",
        "global.proxy.resources.*",
        "global.istioNamespace",
        "global.meshID",
        "global.networkPolicy.enabled",
    },
    "gateway": {
        "name",
        "revision",
        "labels.*",
        "annotations.*",
        "replicaCount",
        "kind",
        "autoscaling.enabled",
        "autoscaling.minReplicas",
        "autoscaling.maxReplicas",
        "autoscaling.targetCPUUtilizationPercentage",
        "autoscaling.autoscaleBehavior.*",
        "podDisruptionBudget",  # `{}`, the chart's default: no budget
        "podDisruptionBudget.minAvailable",
        "podDisruptionBudget.maxUnavailable",
        "podDisruptionBudget.unhealthyPodEvictionPolicy",  # all three documented in comments
        "resources.*",
        "nodeSelector.*",
        "tolerations",
        "topologySpreadConstraints",
        "affinity.*",
        "podAnnotations.*",
        "priorityClassName",
        "terminationGracePeriodSeconds",
        "serviceAccount.create",
        "serviceAccount.name",
        "rbac.enabled",
        "service.type",
        "service.ports",
        "service.annotations.*",
        "service.externalTrafficPolicy",
        "service.loadBalancerSourceRanges",
        "service.ipFamilyPolicy",
        "service.ipFamilies",
        "strategy.*",
        "minReadySeconds",
        "env.*",
    },
    "cert-manager": {
        "crds.enabled",
        "crds.keep",
        "replicaCount",
        "podDisruptionBudget.enabled",
        "podDisruptionBudget.minAvailable",
        "podDisruptionBudget.maxUnavailable",  # commented
        "webhook.replicaCount",
        "webhook.podDisruptionBudget.enabled",
        "webhook.podDisruptionBudget.maxUnavailable",  # commented
        "cainjector.replicaCount",
        "dns01RecursiveNameservers",
        "dns01RecursiveNameserversOnly",
        "resources.*",
        "nodeSelector.*",
        "tolerations",
        "topologySpreadConstraints",
        "global.leaderElection.namespace",
        "global.nodeSelector.*",
        "webhook.topologySpreadConstraints",
        "webhook.nodeSelector.*",
        "webhook.tolerations",
        "cainjector.nodeSelector.*",
        "cainjector.tolerations",
        "webhook.resources.*",
        "cainjector.resources.*",
        "global.priorityClassName",
        "prometheus.enabled",
    },
}


def key_paths(values: dict[str, Any], prefix: str = "") -> list[str]:
    """Leaf key paths; lists are leaves (the chart takes them whole)."""
    out: list[str] = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out += key_paths(value, f"{path}.")
        else:
            out.append(path)
    return out


def allowed(chart: str, path: str) -> bool:
    keys = ALLOWED[chart]
    if path in keys:
        return True
    parts = path.split(".")
    return any(".".join(parts[:i]) + ".*" in keys for i in range(1, len(parts) + 1))


def test_key_path_check_rejects_misspellings():
    assert allowed("istiod", "pdb.maxUnavailable")
    assert allowed("istiod", "meshConfig.anything.below")
    assert not allowed("istiod", "autoscaleMinimum")
    assert not allowed("gateway", "autoscaling.minReplica")
    assert not allowed("istiod", "defaults.autoscaleMin")


def test_every_pinned_istio_version_had_its_chart_values_checked():
    assert set(pins.ISTIO_VERSIONS) <= ISTIO_VALUES_CHECKED
    assert list(pins.ISTIO_VERSIONS) == sorted(
        pins.ISTIO_VERSIONS, key=lambda v: tuple(int(x) for x in v.split("."))
    ), "oldest first"


@pytest.mark.parametrize("stack", STACKS)
def test_every_values_key_path_exists_in_the_pinned_chart(stack):
    run = stack_run(stack)
    releases = [r for r in run.of_type(RELEASE) if r.inputs["chart"] in ALLOWED]
    assert {r.inputs["chart"] for r in releases} == set(ALLOWED)
    for r in releases:
        v = r.inputs["values"]
        unknown = [p for p in key_paths(v) if not allowed(r.inputs["chart"], p)]
        assert not unknown, f"{r.inputs['name']}: keys not in the pinned chart: {unknown}"
        assert "_internal_defaults_do_not_set" not in v and "defaults" not in v
        if r.inputs["chart"] in pins.ISTIO_CHARTS:
            assert r.inputs["version"] in ISTIO_VALUES_CHECKED


@pytest.mark.parametrize("stack", STACKS)
def test_gateway_values_pass_the_chart_values_schema(stack):
    schema = json.loads((SCHEMAS / "istio-gateway-values.schema.json").read_text())
    cfg = load_cfg(stack)
    validator = jsonschema.Draft7Validator(schema)  # its `$schema` names no known draft
    ingress = ingress_gateway_values(cfg.istio)
    for v in (ingress, egress_gateway_values(cfg.istio)):
        validator.validate(v)
    bad = {**ingress, "autoscale": {"min": 1}}
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(bad)


def test_builders_are_pure_and_match_what_is_registered():
    cfg, run = load_cfg("production"), stack_run("production")
    assert values(run, "istio-base") == base_values(cfg.istio)
    registered = values(run, istiod_name("production"))
    own = istiod_values(
        cfg.istio, cfg.istio.revisions[0], {}, cfg.observability.tracing.sampling_percentage
    )
    # meshConfig also carries what other layers pass in (__main__ wires them): ours is kept.
    assert {k: v for k, v in registered.items() if k != "meshConfig"} == {
        k: v for k, v in own.items() if k != "meshConfig"
    }
    for key, value in own["meshConfig"].items():
        if key == "defaultConfig":
            assert registered["meshConfig"][key].items() >= value.items()
        else:
            assert registered["meshConfig"][key] == value


# --- manifests validate ---------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_namespaces_validate_and_every_istio_resource_matches_its_crd(stack):
    run = stack_run(stack)
    for r in platform_namespaces(run):
        validate_k8s(r.inputs)
    for r in run.resources:
        if r.type.startswith("kubernetes:") and ".istio.io/" in r.type:
            validate_istio(r.inputs)


# --- ordering -----------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_ordering_in_the_recorded_graph(stack):
    run = stack_run(stack)
    base, istiod = release(run, "istio-base"), release(run, istiod_name(stack))
    ns = {r.inputs["metadata"]["name"]: r.urn for r in platform_namespaces(run)}
    assert base.urn in istiod.dependencies
    assert ns[mesh.ROOT_NAMESPACE] in base.dependencies
    for name, namespace in (
        (mesh.INGRESS_GATEWAY, mesh.INGRESS_NAMESPACE),
        (mesh.EGRESS_GATEWAY, mesh.EGRESS_NAMESPACE),
    ):
        gw = release(run, name)
        assert istiod.urn in gw.dependencies and ns[namespace] in gw.dependencies
    istio_crs = [
        r for r in run.resources if r.type.startswith("kubernetes:") and ".istio.io/" in r.type
    ]
    assert istio_crs, "the public Gateway at least"
    for r in istio_crs:
        assert {base.urn, istiod.urn} <= set(r.dependencies), f"{r.type} {r.name}"
    # Shallow: istiod does not wait for cert-manager, and nothing Istio waits for the LB.
    cert_manager = release(run, "cert-manager")
    assert cert_manager.urn not in istiod.dependencies
    assert istiod.urn not in cert_manager.dependencies


def test_istiod_waits_for_what_the_security_layer_passes(tmp_path):
    """The plug-in CA Secret is handed in as `istiod_depends_on`; istiod must depend on it."""
    import pulumi_kubernetes as k8s

    from components.graph.component import PlatformNamespaces, PlatformNamespacesArgs
    from components.istio.component import IstioControlPlane, IstioControlPlaneArgs

    cfg = load_cfg("staging")

    def program():
        cacerts = k8s.core.v1.Secret(
            "cacerts", metadata={"name": "cacerts", "namespace": "istio-system"}
        )
        namespaces = PlatformNamespaces(
            "ns",
            PlatformNamespacesArgs(
                cfg.graph.namespace_names, cfg.istio.rev_labels(cfg.graph.namespace_names)
            ),
        )
        IstioControlPlane(
            "istio",
            IstioControlPlaneArgs(
                istio=cfg.istio,
                mesh_config={},
                trace_sampling_percentage=1.0,
                ingress_gateway_values={},
                namespaces=namespaces.by_name,
                istiod_depends_on=[cacerts],
            ),
        )

    run = attempt("staging", program=program)
    assert run.error is None, run.error
    cacerts = run.one("kubernetes:core/v1:Secret", "cacerts")
    istiod = release(run, "istiod-1-30")
    assert cacerts.urn in istiod.dependencies
    assert cacerts.urn not in release(run, "istio-base").dependencies


# --- bad config -----------------------------------------------------------------------------------


def refused(tmp_path, stack: str, section: str, patch: dict[str, Any]) -> list[str]:
    config = stack_config(stack)
    key = f"service-mesh:{section}"
    config[key] = {**(config.get(key) or {}), **patch}
    run = run_config(tmp_path, stack, config)
    from components.base.model import ConfigError

    assert isinstance(run.error, ConfigError), run.error
    assert run.resources == []
    return [p.key for p in run.error.problems]


def test_production_refuses_istiod_below_the_ha_minimum(tmp_path):
    keys = refused(tmp_path, "production", "istio", {"istiod": {"minReplicas": 2}})
    assert keys == ["istio.istiod.minReplicas"]


def test_staging_refuses_single_ingress_gateway(tmp_path):
    keys = refused(tmp_path, "staging", "istio", {"ingressGateway": {"minReplicas": 1}})
    assert keys == ["istio.ingressGateway.minReplicas"]


@pytest.mark.parametrize("pdb", [{"minAvailable": 3}, {"minAvailable": 0}, {"maxUnavailable": 0}])
def test_pdb_that_would_block_drains_is_refused(tmp_path, pdb):
    keys = refused(tmp_path, "production", "istio", {"istiod": {"pdb": pdb}})
    assert keys == [f"istio.istiod.pdb.{next(iter(pdb))}"]


def test_sidecar_requests_above_the_cap_are_refused(tmp_path):
    keys = refused(tmp_path, "production", "istio", {"proxy": {"cpuRequest": "200m"}})
    assert keys == ["istio.proxy.cpuRequest"]


def test_bad_revision_is_refused(tmp_path):
    revisions = [{"name": "1.30", "version": "1.30.3", "tags": ["stable"]}]
    keys = refused(tmp_path, "dev", "istio", {"revisions": revisions})
    assert keys == ["istio.revisions[0].name"]


def test_istiod_trace_sampling_follows_the_one_sampling_setting():
    """istiod's legacy default and the Telemetry resource read the same key, so they can never
    disagree: changing observability.tracing.samplingPercentage moves both."""
    from tests.test_config import committed

    raw, secrets = committed("staging")
    raw["observability"] = {"tracing": {"samplingPercentage": 2.5}}
    cfg = parse(raw, secrets)
    sampling = cfg.observability.tracing.sampling_percentage
    assert istiod_values(cfg.istio, cfg.istio.revisions[0], {}, sampling)["traceSampling"] == 2.5
    assert "traceSampling" not in stack_config("staging").get("service-mesh:istio", {})
