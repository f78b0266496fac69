"""The way in: Pulumi-owned load balancer <-> workload pool tag <-> gateway node ports, DNS,
cert-manager issuer and certificate, the public Gateway, schemas, ordering, bad config."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.base import mesh
from components.base.model import ConfigError
from components.cluster.pools import WORKLOAD_POOL_LABEL
from components.edge.gateway import PUBLIC_GATEWAY, STATUS_NODE_PORT, ingress_gateway_values
from components.edge.tls import dns_token_secret
from components.istio.gateways import ingress_canary_values
from components.istio.revisions import GatewayCanary
from tests.conftest import STACKS, run_config, stack_config, stack_run
from tests.schema import normalize, validate_crd, validate_istio, validate_k8s
from tests.test_istio import load_cfg, release, values
from tools.engine import Resource, Run, _doc_ip, _fake_id

LB = "digitalocean:index/loadBalancer:LoadBalancer"
RECORD = "digitalocean:index/dnsRecord:DnsRecord"
DOMAIN = "digitalocean:index/domain:Domain"
POOL = "digitalocean:index/kubernetesNodePool:KubernetesNodePool"
TAG = "digitalocean:index/tag:Tag"
FIREWALL = "digitalocean:index/firewall:Firewall"
ISSUER = "kubernetes:cert-manager.io/v1:ClusterIssuer"
CERTIFICATE = "kubernetes:cert-manager.io/v1:Certificate"
GATEWAY = "kubernetes:networking.istio.io/v1:Gateway"
SECRET = "kubernetes:core/v1:Secret"
LE_STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"
LE_PRODUCTION = "https://acme-v02.api.letsencrypt.org/directory"


def edge(run: Run) -> Resource:
    return run.one("service-mesh:ingress:IngressEdge")


def mine(run: Run, type_: str) -> list[Resource]:
    return [r for r in run.children(edge(run)) if r.type == type_]


def one(run: Run, type_: str) -> Resource:
    (found,) = mine(run, type_)
    return found


def node_ports(run: Run) -> dict[str, int]:
    service = values(run, mesh.INGRESS_GATEWAY)["service"]
    assert service["type"] == "NodePort"
    return {p["port"]: p["nodePort"] for p in service["ports"]}


# --- load balancer ------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_load_balancer_targets_workload_pool_tag_and_gateway_node_ports(stack):
    run = stack_run(stack)
    lb = normalize(one(run, LB).inputs)
    (pool,) = run.of_type(POOL)
    assert lb["dropletTag"] in pool.inputs["tags"]
    assert lb["dropletTag"] == run.outputs["workloadTag"]
    vpc = run.one("digitalocean:index/vpc:Vpc")
    assert vpc.urn in one(run, LB).dependencies
    ports = node_ports(run)
    rules = {r["entryPort"]: r for r in lb["forwardingRules"]}
    assert set(rules) == {80, 443}
    for entry in (80, 443):
        assert rules[entry]["targetPort"] == ports[entry]
        assert rules[entry]["entryProtocol"] == rules[entry]["targetProtocol"] == "tcp"
        assert 30000 <= ports[entry] <= 32767
    check = lb["healthcheck"]
    assert check["protocol"] == "http" and check["path"] == "/healthz/ready"
    assert check["port"] == ports[mesh.STATUS_PORT]
    assert lb["region"] == load_cfg(stack).cluster.region


@pytest.mark.parametrize("stack", STACKS)
def test_only_the_load_balancer_reaches_the_gateway_node_ports(stack):
    """Our firewall admits the node ports from our load balancer; the cloud controller is told
    not to open them to the internet (its default for a NodePort Service)."""
    run = stack_run(stack)
    lb, firewall = one(run, LB), one(run, FIREWALL)
    assert firewall.inputs["tags"] == [run.one(TAG).inputs["name"]] == [lb.inputs["dropletTag"]]
    rules = firewall.inputs["inboundRules"]
    assert {int(r["portRange"]) for r in rules} == set(node_ports(run).values())
    for rule in rules:
        assert rule["protocol"] == "tcp"
        assert rule["sourceLoadBalancerUids"] == [_fake_id(LB, lb.name)]  # the mock's LB id
        assert set(rule) == {"protocol", "portRange", "sourceLoadBalancerUids"}
    service = values(run, mesh.INGRESS_GATEWAY)["service"]
    assert service["annotations"] == {"kubernetes.digitalocean.com/firewall-managed": "false"}
    assert lb.urn in firewall.dependencies


@pytest.mark.parametrize("stack", STACKS)
def test_gateway_service_is_a_valid_node_port_service(stack):
    """The chart copies `service.ports` verbatim into the Service (1.30.3 service.yaml)."""
    service = values(stack_run(stack), mesh.INGRESS_GATEWAY)["service"]
    validate_k8s(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": mesh.INGRESS_GATEWAY, "namespace": mesh.INGRESS_NAMESPACE},
            "spec": {
                "type": service["type"],
                "externalTrafficPolicy": service["externalTrafficPolicy"],
                "ports": service["ports"],
                "selector": dict(mesh.INGRESS_SELECTOR),
            },
        }
    )
    assert len({p["nodePort"] for p in service["ports"]}) == len(service["ports"])


def accepts_proxy_protocol(gateway_values: dict) -> bool:
    """On its traffic ports (`gatewayTopology`) and on the status port the load balancer
    health-checks (pilot-agent's ENVOY_STATUS_PORT_ENABLE_PROXY_PROTOCOL)."""
    config = json.loads(gateway_values["podAnnotations"]["proxy.istio.io/config"])
    return (
        config["gatewayTopology"]["proxyProtocol"] == {}
        and gateway_values.get("env", {}).get("ENVOY_STATUS_PORT_ENABLE_PROXY_PROTOCOL") == "true"
    )


@pytest.mark.parametrize("stack", STACKS)
def test_proxy_protocol_on_the_load_balancer_and_accepted_by_the_gateway(stack):
    """DigitalOcean sends the PROXY header on health checks too: a gateway that takes it on
    80/443 but not on its status port fails every health check (503 for all traffic)."""
    run = stack_run(stack)
    lb = one(run, LB)
    assert lb.inputs["enableProxyProtocol"] is True
    assert lb.inputs["healthcheck"]["port"] == STATUS_NODE_PORT
    behind = [
        r
        for r in run.of_type("kubernetes:helm.sh/v3:Release")
        if r.inputs["chart"] == "gateway" and r.inputs["namespace"] == mesh.INGRESS_NAMESPACE
    ]
    assert behind
    for r in behind:
        assert accepts_proxy_protocol(normalize(r.inputs["values"])), r.name


def test_a_gateway_canary_behind_the_load_balancer_accepts_proxy_protocol_too():
    cfg = load_cfg("production")
    canary = GatewayCanary(revision=cfg.istio.revision_tag, replicas=1)
    assert accepts_proxy_protocol(ingress_canary_values(ingress_gateway_values(cfg.istio), canary))


@pytest.mark.parametrize("stack", STACKS)
def test_load_balancer_does_not_depend_on_the_cluster(stack):
    run = stack_run(stack)
    lb = one(run, LB)
    waits_for = {run.by_urn(u).type for u in run.waits_for(lb)}
    # The VPC and the droplet tag it targets, both kept when the cluster is rebuilt.
    assert waits_for == {"digitalocean:index/vpc:Vpc", TAG}
    tag = run.one(TAG)
    assert tag.protect is (stack == "production")
    assert not [u for u in run.waits_for(tag)], "the tag waits for nothing"
    assert lb.provider is None  # the DigitalOcean provider, not the cluster's Kubernetes one
    services = run.of_type("kubernetes:core/v1:Service")  # e.g. istiod's revision-tag Services
    assert not [s for s in services if s.inputs["spec"].get("type") == "LoadBalancer"]
    for r in run.of_type("kubernetes:helm.sh/v3:Release"):
        assert (r.inputs["values"].get("service") or {}).get("type") != "LoadBalancer"


@pytest.mark.parametrize(
    ("stack", "protected", "size"),
    [("dev", False, 1), ("staging", False, 1), ("production", True, 2)],
)
def test_load_balancer_size_firewall_and_protection(stack, protected, size):
    run, cfg = stack_run(stack), load_cfg(stack)
    lb = one(run, LB)
    assert lb.protect is protected
    assert lb.inputs["sizeUnit"] == size
    assert lb.inputs["firewall"]["allows"] == [f"cidr:{c}" for c in cfg.ingress.source_ranges]


# --- DNS ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_a_record_per_host_points_at_the_load_balancer(stack):
    run, cfg = stack_run(stack), load_cfg(stack)
    lb = one(run, LB)
    records = mine(run, RECORD)
    assert cfg.ingress.hosts and cfg.ingress.domain
    assert len(records) == len(cfg.ingress.hosts)
    fqdns = set()
    for r in records:
        assert r.inputs["type"] == "A"
        assert lb.urn in r.dependencies
        assert r.inputs["value"] == _doc_ip(lb.name)  # the fake cloud's IP of that LB
        assert r.inputs["domain"] == cfg.ingress.domain
        name = r.inputs["name"]
        fqdns.add(cfg.ingress.domain if name == "@" else f"{name}.{cfg.ingress.domain}")
        assert r.protect is (stack == "production")
    assert fqdns == set(cfg.ingress.hosts)
    assert one(run, DOMAIN).inputs["name"] == cfg.ingress.domain


@pytest.mark.parametrize("stack", STACKS)
def test_the_zone_outlives_the_program_and_the_records_do_not(stack):
    """A zone may hold records Pulumi never made (mail, verification): deleting it would take
    them along. So the program's zone is only forgotten when `hosts` go or the stack is
    destroyed (retainOnDelete, recorded in the plan), while its own A records are deleted."""
    run = stack_run(stack)
    zone = one(run, DOMAIN)
    assert zone.retain_on_delete and zone.to_json()["retainOnDelete"] is True
    assert mine(run, RECORD) and not any(r.retain_on_delete for r in mine(run, RECORD))
    assert [r.name for r in run.resources if r.retain_on_delete] == [zone.name]


# --- TLS ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stack", "server"),
    [("dev", LE_STAGING), ("staging", LE_PRODUCTION), ("production", LE_PRODUCTION)],
)
def test_cluster_issuer_solves_dns01_through_digitalocean(stack, server):
    run, cfg = stack_run(stack), load_cfg(stack)
    issuer = one(run, ISSUER)
    acme = issuer.inputs["spec"]["acme"]
    assert acme["server"] == server
    assert acme["email"] == cfg.ingress.acme_email
    (solver,) = acme["solvers"]
    ref = solver["dns01"]["digitalocean"]["tokenSecretRef"]
    secret = one(run, SECRET)
    assert secret.inputs["metadata"] == {
        **secret.inputs["metadata"],
        "name": ref["name"],
        "namespace": mesh.CERT_MANAGER_NAMESPACE,
    }
    assert secret.inputs["stringData"] == "[secret]"
    assert secret.urn in issuer.dependencies
    assert release(run, "cert-manager").urn in issuer.dependencies


@pytest.mark.parametrize("stack", STACKS)
def test_dns_token_never_appears_in_plain_text(stack):
    run = stack_run(stack)
    recorded = json.dumps([r.to_json() for r in run.resources])
    token = [v for v in run.secret_values if "dnsApiToken" in v]
    assert token and not any(t in recorded for t in token)


@pytest.mark.parametrize("stack", STACKS)
def test_certificate_for_the_hosts_lives_where_the_gateway_reads_it(stack):
    run, cfg = stack_run(stack), load_cfg(stack)
    cert = one(run, CERTIFICATE)
    gateway = one(run, GATEWAY)
    issuer = one(run, ISSUER)
    spec = cert.inputs["spec"]
    assert cert.inputs["metadata"]["namespace"] == mesh.INGRESS_NAMESPACE
    assert spec["dnsNames"] == list(cfg.ingress.hosts)
    assert "duration" not in spec  # Let's Encrypt picks the lifetime; renewal at 2/3 of it
    assert spec["issuerRef"] == {
        "name": issuer.inputs["metadata"]["name"],
        "kind": "ClusterIssuer",
        "group": "cert-manager.io",
    }
    https = next(s for s in gateway.inputs["spec"]["servers"] if s["port"]["number"] == 443)
    assert https["tls"]["credentialName"] == spec["secretName"]
    assert {issuer.urn, release(run, "cert-manager").urn} <= set(cert.dependencies)


@pytest.mark.parametrize("stack", STACKS)
def test_public_gateway_redirects_http_and_serves_tls_1_2_or_newer(stack):
    run, cfg = stack_run(stack), load_cfg(stack)
    gateway = one(run, GATEWAY)
    meta, spec = gateway.inputs["metadata"], gateway.inputs["spec"]
    assert f"{meta['namespace']}/{meta['name']}" == PUBLIC_GATEWAY
    assert spec["selector"] == mesh.INGRESS_SELECTOR
    servers = {int(s["port"]["number"]): s for s in spec["servers"]}
    assert set(servers) == {80, 443}
    assert servers[80]["tls"] == {"httpsRedirect": True}
    assert servers[80]["port"]["protocol"] == "HTTP"
    tls = servers[443]["tls"]
    assert servers[443]["port"]["protocol"] == "HTTPS"
    assert tls["mode"] == "SIMPLE" and tls["minProtocolVersion"] in ("TLSV1_2", "TLSV1_3")
    for server in servers.values():
        assert server["hosts"] == list(cfg.ingress.hosts)
    crds_ready = {release(run, "istio-base").urn, release(run, f"istiod-{cfg.istio.revision}").urn}
    assert crds_ready <= set(gateway.dependencies)


@pytest.mark.parametrize("stack", STACKS)
def test_cert_manager_pinned_and_independent_of_istio(stack):
    run = stack_run(stack)
    cm = release(run, "cert-manager")
    assert cm.inputs["version"] == "v1.21.1"
    assert cm.inputs["repositoryOpts"]["repo"] == "https://charts.jetstack.io"
    assert cm.inputs["values"]["crds"] == {"enabled": True, "keep": True}
    istiod = release(run, f"istiod-{load_cfg(stack).istio.revision}")
    istio = {release(run, "istio-base").urn, istiod.urn}
    assert not istio & run.waits_for(cm)


@pytest.mark.parametrize("stack", STACKS)
def test_dns01_is_checked_at_the_authoritative_nameservers(stack):
    """The public resolvers only find the zone: checking the TXT record through them alone
    waits out the negative answer they cached when the solver first looked it up."""
    v = release(stack_run(stack), "cert-manager").inputs["values"]
    assert v["dns01RecursiveNameservers"] == "1.1.1.1:53,8.8.8.8:53"
    assert v.get("dns01RecursiveNameserversOnly", False) is False


@pytest.mark.parametrize(("stack", "replicas"), [("dev", 1), ("staging", 2), ("production", 2)])
def test_cert_manager_runs_on_the_workload_pool_spread_with_a_budget(stack, replicas):
    """Off the tainted system pool (reserved for istiod), spread across nodes by the labels the
    v1.21.1 chart gives its pods, and a budget that always allows one eviction."""
    v = release(stack_run(stack), "cert-manager").inputs["values"]
    assert v["global"]["nodeSelector"] == WORKLOAD_POOL_LABEL
    assert "tolerations" not in v and "tolerations" not in v["webhook"]
    for part, name, component in (
        (v, "cert-manager", "controller"),
        (v["webhook"], "webhook", "webhook"),
    ):
        assert part["replicaCount"] == replicas
        (tsc,) = part["topologySpreadConstraints"]
        assert tsc["topologyKey"] == "kubernetes.io/hostname"
        assert tsc["labelSelector"]["matchLabels"] == {
            "app.kubernetes.io/name": name,
            "app.kubernetes.io/instance": "cert-manager",
            "app.kubernetes.io/component": component,
        }
        if replicas > 1:
            assert part["podDisruptionBudget"] == {"enabled": True, "maxUnavailable": 1}
        else:
            assert "podDisruptionBudget" not in part


# --- schemas --------------------------------------------------------------------------------------


def with_secret(obj: dict[str, Any]) -> dict[str, Any]:
    """Recorded Secrets have their data masked; validate the shape with a stand-in value."""
    if obj.get("kind") == "Secret" and obj.get("stringData") == "[secret]":
        return {**obj, "stringData": dns_token_secret("stand-in")["stringData"]}
    return obj


@pytest.mark.parametrize("stack", STACKS)
def test_every_manifest_of_the_ingress_layer_matches_its_schema(stack):
    run = stack_run(stack)
    checked = set()
    for r in run.children(edge(run)):
        if not r.type.startswith("kubernetes:") or "helm.sh" in r.type:
            continue
        obj = with_secret(r.inputs)
        if ".istio.io/" in r.type:
            validate_istio(obj)
        elif "cert-manager.io/" in r.type:
            validate_crd(obj)
        else:
            validate_k8s(obj)
        checked.add(r.type)
    assert checked == {SECRET, ISSUER, CERTIFICATE, GATEWAY}


def test_cert_manager_schema_rejects_unknown_fields():
    cfg = load_cfg("production")
    from components.edge.tls import cluster_issuer, ingress_certificate

    cert = ingress_certificate(cfg.ingress)
    cert["spec"]["dnsName"] = ["typo.example.com"]
    with pytest.raises(AssertionError, match="dnsName"):
        validate_crd(cert)
    issuer = cluster_issuer(cfg.ingress)
    del issuer["spec"]["acme"]["privateKeySecretRef"]
    with pytest.raises(AssertionError, match="privateKeySecretRef"):
        validate_crd(issuer)


# --- bad config -----------------------------------------------------------------------------------


def refused(tmp_path, stack: str, patch: dict[str, Any], top: dict[str, Any] | None = None):
    config = stack_config(stack)
    config["service-mesh:ingress"] = {**config["service-mesh:ingress"], **patch}
    config.update(top or {})
    run = run_config(tmp_path, stack, config)
    assert isinstance(run.error, ConfigError), run.error
    assert run.resources == []
    return {p.key: p for p in run.error.problems}


@pytest.mark.parametrize(
    "host",
    [
        "https://shop.example.com",
        "Shop.example.com",
        "*.example.com",
        "shop",
        "shop.example.com:443",
    ],
)
def test_bad_host_format_is_refused(tmp_path, host):
    problems = refused(tmp_path, "production", {"hosts": [host]})
    assert list(problems) == ["ingress.hosts"]
    assert host in problems["ingress.hosts"].allowed


def test_host_outside_the_zone_is_refused(tmp_path):
    problems = refused(tmp_path, "production", {"hosts": ["shop.example.org"]})
    assert list(problems) == ["ingress.hosts[0]"]


@pytest.mark.parametrize("cidr", ["not-a-cidr", "10.0.0.1/8", "300.1.1.0/24"])
def test_source_ranges_must_be_cidrs(tmp_path, cidr):
    problems = refused(tmp_path, "production", {"sourceRanges": ["203.0.113.0/24", cidr]})
    assert list(problems) == ["ingress.sourceRanges[1]"]


def test_production_refuses_the_staging_acme_endpoint_and_unprotected_edge(tmp_path):
    problems = refused(tmp_path, "production", {"acmeServer": "staging", "protect": False})
    assert set(problems) == {"ingress.acmeServer", "ingress.protect"}


def test_hosts_need_the_dns_token(tmp_path):
    config = stack_config("staging")
    del config["service-mesh:dnsApiToken"]
    run = run_config(tmp_path, "staging", config)
    assert isinstance(run.error, ConfigError)
    assert [p.key for p in run.error.problems] == ["dnsApiToken"]
    assert run.resources == []


def test_dns_token_in_plain_text_is_refused(tmp_path):
    config = stack_config("dev")
    config["service-mesh:dnsApiToken"] = "dop_v1_plaintext"
    run = run_config(tmp_path, "dev", config)
    assert isinstance(run.error, ConfigError)
    assert "dop_v1_plaintext" not in str(run.error)
    assert run.resources == []
