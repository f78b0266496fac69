"""The offline plan tool: runs for every stack and writes exactly the documented interface;
never deletes what it did not write; says what is wrong with a stack file or `--out` (exit 2, no
traceback); labels what the fake cloud invented."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import stack_run
from tests.forked import run_module
from tools import plan as plan_tool
from tools.engine import FAKE_OUTPUTS, ROOT, Run, run_stack
from tools.plan import FAKE, FAKE_MARK, HELM_TYPES, MARKER, OutputError, is_manifest, write

RESOURCE_KEYS = {"urn", "type", "name", "parent", "provider", "dependencies", "protect", "inputs"}
CHART_KEYS = {"chart", "version", "repository", "namespace", "values"}


def test_resources_json_lists_every_resource_with_the_documented_keys(plan):
    run, out = plan
    records = json.loads((out / "resources.json").read_text())
    assert isinstance(records, list)
    assert len(records) == len(run.resources)
    urns = {r["urn"] for r in records}
    for r in records:
        assert set(r) - {"ignoreChanges", "retainOnDelete"} == RESOURCE_KEYS
        assert r.get("ignoreChanges", ["set"]), "written only when set"
        assert r.get("retainOnDelete", True) is True, "written only when set"
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


LB = "digitalocean:index/loadBalancer:LoadBalancer"


def plan_cli(*args: object, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return run_module(
        "tools.plan", *args, cwd=cwd, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300
    )


def snapshot(directory: Path) -> dict[str, bytes]:
    return {
        p.relative_to(directory).as_posix(): p.read_bytes()
        for p in directory.rglob("*")
        if p.is_file()
    }


def refused(proc: subprocess.CompletedProcess[str]) -> str:
    """The message of a run that must have been refused as bad input."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stdout + proc.stderr
    return proc.stderr


def test_plan_cli_writes_the_three_outputs_and_a_summary(tmp_path):
    """Also over a previous plan output (of another stack): it is replaced as a whole."""
    out = tmp_path / "prod"
    write(stack_run("dev"), out)
    proc = plan_cli("production", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert (out / "resources.json").is_file()
    assert (out / "manifests").is_dir() and (out / "charts").is_dir()
    assert json.loads((out / "outputs.json").read_text())["environment"] == "production"
    assert json.loads((out / MARKER).read_text())["stack"] == "production"
    assert "per component:" in proc.stdout and "per type:" in proc.stdout
    assert "service-mesh:cluster:DoksCluster" in proc.stdout
    # The invented load balancer IP is labelled where it is printed; config values are not.
    lines = proc.stdout.splitlines()
    (ip_line,) = [line for line in lines if line.strip().startswith("loadBalancerIp:")]
    (env_line,) = [line for line in lines if line.strip().startswith("environment:")]
    assert "203.0.113." in ip_line and FAKE_MARK in ip_line
    assert FAKE_MARK not in env_line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prod"], "no staging debris left"


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
    assert outputs["kubeconfig"] == {FAKE: "[secret]"}
    assert outputs["loadBalancerIp"][FAKE].startswith("203.0.113."), "RFC 5737 documentation"
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


# --- invented values are labelled; the summary is stable ------------------------------------


def test_outputs_json_labels_every_value_the_fake_cloud_invented(plan):
    run, out = plan
    doc = json.loads((out / "outputs.json").read_text())
    assert "tools/engine.py" in doc.pop("_offline")
    assert set(doc) == set(run.outputs)
    wrapped = {k for k, v in doc.items() if isinstance(v, dict) and set(v) == {FAKE}}
    assert wrapped == run.fake_outputs
    assert {"loadBalancerIp", "clusterId", "clusterEndpoint"} <= wrapped
    # The wrapped IP is the one the fake cloud gave the load balancer.
    lb = run.one(LB)
    assert doc["loadBalancerIp"][FAKE] == FAKE_OUTPUTS[LB](lb.name, lb.inputs, "")["ip"]
    # Values the program derives from config alone are not labelled, and keep their value.
    tag = run.one("digitalocean:index/tag:Tag")
    assert doc["environment"] == run.stack and doc["workloadTag"] == tag.inputs["name"]
    for key in wrapped:
        assert doc[key][FAKE] == run.outputs[key]


def test_summary_is_sorted_and_identical_between_runs():
    first, second = plan_tool.summary(run_stack("dev")), plan_tool.summary(run_stack("dev"))
    assert first == second
    lines = first.splitlines()
    per_component = lines[lines.index("per component:") + 1 : lines.index("per type:")]
    assert len(per_component) >= 5
    assert per_component == sorted(per_component)


# --- --out: never delete what the plan did not write; replace atomically --------------------


def test_out_on_a_directory_with_a_user_file_is_refused_and_the_file_survives(tmp_path):
    out = tmp_path / "work"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    message = refused(plan_cli("dev", "--out", out))
    assert str(out) in message and "not a previous plan output" in message
    assert snapshot(out) == {"notes.txt": b"mine"}


def test_out_dot_in_a_checkout_is_refused_and_nothing_is_deleted(tmp_path):
    checkout = tmp_path / "checkout"
    (checkout / ".git").mkdir(parents=True)
    (checkout / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (checkout / "README.md").write_text("# readme\n")
    before = snapshot(checkout)
    message = refused(plan_cli("dev", "--out", ".", cwd=checkout))
    assert "current directory" in message
    assert snapshot(checkout) == before


def test_out_on_a_file_is_refused(tmp_path):
    target = tmp_path / "plan.txt"
    target.write_text("keep")
    message = refused(plan_cli("dev", "--out", target))
    assert str(target) in message and "is a file" in message
    assert target.read_text() == "keep"


def test_rerun_over_a_previous_plan_output_replaces_it_as_a_whole(tmp_path):
    out, fresh = tmp_path / "out", tmp_path / "fresh"
    write(stack_run("production"), out)
    (out / "manifests" / "stale-only-in-the-old-plan.yaml").write_text("x: 1\n")
    marker = json.loads((out / MARKER).read_text())
    marker["files"].append("manifests/stale-only-in-the-old-plan.yaml")
    (out / MARKER).write_text(json.dumps(marker))  # as if the previous plan had written it
    write(stack_run("dev"), out)
    write(stack_run("dev"), fresh)
    assert snapshot(out) == snapshot(fresh)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fresh", "out"]


def test_the_marker_lists_exactly_the_files_the_plan_wrote(tmp_path):
    out = tmp_path / "out"
    write(stack_run("staging"), out)
    header = json.loads((out / MARKER).read_text())
    assert header["writtenBy"] == "python -m tools.plan" and header["stack"] == "staging"
    assert sorted(header["files"]) == sorted(set(snapshot(out)) - {MARKER})


def test_a_previous_plan_holding_a_user_file_is_refused_and_the_file_survives(tmp_path):
    out = tmp_path / "out"
    write(stack_run("dev"), out)
    (out / "manifests" / "my-notes.yaml").write_text("mine")
    before = snapshot(out)
    with pytest.raises(OutputError, match=r"manifests/my-notes\.yaml"):
        write(stack_run("dev"), out)
    assert snapshot(out) == before


@pytest.mark.parametrize(
    "stack_file_text",
    [
        "config:\n  service-mesh:environment: dev\n  service-mesh:cluster: {region: mars}\n",
        "config:\n  service-mesh:environment: [dev\n",
    ],
    ids=["bad-value", "bad-yaml"],
)
def test_a_failing_program_leaves_the_previous_plan_byte_identical(tmp_path, stack_file_text):
    out = tmp_path / "out"
    write(stack_run("dev"), out)
    before = snapshot(out)
    bad = tmp_path / "Pulumi.bad.yaml"
    bad.write_text(stack_file_text)
    refused(plan_cli("dev", "--stack-file", bad, "--out", out))
    assert snapshot(out) == before


def _with_a_second_object_named_like_the_first(run: Run) -> Run:
    first = next(r for r in run.resources if is_manifest(r))
    twin = dataclasses.replace(first, urn=first.urn + "-twin")
    return dataclasses.replace(run, resources=[*run.resources, twin])


def test_a_plan_that_fails_to_render_leaves_the_previous_plan_intact(tmp_path):
    out = tmp_path / "out"
    write(stack_run("dev"), out)
    before = snapshot(out)
    with pytest.raises(RuntimeError, match="two objects would be written"):
        write(_with_a_second_object_named_like_the_first(stack_run("dev")), out)
    assert snapshot(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_a_write_that_fails_midway_leaves_the_previous_plan_and_no_debris(tmp_path, monkeypatch):
    out = tmp_path / "out"
    write(stack_run("dev"), out)
    before = snapshot(out)
    calls = []

    put = plan_tool._put

    def failing_put(path: Path, text: str, made: set[Path]) -> None:
        calls.append(path)
        if len(calls) == 5:
            raise OSError(28, "No space left on device")
        put(path, text, made)

    monkeypatch.setattr(plan_tool, "_put", failing_put)
    with pytest.raises(OSError, match="No space left"):
        write(stack_run("staging"), out)
    assert len(calls) == 5
    assert snapshot(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


# --- stack files: every mistake is one clear line, exit 2, no traceback ---------------------

_DUP_TOP = "config:\n  service-mesh:environment: dev\n  service-mesh:cluster: {region: fra1}\n"


@pytest.mark.parametrize(
    ("text", "line", "column", "words"),
    [
        ("config:\n  service-mesh:meshNamespaces: [{name: shop}\n", 3, 1, "expected ',' or ']'"),
        ("config:\n\tservice-mesh:environment: dev\n", 2, 1, "tabs"),
        ("- config\n- dev\n", 1, 1, "mapping with a `config:` key, found a list"),
        ("config:\n  - service-mesh:environment: dev\n", 2, 3, "`config` must be a mapping"),
        ("config: dev\n", 1, 9, "found the scalar 'dev'"),
        ("", 1, 1, "the stack file is empty"),
        ("config:\n  1: dev\n", 2, 3, "config keys are strings"),
        ('config:\n  service-mesh:name: "a\x01"\n', 2, 24, "#x0001"),
        (
            _DUP_TOP + "  service-mesh:cluster: {region: ams3}\n",
            4,
            3,
            "key 'service-mesh:cluster' is written twice (lines 3 and 4)",
        ),
        (
            "config:\n  service-mesh:cluster:\n    region: fra1\n    region: ams3\n",
            4,
            5,
            "key 'service-mesh:cluster.region' is written twice (lines 3 and 4)",
        ),
        (
            "config:\n  service-mesh:environment: dev\nconfig:\n  service-mesh:name: x\n",
            3,
            1,
            "key 'config' is written twice (lines 1 and 3)",
        ),
    ],
    ids=[
        "unclosed-bracket",
        "tab",
        "top-level-list",
        "config-list",
        "config-scalar",
        "empty",
        "non-string-key",
        "control-character",
        "duplicate-key",
        "duplicate-nested-key",
        "duplicate-config",
    ],
)
def test_malformed_stack_file_is_one_line_with_its_position(tmp_path, text, line, column, words):
    path = tmp_path / "Pulumi.bad.yaml"
    path.write_text(text)
    message = refused(plan_cli("dev", "--stack-file", path, "--out", tmp_path / "out"))
    assert message.startswith(f"{path}:{line}:{column}: "), message
    assert words in message
    assert not (tmp_path / "out").exists()


def test_a_stack_file_that_is_not_utf8_names_the_position(tmp_path):
    path = tmp_path / "Pulumi.bad.yaml"
    path.write_bytes(b"config:\n  service-mesh:environment: d\xffv\n")
    message = refused(plan_cli("dev", "--stack-file", path))
    assert message.startswith(f"{path}:2:30: not UTF-8"), message


def test_an_unknown_stack_lists_the_stacks_that_have_a_file():
    message = refused(plan_cli("no-such-stack"))
    known = sorted(p.name.split(".")[1] for p in ROOT.glob("Pulumi.*.yaml"))
    assert {"dev", "staging", "production"} <= set(known)
    assert "no stack file for stack 'no-such-stack'" in message
    assert f"stacks with a file: {', '.join(known)}" in message


def test_a_directory_as_stack_file_is_reported_as_a_directory(tmp_path):
    message = refused(plan_cli("dev", "--stack-file", tmp_path))
    assert f"--stack-file {tmp_path} is a directory" in message


def test_a_missing_stack_file_is_reported_as_missing(tmp_path):
    message = refused(plan_cli("dev", "--stack-file", tmp_path / "Pulumi.nope.yaml"))
    assert "no such file" in message
