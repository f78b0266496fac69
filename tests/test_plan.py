"""The offline plan tool: runs for every stack and writes exactly the documented interface."""

from __future__ import annotations

import json
import subprocess
import sys

import yaml

from tools.engine import ROOT
from tools.plan import HELM_TYPES, is_manifest, write

RESOURCE_KEYS = {"urn", "type", "name", "parent", "provider", "dependencies", "protect", "inputs"}
CHART_KEYS = {"chart", "version", "repository", "namespace", "values"}


def test_resources_json_lists_every_resource_with_the_documented_keys(plan):
    run, out = plan
    records = json.loads((out / "resources.json").read_text())
    assert isinstance(records, list)
    assert len(records) == len(run.resources)
    urns = {r["urn"] for r in records}
    for r in records:
        assert set(r) == RESOURCE_KEYS
        assert isinstance(r["protect"], bool)
        assert isinstance(r["dependencies"], list)
        assert r["parent"] is None or isinstance(r["parent"], str)
        assert r["provider"] is None or isinstance(r["provider"], str)
        assert isinstance(r["inputs"], dict)
        # Every dependency and parent is a resource of this stack (or the stack itself).
        for dep in r["dependencies"]:
            assert dep in urns, dep
        assert r["parent"] is None or r["parent"] in urns or "pulumi:pulumi:Stack" in r["parent"]


def test_manifests_one_file_per_authored_kubernetes_object(plan):
    run, out = plan
    files = sorted((out / "manifests").glob("*.yaml"))
    authored = [r for r in run.resources if is_manifest(r)]
    assert authored, "the mesh layers author Kubernetes objects"
    assert len(files) == len(authored)
    for path in files:
        obj = yaml.safe_load(path.read_text())
        assert obj["apiVersion"] and obj["kind"]
        assert obj["metadata"]["name"]


def test_charts_one_file_per_helm_release_with_pinned_version(plan):
    run, out = plan
    files = sorted((out / "charts").glob("*.yaml"))
    releases = [r for r in run.resources if r.type in HELM_TYPES]
    assert releases, "Istio and the observability stack come from Helm charts"
    assert len(files) == len(releases)
    for path in files:
        spec = yaml.safe_load(path.read_text())
        assert CHART_KEYS <= set(spec)
        assert spec["version"] and spec["repository"], path.name


def test_secrets_never_reach_plan_files_in_plaintext(plan):
    run, out = plan
    text = "\n".join(p.read_text() for p in out.rglob("*") if p.is_file())
    for value in run.secret_values:
        assert value not in text
    assert "offline-fake-token" not in text, "the kubeconfig is a secret"


def test_plan_cli_writes_the_three_outputs_and_a_summary(tmp_path):
    out = tmp_path / "prod"
    proc = subprocess.run(
        [sys.executable, "-m", "tools.plan", "production", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert (out / "resources.json").is_file()
    assert (out / "manifests").is_dir() and (out / "charts").is_dir()
    assert "per component:" in proc.stdout and "per type:" in proc.stdout
    assert "service-mesh:cluster:DoksCluster" in proc.stdout


def test_plan_files_are_identical_between_runs(tmp_path):
    from tools.engine import run_stack

    write(run_stack("dev"), tmp_path / "a")
    write(run_stack("dev"), tmp_path / "b")
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.*"))
    assert files
    for rel in files:
        assert (tmp_path / "a" / rel).read_text() == (tmp_path / "b" / rel).read_text(), rel


def test_stack_exports_are_recorded_with_secrets_masked(plan):
    run, out = plan
    outputs = json.loads((out / "outputs.json").read_text())
    assert outputs["environment"] == run.stack
    assert outputs["kubeconfig"] == "[secret]"
    assert outputs["loadBalancerIp"].startswith("203.0.113."), "documentation range, RFC 5737"
    # The exported tag is the one the load balancer targets and the workload pool carries.
    lb = run.one("digitalocean:index/loadBalancer:LoadBalancer")
    tag = run.one("digitalocean:index/tag:Tag")
    pool = run.one("digitalocean:index/kubernetesNodePool:KubernetesNodePool")
    assert outputs["workloadTag"] == tag.inputs["name"] == lb.inputs["dropletTag"]
    assert pool.inputs["tags"] == [outputs["workloadTag"]]


def test_integral_numbers_are_written_as_ints(plan):
    """The mock wire carries only doubles; the plan shows numbers as the program sent them."""
    _, out = plan
    gateway = yaml.safe_load((out / "manifests" / "gateway-istio-ingress-public.yaml").read_text())
    ports = [s["port"]["number"] for s in gateway["spec"]["servers"]]
    assert ports == [80, 443] and all(type(p) is int for p in ports)
