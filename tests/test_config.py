"""Typed configuration: profiles per environment, and bad input refused with the key named,
before any resource is registered."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components import config
from components.base.model import ConfigError
from components.cluster.catalog import DOKS_REGIONS
from tests.conftest import STACKS, run_config, stack_config, write_stack_file
from tests.forked import run_module
from tools.engine import read_stack_config, stack_file

DELETE = object()


def mutate(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """Set (or delete) `service-mesh:a.b.c` inside a stack's config map."""
    cfg = copy.deepcopy(base)
    top, *rest = path.split(".")
    key = f"service-mesh:{top}"
    if not rest:
        if value is DELETE:
            cfg.pop(key, None)
        else:
            cfg[key] = value
        return cfg
    node = cfg.setdefault(key, {})
    for part in rest[:-1]:
        node = node.setdefault(part, {})
    if value is DELETE:
        node.pop(rest[-1], None)
    else:
        node[rest[-1]] = value
    return cfg


# (stack, key path to change, bad value, key the message must name, words it must contain)
BAD_INPUTS = [
    ("dev", "environment", DELETE, "service-mesh:environment", "required"),
    ("dev", "environment", "prod", "service-mesh:environment", "dev, staging, production"),
    ("dev", "environment", 3, "service-mesh:environment", "must be one of"),
    ("dev", "clusterr", {"region": "fra1"}, "service-mesh:clusterr", "unknown key"),
    ("dev", "cluster.bogus", 1, "service-mesh:cluster.bogus", "allowed keys here"),
    ("dev", "cluster.region", "Frankfurt", "service-mesh:cluster.region", "region slug"),
    ("dev", "cluster.region", DELETE, "service-mesh:cluster.region", "required key is missing"),
    ("dev", "cluster.region", 42, "service-mesh:cluster.region", "string"),
    ("dev", "cluster.kubernetesVersionPrefix", "1.29", "kubernetesVersionPrefix", "1.32"),
    ("dev", "cluster.kubernetesVersionPrefix", "latest", "kubernetesVersionPrefix", "1.N"),
    ("dev", "cluster.vpcCidr", "8.8.8.0/24", "service-mesh:cluster.vpcCidr", "RFC 1918"),
    ("dev", "cluster.vpcCidr", "10.0.0.0/8", "service-mesh:cluster.vpcCidr", "/16 and /24"),
    ("dev", "cluster.vpcCidr", "10.0.0.1/24", "service-mesh:cluster.vpcCidr", "host bits"),
    ("dev", "cluster.vpcCidr", "not-a-cidr", "service-mesh:cluster.vpcCidr", "CIDR"),
    ("dev", "cluster.systemPool.nodeCount", 0, "cluster.systemPool.nodeCount", "between 1 and 10"),
    ("dev", "cluster.systemPool.nodeCount", 11, "cluster.systemPool.nodeCount", "between 1"),
    ("dev", "cluster.systemPool.nodeCount", "three", "cluster.systemPool.nodeCount", "integer"),
    ("dev", "cluster.systemPool.size", "huge", "cluster.systemPool.size", "size slug"),
    ("dev", "cluster.workloadPool.minNodes", 0, "cluster.workloadPool.minNodes", "at least 1"),
    ("dev", "cluster.workloadPool.maxNodes", 101, "cluster.workloadPool.maxNodes", "100"),
    (
        "dev",
        "cluster.workloadPool",
        {"minNodes": 4, "maxNodes": 2},
        "cluster.workloadPool",
        "minNodes (4)",
    ),
    ("dev", "cluster.maintenanceWindow.day", "someday", "maintenanceWindow.day", "'sunday'"),
    ("dev", "cluster.maintenanceWindow.startTime", "25:00", "maintenanceWindow.startTime", "HH:MM"),
    ("dev", "cluster.controlPlaneAllowList", ["10.0.0.0/33"], "controlPlaneAllowList[0]", "CIDR"),
    (
        "dev",
        "cluster.controlPlaneAllowList",
        "1.2.3.4/32",
        "controlPlaneAllowList",
        "must be a list",
    ),
    ("dev", "name", "Mesh_Prod", "service-mesh:name", "DNS label"),
    ("production", "cluster.ha", False, "service-mesh:cluster.ha", "must be true in production"),
    ("staging", "cluster.ha", False, "service-mesh:cluster.ha", "must be true in staging"),
    ("production", "cluster.systemPool.nodeCount", 2, "cluster.systemPool.nodeCount", "at least 3"),
    ("production", "cluster.protect", False, "service-mesh:cluster.protect", "protected"),
    ("dev", "meshNamespaces", [{"name": "kube-system"}], "meshNamespaces[0].name", "reserved"),
    ("dev", "meshNamespaces", [{"name": "a"}, {"name": "a"}], "meshNamespaces[1].name", "twice"),
    ("dev", "meshNamespaces", [{"name": "a", "mtls": "off"}], "meshNamespaces[0].mtls", "'strict'"),
    (
        "production",
        "meshNamespaces",
        [{"name": "legacy", "mtls": "permissive"}],
        "meshNamespaces[0].mtls",
        "permissiveException",
    ),
    # One at least per section and per environment, so none is checked by nothing.
    (
        "production",
        "istio.istiod.minReplicas",
        1,
        "service-mesh:istio.istiod.minReplicas",
        "at least 3 in production",
    ),
    ("dev", "ingress.sizeUnit", 0, "service-mesh:ingress.sizeUnit", "between 1 and 100"),
    (
        "production",
        "observability.tracing.samplingPercentage",
        50,
        "service-mesh:observability.tracing.samplingPercentage",
        "at most 10 in production",
    ),
    (
        "production",
        "observability.logs.protect",
        False,
        "service-mesh:observability.logs.protect",
        "log bucket holds state",
    ),
    (
        "staging",
        "security.outboundTrafficPolicy",
        "ALLOW_ANY",
        "service-mesh:security.outboundTrafficPolicy",
        "ALLOW_ANY is dev-only",
    ),
    ("dev", "slos.window", "28d", "service-mesh:slos.window", "must be one of '30d'"),
    (
        "dev",
        "traffic.resilience.retries.perTryTimeout",
        "20s",
        "service-mesh:traffic.resilience.retries.perTryTimeout",
        "more than the timeout 30s",
    ),
]


@pytest.mark.parametrize(
    "stack,path,value,key,words", BAD_INPUTS, ids=[f"{b[0]}:{b[1]}={b[2]!r}" for b in BAD_INPUTS]
)
def test_bad_input_is_refused_with_key_and_nothing_registered(
    tmp_path, stack, path, value, key, words
):
    run = run_config(tmp_path, stack, mutate(stack_config(stack), path, value))
    assert isinstance(run.error, ConfigError), run.error
    message = str(run.error)
    assert key in message
    assert words in message
    assert run.resources == [], "no resource may be registered when config is invalid"


def test_every_config_section_and_environment_has_refused_inputs_in_the_table():
    """A new section (or environment) without a bad input above would be checked by nothing."""
    refused_keys = {b[3].removeprefix("service-mesh:").split(".")[0] for b in BAD_INPUTS}
    assert set(config.SECTIONS) <= refused_keys, set(config.SECTIONS) - refused_keys
    assert {b[0] for b in BAD_INPUTS} == set(config.ENVIRONMENTS)


def committed(stack: str) -> tuple[dict[str, Any], frozenset[str]]:
    """A committed stack file as `config.parse` takes it, with its secrets as the offline
    engine supplies them (marked placeholders)."""
    values, secret_keys, _ = read_stack_config(stack_file(stack))
    prefix = "service-mesh:"
    raw = {k.removeprefix(prefix): v for k, v in values.items() if k.startswith(prefix)}
    return raw, frozenset(k.removeprefix(prefix) for k in secret_keys)


@pytest.mark.parametrize("stack", STACKS)
def test_committed_stack_files_are_valid_and_state_their_environment(stack):
    raw, secrets = committed(stack)
    assert config.parse(raw, secrets).environment == stack


def test_profiles_differ_where_environments_should():
    dev, staging, prod = (config.parse(*committed(e)) for e in STACKS)
    assert (dev.cluster.ha, staging.cluster.ha, prod.cluster.ha) == (False, True, True)
    assert prod.cluster.system_pool.node_count >= 3
    assert prod.cluster.protect and not dev.cluster.protect
    assert dev.cluster.workload_pool.max_nodes < prod.cluster.workload_pool.max_nodes


def test_stack_file_overrides_only_what_it_states():
    raw, secrets = committed("production")
    raw["cluster"] = {
        "region": "ams3",
        "workloadPool": {"maxNodes": 40},
        "controlPlaneAllowList": ["198.51.100.0/24"],
    }
    cfg = config.parse(raw, secrets)
    assert cfg.cluster.workload_pool.max_nodes == 40
    assert cfg.cluster.workload_pool.min_nodes == 3  # still the production profile's
    assert cfg.cluster.region == "ams3"


def test_config_is_frozen():
    cfg = config.parse({"environment": "dev", "cluster": {"region": "fra1"}})
    with pytest.raises(Exception, match="frozen"):
        cfg.cluster.ha = True  # type: ignore[misc]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    field=st.sampled_from(["minNodes", "maxNodes"]),
    count=st.one_of(st.integers(max_value=0), st.integers(min_value=101, max_value=10**9)),
)
def test_generated_out_of_range_node_counts_are_refused_before_any_resource(tmp_path, field, count):
    """Through the real program: the message names key and value, and nothing registers."""
    bad = mutate(stack_config("production"), f"cluster.workloadPool.{field}", count)
    run = run_config(tmp_path, "production", bad)
    assert isinstance(run.error, ConfigError), run.error
    assert f"service-mesh:cluster.workloadPool.{field} = {count!r}" in str(run.error)
    assert run.resources == []


@settings(max_examples=40, deadline=None)
@given(
    region=st.one_of(
        st.text(min_size=1, max_size=8),
        st.from_regex(r"\A[a-z]{3}[0-9]\Z"),  # shaped like a slug, but not a DOKS region
    ).filter(lambda s: s not in DOKS_REGIONS)
)
def test_generated_bad_region_slugs_are_refused(region):
    with pytest.raises(ConfigError) as error:
        config.parse({"environment": "dev", "cluster": {"region": region}})
    assert "service-mesh:cluster.region" in str(error.value)


@settings(max_examples=40, deadline=None)
@given(
    ip=st.ip_addresses(v=4).map(str),
    prefix=st.integers(min_value=0, max_value=32),
)
def test_generated_vpc_cidrs_outside_rfc1918_16_to_24_are_refused(ip, prefix):
    import ipaddress

    cidr = f"{ip}/{prefix}"
    try:
        net = ipaddress.IPv4Network(cidr, strict=True)
        private = any(
            net.subnet_of(ipaddress.IPv4Network(b))
            for b in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
        )
        acceptable = private and 16 <= prefix <= 24
    except ValueError:
        acceptable = False
    raw = {"environment": "dev", "cluster": {"region": "fra1", "vpcCidr": cidr}}
    if acceptable:
        assert config.parse(raw).cluster.vpc_cidr == cidr
    else:
        with pytest.raises(ConfigError, match=r"service-mesh:cluster\.vpcCidr"):
            config.parse(raw)


def test_error_names_value_and_allowed():
    with pytest.raises(ConfigError) as error:
        config.parse(
            {"environment": "dev", "cluster": {"region": "fra1", "systemPool": {"nodeCount": 0}}}
        )
    (problem,) = error.value.problems
    assert problem.key == "cluster.systemPool.nodeCount"
    assert problem.value == 0
    assert "between 1 and 10" in problem.allowed


def test_plan_tool_exits_2_with_message_and_no_traceback(tmp_path):
    bad = mutate(stack_config("production"), "cluster.workloadPool.maxNodes", 0)
    path = write_stack_file(tmp_path, bad)
    proc = run_module(
        "tools.plan", "production", "--stack-file", path, "--out", tmp_path / "out", timeout=120
    )
    assert proc.returncode == 2
    assert "service-mesh:cluster.workloadPool.maxNodes = 0" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not (tmp_path / "out").exists()


def test_config_error_reaches_pulumi_as_a_run_error(tmp_path):
    """`pulumi up` prints a RunError's message without the program's traceback: the program's
    own `load()` raises the user's mistake as one (the pure `ConfigError` is not Pulumi's)."""
    import pulumi

    bad = {**stack_config("dev"), "service-mesh:cluster": {"workloadPool": {"maxNodes": 0}}}
    run = run_config(tmp_path, "dev", bad)
    assert isinstance(run.error, pulumi.RunError) and isinstance(run.error, ConfigError)
    assert "service-mesh:cluster.workloadPool" in str(run.error)
