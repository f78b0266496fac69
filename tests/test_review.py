"""The offline review (`tools/review.py`) on real plan pairs of the program, asserted on its JSON
form: a region change replaces protected resources and is flagged first; a new service brings
its objects and a new edge in the diagram; a changed secret says "changed" and never its value.
Then the comment budget on a generated 1000-service diff, the replace-forcing table's coverage
of every type the program registers, and the command line (`--base-ref` included)."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.conftest import STACKS, run_config, stack_config, stack_run
from tests.forked import run_module
from tools import review, review_replace
from tools.engine import ROOT
from tools.plan import write
from tools.review_diff import DIGESTS, Plan, load_plan

VPC = "digitalocean:index/vpc:Vpc"
CLUSTER = "digitalocean:index/kubernetesCluster:KubernetesCluster"
LB = "digitalocean:index/loadBalancer:LoadBalancer"
BUCKET = "digitalocean:index/spacesBucket:SpacesBucket"
DNS = "digitalocean:index/dnsRecord:DnsRecord"
SECRET_TYPE = "kubernetes:core/v1:Secret"
AUTHZ = "kubernetes:security.istio.io/v1:AuthorizationPolicy"
# A rotation step (docs/security.md): the old root is trusted beside the new one.
EXTRA_ROOT = (
    "-----BEGIN CERTIFICATE-----\nT0xEUk9PVC1VTklRVUUtTUFSS0VS\n-----END CERTIFICATE-----\n"
)


def _plan_dir(tmp: Path, name: str, run) -> Path:
    assert run.error is None, run.error
    out = tmp / name
    write(run, out)
    return out


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> dict[str, Path]:
    """Production planned as committed, and three changes of it, each planned once."""
    tmp = tmp_path_factory.mktemp("review")
    for sub in ("r", "s", "c"):
        (tmp / sub).mkdir()
    dirs = {"base": _plan_dir(tmp, "base", stack_run("production"))}

    region = stack_config("production")
    region["service-mesh:cluster"] = {**region["service-mesh:cluster"], "region": "ams3"}
    dirs["region"] = _plan_dir(tmp, "region", run_config(tmp / "r", "production", region))

    service = stack_config("production")
    service["service-mesh:services"] = [
        *service["service-mesh:services"],
        {
            "name": "reviews",
            "namespace": "shop",
            "serviceAccount": "reviews",
            "ports": [{"name": "http", "port": 8080}],
            "callers": [{"service": "frontend", "methods": ["GET"], "paths": ["/api/reviews"]}],
        },
    ]
    dirs["service"] = _plan_dir(tmp, "service", run_config(tmp / "s", "production", service))

    rotation = stack_config("production")
    security = copy.deepcopy(rotation.get("service-mesh:security") or {})
    security.setdefault("meshCa", {})["additionalTrustedRoots"] = [EXTRA_ROOT]
    rotation["service-mesh:security"] = security
    dirs["secret"] = _plan_dir(tmp, "secret", run_config(tmp / "c", "production", rotation))
    return dirs


def _review(old: Path, new: Path, policy: bool = False) -> review.StackReview:
    return review.review_plans(load_plan(old), load_plan(new), new, run_policy=policy)


def _json(r: review.StackReview) -> dict:
    doc = review.render_json([r])
    (stack,) = doc["stacks"]
    return json.loads(json.dumps(stack, default=str))


def _by_name(stack: dict) -> dict[tuple[str, str], dict]:
    return {(r["type"], r["name"]): r for r in stack["resources"]}


def test_a_plan_reviewed_against_itself_changes_nothing(pairs):
    stack = _json(_review(pairs["base"], pairs["base"]))
    assert stack["resources"] == [] and stack["summary"]["blockers"] == 0
    assert all(e["status"] == "kept" for e in stack["graph"]["edges"])


def test_a_region_change_flags_the_replaced_protected_resources_first(pairs):
    r = _review(pairs["base"], pairs["region"], policy=True)
    stack = _json(r)
    found = _by_name(stack)
    blockers = {(x["type"], x["name"]) for x in stack["resources"] if x["blocker"]}
    for type_ in (VPC, CLUSTER, LB, BUCKET):
        (hit,) = [k for k in blockers if k[0] == type_]
        entry = found[hit]
        assert entry["action"] == "replace" and entry["protected"]
        region = [c for c in entry["changes"] if c["path"] == "region"]
        assert region and region[0]["replaces"] and region[0]["new"] == "ams3"
        assert "terraform-provider-digitalocean" in entry["reasons"][0], "source named"
    # Dependents follow the way a real preview shows them: the node pool takes the new
    # cluster's id (replace-forcing), the Kubernetes provider its clusterIdentifier, so every
    # in-cluster object is replaced too; DNS records only get the new load balancer IP.
    pool = found[
        ("digitalocean:index/kubernetesNodePool:KubernetesNodePool", "mesh-production-workload")
    ]
    assert pool["action"] == "replace" and "clusterId" in pool["reasons"][0]
    provider = [x for x in stack["resources"] if x["type"] == "pulumi:providers:kubernetes"]
    assert provider and provider[0]["action"] == "replace"
    cacerts = [x for x in stack["resources"] if x["type"] == SECRET_TYPE and "cacerts" in x["name"]]
    assert cacerts and cacerts[0]["blocker"], "a protected in-cluster object is a blocker too"
    dns = [x for x in stack["resources"] if x["type"] == DNS]
    assert dns and all(x["action"] == "update" for x in dns)
    assert stack["failed"] and stack["summary"]["blockers"] == len(blockers) >= 5
    assert stack["policy"]["status"] in ("passed", "failed") and "violations" in stack["policy"]
    text = review.render_markdown([r])
    assert text.index("Blockers") < text.index("### production"), "blockers come first"
    assert "mesh-production-vpc" in text[: text.index("### production")]


def test_a_replaced_vpc_overlapping_the_one_it_replaces_is_refused(pairs):
    """A region change keeps `vpcCidr`: the new VPC is created while the old one exists, in
    the same account, with the same range, which DigitalOcean refuses. An unused range is
    only a replacement (still a blocker in production: the VPC is protected)."""
    base, region = load_plan(pairs["base"]), load_plan(pairs["region"])
    (vpc,) = [d for d in review.diff_plans(base, region) if d.type == VPC]
    assert vpc.action == "replace" and vpc.refused
    assert "overlaps the replaced" in vpc.refused[0] and "vpc.yml" in vpc.refused[0]

    moved = copy.deepcopy(region)
    urn = next(u for u, r in moved.resources.items() if r["type"] == VPC)
    old_range = base.resources[urn]["inputs"]["ipRange"]
    for fresh, refused in (("10.250.0.0/20", False), (old_range, True), ("10.0.0.0/8", True)):
        moved.resources[urn]["inputs"]["ipRange"] = fresh
        (vpc,) = [d for d in review.diff_plans(base, moved) if d.type == VPC]
        assert bool(vpc.refused) is refused, (fresh, old_range)


def test_a_zone_removed_from_the_program_is_only_forgotten(tmp_path):
    """Removing staging's `hosts` deletes its A records but leaves the zone in the cloud
    (retainOnDelete, read from the base plan as Pulumi reads it from the state): the review
    says so instead of announcing the zone's deletion."""
    base = _plan_dir(tmp_path, "base", stack_run("staging"))
    config = stack_config("staging")
    ingress = {**config["service-mesh:ingress"]}
    ingress.pop("hosts")
    config["service-mesh:ingress"] = ingress
    (tmp_path / "h").mkdir()
    head = _plan_dir(tmp_path, "head", run_config(tmp_path / "h", "staging", config))
    r = _review(base, head)
    deleted = {d.type: d for d in r.diffs if d.action == "delete"}
    assert deleted["digitalocean:index/domain:Domain"].retained
    assert not deleted["digitalocean:index/dnsRecord:DnsRecord"].retained
    text = review.render_markdown([r])
    assert "ingress-domain (retainOnDelete: only forgotten, it stays in the cloud)" in text
    entries = {x["type"]: x for x in _json(r)["resources"] if x["action"] == "delete"}
    assert entries["digitalocean:index/domain:Domain"]["retained"] is True


def test_a_new_service_brings_its_objects_and_a_new_edge(pairs):
    r = _review(pairs["base"], pairs["service"])
    stack = _json(r)
    created = {(x["type"], x["name"]) for x in stack["resources"] if x["action"] == "create"}
    assert any(t == AUTHZ and "reviews" in n for t, n in created)
    assert stack["summary"]["replace"] == 0 and stack["summary"]["blockers"] == 0
    edges = {(e["from"], e["to"]): e["status"] for e in stack["graph"]["edges"]}
    assert edges[("shop/frontend", "shop/reviews")] == "added"
    assert edges[("shop/frontend", "shop/checkout")] == "kept"
    assert "shop/reviews" in stack["graph"]["addedNodes"]
    text = review.render_markdown([r])
    chart = text[text.index("```mermaid") : text.index("```", text.index("```mermaid") + 3)]
    assert "==>" in chart and "shop/reviews" in chart and ":::added" in chart


def test_a_changed_secret_says_changed_and_never_its_value(pairs):
    r = _review(pairs["base"], pairs["secret"])
    stack = _json(r)
    (cacerts,) = [
        x for x in stack["resources"] if x["type"] == SECRET_TYPE and "cacerts" in x["name"]
    ]
    (change,) = cacerts["changes"]
    assert change == {
        **change,
        "path": "stringData",
        "kind": "secret",
        "secret": True,
        "changed": True,
        "old": "[secret]",
        "new": "[secret]",
    }
    # The provider enables mutable Secrets (pulumi-kubernetes would otherwise replace a Secret
    # whose data changes, and cacerts is protected): the rotation step is an update in place.
    assert not change["replaces"]
    assert cacerts["action"] == "update" and not cacerts["blocker"]
    others = [x for x in stack["resources"] if x is not cacerts]
    assert others == [], "nothing else changes in a rotation step"
    text = review.render_markdown([r]) + json.dumps(review.render_json([r]))
    assert "[secret] **changed**" in text
    assert "T0xEUk9PVC1VTklRVUUtTUFSS0VS" not in text and "offline-placeholder" not in text


def test_without_mutable_secrets_a_changed_protected_secret_is_a_blocker(pairs, tmp_path):
    """What the provider setting prevents: pulumi-kubernetes replaces a Secret whose data
    changes unless the provider enables mutable Secrets, and protect refuses the replacement."""
    plans = {}
    for side in ("base", "secret"):
        plans[side] = tmp_path / side
        shutil.copytree(pairs[side], plans[side])
        records = json.loads((plans[side] / "resources.json").read_text())
        for record in records:
            if record["type"] == "pulumi:providers:kubernetes":
                record["inputs"].pop("enableSecretMutable", None)
        (plans[side] / "resources.json").write_text(json.dumps(records, indent=2))
    stack = _json(_review(plans["base"], plans["secret"]))
    (cacerts,) = [
        x for x in stack["resources"] if x["type"] == SECRET_TYPE and "cacerts" in x["name"]
    ]
    (change,) = cacerts["changes"]
    assert change["replaces"] and "enableSecretMutable" in change["reason"]
    assert cacerts["blocker"]


def test_the_policy_verdict_is_shown_also_when_it_fails(pairs, tmp_path):
    head = tmp_path / "unprotected"
    shutil.copytree(pairs["base"], head)
    records = json.loads((head / "resources.json").read_text())
    for r in records:
        if r["type"] == CLUSTER:
            r["protect"] = False
    (head / "resources.json").write_text(json.dumps(records))
    r = _review(pairs["base"], head, policy=True)
    stack = _json(r)
    assert stack["policy"]["status"] == "failed" and stack["policy"]["mandatory"] >= 1
    assert any(v["level"] == "mandatory" for v in stack["policy"]["violations"])
    (cluster,) = [x for x in stack["resources"] if x["type"] == CLUSTER]
    assert cluster["action"] == "update" and cluster["changes"][0]["path"] == "(option) protect"
    assert r.failed
    text = review.render_markdown([r])
    assert "❌ 1 mandatory" in text or "mandatory, 0 advisory" in text
    assert "**Policy violations**" in text and "[mandatory]" in text


def test_without_digests_a_secret_may_have_changed(pairs, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(pairs["base"], old)
    (old / DIGESTS).unlink()
    stack = _json(_review(old, pairs["secret"]))
    assert stack["resources"] == [], "an otherwise unchanged Secret cannot be told changed"
    assert "no digests.json" in stack["secretsUnknown"]
    # A resource that changes otherwise lists its secrets as "may have changed".
    base, head = load_plan(old), load_plan(pairs["secret"])
    (urn,) = [u for u, r in head.resources.items() if r["name"].endswith("cacerts")]
    head.resources[urn]["inputs"]["metadata"]["labels"]["rotation"] = "2"
    (diff,) = review.diff_plans(base, head)
    kinds = {c.path: c.kind for c in diff.changes}
    assert kinds == {"metadata.labels.rotation": "added", "stringData": "secret?"}
    (maybe,) = [c for c in diff.changes if c.kind == "secret?"]
    assert "digests" in maybe.reason and not maybe.replaces


def test_a_digest_is_stable_and_covers_each_secret(pairs):
    digests = json.loads((pairs["base"] / DIGESTS).read_text())["resources"]
    records = json.loads((pairs["base"] / "resources.json").read_text())
    assert set(digests) == {r["urn"] for r in records}
    assert all(len(d["inputs"]) == 64 for d in digests.values())
    base, rerun = load_plan(pairs["base"]), load_plan(pairs["base"])
    assert base.digests == rerun.digests


# --- budget ----------------------------------------------------------------------------------


def _thousand_services(base: Plan) -> tuple[Plan, Plan]:
    """1000 services (every object the program makes for `checkout`, cloned) on both sides,
    each changed on the head with long values, 1000 more created, the VPC deleted. Each clone
    is parsed from the template's JSON text with the name replaced: a new object each time."""
    template = [json.dumps(r) for r in base.resources.values() if "checkout" in r["urn"]]
    assert template, "the production plan has a checkout service"
    old, new = dict(base.resources), dict(base.resources)
    for i in range(1000):
        for text in template:
            a = json.loads(text.replace("checkout", f"svc{i:04d}"))
            old[a["urn"]] = a
            b = json.loads(text.replace("checkout", f"svc{i:04d}"))
            b["inputs"].setdefault("metadata", {}).setdefault("labels", {})["rev"] = "x" * 400
            b["inputs"]["spec"] = {"long": [f"/api/v{j}/" + "y" * 50 for j in range(40)]}
            new[b["urn"]] = b
            c = json.loads(text.replace("checkout", f"new{i:04d}"))
            new[c["urn"]] = c
    (vpc,) = [u for u, r in new.items() if r["type"] == VPC]
    del new[vpc]
    return (
        Plan(base.stack, old, base.digests, "base"),
        Plan(base.stack, new, base.digests, "head"),
    )


@pytest.fixture(scope="module")
def thousand(pairs) -> review.StackReview:
    old, new = _thousand_services(load_plan(pairs["base"]))
    return review.review_plans(old, new, None)


def test_the_comment_stays_within_budget_for_a_1000_service_diff(thousand):
    r = thousand
    text = review.render_markdown([r])
    assert len(text) <= review.BUDGET
    counts = review.counts(r.diffs)
    assert counts["create"] >= 1000 and counts["update"] >= 1000 and counts["delete"] == 1
    row = review._row(r)
    assert row in text, "the summary table is never cut"
    assert "\n".join(review._summary(r)) in text, "nor the stack's summary"
    assert "Blockers" in text and "mesh-production-vpc" in text, "the deleted VPC blocks"
    assert "more not shown (budget)" in text
    assert "```mermaid" in text and "left out to fit the comment" in text
    for block in text.split("\n- **update**")[1:]:
        assert len(block) <= review.RESOURCE_BUDGET + 200, "one resource cannot eat the budget"


def test_three_stacks_share_one_budget(thousand):
    reviews = [copy.copy(thousand) for _ in STACKS]
    for r, stack in zip(reviews, STACKS, strict=True):
        r.stack = stack
    text = review.render_markdown(reviews)
    assert len(text) <= review.BUDGET
    assert all(f"### {s}" in text and f"| {s} |" in text for s in STACKS)


# --- the replace-forcing table ---------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_every_type_the_program_registers_has_a_replace_rule_with_a_source(stack):
    unknown = sorted(
        {r.type for r in stack_run(stack).resources if review_replace.rule(r.type) is None}
    )
    assert unknown == [], f"add these types to tools/review_replace.py: {unknown}"
    for r in stack_run(stack).resources:
        rule = review_replace.rule(r.type)
        assert rule is not None and rule.source


def test_the_table_names_the_upstream_files_and_commits():
    do_rules = {t: r for t, r in review_replace.EXACT.items() if t.startswith("digitalocean:")}
    assert all("401992a1" in r.source and ".go" in r.source for r in do_rules.values())
    assert review_replace.EXACT[VPC].paths == ("region", "ipRange")
    assert "nodePool.size" in review_replace.EXACT[CLUSTER].paths
    assert review_replace.covers("spec.containers[*].image", "spec.containers[3].image")
    assert review_replace.covers("spec.selector", "spec.selector.matchLabels.app")
    assert not review_replace.covers("metadata.name", "metadata.labels.app")


def _cluster_plans(base: Plan, old_ignores: bool, new_ignores: bool, **inputs):
    """The base plan and a copy with the cluster's inputs changed, `version` ignored
    (unpinned: DOKS upgrades it) or not (pinned) in each, as tools.engine records it."""
    (urn,) = [u for u, r in base.resources.items() if r["type"] == CLUSTER]
    old, head = copy.deepcopy(base), copy.deepcopy(base)
    for plan, ignores in ((old, old_ignores), (head, new_ignores)):
        record = plan.resources[urn]
        record.pop("ignoreChanges", None)
        if ignores:
            record["ignoreChanges"] = ["version"]
    head.resources[urn]["inputs"].update(inputs)
    return old, head, urn


def _cluster_pair(base: Plan, old_ignores: bool, new_ignores: bool, **inputs) -> list:
    old, head, urn = _cluster_plans(base, old_ignores, new_ignores, **inputs)
    return [d for d in review.diff_plans(old, head) if d.urn == urn]


def test_the_plan_records_what_the_program_ignores(pairs):
    """Unpinned, production leaves the cluster's version to DOKS (`ignore_changes`), and the
    plan says so: the review reads it from there."""
    cluster = next(r for r in load_plan(pairs["base"]).resources.values() if r["type"] == CLUSTER)
    assert cluster["ignoreChanges"] == ["version"]
    assert all(
        "ignoreChanges" not in r or r["ignoreChanges"]
        for r in load_plan(pairs["base"]).resources.values()
    ), "written only when set"


def test_a_version_goes_up_in_place_and_down_by_replacement(pairs):
    base = load_plan(pairs["base"])
    for version, action in (("1.99.0-do.0", "update"), ("1.1.0-do.0", "replace")):
        (diff,) = _cluster_pair(base, False, False, version=version)
        assert diff.action == action


def test_an_ignored_change_is_not_a_change(pairs):
    """Both plans leave the version to DOKS: `pulumi up` keeps the state's, whatever the
    program computes, so the review shows nothing (it showed an update or a replacement)."""
    base = load_plan(pairs["base"])
    for version in ("1.99.0-do.0", "1.1.0-do.0"):
        assert _cluster_pair(base, True, True, version=version) == []
    (diff,) = _cluster_pair(base, True, True, version="1.1.0-do.0", surgeUpgrade=False)
    assert diff.action == "update" and [c.path for c in diff.changes] == ["surgeUpgrade"]


def test_pinning_a_version_the_cloud_managed_is_judged_by_its_minor(pairs):
    """Unpinned, DOKS applies the minor's patches in its window, so the live version is the
    base's minor at a patch unknown offline. Pinning the next minor (README's upgrade) is an
    update; a lower minor replaces; a pin in the same minor is an update with a caution to
    compare with the live version first (a live patch above the pin would go down)."""
    base = load_plan(pairs["base"])
    old_version = next(r for r in base.resources.values() if r["type"] == CLUSTER)["inputs"][
        "version"
    ]
    major, minor = (int(x) for x in old_version.split(".")[:2])
    cases = (
        (f"{major}.{minor + 1}.4-do.0", "update", False),
        (f"{major}.{minor - 1}.9-do.0", "replace", False),
        (f"{major}.{minor}.0-do.0", "replace", False),  # below the base's own patch
        (f"{major}.{minor}.99-do.0", "update", True),
    )
    for version, action, caution in cases:
        (diff,) = _cluster_pair(base, True, False, version=version)
        assert diff.action == action, (version, diff.reasons)
        assert bool(diff.cautions) is caution, version
    old, head, _ = _cluster_plans(base, True, False, version=f"{major}.{minor}.99-do.0")
    r = review.review_plans(old, head, None, run_policy=False)
    assert not r.failed, "a caution blocks nothing"
    assert "live version above" in review.render_markdown([r])
    assert _json(r)["resources"][0]["cautions"]


def test_turning_off_an_ha_control_plane_is_a_refused_change(pairs):
    """DigitalOcean refuses `ha: true -> false` and the provider sends it as an update: the
    review makes it a blocker, with the API's words and source; false -> true is an update."""
    base = load_plan(pairs["base"])
    old, head, urn = _cluster_plans(base, False, False, ha=False)
    r = review.review_plans(old, head, None, run_policy=False)
    (off,) = [d for d in r.diffs if d.urn == urn]
    assert off.action == "update" and off.blocker
    assert off.refused and "cannot be disabled" in off.refused[0]
    assert "digitalocean/openapi" in off.refused[0]
    text = review.render_markdown([r])
    blockers = text[text.index("Blockers") : text.index("### production")]
    assert "refused change of" in blockers and "ha True -> False" in blockers
    assert r.failed and _json(r)["resources"][0]["refused"] == off.refused

    base_off = copy.deepcopy(base)
    urn = next(u for u, x in base_off.resources.items() if x["type"] == CLUSTER)
    base_off.resources[urn]["inputs"]["ha"] = False
    (on,) = _cluster_pair(base_off, False, False, ha=True)
    assert on.action == "update" and not on.blocker and not on.refused


# --- command line ----------------------------------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return run_module("tools.review", *args)


def test_the_command_line_prints_json_and_exits_1_on_blockers(pairs, tmp_path):
    out = tmp_path / "r.json"
    done = _cli(
        str(pairs["base"]), str(pairs["region"]), "--format", "json", "--json-out", str(out)
    )
    assert done.returncode == 1, done.stderr
    doc = json.loads(done.stdout)
    assert doc == json.loads(out.read_text()) and doc["failed"]
    assert doc["stacks"][0]["policy"]["status"] in ("passed", "failed", "absent")
    again = _cli(str(pairs["base"]), str(pairs["region"]), "--json-out", str(out))
    assert again.returncode == 2 and "refusing" in again.stderr, "never replaces a file"


@pytest.mark.parametrize(
    "args, words",
    [
        (["/nonexistent-plan", "/nonexistent-too"], "no such directory"),
        (["only-one"], "OLD_PLAN_DIR NEW_PLAN_DIR"),
        (["dev", "--base-ref", "no-such-ref-anywhere"], "no such commit"),
        (["bad name!", "--base-ref", "HEAD"], "not valid"),
    ],
)
def test_bad_input_exits_2_with_a_message(args, words):
    done = _cli(*args)
    assert done.returncode == 2 and words in done.stderr and "Traceback" not in done.stderr


def test_the_cost_change_is_shown(pairs):
    base = load_plan(pairs["base"])
    head = copy.deepcopy(base)
    (pool,) = [r for r in head.resources.values() if r["type"].endswith("KubernetesNodePool")]
    pool["inputs"]["maxNodes"] += 5  # 5 more s-4vcpu-8gb at 48.00
    r = review.review_plans(base, head, None)
    cost = review.render_json([r])["stacks"][0]["cost"]
    assert cost["head"]["maximum"] - cost["base"]["maximum"] == pytest.approx(240.0)
    assert cost["head"]["minimum"] == cost["base"]["minimum"]
    text = review.render_markdown([r])
    assert "+0.00 / +240.00" in text and "144.00-960.00 → 144.00-1,200.00" in text


def test_an_absent_policy_pack_is_said_so(monkeypatch, pairs):
    import tools

    monkeypatch.setitem(sys.modules, "tools.policy", None)  # `import` raises ImportError
    monkeypatch.delattr(tools, "policy", raising=False)
    verdict = review.policy_verdict("production", pairs["base"])
    assert verdict["status"] == "absent" and "tools/policy.py" in verdict["message"]
    r = _review(pairs["base"], pairs["base"], policy=True)
    assert "tools/policy.py is not in this checkout" in review.render_markdown([r])


def test_a_stack_whose_new_plan_fails_is_reported_and_fails_the_review():
    r = review.StackReview("staging", "main", "working tree", error="cluster.region: 'fra9'")
    text = review.render_markdown([r])
    assert "the new plan fails" in text and "cluster.region: 'fra9'" in text
    assert r.failed and review.render_json([r])["failed"]


def test_base_ref_plans_in_a_worktree_it_removes(tmp_path):
    # The suite runs in a git checkout (CI clones one); outside one this must fail, not pass.
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True)
    assert head.returncode == 0, "the review's --base-ref is tested in a git checkout"
    before = subprocess.run(
        ["git", "worktree", "list", "--porcelain"], cwd=ROOT, capture_output=True, text=True
    ).stdout
    leftovers = set(Path(tempfile.gettempdir()).glob("service-mesh-review-*"))
    done = _cli("dev", "--base-ref", "HEAD", "--format", "json")
    assert done.returncode in (0, 1), done.stderr
    (stack,) = json.loads(done.stdout)["stacks"]
    assert stack["stack"] == "dev" and "HEAD (" in stack["base"] and stack["head"] == "working tree"
    after = subprocess.run(
        ["git", "worktree", "list", "--porcelain"], cwd=ROOT, capture_output=True, text=True
    ).stdout
    assert after == before, "the temporary worktree is removed"
    assert set(Path(tempfile.gettempdir()).glob("service-mesh-review-*")) == leftovers
