"""The policy pack as the CLI loads it and as `python -m tools.policy` runs it: the pack's
layout and pins, `__main__.py` importable without a server (and a server when run), the
private analyzer servicer the offline path depends on (a smoke test that fails loudly when a
new pulumi-policy moves it), the CLI's config handling (defaults, `all`, schemas), unknown
values, and the tool's output and exit codes, including the issue's "done when" plans.
"""

from __future__ import annotations

import inspect
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from google.protobuf import struct_pb2

from policies.pack import PACK_NAME, RULES, pack_arguments
from tests.conftest import stack_run
from tests.forked import run_module
from tests.test_policy_rules import analyze, config, records, res
from tools import policy as tool
from tools.engine import ROOT

PACK = ROOT / "policies"
PINNED = "1.21.0"


def _pin(path: Path, package: str) -> str:
    for line in path.read_text().splitlines():
        if line.split("#")[0].strip().startswith(f"{package}=="):
            return line.split("==")[1].split("#")[0].strip()
    raise AssertionError(f"{package} is not pinned in {path}")


# --- layout ----------------------------------------------------------------------------------


def test_pulumipolicy_yaml_is_a_python_pack_with_its_own_virtualenv():
    project = yaml.safe_load((PACK / "PulumiPolicy.yaml").read_text())
    assert project["runtime"]["name"] == "python"
    assert project["runtime"]["options"] == {"toolchain": "pip", "virtualenv": "venv"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", project["version"])


def test_the_pack_pins_its_requirements_like_the_program():
    reqs = PACK / "requirements.txt"
    for line in reqs.read_text().splitlines():
        line = line.split("#")[0].strip()
        assert not line or "==" in line, f"unpinned requirement: {line}"
    assert _pin(reqs, "pulumi-policy") == _pin(ROOT / "requirements-dev.txt", "pulumi-policy")
    assert _pin(reqs, "pulumi-policy") == PINNED
    assert _pin(reqs, "pulumi") == _pin(ROOT / "requirements.txt", "pulumi")


def test_every_stack_has_a_policy_config_mandatory_only_for_production():
    stacks = sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in ROOT.glob("Pulumi.*.yaml"))
    assert sorted(p.stem for p in (PACK / "config").glob("*.json")) == stacks
    infos = tool.servicer().GetAnalyzerInfo(None, None).policies
    for stack in stacks:
        levels = {
            lvl for lvl, _ in tool.load_config(PACK / "config" / f"{stack}.json", infos).values()
        }
        if stack == "production":
            assert levels == {"mandatory"}
        else:
            assert "mandatory" not in levels and "advisory" in levels


def test_only_production_only_policies_are_disabled_outside_production():
    production_only = {
        "cluster-production-settings",
        "protect-stateful-resources",
        "traffic-outlier-detection",
        "traffic-no-faults",
    }
    outside_dev = {"platform-ha", "egress-registry-only"}
    for stack, expected in (("staging", production_only), ("dev", production_only | outside_dev)):
        disabled = {n for n, (lvl, _) in config(stack).items() if lvl == "disabled"}
        assert disabled == expected, stack


def test_the_rules_are_one_module_per_concern_and_named_once():
    names = [r.name for r in RULES]
    assert len(names) == len(set(names)) == len(pack_arguments()["policies"])
    modules = {r.check.__module__ for r in RULES}
    assert all(m.startswith("policies.rules.") for m in modules)
    assert len(modules) >= 10


def test_docs_list_every_policy():
    text = (ROOT / "docs" / "policy.md").read_text()
    missing = [r.name for r in RULES if f"`{r.name}`" not in text]
    assert not missing, missing


# --- __main__.py: imports cleanly, serves when run -------------------------------------------


def test_main_imports_in_process_and_builds_nothing():
    import importlib

    module = importlib.import_module("policies.__main__")
    assert module.__name__ == "policies.__main__" and callable(module.pack_arguments)


def test_main_imports_without_starting_a_server():
    probe = (
        "import time, pulumi_policy.policy as p\n"
        "p.PolicyPack.__init__ = lambda *a, **k: (_ for _ in ()).throw(SystemExit('started'))\n"
        "t = time.time()\n"
        "import policies.__main__ as m\n"
        "print('imported', m.__name__, round(time.time() - t, 1) < 30)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "imported policies.__main__ True"


def test_main_run_as_pulumi_runs_it_starts_the_analyzer_and_prints_its_port(tmp_path):
    """Pulumi's Python host runs `python <pack dir>` from elsewhere; the pack prints the port
    of its gRPC server and serves until stopped."""
    proc = subprocess.Popen(
        [sys.executable, "-u", str(PACK)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert re.fullmatch(r"\d+\n", line), (line, proc.stderr.read() if proc.poll() else "")
        assert proc.poll() is None  # still serving
    finally:
        proc.kill()
        proc.wait(timeout=30)


# --- the private servicer (pulumi-policy 1.21.0) ---------------------------------------------


def test_smoke_the_private_analyzer_servicer_has_not_moved():
    """tools/policy.py drives `_PolicyAnalyzerServicer` directly, built as `PolicyPack` builds
    it. If this fails after a pulumi-policy bump, re-read pulumi_policy/policy.py and adapt
    `tools.policy.servicer()` before trusting any offline verdict."""
    import pulumi_policy
    from pulumi_policy import policy as sdk
    from pulumi_policy.version import VERSION

    assert VERSION == PINNED, "pulumi-policy moved: re-check the servicer the runner uses"
    servicer = getattr(sdk, "_PolicyAnalyzerServicer", None)
    assert servicer is not None, "pulumi_policy.policy._PolicyAnalyzerServicer is gone"
    params = list(inspect.signature(servicer.__init__).parameters)
    assert params[:7] == [
        "self",
        "name",
        "version",
        "policies",
        "enforcement_level",
        "initial_config",
        "description",
    ]
    for method in ("Analyze", "AnalyzeStack", "Configure", "ConfigureStack", "GetAnalyzerInfo"):
        assert callable(getattr(servicer, method, None)), method
    pack_source = inspect.getsource(pulumi_policy.PolicyPack.__init__)
    assert "_PolicyAnalyzerServicer(" in pack_source and 'version = "0.0.1"' in pack_source
    from pulumi_policy import proxy

    assert proxy.UNKNOWN_STRING_VALUE == "04da6b54-80e4-46f7-96ec-b56ff0331ba9"


def _probe_servicer(seen: list):
    from pulumi_policy import EnforcementLevel, ResourceValidationPolicy
    from pulumi_policy.policy import _PolicyAnalyzerServicer

    def validate(args, report):
        seen.append(args.props)
        report(f"replicas {args.props['spec']['replicas']!r}")

    policy = ResourceValidationPolicy(name="probe", description="Probe.", validate=validate)
    return _PolicyAnalyzerServicer("probe-pack", "0.0.1", [policy], EnforcementLevel.ADVISORY)


def test_smoke_the_servicer_sends_proxies_and_floats_and_formats_messages():
    from pulumi.runtime import proto

    seen: list = []
    svc = _probe_servicer(seen)
    props = struct_pb2.Struct()
    props.update({"spec": {"replicas": 2, "name": "x"}})
    response = svc.Analyze(
        proto.AnalyzeRequest(type="t", properties=props, urn="urn:x", name="x"), None
    )
    (diagnostic,) = response.diagnostics
    assert diagnostic.message == "Probe.\nreplicas 2.0"  # description, newline, message
    assert diagnostic.enforcementLevel == proto.ADVISORY
    assert not isinstance(seen[0], dict) and not isinstance(seen[0]["spec"], dict)
    assert isinstance(seen[0]["spec"]["replicas"], float)


def test_smoke_an_unknown_value_downgrades_a_mandatory_policy_to_advisory():
    from pulumi.runtime import proto
    from pulumi_policy.proxy import UNKNOWN_NUMBER_VALUE

    svc = _probe_servicer([])
    svc.Configure(
        proto.ConfigureAnalyzerRequest(
            policyConfig={"probe": proto.PolicyConfig(enforcementLevel=proto.MANDATORY)}
        ),
        None,
    )
    props = struct_pb2.Struct()
    props.update({"spec": {"replicas": UNKNOWN_NUMBER_VALUE}})
    response = svc.Analyze(proto.AnalyzeRequest(type="t", properties=props, urn="u"), None)
    (diagnostic,) = response.diagnostics
    assert diagnostic.enforcementLevel == proto.ADVISORY
    assert diagnostic.message == (
        "can't run policy 'probe' from policy pack 'probe-pack@v0.0.1' during preview: "
        "number value at .spec.replicas can't be known during preview"
    )


# --- config as the CLI reconciles it ---------------------------------------------------------


def test_defaults_come_from_the_schemas_and_all_sets_every_level():
    cfg = config("production")
    assert cfg["platform-ha"] == ("mandatory", {"minReplicas": 2, "exceptions": {}})
    assert cfg["namespace-default-deny"][1]["platformNamespaces"] == [
        "istio-system",
        "istio-ingress",
        "istio-egress",
    ]
    infos = tool.servicer().GetAnalyzerInfo(None, None).policies
    assert {lvl for lvl, _ in tool.reconcile(infos, {}, "x").values()} == {"advisory"}
    given = tool.parse_config(
        '{"all": "mandatory", "platform-ha": {"enforcementLevel": "advisory", "minReplicas": 3}}',
        "x",
    )
    cfg = tool.reconcile(infos, given, "x")
    assert cfg["platform-ha"] == ("advisory", {"minReplicas": 3, "exceptions": {}})
    assert cfg["mtls-strict"][0] == "mandatory"


def test_a_policy_config_property_changes_the_verdict():
    recs = records()
    res(recs, "istiod-1-30")["inputs"]["values"]["autoscaleMin"] = 2
    assert analyze(recs) == []
    istiod = res(recs, "istiod-1-30")["urn"]
    findings = [f for f in analyze(recs, extra={"platform-ha": {"minReplicas": 3}})]
    assert {f.policy for f in findings} == {"platform-ha"}
    assert any(f.urn == istiod and "fewer than 3" in f.message for f in findings)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("{", "not valid JSON"),
        ("[]", "a policy config is a JSON object"),
        ('{"all": "strict"}', "'strict' is not an enforcement level"),
        ('{"mtls-strcit": "disabled"}', "no policy named mtls-strcit"),
        ('{"platform-ha": 3}', "must be an enforcement level or an object"),
        ('{"platform-ha": {"minReplicas": "two"}}', "platform-ha.minReplicas: 'two' is not"),
        ('{"mtls-strict": {"exceptions": {"shop": "why"}}}', "mtls-strict.exceptions.shop"),
        ('{"platform-ha": {"minReplica": 3}}', "platform-ha: Additional properties are not"),
        ('{"platform-ha": {"minReplica": 3}}', "; allowed: exceptions, minReplicas"),
        ('{"mtls-strict": {"exception": {"shop": "a long reason"}}}', "'exception' was unexpected"),
    ],
)
def test_a_bad_policy_config_is_refused_naming_what_is_wrong(tmp_path, capsys, text, expected):
    path = tmp_path / "bad.json"
    path.write_text(text)
    assert tool.main(["production", "--plan", str(_plan(tmp_path)), "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and expected in err and "Traceback" not in err


# --- unknown values --------------------------------------------------------------------------


def test_a_rule_reading_a_value_unknown_at_preview_is_reported_as_advisory_not_guessed():
    recs = records()
    res(recs, "mesh-production")["inputs"]["ha"] = tool.UNKNOWN_MASK
    (finding,) = analyze(recs)
    assert finding.policy == "cluster-production-settings" and finding.level == "advisory"
    assert "can't run policy 'cluster-production-settings'" in finding.message
    assert finding.urn == res(recs, "mesh-production")["urn"]


def test_scans_skip_unknown_values_instead_of_giving_up():
    """The Loki bucket name comes from a RandomId: unknown on a first preview. The scans
    (secrets, images, load balancers) still run on the rest of the values."""
    recs = records()
    values = res(recs, "loki")["inputs"]["values"]
    values["loki"]["storage"]["bucketNames"]["chunks"] = tool.UNKNOWN_MASK
    values["loki"]["storage"]["s3"]["secretAccessKey"] = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    (finding,) = analyze(recs)
    assert finding.policy == "no-plaintext-secrets" and finding.level == "mandatory"
    assert "values.loki.storage.s3.secretAccessKey" in finding.message
    assert "wJalrXUtnFEMI" not in finding.message


# --- the tool --------------------------------------------------------------------------------


def _plan(tmp_path: Path, stack: str = "production") -> Path:
    from tools.plan import write

    out = tmp_path / f"plan-{stack}"
    if not out.exists():
        write(stack_run(stack), out)
    return out


def _edit_plan(plan: Path, change) -> None:
    path = plan / "resources.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _by_name(data: list, name: str, type_suffix: str) -> dict:
    (found,) = [r for r in data if r["name"] == name and r["type"].endswith(type_suffix)]
    return found


def test_the_committed_production_stack_passes_from_the_command_line():
    done = run_module("tools.policy", "production", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().splitlines()[-1] == "passed"
    assert "0 mandatory, 0 advisory violation(s)" in done.stdout


def _permissive(data: list) -> None:
    pa = _by_name(data, "istio-system-default", ":PeerAuthentication")
    pa["inputs"]["spec"]["mtls"]["mode"] = "PERMISSIVE"


def _unprotected_lb(data: list) -> None:
    _by_name(data, "ingress-lb", ":LoadBalancer")["protect"] = False


def _split_rule(data: list) -> None:
    policy = _by_name(data, "shop-allow-checkout", ":AuthorizationPolicy")
    rule, *others = policy["inputs"]["spec"]["rules"]
    policy["inputs"]["spec"]["rules"] = [{"from": rule["from"]}, {"to": rule["to"]}, *others]


@pytest.mark.parametrize(
    "change, policy, resource",
    [
        (_permissive, "mtls-strict", "istio-system-default"),
        (_unprotected_lb, "protect-stateful-resources", "ingress-lb"),
        (_split_rule, "authz-no-split-rules", "shop-allow-checkout"),
    ],
    ids=["permissive-peer-authentication", "unprotected-load-balancer", "split-rule"],
)
def test_done_when_a_bad_plan_exits_1_naming_the_policy(tmp_path, capsys, change, policy, resource):
    plan = _plan(tmp_path)
    _edit_plan(plan, change)
    assert tool.main(["production", "--plan", str(plan)]) == 1
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("[mandatory] ")]
    assert any(
        line.startswith(f"[mandatory] {policy} urn:pulumi:production::")
        and f"::{resource}: " in line
        for line in lines
    ), out
    assert out.strip().splitlines()[-1] == "FAILED: mandatory violations"


def test_the_same_plan_on_a_stack_with_advisory_config_exits_0(tmp_path, capsys):
    plan = _plan(tmp_path, "staging")
    _edit_plan(plan, _split_rule)
    assert tool.main(["staging", "--plan", str(plan)]) == 0
    out = capsys.readouterr().out
    assert "[advisory] authz-no-split-rules urn:pulumi:staging::" in out
    assert "[mandatory]" not in out and ": 0 mandatory, " in out


def test_each_violation_is_one_line_with_reason_and_fix(tmp_path, capsys):
    plan = _plan(tmp_path)
    _edit_plan(plan, _permissive)
    tool.main(["production", "--plan", str(plan)])
    (line,) = [x for x in capsys.readouterr().out.splitlines() if x.startswith("[")]
    assert re.fullmatch(r"\[mandatory\] mtls-strict urn:\S+: .+ — .+ Why: .+ Fix: .+", line)


@pytest.mark.parametrize(
    "args, expected",
    [
        (["no such stack!"], "stack name 'no such stack!' is not valid"),
        (["qa"], "no policy config"),
        (["production", "--plan", "/nonexistent/plan"], "no such directory"),
        (["production", "--config", "/nonexistent.json"], "no policy config /nonexistent.json"),
    ],
)
def test_bad_input_exits_2_without_a_traceback(capsys, args, expected):
    assert tool.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and expected in err and "Traceback" not in err


@pytest.mark.parametrize(
    "content, expected",
    [
        (None, "no resources.json"),
        ("{not json", "not valid JSON"),
        ('{"a": 1}', "expected a list of resources"),
        ('[{"urn": "x"}]', "resource 0 lacks type, name, inputs"),
    ],
)
def test_a_bad_plan_folder_exits_2(tmp_path, capsys, content, expected):
    plan = tmp_path / "plan"
    plan.mkdir()
    if content is not None:
        (plan / "resources.json").write_text(content)
    assert tool.main(["production", "--plan", str(plan)]) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err


def test_a_plan_of_another_stack_is_refused(tmp_path, capsys):
    assert tool.main(["production", "--plan", str(_plan(tmp_path, "dev"))]) == 2
    assert "the plan is of stack dev, not production" in capsys.readouterr().err


def test_bad_input_from_the_command_line_has_no_traceback():
    done = run_module("tools.policy", "production", "--plan", "/nonexistent", timeout=120)
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and "Traceback" not in done.stderr


def test_the_runner_and_the_pack_are_the_same_policies():
    svc = tool.servicer()
    info = svc.GetAnalyzerInfo(None, None)
    assert info.name == PACK_NAME
    assert [p.name for p in info.policies] == [r.name for r in RULES]
    assert {p.enforcementLevel for p in info.policies} == {0}  # advisory unless configured


def test_the_analyze_cache_gives_the_servicers_own_answers():
    recs = records()
    res(recs, "ingress-lb")["protect"] = False
    cfg = config()
    cache: dict = {}
    plain = tool.analyze(recs, "production", cfg)
    assert tool.analyze(recs, "production", cfg, cache=cache) == plain
    assert tool.analyze(recs, "production", cfg, cache=cache) == plain and cache
    res(recs, "ingress-lb")["protect"] = True
    assert tool.analyze(recs, "production", cfg, cache=cache) == []


def test_cached_conversions_give_each_policy_a_tree_of_its_own():
    """With a cache, the servicer's Struct-to-dict conversions are memoized
    (`tools.policy._MemoizedJsonFormat`): a policy that writes into the properties it is given
    still changes nothing that another policy, or a later analysis, sees."""
    from google.protobuf import json_format
    from pulumi_policy import EnforcementLevel, StackValidationPolicy
    from pulumi_policy import policy as sdk
    from pulumi_policy.policy import _PolicyAnalyzerServicer

    def writer(args, report):
        for r in args.resources:
            r.props["spec"] = "overwritten"  # a dict proxy writes through

    def reader(args, report):
        for r in args.resources:
            spec = r.props["spec"]
            report(f"{r.name}: {spec if isinstance(spec, str) else spec['replicas']}", r.urn)

    policies = [
        StackValidationPolicy(name="writer", description="Writes.", validate=writer),
        StackValidationPolicy(name="reader", description="Reads.", validate=reader),
    ]
    svc = _PolicyAnalyzerServicer("probe-pack", "0.0.1", policies, EnforcementLevel.ADVISORY)
    urn = "urn:pulumi:production::service-mesh::probe:index:Thing::a"
    recs = [
        {"urn": urn, "type": "probe:index:Thing", "name": "a", "inputs": {"spec": {"replicas": 2}}}
    ]
    cfg = {"writer": ("advisory", {}), "reader": ("advisory", {})}
    plain = tool.analyze(recs, "production", cfg, svc)
    assert [(f.policy, f.urn, f.message) for f in plain] == [("reader", urn, "Reads.\na: 2.0")]
    cache: dict = {}
    for _ in range(3):
        assert tool.analyze(recs, "production", cfg, svc, cache) == plain
    assert cache[tool._CONVERSIONS], "the conversions were memoized"
    assert sdk.json_format is json_format, "and the servicer's module is restored"
