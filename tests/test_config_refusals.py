"""Dangerous input the program used to accept silently, and messages that used to speak
pydantic: each refusal names `service-mesh:<key> = <value>: <what is allowed>` and registers
nothing (issue 9, items 15 and 16)."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from components import config
from components.base import stacks
from components.base.model import MAX_SHOWN, MISSING, ConfigError
from components.cluster import catalog
from components.cluster.config import KUBERNETES_MINORS, ClusterConfig
from tests.conftest import STACKS, run_config, stack_config
from tests.test_config import committed, mutate


def refused(tmp_path: Path, stack: str, cfg: dict[str, Any]) -> str:
    """Run the real program on `cfg`; it must fail on config, registering nothing."""
    run = run_config(tmp_path, stack, cfg)
    assert isinstance(run.error, ConfigError), run.error
    assert run.resources == [], "no resource may be registered when config is invalid"
    return str(run.error)


def line_of(message: str, key: str) -> str:
    """The one line of a ConfigError that reports `key` (`ns:key = ...`)."""
    (line,) = [x for x in message.splitlines() if x.strip().startswith(f"- {key} = ")]
    return line


def parse_refusal(raw: dict[str, Any], secrets: frozenset[str]) -> ConfigError:
    with pytest.raises(ConfigError) as error:
        config.parse(raw, secrets)
    return error.value


# --- 15: a key under a mistyped namespace --------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "meant"),
    [
        ("servicemesh:slos", {"objectives": []}, "service-mesh:slos"),
        ("service_mesh:cluster", {"region": "ams3"}, "service-mesh:cluster"),
        ("Service-Mesh:ingress", {"protect": True}, "service-mesh:ingress"),
        ("digitalocaen:token", "dop_v1_x", "digitalocean:token"),
    ],
)
def test_a_key_under_a_mistyped_namespace_is_refused(tmp_path, key, value, meant):
    message = refused(tmp_path, "dev", {**stack_config("dev"), key: value})
    line = line_of(message, key)
    assert "unknown config namespace" in line
    assert f"did you mean `{meant}`?" in line
    assert "service-mesh, digitalocean, kubernetes, pulumi, tls, random" in line


def test_a_mistyped_secret_is_refused_without_showing_it(tmp_path):
    cfg = {**stack_config("dev"), "servicemesh:dnsApiToken": {"secure": "v1:abc:def"}}
    message = refused(tmp_path, "dev", cfg)
    line = line_of(message, "servicemesh:dnsApiToken")
    assert "'[not shown]'" in line and "service-mesh:dnsApiToken" in line
    assert "offline-placeholder" not in message and "v1:abc" not in message


def test_our_own_and_the_providers_namespaces_are_accepted():
    values = {
        "service-mesh:environment": "dev",
        "digitalocean:token": "x",
        "kubernetes:context": "x",
        "pulumi:tags": "{}",
        "tls:proxy": "{}",
        "random:x": "1",
    }
    assert stacks.namespace_problems(values) == []
    (problem,) = stacks.namespace_problems({**values, "mesh:cluster": '{"region": "fra1"}'})
    assert (problem.namespace, problem.key, problem.value) == (
        "mesh",
        "cluster",
        {"region": "fra1"},
    )
    assert str(problem).startswith("mesh:cluster = {'region': 'fra1'}: unknown config namespace")


def test_a_mistyped_namespace_is_reported_with_the_other_problems(tmp_path):
    """The typo explains the rest: `servicemesh:environment` leaves the environment missing."""
    cfg = stack_config("dev")
    cfg["servicemesh:environment"] = cfg.pop("service-mesh:environment")
    message = refused(tmp_path, "dev", cfg)
    assert "servicemesh:environment = 'dev': unknown config namespace" in message
    assert "service-mesh:environment = <missing>: required key is missing" in message


# --- 15: regions, sizes and Kubernetes versions that do not exist --------------------------------

CATALOG_REFUSALS = [
    ("cluster.region", "fra9", "did you mean 'fra1'?", "ams3, atl1, blr1, fra1"),
    ("cluster.region", "nyc2", "where DOKS runs", "nyc1, nyc3"),
    ("cluster.workloadPool.size", "s-4vcpu-8g", "did you mean 's-4vcpu-8gb'?", "sizes pinned"),
    ("cluster.systemPool.size", "s-1vcpu-1gb", "size slug DOKS offers", "catalog.py"),
    ("cluster.kubernetesVersionPrefix", "1.99", "not a Kubernetes minor DOKS offers", "1.34"),
    ("cluster.kubernetesVersionPrefix", "1.31", "Istio 1.30 needs Kubernetes 1.32", "1.34"),
    ("observability.logs.spacesRegion", "nyc1", "with Spaces (did you mean 'nyc3'?)", "fra1"),
    ("observability.logs.spacesRegion", "fra9", "with Spaces", "ams3, atl1"),
]


@pytest.mark.parametrize(("path", "value", "why", "allowed"), CATALOG_REFUSALS)
def test_a_slug_digitalocean_does_not_offer_is_refused(tmp_path, path, value, why, allowed):
    message = refused(tmp_path, "production", mutate(stack_config("production"), path, value))
    line = line_of(message, f"service-mesh:{path}")
    assert f"= {value!r}: " in line and why in line and allowed in line


def test_the_offered_kubernetes_minors_are_listed():
    message = refused_parse_version("1.99")
    assert f"use one of: {', '.join(KUBERNETES_MINORS)}" in message
    assert KUBERNETES_MINORS == ("1.33", "1.34", "1.35", "1.36")


def refused_parse_version(version: str) -> str:
    raw = {"environment": "dev", "cluster": {"region": "fra1", "kubernetesVersionPrefix": version}}
    return str(parse_refusal(raw, frozenset()))


def test_a_cluster_region_without_spaces_needs_a_log_bucket_region(tmp_path):
    """Production keeps logs in Spaces, by default in the cluster's region: nyc1 runs DOKS but
    has no Spaces, so the bucket's region must be stated."""
    cfg = mutate(stack_config("production"), "cluster.region", "nyc1")
    message = refused(tmp_path, "production", cfg)
    line = line_of(message, "service-mesh:observability.logs.spacesRegion")
    assert (
        "= <missing>: is required with storage 'spaces'" in line and "'nyc1' has no Spaces" in line
    )
    ok = mutate(cfg, "observability.logs.spacesRegion", "nyc3")
    assert run_config(tmp_path, "production", ok).error is None


def test_every_default_and_committed_slug_is_in_the_catalog():
    """The catalog cannot refuse what the profiles and stacks already use."""
    for tier, prof in ClusterConfig.PROFILES.items():
        for pool in ("systemPool", "workloadPool"):
            assert prof.defaults[pool]["size"] in catalog.DROPLET_SIZES, (tier, pool)
        assert prof.defaults["kubernetesVersionPrefix"] in KUBERNETES_MINORS, tier
    for stack in STACKS:
        cfg = config.parse(*committed(stack))
        assert cfg.cluster.region in catalog.DOKS_REGIONS
        assert (cfg.observability.logs.spaces_region or cfg.cluster.region) in (
            catalog.SPACES_REGIONS
        )
    assert set(catalog.SPACES_REGIONS) - set(catalog.DOKS_REGIONS) == set()
    assert all(re.fullmatch(r"[a-z0-9_]+(-[a-z0-9]+)+", s) for s in catalog.DROPLET_SIZES)


# --- 15: two stacks with one name ----------------------------------------------------------------


def test_the_committed_stacks_have_distinct_names():
    configs = {stack: stack_config(stack) for stack in STACKS}
    assert stacks.name_collisions(configs, config.default_names()) == []
    assert {stacks.derived_name(c, config.default_names()) for c in configs.values()} == {
        "mesh-dev",
        "mesh-staging",
        "mesh-production",
    }


def test_stacks_sharing_a_name_are_reported_by_name_and_file():
    """Staging named like production, and a second production stack left at the default name:
    both would target production's droplet tag."""
    configs = {
        "production": {"service-mesh:environment": "production"},
        "production-eu": {"service-mesh:environment": "production"},
        "staging": {"service-mesh:environment": "staging", "service-mesh:name": "mesh-dev"},
        "dev": {"service-mesh:environment": "dev"},
    }
    problems = stacks.name_collisions(configs, config.default_names())
    assert [(p.key, p.value) for p in problems] == [
        ("name", "mesh-production"),
        ("name", "mesh-dev"),
    ]
    text = str(problems[0])
    assert text.startswith("service-mesh:name = 'mesh-production': is the name of ")
    assert "Pulumi.production.yaml" in text and "Pulumi.production-eu.yaml" in text
    assert "droplet tag" in text and "service-mesh:name" in text


def test_the_program_refuses_a_name_another_stack_file_uses(tmp_path):
    """Through `load()`: it reads the sibling stack files beside Pulumi.yaml."""
    cfg = {**stack_config("staging"), "service-mesh:name": "mesh-production"}
    message = refused(tmp_path, "staging", cfg)
    line = line_of(message, "service-mesh:name")
    assert "= 'mesh-production': is also the name of 'production' (Pulumi.production.yaml)" in line
    # Its own stack file is not a sibling: production keeps its name.
    assert run_config(tmp_path, "production", stack_config("production")).error is None


def test_sibling_names_reads_the_stack_config_dir_and_skips_unreadable_files(tmp_path):
    (tmp_path / "Pulumi.yaml").write_text("name: x\nruntime: python\nstackConfigDir: stacks\n")
    folder = tmp_path / "stacks"
    folder.mkdir()
    for stack, body in {
        "a": {"config": {"service-mesh:environment": "staging"}},
        "b": {"config": {"service-mesh:environment": "dev", "service-mesh:name": "mesh-b"}},
        "c": {"config": {"service-mesh:environment": "nowhere"}},
    }.items():
        (folder / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(body))
    (folder / "Pulumi.broken.yaml").write_text("config: [unclosed\n")
    (tmp_path / "Pulumi.ignored.yaml").write_text("config: {service-mesh:name: mesh-x}\n")
    names = stacks.sibling_names("b", tmp_path, config.default_names())
    assert names == {"a": "mesh-staging"}
    assert stacks.sibling_names("a", tmp_path / "missing", config.default_names()) == {}


def test_parse_refuses_a_name_from_other_stacks_with_the_other_problems():
    raw, secrets = committed("staging")
    raw["name"] = "mesh-production"
    raw["cluster"] = {"region": "fra9"}
    with pytest.raises(ConfigError) as error:
        config.parse(raw, secrets, {"production": "mesh-production", "dev": "mesh-dev"})
    keys = [p.key for p in error.value.problems]
    assert keys == ["cluster.region", "name"]


# --- 15: production's Kubernetes API open to the internet ----------------------------------------


def test_production_refuses_an_empty_control_plane_allow_list(tmp_path):
    cfg = mutate(stack_config("production"), "cluster.controlPlaneAllowList", [])
    message = refused(tmp_path, "production", cfg)
    line = line_of(message, "service-mesh:cluster.controlPlaneAllowList")
    assert "= []: must list the CIDRs that may reach the Kubernetes API in production" in line
    assert "open to the internet" in line and "cluster.publicControlPlane: {reason:" in line


def test_an_open_production_api_is_accepted_when_acknowledged(tmp_path):
    cfg = mutate(stack_config("production"), "cluster.controlPlaneAllowList", [])
    cfg = mutate(
        cfg, "cluster.publicControlPlane", {"reason": "CI runs from GitHub-hosted runners"}
    )
    run = run_config(tmp_path, "production", cfg)
    assert run.error is None, run.error
    cluster = run.one("digitalocean:index/kubernetesCluster:KubernetesCluster")
    # Turned off explicitly: left out, the provider keeps the firewall it last read.
    assert cluster.inputs["controlPlaneFirewall"] == {"enabled": False, "allowedAddresses": []}


@pytest.mark.parametrize(
    ("allow_list", "waiver", "key", "words"),
    [
        (["198.51.100.0/24"], {"reason": "a stale acknowledgement"}, "publicControlPlane", "stale"),
        ([], {"reason": "because"}, "publicControlPlane.reason", "must state why"),
        ([], {}, "publicControlPlane.reason", "required key is missing"),
    ],
)
def test_a_stale_or_empty_acknowledgement_is_refused(tmp_path, allow_list, waiver, key, words):
    cfg = mutate(stack_config("production"), "cluster.controlPlaneAllowList", allow_list)
    cfg = mutate(cfg, "cluster.publicControlPlane", waiver)
    message = refused(tmp_path, "production", cfg)
    assert words in line_of(message, f"service-mesh:cluster.{key}")


def test_the_allow_list_rule_is_tier_data():
    rules = {tier: p.rules.control_plane_allow_list for tier, p in ClusterConfig.PROFILES.items()}
    assert rules == {"dev": False, "staging": False, "production": True}
    assert config.parse(*committed("production")).cluster.control_plane_allow_list


# --- 15: one port twice, one identity for two services -------------------------------------------


def with_services(stack: str, edit) -> dict[str, Any]:
    cfg = copy.deepcopy(stack_config(stack))
    edit(cfg["service-mesh:services"])
    return cfg


GRAPH_REFUSALS = [
    (
        lambda s: s[0]["ports"].append({"name": "admin", "port": 8080}),
        "services[0].ports[1].port",
        "= 8080: is already declared by services[0].ports[0] of 'frontend'",
    ),
    (
        lambda s: s[0]["ports"].append({"name": "http", "port": 9000}),
        "services[0].ports[1].name",
        "= 'http': is already declared by services[0].ports[0] of 'frontend'",
    ),
    (
        lambda s: s[1].update(serviceAccount="frontend"),
        "services[1].serviceAccount",
        "= 'frontend': is already the service account of 'frontend' in namespace 'shop'",
    ),
]


@pytest.mark.parametrize(
    ("edit", "key", "words"), GRAPH_REFUSALS, ids=[g[1] for g in GRAPH_REFUSALS]
)
def test_graph_ambiguities_are_refused(tmp_path, edit, key, words):
    message = refused(tmp_path, "dev", with_services("dev", edit))
    assert words in line_of(message, f"service-mesh:{key}")


def test_one_service_account_name_in_two_namespaces_is_two_identities():
    raw, secrets = committed("dev")
    raw["meshNamespaces"] = [{"name": "shop"}, {"name": "ops"}]
    services = [
        {
            "name": n,
            "namespace": ns,
            "serviceAccount": "app",
            "ports": [{"name": "tcp", "port": 5432, "protocol": "tcp"}],
        }
        for n, ns in (("a", "shop"), ("b", "ops"))
    ]
    raw["services"] = services
    raw.pop("slos", None)
    assert len(config.parse(raw, secrets).services) == 2


# --- 16: messages in the stack file's words ------------------------------------------------------


@pytest.mark.parametrize(
    ("present", "missing"),
    [("meshCaRootCert", "meshCaRootKey"), ("meshCaRootKey", "meshCaRootCert")],
)
def test_half_a_mesh_ca_root_names_the_half_that_is_missing(present, missing):
    raw, secrets = committed("dev")
    raw.pop(missing)
    error = parse_refusal(raw, secrets - {missing})
    (problem,) = error.problems
    assert (problem.key, problem.value) == (missing, MISSING)
    assert f"service-mesh:{missing} = <missing>: is required because {present} is set" in str(error)
    assert "python -m tools.mesh_ca" in str(error)


def test_production_without_a_root_names_both_keys():
    raw, secrets = committed("production")
    del raw["meshCaRootCert"], raw["meshCaRootKey"]
    error = parse_refusal(raw, secrets)
    assert [p.key for p in error.problems] == ["meshCaRootCert", "meshCaRootKey"]
    assert "is required in production" in str(error)


def test_an_unquoted_version_is_told_to_be_quoted(tmp_path):
    """`kubernetesVersionPrefix: 1.30` is the YAML float 1.3."""
    unquoted = yaml.safe_load("kubernetesVersionPrefix: 1.30")["kubernetesVersionPrefix"]
    cfg = mutate(stack_config("dev"), "cluster.kubernetesVersionPrefix", unquoted)
    message = refused(tmp_path, "dev", cfg)
    line = line_of(message, "service-mesh:cluster.kubernetesVersionPrefix")
    assert "= 1.3: must be a string: YAML read the unquoted 1.3 as a number" in line
    assert 'write it quoted, "1.3" (or "1.30"' in line


PLAIN_WORDS = [
    (
        "services",
        [{"name": "a", "namespace": "shop", "serviceAccount": "a", "ports": []}],
        "services[0].ports",
        "= []: must list at least 1 item",
    ),
    (
        "meshNamespaces",
        ["shop"],
        "meshNamespaces[0]",
        "= 'shop': must be a mapping with keys: mtls, name, permissiveException",
    ),
    (
        "cluster.systemPool.nodeCount",
        1.5,
        "cluster.systemPool.nodeCount",
        "= 1.5: must be a whole number",
    ),
    (
        "cluster.maintenanceWindow",
        "sunday",
        "cluster.maintenanceWindow",
        "= 'sunday': must be a mapping with keys: day, startTime",
    ),
    ("cluster.ha", "maybe", "cluster.ha", "= 'maybe': must be true or false"),
]
LEAKS = ("Tuple", "instance of", "fractional", "Input should", "dictionary", "valid ")


@pytest.mark.parametrize(
    ("path", "value", "key", "words"), PLAIN_WORDS, ids=[w[2] for w in PLAIN_WORDS]
)
def test_type_errors_are_said_in_plain_words(tmp_path, path, value, key, words):
    message = refused(tmp_path, "dev", mutate(stack_config("dev"), path, value))
    line = line_of(message, f"service-mesh:{key}")
    assert words in line
    assert not [leak for leak in LEAKS if leak in line], line


def test_a_missing_value_is_shown_as_missing_not_none(tmp_path):
    cfg = copy.deepcopy(stack_config("dev"))
    del cfg["service-mesh:ingress"]["acmeEmail"]
    message = refused(tmp_path, "dev", cfg)
    assert "service-mesh:ingress.acmeEmail = <missing>: is required" in message
    raw, secrets = committed("dev")
    raw.pop("dnsApiToken")
    error = str(parse_refusal(raw, secrets - {"dnsApiToken"}))
    assert "service-mesh:dnsApiToken = <missing>: is required" in error
    assert "None" not in error


def test_a_long_bad_value_is_cut_to_the_limit(tmp_path):
    huge = {"name": "shop" * 100, "mtls": "strict"}
    message = refused(tmp_path, "dev", {**stack_config("dev"), "service-mesh:meshNamespaces": huge})
    line = line_of(message, "service-mesh:meshNamespaces")
    shown = line.split(" = ", 1)[1].rsplit(": must be a list", 1)[0]
    assert len(shown) == MAX_SHOWN == 80 and shown.endswith("…")


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [("maxNodes", 500, False), ("minNodes", 0, True)],
)
def test_a_bound_states_the_reason_only_for_its_own_side(tmp_path, field, value, reason):
    cfg = mutate(stack_config("production"), f"cluster.workloadPool.{field}", value)
    message = refused(tmp_path, "production", cfg)
    line = line_of(message, f"service-mesh:cluster.workloadPool.{field}")
    assert f"= {value}: must be between 1 and 100" in line
    assert ("DOKS autoscaling needs at least 1 node" in line) is reason
