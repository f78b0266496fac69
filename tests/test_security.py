"""The zero-trust layer in whole-stack runs: STRICT mTLS, default-deny and only the declared
ALLOW policies, REGISTRY_ONLY egress with the declared ServiceEntries, the ingress rate limit,
each object ordered after its namespace and the Istio CRDs, and every manifest schema-valid."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from components.base import mesh
from components.graph.model import ExternalHost
from components.istio.gateways import EGRESS_PORTS
from components.security.egress import (
    GATEWAY_HOST,
    GATEWAY_HTTP_PORT,
    GATEWAY_POLICY,
    GATEWAY_TLS_PORT,
    egress_objects,
    gateway_callers,
)
from components.security.objects import security_objects
from components.traffic.names import LOADTESTER_PRINCIPAL
from tests.conftest import STACKS, parsed_stack, run_config, stack_config, stack_run
from tests.schema import validate_istio, validate_k8s
from tests.test_mesh_ca import istiod_release, parsed
from tools.engine import Resource, Run
from tools.plan import is_manifest, manifest

AP = "kubernetes:security.istio.io/v1:AuthorizationPolicy"
PA = "kubernetes:security.istio.io/v1:PeerAuthentication"
SE = "kubernetes:networking.istio.io/v1:ServiceEntry"
EF = "kubernetes:networking.istio.io/v1alpha3:EnvoyFilter"
NP = "kubernetes:networking.k8s.io/v1:NetworkPolicy"


def security_children(run: Run) -> list[Resource]:
    comp = run.one("service-mesh:security:MeshSecurity")
    return run.children(comp)


def mesh_namespaces(stack: str) -> list[str]:
    return [ns["name"] for ns in stack_config(stack).get("service-mesh:meshNamespaces", [])]


def declared(stack: str) -> list[dict[str, Any]]:
    return stack_config(stack).get("service-mesh:services", [])


def find(run: Run, type_: str, namespace: str, name: str) -> Resource:
    found = [
        r
        for r in run.of_type(type_)
        if r.inputs["metadata"]["namespace"] == namespace and r.inputs["metadata"]["name"] == name
    ]
    assert len(found) == 1, f"{type_} {namespace}/{name}: found {len(found)}"
    return found[0]


@pytest.mark.parametrize("stack", STACKS)
def test_mesh_wide_strict_mtls(stack):
    pa = find(stack_run(stack), PA, mesh.ROOT_NAMESPACE, "default")
    assert pa.inputs["spec"] == {"mtls": {"mode": "STRICT"}}
    others = [r for r in stack_run(stack).of_type(PA) if r is not pa]
    assert all(r.inputs["spec"]["mtls"]["mode"] != "DISABLE" for r in others)


@pytest.mark.parametrize("stack", STACKS)
def test_default_deny_in_every_mesh_namespace_and_on_the_egress_gateway(stack):
    run = stack_run(stack)
    assert mesh_namespaces(stack)
    for ns in [*mesh_namespaces(stack), mesh.EGRESS_NAMESPACE]:
        deny = find(run, AP, ns, "allow-nothing")
        assert deny.inputs["spec"] == {}, "an ALLOW policy with no rules matches nothing"


def external_hosts(stack: str) -> list[dict[str, Any]]:
    return (stack_config(stack).get("service-mesh:security") or {}).get("externalHosts", [])


@pytest.mark.parametrize("stack", STACKS)
def test_allow_policies_only_for_the_declared_graph(stack):
    run = stack_run(stack)
    expected = {
        (s["namespace"], f"allow-{s['name']}")
        for s in declared(stack)
        if s.get("callers") or s.get("ingress")
    }
    # A canaried service's Flagger-generated primary gets the same policy (docs/traffic.md).
    canaried = [s for s in declared(stack) if (s.get("traffic") or {}).get("canary") is not None]
    expected |= {(s["namespace"], f"allow-{s['name']}-primary") for s in canaried}
    gateway_hosts = [h for h in external_hosts(stack) if h.get("egressGateway")]
    if gateway_hosts:
        expected.add((mesh.EGRESS_NAMESPACE, GATEWAY_POLICY))
    policies = [r for r in security_children(run) if r.type == AP]
    got = {
        (r.inputs["metadata"]["namespace"], r.inputs["metadata"]["name"])
        for r in policies
        if r.inputs["metadata"]["name"] != "allow-nothing"
    }
    assert got == expected
    principals = {mesh.principal(s["namespace"], s["serviceAccount"]) for s in declared(stack)}
    principals.add(mesh.INGRESS_PRINCIPAL)
    if canaried:
        principals.add(LOADTESTER_PRINCIPAL)  # the canaries' load test
    for r in policies:
        rules = r.inputs["spec"].get("rules", [])
        if (r.inputs["metadata"]["namespace"], r.inputs["metadata"]["name"]) == (
            mesh.EGRESS_NAMESPACE,
            GATEWAY_POLICY,
        ):
            # One rule per gateway host: its declared namespaces, its SNI.
            assert [
                (f["from"][0]["source"]["namespaces"], f["when"][0]["values"]) for f in rules
            ] == [(h["namespaces"], [h["host"]]) for h in gateway_hosts]
            continue
        for rule in rules:
            assert {"from", "to", "when"} <= set(rule)
            for f in rule["from"]:
                assert set(f["source"]["principals"]) <= principals


@pytest.mark.parametrize("stack", STACKS)
def test_registry_only_outbound_policy_reaches_istiod(stack):
    mesh_config = istiod_release(stack_run(stack)).inputs["values"]["meshConfig"]
    assert mesh_config["outboundTrafficPolicy"] == {"mode": "REGISTRY_ONLY"}


def with_policy(stack: str, mode: str) -> dict[str, Any]:
    cfg = copy.deepcopy(stack_config(stack))
    cfg.setdefault("service-mesh:security", {})["outboundTrafficPolicy"] = mode
    return cfg


@pytest.mark.parametrize("stack", ["staging", "production"])
def test_allow_any_refused_outside_dev_before_anything_registers(tmp_path, stack):
    run = run_config(tmp_path, stack, with_policy(stack, "ALLOW_ANY"))
    assert run.error is not None
    assert "service-mesh:security.outboundTrafficPolicy" in str(run.error)
    assert "REGISTRY_ONLY" in str(run.error)
    assert run.resources == []


def test_allow_any_accepted_in_dev(tmp_path):
    run = run_config(tmp_path, "dev", with_policy("dev", "ALLOW_ANY"))
    assert run.error is None
    mesh_config = istiod_release(run).inputs["values"]["meshConfig"]
    assert mesh_config["outboundTrafficPolicy"]["mode"] == "ALLOW_ANY"


@pytest.mark.parametrize("stack", STACKS)
def test_service_entries_for_declared_hosts_only(stack):
    run = stack_run(stack)
    expected = set()
    for h in external_hosts(stack):
        expected |= {(ns, h["host"]) for ns in h["namespaces"]}
        if h.get("egressGateway"):
            expected.add((mesh.EGRESS_NAMESPACE, h["host"]))
    got = set()
    for r in run.of_type(SE):
        assert r.inputs["spec"]["exportTo"] == ["."], "visible to its own namespace only"
        got |= {(r.inputs["metadata"]["namespace"], h) for h in r.inputs["spec"]["hosts"]}
    assert got == expected


def test_production_routes_stripe_through_the_egress_gateway_over_mtls():
    run = stack_run("production")
    gw = find(
        run,
        "kubernetes:networking.istio.io/v1:Gateway",
        mesh.EGRESS_NAMESPACE,
        "egress-api-stripe-com",
    )
    assert gw.inputs["spec"]["selector"] == mesh.EGRESS_SELECTOR
    server = gw.inputs["spec"]["servers"][0]
    assert server["tls"] == {"mode": "ISTIO_MUTUAL"}, "the gateway must know the caller"
    assert server["port"]["number"] == GATEWAY_TLS_PORT and server["hosts"] == ["api.stripe.com"]
    vs = find(
        run,
        "kubernetes:networking.istio.io/v1:VirtualService",
        mesh.EGRESS_NAMESPACE,
        "egress-api-stripe-com",
    )
    [from_sidecar] = vs.inputs["spec"]["tls"]
    assert from_sidecar["match"] == [
        {"gateways": ["mesh"], "port": 443, "sniHosts": ["api.stripe.com"]}
    ]
    assert from_sidecar["route"][0]["destination"]["host"] == GATEWAY_HOST
    [from_gateway] = vs.inputs["spec"]["tcp"]
    assert from_gateway["match"][0]["gateways"] == ["istio-egress/egress-api-stripe-com"]
    assert from_gateway["route"][0]["destination"] == {
        "host": "api.stripe.com",
        "port": {"number": 443},
    }
    dr = find(
        run,
        "kubernetes:networking.istio.io/v1:DestinationRule",
        mesh.EGRESS_NAMESPACE,
        "egress-api-stripe-com",
    )
    [subset] = dr.inputs["spec"]["subsets"]
    assert subset["name"] == from_sidecar["route"][0]["destination"]["subset"]
    assert subset["trafficPolicy"]["portLevelSettings"] == [
        {
            "port": {"number": GATEWAY_TLS_PORT},
            "tls": {"mode": "ISTIO_MUTUAL", "sni": "api.stripe.com"},
        }
    ]


def test_gateway_ports_are_ports_of_the_egress_gateway_service():
    """Served by the Service, and equal to the target port the gateway's policy matches."""
    served = {port: target for _, port, target in EGRESS_PORTS}
    for port in (GATEWAY_TLS_PORT, GATEWAY_HTTP_PORT):
        assert served.get(port) == port


EGRESS_VARIANTS = [
    {"tls": "passthrough", "egressGateway": False},
    {"tls": "originate", "egressGateway": False},
    {"tls": "passthrough", "egressGateway": True, "port": 8443},
    {"tls": "originate", "egressGateway": True},
]


@pytest.mark.parametrize("variant", EGRESS_VARIANTS)
def test_every_egress_variant_is_schema_valid_and_originates_tls_verified(variant):
    ext = ExternalHost.model_validate(
        {"host": "api.example.com", "namespaces": ["shop"], **variant}
    )
    objects = egress_objects(ext, gateway_callers([ext]))
    for obj in objects:
        validate_istio(obj)
    originating = [
        o
        for o in objects
        if o["kind"] == "DestinationRule" and o["spec"]["host"] == "api.example.com"
    ]
    assert len(originating) == (variant["tls"] == "originate")
    for dr in originating:
        [setting] = dr["spec"]["trafficPolicy"]["portLevelSettings"]
        assert setting["port"] == {"number": ext.port}
        # An explicit sni turns Istio's automatic SAN check off: the name must be stated.
        assert setting["tls"] == {
            "mode": "SIMPLE",
            "sni": "api.example.com",
            "subjectAltNames": ["api.example.com"],
        }
    gateways = [o for o in objects if o["kind"] == "Gateway"]
    assert len(gateways) == variant["egressGateway"]
    for gw in gateways:
        assert gw["spec"]["servers"][0]["tls"] == {"mode": "ISTIO_MUTUAL"}
        assert gw["spec"]["servers"][0]["port"]["number"] in (GATEWAY_TLS_PORT, GATEWAY_HTTP_PORT)


DR = "kubernetes:networking.istio.io/v1:DestinationRule"


def test_gateway_rules_of_hosts_with_different_callers_still_merge():
    """Istio merges DestinationRules of one host only when their exportTo sets are equal: a
    namespace shared by two gateway-routed hosts must see both hosts' subsets."""
    a = ExternalHost.model_validate(
        {"host": "a.example.com", "namespaces": ["shop", "pay"], "egressGateway": True}
    )
    b = ExternalHost.model_validate(
        {"host": "b.example.com", "namespaces": ["pay"], "egressGateway": True, "port": 8443}
    )
    direct = ExternalHost.model_validate({"host": "c.example.com", "namespaces": ["ops"]})
    callers = gateway_callers([a, b, direct])
    assert callers == ("pay", "shop")
    rules = [
        o
        for ext in (a, b)
        for o in egress_objects(ext, callers)
        if o["kind"] == "DestinationRule" and o["spec"]["host"] == GATEWAY_HOST
    ]
    assert len(rules) == 2
    assert all(r["spec"]["exportTo"] == [".", "pay", "shop"] for r in rules)
    assert {r["spec"]["subsets"][0]["name"] for r in rules} == {"a-example-com", "b-example-com"}


def test_callers_of_a_gateway_originated_host_have_no_tls_port_to_leave_by():
    """They send plain HTTP on 80 to the gateway; with the TLS port in their registry a TLS
    connection would leave the sidecar straight for the host, past the gateway."""
    ext = ExternalHost.model_validate(
        {
            "host": "api.example.com",
            "namespaces": ["shop"],
            "tls": "originate",
            "egressGateway": True,
        }
    )
    entries = {
        o["metadata"]["namespace"]: [p["number"] for p in o["spec"]["ports"]]
        for o in egress_objects(ext, gateway_callers([ext]))
        if o["kind"] == "ServiceEntry"
    }
    assert entries == {"shop": [80], mesh.EGRESS_NAMESPACE: [80, 443]}
    sidecar = ExternalHost.model_validate(
        {"host": "api.example.com", "namespaces": ["shop"], "tls": "originate"}
    )
    (entry,) = [o for o in egress_objects(sidecar, ()) if o["kind"] == "ServiceEntry"]
    assert [p["number"] for p in entry["spec"]["ports"]] == [80, 443]  # the sidecar originates


@pytest.mark.parametrize("stack", STACKS)
def test_every_rule_for_the_egress_gateway_host_is_exported_alike(stack):
    hosts = parsed_stack(stack).graph.external_hosts
    rules = [r for r in stack_run(stack).of_type(DR) if r.inputs["spec"]["host"] == GATEWAY_HOST]
    assert len(rules) == sum(h.egress_gateway for h in hosts)
    for r in rules:
        assert r.inputs["spec"]["exportTo"] == [".", *gateway_callers(hosts)], r.name


@pytest.mark.parametrize("stack", STACKS)
def test_rate_limit_targets_only_the_ingress_gateway(stack):
    run = stack_run(stack)
    ef = run.one(EF)
    spec = ef.inputs["spec"]
    assert ef.inputs["metadata"]["namespace"] == mesh.INGRESS_NAMESPACE
    assert spec["workloadSelector"] == {"labels": mesh.INGRESS_SELECTOR}
    assert [p["match"]["context"] for p in spec["configPatches"]] == ["GATEWAY"]
    bucket = spec["configPatches"][0]["patch"]["value"]["typed_config"]["token_bucket"]
    assert bucket["max_tokens"] > 0 and bucket["fill_interval"].endswith("s")
    config = spec["configPatches"][0]["patch"]["value"]["typed_config"]
    assert config["filter_enforced"]["default_value"]["numerator"] == 100, "enforced, not shadow"


def test_rate_limit_differs_per_environment():
    tokens = {
        s: run.one(EF).inputs["spec"]["configPatches"][0]["patch"]["value"]["typed_config"][
            "token_bucket"
        ]["tokens_per_fill"]
        for s, run in ((s, stack_run(s)) for s in STACKS)
    }
    assert tokens["dev"] < tokens["staging"] < tokens["production"]


@pytest.mark.parametrize("stack", STACKS)
def test_every_object_depends_on_its_namespace_and_istio_crs_on_crds(stack):
    run = stack_run(stack)
    namespaces = {
        r.inputs["metadata"]["name"]: r.urn for r in run.of_type("kubernetes:core/v1:Namespace")
    }
    istio = run.one("service-mesh:istio:IstioControlPlane")
    crds_ready = {
        r.urn
        for r in run.children(istio)
        if r.type == "kubernetes:helm.sh/v3:Release" and r.inputs.get("chart") in ("base", "istiod")
    }
    assert len(crds_ready) == 2
    children = security_children(run)
    assert children
    for r in children:
        ns = r.inputs["metadata"]["namespace"]
        assert namespaces[ns] in r.dependencies, f"{r.name} must wait for namespace {ns}"
        if ".istio.io/" in r.type:
            assert crds_ready <= set(r.dependencies), f"{r.name} must wait for the Istio CRDs"
        assert r.provider and "kubernetes" in r.provider


@pytest.mark.parametrize("stack", STACKS)
def test_every_security_manifest_is_schema_valid(stack):
    run = stack_run(stack)
    checked = 0
    for r in security_children(run):
        assert is_manifest(r)
        obj = manifest(r)
        (validate_istio if ".istio.io/" in obj["apiVersion"] else validate_k8s)(obj)
        assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "pulumi"
        checked += 1
    cfg = parsed(stack)
    assert checked == len(security_objects(cfg.graph, cfg.security))


def test_permissive_namespace_gets_an_override_and_production_needs_a_reason(tmp_path):
    cfg = copy.deepcopy(stack_config("staging"))
    cfg["service-mesh:meshNamespaces"] = [
        {"name": "shop"},
        {"name": "legacy", "mtls": "permissive"},
    ]
    run = run_config(tmp_path, "staging", cfg)
    assert run.error is None, run.error
    pa = find(run, PA, "legacy", "default")
    assert pa.inputs["spec"] == {"mtls": {"mode": "PERMISSIVE"}}
    assert not [r for r in run.of_type(PA) if r.inputs["metadata"]["namespace"] == "shop"]

    prod = copy.deepcopy(stack_config("production"))
    prod["service-mesh:meshNamespaces"] = [{"name": "shop", "mtls": "permissive"}]
    run = run_config(tmp_path, "production", prod)
    assert run.error is not None and "meshNamespaces[0].mtls" in str(run.error)
    assert run.resources == []


def test_port_level_exception_only_where_configured(tmp_path):
    cfg = copy.deepcopy(stack_config("dev"))
    cfg["service-mesh:services"][2]["ports"][0]["mtls"] = "permissive"
    run = run_config(tmp_path, "dev", cfg)
    assert run.error is None, run.error
    port_pas = [r for r in run.of_type(PA) if "portLevelMtls" in r.inputs["spec"]]
    assert len(port_pas) == 1
    spec = port_pas[0].inputs["spec"]
    assert spec["selector"] == {"matchLabels": {"app": "payments"}}
    assert spec["portLevelMtls"] == {"9090": {"mode": "PERMISSIVE"}}
