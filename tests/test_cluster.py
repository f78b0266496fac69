"""The DoksCluster component per environment, read from the recorded resource graph."""

from __future__ import annotations

import pytest
import yaml

from components.cluster.kubeconfig import exec_kubeconfig
from components.cluster.pools import SYSTEM_POOL_LABEL, SYSTEM_POOL_TAINT, workload_tag
from components.config import StackConfigError
from tests.conftest import STACKS, run_config, stack_config, stack_run
from tools import engine

CLUSTER = "digitalocean:index/kubernetesCluster:KubernetesCluster"
POOL = "digitalocean:index/kubernetesNodePool:KubernetesNodePool"
VPC = "digitalocean:index/vpc:Vpc"
LB = "digitalocean:index/loadBalancer:LoadBalancer"
PROVIDER = "pulumi:providers:kubernetes"
GET_CLUSTER = "digitalocean:index/getKubernetesCluster:getKubernetesCluster"
COMPONENT = "service-mesh:cluster:DoksCluster"


@pytest.mark.parametrize("stack,ha", [("dev", False), ("staging", True), ("production", True)])
def test_ha_control_plane_per_environment(stack, ha):
    assert stack_run(stack).one(CLUSTER).inputs["ha"] is ha


@pytest.mark.parametrize("stack", ["dev", "staging", "production"])
def test_system_pool_is_labelled_and_tainted_for_the_control_plane(stack):
    pool = stack_run(stack).one(CLUSTER).inputs["nodePool"]
    assert pool["labels"] == SYSTEM_POOL_LABEL
    assert pool["taints"] == [SYSTEM_POOL_TAINT]
    assert pool["autoScale"] is False


def test_production_system_pool_has_three_nodes_or_more():
    assert stack_run("production").one(CLUSTER).inputs["nodePool"]["nodeCount"] >= 3


@pytest.mark.parametrize(
    "stack,low,high", [("dev", 1, 3), ("staging", 2, 5), ("production", 3, 20)]
)
def test_workload_pool_autoscales_within_configured_bounds(stack, low, high):
    run = stack_run(stack)
    pool = run.one(POOL).inputs
    assert pool["autoScale"] is True
    assert (pool["minNodes"], pool["maxNodes"]) == (low, high)
    assert "taints" not in pool or pool["taints"] == []
    assert run.one(CLUSTER).urn in run.one(POOL).dependencies


@pytest.mark.parametrize("stack", STACKS)
def test_every_autoscaled_pool_leaves_its_size_to_the_autoscaler(stack):
    """terraform-provider-digitalocean sends a stated node_count with every update of a pool,
    and `ignore_changes` only keeps the old one being sent: any change of labels or maxNodes
    would reset an autoscaled pool to it. So no autoscaled pool, the cluster's default one
    included, states a count or ignores one; a fixed pool states its count."""
    run = stack_run(stack)
    pools = [(r, r.inputs) for r in run.resources if r.type == POOL]
    pools += [(r, r.inputs["nodePool"]) for r in run.resources if r.type == CLUSTER]
    autoscaled = 0
    for resource, pool in pools:
        if pool.get("autoScale"):
            autoscaled += 1
            assert "nodeCount" not in pool, resource.urn
            assert not any("nodeCount" in path for path in resource.ignore_changes)
        else:
            assert pool["nodeCount"] >= 1, resource.urn
    assert autoscaled == 1


@pytest.mark.parametrize("stack", ["dev", "staging", "production"])
def test_workload_pool_carries_the_stable_droplet_tag(stack):
    run = stack_run(stack)
    name = run.one(COMPONENT).name
    assert run.one(POOL).inputs["tags"] == [workload_tag(name)]
    assert workload_tag(name) == f"mesh-{stack}-workload"


@pytest.mark.parametrize("stack", ["dev", "staging", "production"])
def test_surge_upgrades_and_maintenance_window(stack):
    inputs = stack_run(stack).one(CLUSTER).inputs
    assert inputs["surgeUpgrade"] is True
    assert inputs["autoUpgrade"] is True
    window = inputs["maintenancePolicy"]
    assert window["day"] in {"any", "saturday", "sunday"}
    assert window["startTime"].count(":") == 1


def test_production_maintenance_window_is_sunday_night():
    assert stack_run("production").one(CLUSTER).inputs["maintenancePolicy"] == {
        "day": "sunday",
        "startTime": "03:00",
    }


@pytest.mark.parametrize(
    "stack,protected", [("dev", False), ("staging", False), ("production", True)]
)
def test_cluster_and_vpc_protected_in_production_only(stack, protected):
    run = stack_run(stack)
    assert run.one(CLUSTER).protect is protected
    assert run.one(VPC).protect is protected


def test_version_comes_from_the_configured_minor_prefix():
    run = stack_run("production")
    calls = [a for t, a in run.invokes if t.endswith("getKubernetesVersions")]
    assert calls == [{"versionPrefix": "1.34."}]
    assert run.one(CLUSTER).inputs["version"].startswith("1.34.")


def test_cluster_lives_in_its_vpc_with_the_configured_range():
    run = stack_run("production")
    vpc = run.one(VPC)
    assert vpc.inputs["ipRange"] == "10.130.0.0/20"
    assert vpc.urn in run.one(CLUSTER).dependencies


@pytest.mark.parametrize("type_", [VPC, LB])
def test_a_replacement_never_needs_the_name_of_the_one_it_replaces(tmp_path, type_):
    """DigitalOcean refuses two VPCs (or load balancers) of one name, and a replacement comes
    first: every value of a replace-forcing input of the VPC (region, range), which replaces
    the load balancer too, gets its own name; the same config, the same name, and no two
    stacks share one."""
    names = {s: stack_run(s).one(type_).inputs["name"] for s in STACKS}
    assert len(set(names.values())) == len(STACKS)
    assert names["production"] == stack_run("production").one(type_).inputs["name"]
    base = stack_config("dev")
    for change in ({"region": "ams3"}, {"vpcCidr": "10.99.0.0/20"}):
        config = {**base, "service-mesh:cluster": {**base["service-mesh:cluster"], **change}}
        folder = tmp_path / next(iter(change))
        folder.mkdir()
        run = run_config(folder, "dev", config)
        assert run.error is None, run.error
        assert run.one(type_).inputs["name"] != names["dev"], change


def test_control_plane_firewall_only_when_an_allow_list_is_configured():
    assert "controlPlaneFirewall" not in stack_run("dev").one(CLUSTER).inputs
    firewall = stack_run("production").one(CLUSTER).inputs["controlPlaneFirewall"]
    assert firewall["enabled"] is True
    assert firewall["allowedAddresses"] == ["198.51.100.0/24", "192.0.2.10/32"]


def test_cluster_keeps_load_balancers_and_volumes_on_destroy():
    assert stack_run("production").one(CLUSTER).inputs["destroyAllAssociatedResources"] is False


def test_project_groups_the_cluster():
    run = stack_run("production")
    project = run.one("digitalocean:index/project:Project")
    assert project.inputs["environment"] == "Production"
    (member,) = [
        r
        for r in run.of_type("digitalocean:index/projectResources:ProjectResources")
        if run.one(CLUSTER).urn in r.dependencies
    ]
    assert project.urn in member.dependencies


def test_provider_is_built_from_a_secret_kubeconfig_and_depends_on_the_cluster():
    run = stack_run("production")
    provider = run.one(PROVIDER)
    cluster, pool = run.one(CLUSTER), run.one(POOL)
    assert provider.inputs["kubeconfig"] == "[secret]"
    assert cluster.urn in provider.dependencies
    assert pool.urn in provider.dependencies, "in-cluster objects wait for worker nodes"
    # The provider's identity is the cluster id: a changed kubeconfig never replaces it.
    assert provider.inputs["clusterIdentifier"]


def test_the_fake_cloud_mints_a_new_token_on_every_credentials_read():
    """What makes the next test able to fail: like DigitalOcean, each read of a cluster's
    credentials (the data source, or the resource's own outputs) returns a new token."""
    first = engine.FAKE_INVOKES[GET_CLUSTER]({"name": "c"})["kubeConfigs"][0]["token"]
    second = engine.FAKE_INVOKES[GET_CLUSTER]({"name": "c"})["kubeConfigs"][0]["token"]
    assert first != second


@pytest.mark.parametrize("stack", ["dev", "production"])
def test_an_unchanged_stack_gives_the_provider_identical_inputs_on_every_run(stack):
    """A drift check (`pulumi preview --expect-no-changes`) needs this: no credential minted per
    run, none read through the data source, and the kubeconfig built from what only changes with
    the cluster (endpoint, CA) plus a `doctl` exec credential."""
    runs = [engine.run_stack(stack), engine.run_stack(stack)]
    digests = {run.one(PROVIDER).inputs_digest for run in runs}
    assert len(digests) == 1, "the provider's inputs (secrets included) differ between runs"
    for run in runs:
        assert not [t for t, _ in run.invokes if t == GET_CLUSTER], "no credentials lookup"


def test_the_kubeconfig_authenticates_through_doctl_and_carries_no_token():
    text = exec_kubeconfig("mesh-dev", "abc123", "https://abc123.k8s.example", "Q0E=")
    doc = yaml.safe_load(text)
    (cluster,) = doc["clusters"]
    assert cluster["cluster"] == {
        "server": "https://abc123.k8s.example",
        "certificate-authority-data": "Q0E=",
    }
    (user,) = doc["users"]
    assert set(user["user"]) == {"exec"}, "no token, password or client key"
    exec_ = user["user"]["exec"]
    assert exec_["command"] == "doctl"
    assert exec_["args"] == [
        "kubernetes",
        "cluster",
        "kubeconfig",
        "exec-credential",
        "--version=v1beta1",
        "abc123",
    ]
    assert exec_["apiVersion"] == "client.authentication.k8s.io/v1beta1"
    assert doc["current-context"] == doc["contexts"][0]["name"]
    assert "token" not in text


def test_every_cluster_resource_is_a_child_of_the_component():
    run = stack_run("staging")
    component = run.one(COMPONENT)
    for type_ in (CLUSTER, POOL, VPC, PROVIDER, "digitalocean:index/project:Project"):
        assert run.one(type_).parent == component.urn


def test_in_cluster_resources_use_the_cluster_provider():
    run = stack_run("production")
    provider = run.one(PROVIDER)
    in_cluster = [r for r in run.resources if r.type.startswith("kubernetes:")]
    assert in_cluster, "the mesh layers register Kubernetes objects"
    for r in in_cluster:
        assert r.provider and r.provider.startswith(provider.urn), r.urn


def test_load_balancer_and_domain_are_listed_in_the_project_without_depending_on_it():
    run = stack_run("production")
    lb = run.one("digitalocean:index/loadBalancer:LoadBalancer")
    (listing,) = [
        r
        for r in run.of_type("digitalocean:index/projectResources:ProjectResources")
        if lb.urn in r.dependencies
    ]
    project = run.one("digitalocean:index/project:Project")
    assert lb.urn in listing.dependencies and project.urn in listing.dependencies
    assert project.urn not in lb.dependencies


def test_workload_pool_waits_for_its_droplet_tag_which_waits_for_nothing():
    run = stack_run("production")
    tag = run.one("digitalocean:index/tag:Tag")
    assert tag.inputs["name"] == "mesh-production-workload"
    assert tag.urn in run.one(POOL).dependencies, "created before the pool names it: no race"
    assert tag.dependencies == [] and tag.protect is True


# --- the Kubernetes version moves only when someone decides it ------------------------------


@pytest.mark.parametrize("stack", ["dev", "staging", "production"])
def test_unpinned_auto_upgrading_clusters_leave_the_version_to_doks(stack):
    run = stack_run(stack)
    cluster = run.one(CLUSTER)
    assert cluster.inputs["autoUpgrade"] is True
    assert cluster.ignore_changes == ["version"], "DOKS patches in the window; `up` never does"
    assert cluster.inputs["version"] == "1.34.5-do.0", "a new cluster starts at the newest patch"


def test_a_pinned_version_is_sent_and_not_ignored(tmp_path):
    cfg = stack_config("staging")
    cluster = {
        **cfg["service-mesh:cluster"],
        "autoUpgrade": False,
        "kubernetesVersion": "1.34.4-do.0",
    }
    run = run_config(tmp_path, "staging", {**cfg, "service-mesh:cluster": cluster})
    assert run.error is None, run.error
    assert run.one(CLUSTER).inputs["version"] == "1.34.4-do.0"
    assert run.one(CLUSTER).ignore_changes == []


@pytest.mark.parametrize(
    "change,words",
    [
        ({"kubernetesVersion": "1.34.4-do.0"}, "needs cluster.autoUpgrade false"),
        ({"kubernetesVersion": "1.35.4-do.0", "autoUpgrade": False}, "must be a 1.34 version"),
        ({"kubernetesVersion": "1.34.4"}, "exact DOKS version slug"),
    ],
)
def test_bad_pins_are_refused_before_anything_is_registered(tmp_path, change, words):
    cfg = stack_config("staging")
    cluster = {**cfg["service-mesh:cluster"], **change}
    run = run_config(tmp_path, "staging", {**cfg, "service-mesh:cluster": cluster})
    assert run.error is not None and "service-mesh:cluster.kubernetesVersion" in str(run.error)
    assert words in str(run.error)
    assert run.resources == []


def test_a_pin_digitalocean_does_not_offer_is_a_clear_error(tmp_path):
    cfg = stack_config("staging")
    cluster = {
        **cfg["service-mesh:cluster"],
        "autoUpgrade": False,
        "kubernetesVersion": "1.34.9-do.0",
    }
    run = run_config(tmp_path, "staging", {**cfg, "service-mesh:cluster": cluster})
    assert isinstance(run.error, StackConfigError), run.error
    assert "service-mesh:cluster.kubernetesVersion = '1.34.9-do.0'" in str(run.error)
    assert "1.34.5-do.0, 1.34.4-do.0" in str(run.error)
    assert not run.of_type(CLUSTER)


def test_a_minor_digitalocean_stopped_offering_is_a_clear_error(tmp_path, monkeypatch):
    """The pinned catalog may lag DigitalOcean: an empty `latest_version` is refused by name,
    never sent as a version."""
    monkeypatch.setattr(engine, "FAKE_DOKS_VERSIONS", ("1.35.4-do.0",))
    run = run_config(tmp_path, "dev", stack_config("dev"))
    assert isinstance(run.error, StackConfigError), run.error
    assert "service-mesh:cluster.kubernetesVersionPrefix = '1.34'" in str(run.error)
    assert not run.of_type(CLUSTER)
