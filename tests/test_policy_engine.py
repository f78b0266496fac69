"""The policy pack on what the real engine sends, not only on the offline plan: `helm.v4.Chart`
is a remote component (`Analyze` gets `{}`; its rendered objects arrive as its children), stack
policies get outputs (a Kubernetes provider whose config is unknown at preview hands back empty
maps; the API server defaults fields the program left out), and one unknown value stops only
the rules that read it. `tools.policy --mode` reproduces those payloads offline.

The payloads are those an audit of pulumi (pkg/resource/deploy/step_generator.go,
source_eval.go, pkg/resource/plugin/provider_plugin.go) and pulumi-kubernetes
(provider/pkg/provider/helm/v4/chart.go) found the engine sends, run through the pack's own
analyzer servicer.
"""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import struct_pb2

from policies.pack import RULES
from policies.rules.base import STACK as STACK_KIND
from policies.rules.helm import chart_name, clean_url
from tests.test_policy import _plan
from tests.test_policy_rules import (
    V4_CHART,
    add,
    analyze,
    canary,
    deployment,
    records,
    rendered_deployment,
    res,
)
from tools import policy as tool
from tools.engine import ROOT

STACK_POLICIES = {r.name for r in RULES if r.kind == STACK_KIND}


def _enabled(stack: str) -> set[str]:
    from tests.test_policy_rules import config

    return {name for name, (level, _) in config(stack).items() if level != "disabled"}


# --- helm.v4.Chart: a remote component -------------------------------------------------------


@pytest.mark.parametrize("stack", ["dev", "staging", "production"])
def test_the_preview_mode_of_the_committed_plans_passes(stack):
    """A preview sends every `helm.v4.Chart` with no properties (metrics-server is one in
    every stack): no "not pinned (no version)", no "no repository". The objects a chart
    renders never appear offline; their checks run on the constructed fixtures below."""
    findings = analyze(records(stack), stack, mode=tool.PREVIEW)
    assert findings == [], [f.line() for f in findings]


def test_the_preview_mode_sends_v4_charts_empty_and_everything_else_as_planned():
    recs = records()
    chart = res(recs, "metrics-server", V4_CHART)
    assert chart["inputs"]["chart"] == "metrics-server"
    assert tool.engine_properties(chart, tool.PREVIEW) == ({}, {})
    release = res(recs, "cert-manager")
    assert tool.engine_properties(release, tool.PREVIEW) == (release["inputs"],) * 2
    assert tool.engine_properties(chart, tool.PLAN) == (chart["inputs"],) * 2


def test_v4_chart_inputs_are_still_judged_where_they_are_sent():
    recs = records()
    chart = res(recs, "metrics-server", V4_CHART)
    chart["inputs"]["version"] = "^3.13.0"
    findings = analyze(recs)
    assert {(f.policy, f.urn) for f in findings} == {("helm-chart-pinned", chart["urn"])}
    assert any("not pinned to an exact version (^3.13.0)" in f.message for f in findings)
    assert analyze(recs, mode=tool.PREVIEW) == []  # a preview cannot see them


@pytest.mark.parametrize("mode", [tool.PLAN, tool.PREVIEW])
def test_a_rendered_object_of_another_chart_version_is_refused_at_that_object(mode):
    recs = records()
    urn = rendered_deployment(recs, "metrics-server-3.12.2")
    (finding,) = analyze(recs, mode=mode)
    assert (finding.policy, finding.urn, finding.level) == ("helm-chart-pinned", urn, "mandatory")
    assert "helm.sh/chart metrics-server-3.12.2" in finding.message
    assert "the pin is metrics-server-3.13.1" in finding.message
    assert "rendered by Helm chart metrics-server" in finding.message


def test_rendered_objects_of_the_pin_or_without_the_label_pass():
    recs = records()
    rendered_deployment(recs, "metrics-server-3.13.1")
    rendered_deployment(recs, "flagger-1.44.0", chart="flagger")
    rendered_deployment(recs, None, chart="tempo")  # a CRD from `crds/` carries no label
    assert analyze(recs, mode=tool.PREVIEW) == []


def test_a_rendered_object_of_an_unpinned_chart_is_refused_and_can_be_excepted():
    recs = records()
    urn = rendered_deployment(recs, "minio-5.4.0", chart="loki")
    (finding,) = analyze(recs, mode=tool.PREVIEW)
    assert finding.urn == urn and "not a pin" in finding.message
    assert "the pin is" not in finding.message
    granted = {"helm-chart-pinned": {"exceptions": {"loki": "minio subchart for a test, OPS-1"}}}
    assert analyze(recs, extra=granted, mode=tool.PREVIEW) == []


def test_the_label_is_read_only_on_objects_a_v4_chart_rendered():
    recs = records()
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "x", "namespace": "shop", "labels": {"helm.sh/chart": "x-0.1.0"}},
    }
    add(recs, "kubernetes:core/v1:ConfigMap", "shop-x", body)
    assert analyze(recs, mode=tool.PREVIEW) == []


def test_the_pin_labels_follow_the_charts_helper():
    """`printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 |
    trimSuffix "-"`, the `<chart>.chart` helper of each pinned v4 chart."""
    from components.base.pins import ChartPin
    from policies.rules.supply_chain import PIN_LABELS, chart_label

    assert chart_label(ChartPin("kiali-server", "2.29.0", "x")) == "kiali-server-2.29.0"
    assert chart_label(ChartPin("c", "1.0.0+build.1", "x")) == "c-1.0.0_build.1"
    assert len(chart_label(ChartPin("a" * 60, "1.2.3", "x"))) == 63
    assert chart_label(ChartPin("a" * 62, "1.2.3", "x")) == "a" * 62
    assert {"metrics-server-3.13.1", "opentelemetry-collector-0.170.0"} <= set(PIN_LABELS)


def test_the_servicer_gives_a_resource_policy_its_parent_as_the_engine_sends_it():
    """pulumi_policy 1.21.0 exposes the parent URN as `args.opts.parent` in `Analyze`
    (the engine's AnalyzerResourceOptions.parent); the runner sends the plan's parent."""
    from pulumi.runtime import proto
    from pulumi_policy import EnforcementLevel, ResourceValidationPolicy
    from pulumi_policy.policy import _PolicyAnalyzerServicer

    seen: list = []
    policy = ResourceValidationPolicy(
        name="probe", description="Probe.", validate=lambda a, r: seen.append(a.opts.parent)
    )
    svc = _PolicyAnalyzerServicer("probe-pack", "0.0.1", [policy], EnforcementLevel.ADVISORY)
    recs = records()
    urn = rendered_deployment(recs, "metrics-server-3.13.1")
    child = res(recs, urn.rsplit("::", 1)[1])
    tool.analyze([child], "production", {"probe": ("advisory", {})}, svc)
    assert seen == [child["parent"]] and child["parent"].endswith(
        "$kubernetes:helm.sh/v4:Chart::metrics-server"
    )
    request = proto.AnalyzeRequest(
        type="t", urn="u", properties=struct_pb2.Struct(), options=proto.AnalyzerResourceOptions()
    )
    svc.Analyze(request, None)
    assert seen[-1] is None


# --- the Kubernetes provider's config unknown: empty outputs --------------------------------


def test_with_the_provider_config_unknown_every_stack_policy_says_it_cannot_run(tmp_path, capsys):
    """A new or replaced cluster: the preview's Create of each Kubernetes object returns an
    empty map, so `AnalyzeStack` sees no PeerAuthentication, no namespace, no release. Each
    stack policy reports "can't run" (advisory), none a violation, none a silent pass."""
    findings = analyze(records(), mode=tool.NEW_CLUSTER)
    assert {f.policy for f in findings} == STACK_POLICIES & _enabled("production")
    for f in findings:
        assert f.level == "advisory" and f"can't run policy '{f.policy}'" in f.message
        assert "Kubernetes provider's configuration is unknown" in f.message
    plan = _plan(tmp_path)
    assert tool.main(["production", "--plan", str(plan), "--mode", "new-cluster"]) == 0
    out = capsys.readouterr().out
    assert "[mandatory]" not in out and "not run on unknown values" in out


def test_the_new_cluster_mode_keeps_analyze_on_inputs():
    """`Check` on an unconfigured provider returns the inputs: resource policies still run."""
    recs = records()
    recs[:] = [r for r in recs if r["name"] != "istio-system-default" or "Peer" not in r["type"]]
    res(recs, "ingress-lb")["protect"] = False
    findings = analyze(recs, mode=tool.NEW_CLUSTER)
    assert {f.policy for f in findings if f.level == "mandatory"} == {"protect-stateful-resources"}
    mtls = [f for f in findings if f.policy == "mtls-strict"]
    assert [f.level for f in mtls] == ["advisory"]


def test_an_empty_peer_authentication_as_the_engine_sends_it_is_not_a_violation():
    """The audit's payload: one PeerAuthentication with `{}` outputs, production levels."""
    urn = (
        "urn:pulumi:production::service-mesh::kubernetes:security.istio.io/v1:"
        "PeerAuthentication::istio-system-default"
    )
    recs = [
        {
            "urn": urn,
            "type": "kubernetes:security.istio.io/v1:PeerAuthentication",
            "name": "istio-system-default",
            "inputs": {"spec": {"mtls": {"mode": "STRICT"}}},
            "outputs": {},
        }
    ]
    findings = analyze(recs)
    assert findings and all(f.level == "advisory" for f in findings)
    assert {f.policy for f in findings} == STACK_POLICIES & _enabled("production")
    assert "kubernetes:security.istio.io/v1:PeerAuthentication istio-system-default" in (
        findings[0].message
    )


def test_an_empty_helm_release_counts_but_components_do_not():
    """A `helm.v3.Release` is a custom resource: empty when its provider is unconfigured. A
    component (`helm.v4.Chart`, `yaml.v2.ConfigGroup`) has no outputs of its own."""
    recs = records()
    res(recs, "cert-manager")["outputs"] = {}
    assert {f.level for f in analyze(recs)} == {"advisory"}
    recs = records()
    for r in recs:
        if r["type"] == V4_CHART:
            r["outputs"] = {}
    add(recs, "kubernetes:yaml/v2:ConfigGroup", "extra", {})
    assert analyze(recs) == []


# --- one unknown value stops only the rules that read it -------------------------------------


def test_unknown_values_of_one_release_stop_only_the_rules_reading_them():
    """The cert-manager release's values unknown at preview: the mTLS and revision rules read
    only istiod, base and gateway, so they still run; the budget and load balancer rules read
    cert-manager's values and say they cannot."""
    recs = records()
    res(recs, "cert-manager")["inputs"]["values"] = tool.UNKNOWN_MASK
    res(recs, "istio-system-default")["inputs"]["spec"]["mtls"]["mode"] = "PERMISSIVE"
    findings = analyze(recs)
    cannot = {f.policy for f in findings if "can't run" in f.message}
    assert cannot == {"pdb-allows-drain", "single-load-balancer", "no-latest-images"}
    (mtls,) = [f for f in findings if f.policy == "mtls-strict"]
    assert mtls.level == "mandatory" and "PERMISSIVE" in mtls.message
    assert not {"istio-default-revision", "istio-revision-references", "helm-chart-pinned"} & {
        f.policy for f in findings
    }


# --- outputs: the API server's defaults ------------------------------------------------------


def _pulumi_manager(fields: dict[str, Any], manager: str = "pulumi-kubernetes-a1b2c3d4") -> dict:
    return {"manager": manager, "operation": "Apply", "fieldsV1": {"f:spec": fields}}


def _target_outputs(recs, managed: list[dict], annotations: dict | None = None) -> str:
    """The Canary's target Deployment (inputs without replicas) and its outputs as the API
    server returns them: replicas defaulted to 1, and who manages which field."""
    urn = deployment(recs, "orders")
    target = res(recs, "shop-orders", "kubernetes:apps/v1:Deployment")
    outputs = {**target["inputs"], "status": {}}
    outputs["metadata"] = {**outputs["metadata"], "managedFields": managed}
    if annotations:
        outputs["metadata"]["annotations"] = annotations
    outputs["spec"] = {**outputs["spec"], "replicas": 1}
    target["outputs"] = outputs
    return urn


def test_a_canary_target_whose_replicas_the_api_server_defaulted_passes():
    recs = records()
    canary(recs)
    _target_outputs(
        recs,
        [
            _pulumi_manager({"f:selector": {}, "f:template": {}}),
            {
                "manager": "flagger",
                "operation": "Update",
                "fieldsV1": {"f:spec": {"f:replicas": {}}},
            },
        ],
    )
    assert analyze(recs) == []


def test_a_canary_target_whose_replicas_pulumi_manages_is_refused():
    recs = records()
    canary(recs)
    urn = _target_outputs(recs, [_pulumi_manager({"f:replicas": {}, "f:template": {}})])
    (finding,) = analyze(recs)
    assert (finding.policy, finding.urn) == ("traffic-canary-owns-routing", urn)
    recs = records()
    canary(recs)
    _target_outputs(
        recs,
        [_pulumi_manager({"f:replicas": {}}, manager="team-apply")],
        annotations={"pulumi.com/patchFieldManager": "team-apply"},
    )
    assert [f.policy for f in analyze(recs)] == ["traffic-canary-owns-routing"]


def test_a_record_s_outputs_go_to_the_stack_and_its_inputs_to_analyze():
    from pulumi_policy import (
        EnforcementLevel,
        ResourceValidationPolicy,
        StackValidationPolicy,
    )
    from pulumi_policy.policy import _PolicyAnalyzerServicer

    seen: dict[str, Any] = {}
    policies = [
        ResourceValidationPolicy(
            name="r", description="R.", validate=lambda a, _: seen.update(r=a.props["v"])
        ),
        StackValidationPolicy(
            name="s",
            description="S.",
            validate=lambda a, _: seen.update(s=a.resources[0].props["v"]),
        ),
    ]
    svc = _PolicyAnalyzerServicer("probe-pack", "0.0.1", policies, EnforcementLevel.ADVISORY)
    rec = {"urn": "urn:pulumi:production::p::t:i:T::a", "type": "t:i:T", "name": "a"}
    rec |= {"inputs": {"v": "in"}, "outputs": {"v": "out"}}
    tool.analyze([rec], "production", {"r": ("advisory", {}), "s": ("advisory", {})}, svc)
    assert seen == {"r": "in", "s": "out"}


# --- messages --------------------------------------------------------------------------------

TOKEN = "ghp_" + "T0k3n" * 8
PASSWORD = "p@ss-W0rd@Secret"


def test_chart_and_repository_are_shown_without_credentials_query_or_fragment():
    recs = records()
    for name, chart, repo in (
        ("podinfo", f"oci://registry.example.net/charts/podinfo?token={TOKEN}", None),
        ("webapp", "webapp", f"https://deploy:{PASSWORD}@charts.example.net/stable?sig=S1G#top"),
    ):
        inputs: dict[str, Any] = {"chart": chart, "version": "1.0.0", "name": name}
        inputs["namespace"] = "shop"
        if repo:
            inputs["repositoryOpts"] = {"repo": repo}
        add(recs, "kubernetes:helm.sh/v3:Release", name, inputs)
    findings = analyze(recs)
    pinned = [f.message for f in findings if f.policy == "helm-chart-pinned"]
    assert any(
        "Helm release shop/podinfo (chart podinfo) comes from "
        "oci://registry.example.net/charts/podinfo, not an allowed" in m
        for m in pinned
    ), pinned
    assert any("comes from https://charts.example.net/stable, not" in m for m in pinned), pinned
    for f in findings:
        for secret in (TOKEN, "T0k3n", "p@ss", "W0rd", "Secret@", "deploy:", "S1G", "#top"):
            assert secret not in f.message, (secret, f.line())


@pytest.mark.parametrize(
    "url, shown",
    [
        ("https://u:p@ss@host.example:8443/charts/?x=1#f", "https://host.example:8443/charts/"),
        ("oci://ghcr.io/acme/chart?token=t", "oci://ghcr.io/acme/chart"),
        ("repo/name?version=1", "repo/name"),
        ("http://[broken/x?t=1", "http://[broken/x"),
        # no scheme: `user` would read as one
        ("user:pass@host/charts", "host/charts"),
        ("u:p@ss@h:5000/x?t=1", "h:5000/x"),
        ("name", "name"),
    ],
)
def test_clean_url(url, shown):
    assert clean_url(url) == shown


def test_the_chart_name_is_matched_without_its_query():
    assert chart_name("oci://ghcr.io/istio/istiod?token=t#x") == "istiod"


# --- docs ------------------------------------------------------------------------------------


def test_docs_describe_every_mode():
    text = (ROOT / "docs" / "policy.md").read_text()
    assert all(f"`--mode {m}`" in text for m in tool.MODES)
