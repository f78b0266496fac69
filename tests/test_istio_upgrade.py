"""Istio control-plane upgrades as revision canaries (issue 14): the committed production stack
walked through every phase by config alone, each phase's plan checked (what exists, which
object owns each tag, no duplicate tag objects, URNs kept), the rollback, the tag objects
against the 1.30.3 chart templates they mirror, and every refused precondition (key, value,
nothing registered). The runbook these phases follow: docs/ingress.md, "Upgrading Istio"."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from components.base import mesh, pins
from components.base.model import ConfigError
from components.istio import tags as tag_builder
from components.istio.gateways import INGRESS_CANARY
from components.istio.values import RESTART_ANNOTATION
from tests.conftest import STACKS, run_config, stack_config, stack_run
from tests.schema import normalize, validate_istio, validate_k8s
from tests.test_istio import allowed, key_paths
from tests.test_real_cluster import istiod_scrapes, istiod_services
from tools.engine import Resource, Run

RELEASE = "kubernetes:helm.sh/v3:Release"
MWC = "kubernetes:admissionregistration.k8s.io/v1:MutatingWebhookConfiguration"
SERVICE = "kubernetes:core/v1:Service"
NAMESPACE = "kubernetes:core/v1:Namespace"
SCHEMAS = Path(__file__).parent / "schemas"

STACK = "production"
OLD, NEW = "1-30", "1-30-3"  # only 1.30.3 is pinned: two control planes of one version
VERSION = "1.30.3"


def rev(name: str, *tags: str, version: str = VERSION) -> dict[str, Any]:
    return {"name": name, "version": version, "tags": list(tags)}


# Each phase is the stack file's `service-mesh:istio` (the rest of the production stack kept):
# one `pulumi up` each, in this order (docs/ingress.md).
P1 = {  # canary control plane beside the old one; gateways held on the old revision
    "revisions": [rev(OLD, "stable", "default"), rev(NEW, "canary")],
    "ingressGatewayRevision": OLD,
    "egressGatewayRevision": OLD,
}
P2 = {**P1, "namespaceRevisions": {"shop": "canary"}}  # chosen namespaces to the canary
P3 = {**P2, "revisions": [rev(OLD), rev(NEW, "stable", "default", "canary")]}  # tag flip
P4 = {**P3, "restartEpoch": 1}  # restart what the program owns; apps: the runbook
P5A = {**P4, "ingressGatewayCanary": {"revision": NEW, "replicas": 1}}  # optional
P5 = {**P4, "ingressGatewayRevision": NEW, "egressGatewayRevision": NEW}  # gateways in place
P6 = {**P5, "revisions": [rev(NEW, "stable", "default", "canary")]}  # old revision removed
P7 = {**P6, "revisions": [rev(NEW, "stable", "default")], "namespaceRevisions": {}}  # tidy
PHASES: dict[str, dict[str, Any]] = {
    "P0": {},
    "P1": P1,
    "P2": P2,
    "P3": P3,
    "P4": P4,
    "P5a": P5A,
    "P5": P5,
    "P6": P6,
    "P7": P7,
}

_RUNS: dict[str, Run] = {}


def stack_with(istio: dict[str, Any]) -> dict[str, Any]:
    config = copy.deepcopy(stack_config(STACK))
    if istio:
        config["service-mesh:istio"] = {**config.get("service-mesh:istio", {}), **istio}
    return config


def planned(tmp_path_factory, phase: str) -> Run:
    if phase not in _RUNS:
        if not PHASES[phase]:
            _RUNS[phase] = stack_run(STACK)
        else:
            tmp = tmp_path_factory.mktemp(f"istio-{phase}")
            run = run_config(tmp, STACK, stack_with(PHASES[phase]))
            assert run.error is None, run.error
            _RUNS[phase] = run
    return _RUNS[phase]


@pytest.fixture(scope="module")
def phase(tmp_path_factory):
    return lambda name: planned(tmp_path_factory, name)


# --- reading a plan -----------------------------------------------------------------------


def releases(run: Run, chart: str) -> dict[str, Resource]:
    return {r.inputs["name"]: r for r in run.of_type(RELEASE) if r.inputs["chart"] == chart}


def values(r: Resource) -> dict[str, Any]:
    return normalize(r.inputs["values"])


def istiods(run: Run) -> dict[str, str]:
    """Installed control planes: revision -> chart version."""
    out = {}
    for name, r in releases(run, "istiod").items():
        assert name == f"istiod-{values(r)['revision']}"
        out[values(r)["revision"]] = r.inputs["version"]
    return out


def tag_owners(run: Run) -> dict[str, str]:
    """tag -> the revision owning it, checking that each tag is exactly one webhook and one
    Service (fixed names), that both point at that revision's istiod and wait for it, and that
    no chart renders a tag."""
    istiod_urns = {values(r)["revision"]: r.urn for r in releases(run, "istiod").values()}
    for r in releases(run, "istiod").values():
        assert values(r)["revisionTags"] == [], "a tag rendered by a chart has two owners"
    webhooks: dict[str, str] = {}
    for r in run.of_type(MWC):
        meta = r.inputs["metadata"]
        tag, owner = meta["labels"]["istio.io/tag"], meta["labels"][mesh.REVISION_LABEL]
        assert meta["name"] == f"istio-revision-tag-{tag}" == r.name
        assert tag not in webhooks, f"two webhooks for tag {tag}"
        for hook in r.inputs["webhooks"]:
            assert hook["clientConfig"]["service"]["name"] == f"istiod-{owner}"
            assert "caBundle" not in hook["clientConfig"], "istiod patches it"
        assert istiod_urns[owner] in r.dependencies
        webhooks[tag] = owner
    services: dict[str, str] = {}
    for r in run.of_type(SERVICE):
        meta = r.inputs["metadata"]
        if "istio.io/tag" not in meta.get("labels", {}):
            continue
        tag, owner = meta["labels"]["istio.io/tag"], meta["labels"][mesh.REVISION_LABEL]
        assert meta["name"] == f"istiod-revision-tag-{tag}"
        assert meta["namespace"] == mesh.ROOT_NAMESPACE
        assert tag not in services, f"two Services for tag {tag}"
        assert r.inputs["spec"]["selector"] == {"app": "istiod", mesh.REVISION_LABEL: owner}
        assert istiod_urns[owner] in r.dependencies
        services[tag] = owner
    assert webhooks == services
    return webhooks


def gateways(run: Run) -> dict[str, tuple[str, str]]:
    """Gateway release -> (the revision or tag its pods select, its chart version)."""
    return {
        name: (values(r)["revision"], r.inputs["version"])
        for name, r in releases(run, "gateway").items()
    }


def rev_labels(run: Run) -> dict[str, str | None]:
    out = {}
    for r in run.of_type(NAMESPACE):
        meta = r.inputs["metadata"]
        out[meta["name"]] = meta.get("labels", {}).get(mesh.REVISION_LABEL)
    return out


def base(run: Run) -> tuple[str, str]:
    (r,) = releases(run, "base").values()
    return r.inputs["version"], values(r)["defaultRevision"]


def urns(run: Run) -> set[str]:
    return {r.urn for r in run.resources}


CHART = "kubernetes:helm.sh/v4:Chart"


def pod_revisions(run: Run) -> dict[str, tuple[Resource, str]]:
    """Every release or chart whose pods get a proxy -> (it, the `istio.io/rev` they carry):
    the gateway chart's `revision`, a chart's `podLabels`, else their namespace's label."""
    labels = rev_labels(run)
    out = {}
    for r in [*run.of_type(RELEASE), *run.of_type(CHART)]:
        v = values(r) if r.inputs.get("values") else {}
        ref = (
            v.get("revision")
            if r.type == RELEASE and r.inputs["chart"] == "gateway"
            else (v.get("podLabels") or {}).get(mesh.REVISION_LABEL)
            or labels.get(r.inputs["namespace"])
        )
        if ref is not None:
            out[r.name] = (r, ref)
    return out


def check_injection_order(run: Run) -> None:
    """A pod admitted before the webhook serving its `istio.io/rev` exists starts without a
    proxy (a gateway, image `auto`, never starts): whatever creates injected pods waits for
    that webhook, the tag's own or, for a revision, its istiod release (whose chart renders
    the revision's webhook)."""
    webhooks = {r.inputs["metadata"]["labels"]["istio.io/tag"]: r for r in run.of_type(MWC)}
    istiod_by_rev = {values(r)["revision"]: r for r in releases(run, "istiod").values()}
    injected = pod_revisions(run)
    assert {mesh.INGRESS_GATEWAY, mesh.EGRESS_GATEWAY} <= set(injected)
    for name, (r, ref) in injected.items():
        injector = webhooks.get(ref) or istiod_by_rev.get(ref)
        assert injector is not None, f"{name}: nothing injects istio.io/rev={ref}"
        assert injector.urn in run.waits_for(r), f"{name} does not wait for {injector.name}"


def check_plan(run: Run) -> None:
    """What every phase's plan must satisfy, beyond its own expectations."""
    check_injection_order(run)
    owners = tag_owners(run)
    installed = istiods(run)
    assert set(owners.values()) <= set(installed)
    base_version, default_revision = base(run)
    assert default_revision == owners.get("default", default_revision)
    assert default_revision in installed
    assert all(v <= base_version for v in installed.values())  # one pinned version here
    # Every gateway waits for the istiod its pods select, at that control plane's version.
    istiod_by_rev = {values(r)["revision"]: r for r in releases(run, "istiod").values()}
    for name, r in releases(run, "gateway").items():
        ref = values(r)["revision"]
        target = ref if ref in installed else owners[ref]
        assert istiod_by_rev[target].urn in r.dependencies, name
        assert r.inputs["version"] == installed[target], name
    # Istio objects wait for the CRDs and the default validator's istiod.
    (base_release,) = releases(run, "base").values()
    ready = {base_release.urn, istiod_by_rev[default_revision].urn}
    for r in run.resources:
        if r.type.startswith("kubernetes:") and ".istio.io/" in r.type:
            assert ready <= set(r.dependencies), r.name
            validate_istio(r.inputs)
    # Every namespace label selects an installed control plane.
    for ns, label in rev_labels(run).items():
        assert label is None or label in installed or label in owners, (ns, label)
    for r in [*run.of_type(MWC), *run.of_type(SERVICE), *run.of_type(NAMESPACE)]:
        validate_k8s(r.inputs)
    schema = json.loads((SCHEMAS / "istio-gateway-values.schema.json").read_text())
    for r in run.of_type(RELEASE):
        chart = r.inputs["chart"]
        if chart in ("base", "istiod", "gateway"):
            unknown = [p for p in key_paths(r.inputs["values"]) if not allowed(chart, p)]
            assert not unknown, (r.name, unknown)
        if chart == "gateway":
            jsonschema.Draft7Validator(schema).validate(values(r))
    # With two control planes as with one, each istiod pod is scraped once.
    assert len(istiod_services(run)) == len(installed) + len(owners)
    scraped = istiod_scrapes(run)
    assert scraped and all(n == 1 for n in scraped.values()), scraped


# --- the phases -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(PHASES))
def test_every_phase_plans_and_passes_the_checks(phase, name):
    check_plan(phase(name))


@pytest.mark.parametrize("stack", STACKS)
def test_injected_pods_wait_for_their_webhook_in_every_stack(stack):
    run = stack_run(stack)
    check_injection_order(run)
    if stack == STACK:  # Flagger and its load tester run with sidecars through the mesh tag
        assert {"flagger", "flagger-loadtester"} <= set(pod_revisions(run))


def test_p0_is_today_s_single_control_plane(phase):
    run = phase("P0")
    assert istiods(run) == {OLD: VERSION}
    assert tag_owners(run) == {"stable": OLD, "default": OLD}
    assert base(run) == (VERSION, OLD)
    assert gateways(run) == {
        mesh.INGRESS_GATEWAY: ("stable", VERSION),
        mesh.EGRESS_GATEWAY: ("stable", VERSION),
    }
    labels = rev_labels(run)
    assert labels["shop"] == labels[mesh.INGRESS_NAMESPACE] == "stable"


def test_p1_adds_a_canary_control_plane_and_replaces_nothing(phase):
    p0, run = phase("P0"), phase("P1")
    assert istiods(run) == {OLD: VERSION, NEW: VERSION}
    assert tag_owners(run) == {"stable": OLD, "default": OLD, "canary": NEW}
    assert base(run) == (VERSION, OLD)
    assert urns(p0) <= urns(run), "adding a revision keeps every existing resource"
    added = {r.name for r in run.resources if r.urn not in urns(p0)}
    assert added == {
        f"istiod-{NEW}",
        "istio-revision-tag-canary",
        "istio-system-istiod-revision-tag-canary",
    }
    # The gateways are held on the old control plane, so the tag flip will not move them.
    assert {rev for rev, _ in gateways(run).values()} == {OLD}
    assert rev_labels(run)[mesh.INGRESS_NAMESPACE] == OLD
    assert rev_labels(run)["shop"] == "stable"


def test_p2_moves_only_the_chosen_namespaces(phase):
    p1, run = phase("P1"), phase("P2")
    assert rev_labels(run)["shop"] == "canary"
    assert urns(p1) == urns(run)
    changed = changed_names(p1, run)
    assert changed == {"ns-shop"}


def changed_names(before: Run, after: Run) -> set[str]:
    """Resources whose inputs differ between two plans (same URN)."""
    old = {r.urn: r for r in before.resources}
    return {r.name for r in after.resources if r.urn in old and old[r.urn].inputs != r.inputs}


def test_p3_flips_stable_and_default_in_place_with_default_revision(phase):
    p2, run = phase("P2"), phase("P3")
    assert tag_owners(run) == {"stable": NEW, "default": NEW, "canary": NEW}
    assert base(run) == (VERSION, NEW), "defaultRevision moves with the default tag"
    assert urns(p2) == urns(run), "a tag moves by an in-place update, never a replacement"
    assert changed_names(p2, run) == {
        "istio-base",
        "istio-revision-tag-stable",
        "istio-revision-tag-default",
        "istio-system-istiod-revision-tag-stable",
        "istio-system-istiod-revision-tag-default",
    }
    # Istio objects now wait for the default validator's new istiod.
    new_istiod = releases(run, "istiod")[f"istiod-{NEW}"].urn
    gateway = next(r for r in run.resources if r.type.endswith(":Gateway"))
    assert new_istiod in gateway.dependencies


def test_p4_restarts_the_injected_pods_the_program_owns_and_not_istiod(phase):
    """The gateways are re-injected with the control plane their revision selects; istiod runs
    no proxy, and restarting both versions mid-upgrade would only reconnect every proxy."""
    p3, run = phase("P3"), phase("P4")
    owned = set(releases(run, "gateway"))
    assert owned and changed_names(p3, run) == owned
    for name in owned:
        r = next(r for r in run.of_type(RELEASE) if r.inputs["name"] == name)
        assert values(r)["podAnnotations"][RESTART_ANNOTATION] == "1"
    for name in releases(run, "istiod"):
        r = next(r for r in run.of_type(RELEASE) if r.inputs["name"] == name)
        assert RESTART_ANNOTATION not in (values(r).get("podAnnotations") or {})
    # PROXY protocol survives on the ingress gateway.
    ingress = values(releases(run, "gateway")[mesh.INGRESS_GATEWAY])
    assert "proxy.istio.io/config" in ingress["podAnnotations"]


def test_p5a_gateway_canary_shares_the_primary_service(phase):
    p4, run = phase("P4"), phase("P5a")
    canary = releases(run, "gateway")[INGRESS_CANARY]
    v = values(canary)
    assert v["revision"] == NEW and v["service"] == {"type": "None"}
    assert v["labels"] == {"app": mesh.INGRESS_GATEWAY, **mesh.INGRESS_SELECTOR}
    assert v["serviceAccount"] == {"create": False, "name": mesh.INGRESS_GATEWAY}
    assert v["rbac"] == {"enabled": False} and v["podDisruptionBudget"] == {}
    assert v["autoscaling"] == {"enabled": False} and v["replicaCount"] == 1
    primary = values(releases(run, "gateway")[mesh.INGRESS_GATEWAY])
    assert v["podAnnotations"] == primary["podAnnotations"], "PROXY protocol on both"
    assert releases(run, "gateway")[mesh.INGRESS_GATEWAY].urn in canary.dependencies
    # Only one gateway Service of the way in: the primary's NodePort one.
    types = [values(r).get("service", {}).get("type") for r in run.of_type(RELEASE)]
    assert types.count("NodePort") == 1 and "LoadBalancer" not in types
    # The namespace label would outrank the pods' own: it goes while the canary runs.
    assert rev_labels(run)[mesh.INGRESS_NAMESPACE] is None
    assert primary["revision"] == OLD
    assert urns(p4) <= urns(run)


def test_p5_moves_the_gateways_in_place(phase):
    p4, run = phase("P4"), phase("P5")
    assert gateways(run) == {
        mesh.INGRESS_GATEWAY: (NEW, VERSION),
        mesh.EGRESS_GATEWAY: (NEW, VERSION),
    }
    assert urns(p4) == urns(run), "same releases, rolled in place"
    assert changed_names(p4, run) == {
        mesh.INGRESS_GATEWAY,
        mesh.EGRESS_GATEWAY,
        f"ns-{mesh.INGRESS_NAMESPACE}",
        f"ns-{mesh.EGRESS_NAMESPACE}",
    }
    assert rev_labels(run)[mesh.INGRESS_NAMESPACE] == NEW
    # Still one NodePort Service behind the load balancer, with its fixed node ports.
    ingress = values(releases(run, "gateway")[mesh.INGRESS_GATEWAY])
    assert ingress["service"] == values(releases(p4, "gateway")[mesh.INGRESS_GATEWAY])["service"]


def test_p6_removes_the_old_revision_and_keeps_every_other_urn(phase):
    p0, p5, run = phase("P0"), phase("P5"), phase("P6")
    assert istiods(run) == {NEW: VERSION}
    assert urns(p5) - urns(run) == {releases(p5, "istiod")[f"istiod-{OLD}"].urn}
    assert tag_owners(run) == {"stable": NEW, "default": NEW, "canary": NEW}
    # The tags that existed at the start are the same resources, now pointing at NEW.
    tag_urns = {r.urn for r in [*p0.of_type(MWC), *p0.of_type(SERVICE)]}
    assert tag_urns <= urns(run)


def test_p7_tidies_the_canary_tag_away(phase):
    p6, run = phase("P6"), phase("P7")
    assert tag_owners(run) == {"stable": NEW, "default": NEW}
    assert rev_labels(run)["shop"] == "stable"
    assert {r.name for r in p6.resources if r.urn not in urns(run)} == {
        "istio-revision-tag-canary",
        "istio-system-istiod-revision-tag-canary",
    }


def test_rolling_back_the_tag_flip_is_the_reverse_move(phase, tmp_path):
    """Before the old revision is removed, a rollback is P3's tag move reversed: the same
    objects back on the old revision (in place), and defaultRevision with them."""
    p2 = phase("P2")
    back = run_config(tmp_path, STACK, stack_with({**P4, "revisions": P2["revisions"]}))
    assert back.error is None, back.error
    check_plan(back)
    assert tag_owners(back) == tag_owners(p2) == {"stable": OLD, "default": OLD, "canary": NEW}
    assert base(back) == base(p2) == (VERSION, OLD)
    assert urns(back) == urns(p2)
    same = {r.urn: r.inputs for r in [*p2.of_type(MWC), *p2.of_type(SERVICE)]}
    assert {r.urn: r.inputs for r in [*back.of_type(MWC), *back.of_type(SERVICE)]} == same


def test_rolling_back_after_the_gateways_moved_repoints_them_first(phase, tmp_path):
    """Once the gateways run on the new revision, a rollback puts them back on the old one in
    the same reverse move (the canary docs: reinstall the gateways for the previous revision
    before removing the new one)."""
    p5 = phase("P5")
    config = {
        **P5,
        "revisions": P2["revisions"],
        "ingressGatewayRevision": OLD,
        "egressGatewayRevision": OLD,
    }
    back = run_config(tmp_path, STACK, stack_with(config))
    assert back.error is None, back.error
    check_plan(back)
    assert {rev for rev, _ in gateways(back).values()} == {OLD}
    assert tag_owners(back)["stable"] == OLD
    assert urns(back) == urns(p5)


def test_a_minor_upgrade_installs_base_first_and_gateways_follow_their_revision(
    tmp_path, monkeypatch
):
    """With a newer version pinned, the base chart (CRDs) moves to it with the canary's
    istiod, which waits for it; a gateway's chart version is its control plane's."""
    monkeypatch.setattr(pins, "ISTIO_VERSIONS", ("1.30.3", "1.31.0"))
    config = {
        **P1,
        "revisions": [rev(OLD, "stable", "default"), rev("1-31", "canary", version="1.31.0")],
        "ingressGatewayCanary": {"revision": "canary"},
    }
    run = run_config(tmp_path, STACK, stack_with(config))
    assert run.error is None, run.error
    assert base(run) == ("1.31.0", OLD)
    assert istiods(run) == {OLD: "1.30.3", "1-31": "1.31.0"}
    (base_release,) = releases(run, "base").values()
    assert all(base_release.urn in r.dependencies for r in releases(run, "istiod").values())
    assert gateways(run) == {
        mesh.INGRESS_GATEWAY: (OLD, "1.30.3"),
        mesh.EGRESS_GATEWAY: (OLD, "1.30.3"),
        INGRESS_CANARY: ("canary", "1.31.0"),
    }


# --- the tag objects mirror the chart ----------------------------------------------------------

# istio/istio 1.30.3 templates/revision-tags-mwc.yaml rendered by hand for tag `stable`,
# revision `1-30`, release namespace istio-system, with the values our istiod releases use
# (the chart's defaults for injectionPath, reinvocationPolicy, enableNamespacesByDefault).
CORE = {
    "clientConfig": {
        "service": {
            "name": "istiod-1-30",
            "namespace": "istio-system",
            "path": "/inject",
            "port": 443,
        }
    },
    "sideEffects": "None",
    "rules": [
        {"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}
    ],
    "failurePolicy": "Fail",
    "reinvocationPolicy": "Never",
    "admissionReviewVersions": ["v1"],
}
NOT_DISABLED = {"key": "sidecar.istio.io/inject", "operator": "NotIn", "values": ["false"]}
NO_INJECTION_LABEL = {"key": "istio-injection", "operator": "DoesNotExist"}
NO_REV = {"key": "istio.io/rev", "operator": "DoesNotExist"}


def rendered_webhooks(tag: str) -> list[dict[str, Any]]:
    rev_is_tag = {"key": "istio.io/rev", "operator": "In", "values": [tag]}
    hooks = [
        {
            "name": "rev.namespace.sidecar-injector.istio.io",
            **CORE,
            "namespaceSelector": {"matchExpressions": [rev_is_tag, NO_INJECTION_LABEL]},
            "objectSelector": {"matchExpressions": [NOT_DISABLED]},
        },
        {
            "name": "rev.object.sidecar-injector.istio.io",
            **CORE,
            "namespaceSelector": {"matchExpressions": [NO_REV, NO_INJECTION_LABEL]},
            "objectSelector": {"matchExpressions": [NOT_DISABLED, rev_is_tag]},
        },
    ]
    if tag == "default":
        enabled = {"key": "istio-injection", "operator": "In", "values": ["enabled"]}
        inject = {"key": "sidecar.istio.io/inject", "operator": "In", "values": ["true"]}
        hooks += [
            {
                "name": "namespace.sidecar-injector.istio.io",
                **CORE,
                "namespaceSelector": {"matchExpressions": [enabled]},
                "objectSelector": {"matchExpressions": [NOT_DISABLED]},
            },
            {
                "name": "object.sidecar-injector.istio.io",
                **CORE,
                "namespaceSelector": {"matchExpressions": [NO_INJECTION_LABEL, NO_REV]},
                "objectSelector": {"matchExpressions": [inject, NO_REV]},
            },
        ]
    return hooks


# The chart's labels without those naming the Helm release or operator that rendered them.
CHART_WEBHOOK_LABELS = {
    "istio.io/tag": "stable",
    "istio.io/rev": "1-30",
    "operator.istio.io/component": "Pilot",
    "app": "sidecar-injector",
    "app.kubernetes.io/name": "istiod",
}
CHART_SERVICE = {
    "labels": {
        "istio.io/rev": "1-30",
        "istio.io/tag": "stable",
        "operator.istio.io/component": "Pilot",
        "app": "istiod",
        "istio": "pilot",
        "app.kubernetes.io/name": "istiod",
    },
    "spec": {
        "ports": [
            {"port": 15010, "name": "grpc-xds", "protocol": "TCP"},
            {"port": 15012, "name": "https-dns", "protocol": "TCP"},
            {"port": 443, "name": "https-webhook", "targetPort": 15017, "protocol": "TCP"},
            {"port": 15014, "name": "http-monitoring", "protocol": "TCP"},
        ],
        "selector": {"app": "istiod", "istio.io/rev": "1-30"},
    },
}
OURS = {"app.kubernetes.io/part-of": "service-mesh", "app.kubernetes.io/managed-by": "pulumi"}


@pytest.mark.parametrize("tag", ["stable", "default"])
def test_tag_webhook_mirrors_the_chart_template(tag):
    obj = tag_builder.tag_webhook(tag, "1-30")
    assert obj["webhooks"] == rendered_webhooks(tag)
    assert obj["metadata"] == {
        "name": f"istio-revision-tag-{tag}",
        "labels": {**CHART_WEBHOOK_LABELS, "istio.io/tag": tag, **OURS},
    }
    validate_k8s(obj)


def test_tag_service_mirrors_the_chart_template():
    obj = tag_builder.tag_service("stable", "1-30")
    assert obj["metadata"] == {
        "name": "istiod-revision-tag-stable",
        "namespace": "istio-system",
        "labels": {**CHART_SERVICE["labels"], **OURS},
    }
    assert obj["spec"] == CHART_SERVICE["spec"]
    validate_k8s(obj)


def test_no_istiod_release_sets_what_the_tag_objects_assume_default():
    """The builder renders with the chart's defaults for these keys; setting one on istiod
    must change the tag objects too."""
    for r in releases(stack_run(STACK), "istiod").values():
        v = r.inputs["values"]
        assert "sidecarInjectorWebhook" not in v and "istiodRemote" not in v
        assert "serviceAnnotations" not in v and "sidecarInjectorWebhookAnnotations" not in v
        assert "ipFamilies" not in v and "ipFamilyPolicy" not in v


# --- preconditions, refused offline -----------------------------------------------------------


def refused(tmp_path: Path, istio: dict[str, Any]) -> list[tuple[str, Any]]:
    run = run_config(tmp_path, STACK, stack_with(istio))
    assert isinstance(run.error, ConfigError), run.error
    assert run.resources == [], "nothing is registered for a refused phase"
    return [(p.key, p.value) for p in run.error.problems]


def test_a_second_default_tag_is_refused(tmp_path):
    istio = {**P1, "revisions": [rev(OLD, "stable", "default"), rev(NEW, "default")]}
    assert refused(tmp_path, istio) == [("istio.revisions[1].tags", "default")]


def test_a_tag_held_twice_is_refused(tmp_path):
    """Copying a tag instead of moving it: two owners of one webhook."""
    istio = {**P1, "revisions": [rev(OLD, "stable", "default"), rev(NEW, "stable")]}
    assert refused(tmp_path, istio) == [("istio.revisions[1].tags", "stable")]


def test_a_tag_named_like_a_revision_is_refused(tmp_path):
    istio = {**P1, "revisions": [rev(OLD, "stable", "default"), rev(NEW, OLD)]}
    assert refused(tmp_path, istio) == [("istio.revisions[1].tags", OLD)]


def test_the_mesh_tag_must_be_held_by_one_revision(tmp_path):
    """Tags dropped before anything holds them again: the mesh namespaces would select no
    control plane."""
    istio = {"revisions": [rev(OLD, "default"), rev(NEW, "canary")]}
    assert refused(tmp_path, istio) == [("istio.revisionTag", "stable")]


def test_the_mesh_tag_must_be_a_tag(tmp_path):
    assert refused(tmp_path, {**P1, "revisionTag": OLD}) == [("istio.revisionTag", OLD)]


def test_a_revision_listed_twice_is_refused(tmp_path):
    istio = {**P1, "revisions": [rev(OLD, "stable", "default"), rev(OLD, "canary")]}
    assert refused(tmp_path, istio) == [("istio.revisions[1].name", OLD)]


def test_an_unpinned_version_is_refused(tmp_path):
    istio = {**P1, "revisions": [rev(OLD, "stable", "default"), rev(NEW, version="1.31.0")]}
    assert refused(tmp_path, istio) == [("istio.revisions[1].version", "1.31.0")]


def test_a_base_chart_older_than_an_istiod_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(pins, "ISTIO_VERSIONS", ("1.30.3", "1.31.0"))
    istio = {
        **P1,
        "revisions": [rev(OLD, "stable", "default"), rev("1-31", "canary", version="1.31.0")],
        "baseVersion": "1.30.3",
    }
    assert refused(tmp_path, istio) == [("istio.baseVersion", "1.30.3")]


def test_more_than_two_minors_of_skew_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(pins, "ISTIO_VERSIONS", ("1.27.4", "1.30.3"))
    istio = {**P1, "revisions": [rev(OLD, "stable", "default", version="1.27.4"), rev(NEW)]}
    assert refused(tmp_path, istio) == [("istio.revisions[0].version", "1.27.4")]


def test_two_minors_of_skew_is_allowed(tmp_path, monkeypatch):
    monkeypatch.setattr(pins, "ISTIO_VERSIONS", ("1.28.2", "1.30.3"))
    istio = {**P1, "revisions": [rev(OLD, "stable", "default", version="1.28.2"), rev(NEW)]}
    run = run_config(tmp_path, STACK, stack_with(istio))
    assert run.error is None, run.error


def test_a_gateway_on_a_revision_not_installed_is_refused(tmp_path):
    assert refused(tmp_path, {**P1, "ingressGatewayRevision": "1-29"}) == [
        ("istio.ingressGatewayRevision", "1-29")
    ]


def test_removing_the_old_revision_before_moving_the_gateways_is_refused(tmp_path):
    """P6 straight after P4: the gateways still run on the revision being removed."""
    istio = {**P4, "revisions": [rev(NEW, "stable", "default", "canary")]}
    assert refused(tmp_path, istio) == [
        ("istio.ingressGatewayRevision", OLD),
        ("istio.egressGatewayRevision", OLD),
    ]


def test_removing_a_revision_a_namespace_is_on_is_refused(tmp_path):
    """The canary tag removed with its revision while `shop` still selects it."""
    istio = {**P2, "revisions": [rev(OLD, "stable", "default")]}
    assert refused(tmp_path, istio) == [("istio.namespaceRevisions.shop", "canary")]


def test_a_gateway_canary_on_a_revision_not_installed_is_refused(tmp_path):
    istio = {**P4, "ingressGatewayCanary": {"revision": "1-31"}}
    assert refused(tmp_path, istio) == [("istio.ingressGatewayCanary.revision", "1-31")]


@pytest.mark.parametrize("service_type", ["LoadBalancer", "NodePort", "ClusterIP"])
def test_a_gateway_canary_with_a_service_of_its_own_is_refused(tmp_path, service_type):
    istio = {**P4, "ingressGatewayCanary": {"revision": NEW, "serviceType": service_type}}
    assert refused(tmp_path, istio) == [("istio.ingressGatewayCanary.serviceType", service_type)]


def test_a_gateway_namespace_is_not_a_namespace_override(tmp_path):
    istio = {**P1, "namespaceRevisions": {mesh.INGRESS_NAMESPACE: "canary"}}
    ((key, _),) = refused(tmp_path, istio)
    assert key == "istio.namespaceRevisions"


def test_restart_epoch_is_a_non_negative_count(tmp_path):
    assert refused(tmp_path, {"restartEpoch": -1}) == [("istio.restartEpoch", -1)]


def test_an_empty_revision_list_is_refused(tmp_path):
    assert refused(tmp_path, {"revisions": []}) == [("istio.revisions", [])]


def test_a_namespace_override_for_an_undeclared_namespace_is_reported():
    """`namespace_revision_problems` needs the declared mesh namespaces, which only the stack's
    composition (components/config.py) sees; it reports exactly the undeclared one."""
    from components.config import parse
    from tests.test_config import committed

    raw, secrets = committed(STACK)
    raw["istio"] = {**P1, "namespaceRevisions": {"shop": "canary", "shpo": "canary"}}
    with pytest.raises(ConfigError) as refused:
        parse(raw, secrets)
    problems = refused.value.problems
    assert [(p.key, p.value) for p in problems] == [("istio.namespaceRevisions.shpo", "canary")]


def test_gateway_namespaces_follow_their_gateway_and_lose_the_label_beside_a_canary():
    from components.config import parse
    from tests.test_config import committed

    raw, secrets = committed(STACK)
    raw["istio"] = P4
    labels = parse(raw, secrets).istio.rev_labels(["shop"])
    assert labels == {mesh.INGRESS_NAMESPACE: OLD, mesh.EGRESS_NAMESPACE: OLD, "shop": "canary"}
    raw["istio"] = P5A
    labels = parse(raw, secrets).istio.rev_labels(["shop"])
    assert labels[mesh.INGRESS_NAMESPACE] is None and labels[mesh.EGRESS_NAMESPACE] == OLD


def test_a_revision_override_for_an_undeclared_namespace_is_refused(tmp_path):
    """An override naming no mesh namespace would silently do nothing: refused by key."""
    cfg = stack_config("staging")
    istio = {**cfg.get("service-mesh:istio", {}), "namespaceRevisions": {"ghost": "stable"}}
    run = run_config(tmp_path, "staging", {**cfg, "service-mesh:istio": istio})
    assert isinstance(run.error, ConfigError), run.error
    assert "service-mesh:istio.namespaceRevisions.ghost = 'stable'" in str(run.error)
    assert "not a declared mesh namespace" in str(run.error)
    assert run.resources == []


# --- the review of each step ----------------------------------------------------------------


def _plan_of(tmp_path_factory, run: Run):
    from tools.plan import write
    from tools.review_diff import load_plan

    out = tmp_path_factory.mktemp("plan")
    write(run, out)
    return load_plan(out)


def test_the_review_refuses_moving_default_to_a_revision_the_same_up_installs(
    phase, tmp_path_factory
):
    """istio-base's default validator points at istiod-<defaultRevision>, and istio-base is
    upgraded before any istiod: adding a revision and giving it `default` in one up (P1 and P3
    at once) breaks validation of every Istio object until the new istiod is ready. The
    documented order has no such step; the shortcut is a blocker."""
    from tools import review

    plans = {name: _plan_of(tmp_path_factory, phase(name)) for name in ("P0", "P1", "P2", "P3")}
    for a, b in (("P0", "P1"), ("P1", "P2"), ("P2", "P3")):
        assert not any(d.hazards for d in review.diff_plans(plans[a], plans[b])), (a, b)
    at_once = {**P1, "revisions": [rev(OLD), rev(NEW, "stable", "default", "canary")]}
    tmp = tmp_path_factory.mktemp("at-once")
    run = run_config(tmp, STACK, stack_with(at_once))
    assert run.error is None, run.error
    (base,) = [
        d for d in review.diff_plans(plans["P0"], _plan_of(tmp_path_factory, run)) if d.hazards
    ]
    assert base.name == "istio-base" and base.blocker
    assert f"istiod-{NEW}" in base.hazards[0] and "P1" in base.hazards[0]
