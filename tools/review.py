"""Offline review of a change: `python -m tools.review OLD_PLAN_DIR NEW_PLAN_DIR` compares two
plan folders written by `tools.plan`; `python -m tools.review STACK [STACK ...] --base-ref REF`
plans each stack at REF (in a temporary git worktree it removes again) and in the working tree,
and compares them. `--format markdown` (default: the PR comment) or `json` (everything, untrimmed).

Why: it needs no credentials and no Pulumi CLI, so it runs for every pull request, forks
included, and says what a cloud preview comment cannot (pulumi/actions posts nothing when the
preview fails, and cuts at 64,000 characters): replacements of protected resources first, the
policy verdict also when it fails, the monthly cost and its change, whether the platform still
fits its minimum node pools, and a picture of the service graph with the changed edges marked.
The markdown never exceeds `BUDGET` characters and its summary is never cut: long values are
truncated per resource and details left out last.

Exit 0 when nothing blocks, 1 when a protected resource would be replaced or deleted, the
platform does not fit, a mandatory policy is violated or a stack cannot be planned, 2 for bad
input (no traceback). It never touches the checkout or any file it did not create.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools import diagram
from tools.cost import Cost, cost_lines, stack_cost
from tools.review_capacity import Capacity, capacity, capacity_lines
from tools.review_diff import (
    DIGESTS,
    SECRET,
    Plan,
    PlanError,
    ResourceDiff,
    counts,
    diff_plans,
    empty_plan,
    load_plan,
)

ROOT = Path(__file__).resolve().parent.parent
BUDGET = 60_000  # GitHub refuses comments over 65,536 characters
RESOURCE_BUDGET = 2_500  # characters of one resource's property diffs
VALUE_MAX = 160  # characters of one shown value
CHANGES_PER_RESOURCE = 25
SUMMARY_LIST_MAX = 30  # blockers or replacements listed in the summary before "and N more"
MARKER = "<!-- service-mesh-offline-review -->"
_STACK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class ReviewError(Exception):
    """Bad input: printed as `error: ...`, exit 2."""


@dataclass
class StackReview:
    stack: str
    base: str
    head: str
    diffs: list[ResourceDiff] = field(default_factory=list)
    policy: dict[str, Any] = field(default_factory=dict)
    cost_old: Cost | None = None
    cost_new: Cost | None = None
    capacity: Capacity | None = None
    graph_old: diagram.Graph = field(default_factory=diagram.Graph)
    graph_new: diagram.Graph = field(default_factory=diagram.Graph)
    error: str = ""  # the head could not be planned
    secrets_unknown: str = ""  # why a changed secret cannot be told (a plan without digests)

    @property
    def blockers(self) -> list[ResourceDiff]:
        return [d for d in self.diffs if d.blocker]

    @property
    def failed(self) -> bool:
        return bool(
            self.error
            or self.blockers
            or (self.capacity is not None and not self.capacity.fits)
            or self.policy.get("status") == "failed"
        )


# --- the policy verdict ----------------------------------------------------------------------


def policy_verdict(stack: str, plan_dir: Path) -> dict[str, Any]:
    """The policy pack's verdict on the new plan, through `tools.policy` when it exists."""
    try:
        from tools import policy
    except ImportError:
        return {
            "status": "absent",
            "message": "tools/policy.py is not in this checkout: no policy verdict",
        }
    try:
        report = policy.run(stack, plan_dir, None)
    except policy.PolicyInputError as error:
        return {"status": "error", "message": str(error)}
    except Exception as error:  # the pack itself is broken: say so, keep the review
        return {"status": "error", "message": f"{type(error).__name__}: {error}"}
    return {
        "status": "failed" if report.mandatory else "passed",
        "policies": report.policies,
        "mandatory": len(report.mandatory),
        "advisory": len(report.advisory),
        "violations": [
            {"level": f.level, "policy": f.policy, "urn": f.urn, "message": f.line()}
            for f in report.findings
        ],
    }


# --- building a review -----------------------------------------------------------------------


def review_plans(
    old: Plan, new: Plan, new_dir: Path | None, stack: str = "", run_policy: bool = True
) -> StackReview:
    """The review of one stack's plan pair; the policy pack runs on `new_dir`'s plan."""
    stack = stack or new.stack or old.stack
    if old.stack and new.stack and old.stack != new.stack:
        raise ReviewError(f"the plans are of different stacks: {old.stack} and {new.stack}")
    r = StackReview(stack, old.label, new.label)
    r.diffs = diff_plans(old, new)
    for plan, side in ((old, "base"), (new, "new")):
        if plan.digests is None:
            r.secrets_unknown = (
                f"the {side} plan has no {DIGESTS} (written before tools.plan wrote one): "
                "a changed [secret] of an otherwise unchanged resource cannot be seen"
            )
    old_resources, new_resources = list(old.resources.values()), list(new.resources.values())
    r.cost_old, r.cost_new = stack_cost(old_resources), stack_cost(new_resources)
    r.capacity = capacity(new_resources)
    r.graph_old = diagram.service_graph(old_resources)
    r.graph_new = diagram.service_graph(new_resources)
    if run_policy and new_dir is not None:
        r.policy = policy_verdict(stack, new_dir)
    else:
        r.policy = {"status": "skipped", "message": "policy pack not run (no plan folder)"}
    return r


def _git(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)


def _plan(checkout: Path, stack: str, out: Path) -> str:
    """Run `tools.plan` of `checkout` (its own code) for `stack`; '' or the error it printed."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    proc = subprocess.run(
        [sys.executable, "-m", "tools.plan", stack, "--out", str(out)],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if (out / "resources.json").is_file():  # exit 1 (capacity refused) still wrote the plan
        return ""
    return (proc.stderr or proc.stdout).strip() or f"tools.plan exited {proc.returncode}"


def review_ref(stacks: list[str], ref: str) -> list[StackReview]:
    """Plan `stacks` at `ref` and in the working tree, and review each pair."""
    for stack in stacks:
        if not _STACK.match(stack):
            raise ReviewError(f"stack name {stack!r} is not valid")
    top = _git("rev-parse", "--show-toplevel")
    if top.returncode != 0:
        raise ReviewError(f"{ROOT} is not a git checkout: --base-ref needs one")
    resolved = _git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    if resolved.returncode != 0:
        raise ReviewError(f"--base-ref {ref}: no such commit (fetch it first, e.g. fetch-depth: 0)")
    sha = resolved.stdout.strip()
    head_root = Path(top.stdout.strip())
    sub = ROOT.relative_to(head_root) if ROOT != head_root else Path()
    tmp = Path(tempfile.mkdtemp(prefix="service-mesh-review-"))
    worktree = tmp / "base"
    try:
        added = _git("worktree", "add", "--detach", "--quiet", str(worktree), sha)
        if added.returncode != 0:
            raise ReviewError(f"git worktree add failed: {added.stderr.strip()}")
        reviews = []
        for stack in stacks:
            base_dir, head_dir = tmp / f"{stack}-base", tmp / f"{stack}-head"
            label = f"{ref} ({sha[:12]})"
            if (worktree / sub / f"Pulumi.{stack}.yaml").is_file():
                problem = _plan(worktree / sub, stack, base_dir)
                if problem:
                    error = f"the base cannot be planned at {ref}: {problem}"
                    reviews.append(StackReview(stack, label, "working tree", error=error))
                    continue
                old = load_plan(base_dir, label)
            else:
                old = empty_plan(stack, f"{label}, no stack file")
            if not (ROOT / f"Pulumi.{stack}.yaml").is_file():
                raise ReviewError(f"no stack file Pulumi.{stack}.yaml in the working tree")
            problem = _plan(ROOT, stack, head_dir)
            if problem:
                reviews.append(StackReview(stack, old.label, "working tree", error=problem))
                continue
            reviews.append(review_plans(old, load_plan(head_dir, "working tree"), head_dir, stack))
        return reviews
    finally:
        if worktree.exists():
            removed = _git("worktree", "remove", "--force", str(worktree))
            if removed.returncode != 0:
                shutil.rmtree(worktree, ignore_errors=True)
                _git("worktree", "prune")
        shutil.rmtree(tmp, ignore_errors=True)


# --- markdown --------------------------------------------------------------------------------


def _short(value: Any, limit: int = VALUE_MAX) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    text = text.replace("\n", "\\n").replace("`", "'")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _money(value: float) -> str:
    return f"{value:,.2f}"


def _delta(new: float, old: float) -> str:
    d = new - old
    return f"{'+' if d >= 0 else '-'}{_money(abs(d))}"


def _policy_cell(p: dict[str, Any]) -> str:
    status = p.get("status")
    if status == "passed":
        return f"✅ passed ({p.get('advisory', 0)} advisory)"
    if status == "failed":
        return f"❌ {p['mandatory']} mandatory, {p['advisory']} advisory"
    if status == "error":
        return "⚠️ could not run"
    return "— not run" if status == "skipped" else "— absent"


def _row(r: StackReview) -> str:
    if r.error:
        return f"| {r.stack} | ❌ the new plan fails | | | | | | | | |"
    c = counts(r.diffs)
    assert r.cost_new is not None and r.cost_old is not None and r.capacity is not None
    blockers = f"⛔ {len(r.blockers)}" if r.blockers else "0"
    cost = f"{_money(r.cost_new.minimum)}-{_money(r.cost_new.maximum)}"
    change = f"{_delta(r.cost_new.minimum, r.cost_old.minimum)} / "
    change += _delta(r.cost_new.maximum, r.cost_old.maximum)
    fits = "✅ fits" if r.capacity.fits else "❌ does not fit"
    return (
        f"| {r.stack} | {c['create']} | {c['update']} | {c['replace']} | {c['delete']} | "
        f"{blockers} | {_policy_cell(r.policy)} | {cost} | {change} | {fits} |"
    )


def _capped(lines: list[str], limit: int = SUMMARY_LIST_MAX) -> list[str]:
    if len(lines) <= limit:
        return lines
    return [*lines[:limit], f"- … and {len(lines) - limit} more (see the JSON form)"]


def _blocker_line(r: StackReview, d: ResourceDiff) -> str:
    if d.refused:
        why = _short(d.refused[0], 400)
        return f"- **{r.stack}** refused change of `{d.type}` **{d.name}**: {why}"
    if d.hazards:
        why = _short(d.hazards[0], 500)
        return f"- **{r.stack}** unsafe in one `up`: `{d.type}` **{d.name}**: {why}"
    why = d.reasons[0] if d.reasons else "removed from the program"
    unprotect = " (the new plan unprotects it: unprotect in its own change first)"
    return (
        f"- **{r.stack}** {d.action} of protected `{d.type}` **{d.name}**: {_short(why, 300)}"
        + (unprotect if not d.protect_new and d.action == "replace" else "")
    )


def _summary(r: StackReview) -> list[str]:
    """The part of a stack's section that is never cut."""
    lines = [f"### {r.stack}", f"`{r.base}` → `{r.head}`", ""]
    if r.error:
        return [*lines, "❌ **the new plan cannot be made**:", "```", _short(r.error, 2000), "```"]
    assert r.cost_new is not None and r.cost_old is not None and r.capacity is not None
    c = counts(r.diffs)
    lines.append(
        f"**Plan**: {c['create']} to create, {c['update']} to update, {c['replace']} to replace, "
        f"{c['delete']} to delete."
    )
    replaced = [d for d in r.diffs if d.action == "replace"]
    if replaced:
        lines.append("Replacements (replace-forcing properties: tools/review_replace.py):")
        lines += _capped(_replacement_lines(replaced))
    if r.secrets_unknown:
        lines.append(f"⚠️ {r.secrets_unknown}")
    for d in r.diffs:
        lines += [f"⚠️ `{d.type}` **{d.name}**: {_short(c, 400)}" for c in d.cautions]
    unknown = sorted({d.type for d in r.diffs if not d.known_type})
    if unknown:
        lines.append(
            "⚠️ replace-forcing properties unknown for: " + ", ".join(f"`{t}`" for t in unknown)
        )
    p = r.policy
    if p.get("status") in ("passed", "failed"):
        verdict = "FAILED" if p["status"] == "failed" else "passed"
        lines.append(
            f"**Policy** (tools.policy, {p['policies']} policies, on the new plan): {verdict}: "
            f"{p['mandatory']} mandatory, {p['advisory']} advisory violation(s)."
        )
    else:
        lines.append(f"**Policy**: {_short(p.get('message', 'no verdict'), 400)}")
    lines.append(
        f"**Cost** per month: {_money(r.cost_old.minimum)}-{_money(r.cost_old.maximum)} → "
        f"{_money(r.cost_new.minimum)}-{_money(r.cost_new.maximum)} "
        f"({_delta(r.cost_new.minimum, r.cost_old.minimum)} at minimum nodes, "
        f"{_delta(r.cost_new.maximum, r.cost_old.maximum)} at maximum)"
    )
    lines += _cost_changes(r.cost_old, r.cost_new)
    lines += ["```", *cost_lines(r.cost_new), *capacity_lines(r.capacity), "```"]
    return lines


def _cost_changes(old: Cost, new: Cost) -> list[str]:
    """The cost items that differ between the plans, old -> new."""

    def amounts(cost: Cost) -> dict[str, str]:
        return {
            w: _money(lo) if lo == hi else f"{_money(lo)}-{_money(hi)}"
            for w, lo, hi, _ in cost.items
        }

    before, after = amounts(old), amounts(new)
    changed = [
        f"- {w}: {before.get(w, '—')} → {after.get(w, '—')}"
        for w in sorted(set(before) | set(after))
        if before.get(w) != after.get(w)
    ]
    return _capped(changed, 12)


def _replacement_lines(replaced: list[ResourceDiff]) -> list[str]:
    """One line per replaced resource, protected first; resources replaced for the same
    inherited reason (their provider is replaced) share one line."""
    by_reason: dict[str, list[ResourceDiff]] = {}
    for d in replaced:
        by_reason.setdefault(d.reasons[0], []).append(d)
    lines, shared = [], []
    for d in sorted(replaced, key=lambda d: (not d.protect_old, d.type, d.name)):
        group = by_reason[d.reasons[0]]
        if len(group) > 2 and not d.protect_old:
            if group not in shared:
                shared.append(group)
            continue
        lock = " 🔒 protected" if d.protect_old else ""
        lines.append(f"- `{d.type}` **{d.name}**{lock}: {_short(d.reasons[0], 240)}")
    for group in shared:
        names = ", ".join(d.name for d in group)
        lines.append(f"- {len(group)} resources: {group[0].reasons[0]} ({_short(names, 400)})")
    return lines


def _violations(r: StackReview) -> list[str]:
    return [f"- `{_short(v['message'], 600)}`" for v in r.policy.get("violations", [])]


def _change_line(c) -> str:
    mark = " **(replace)**" if c.replaces else ""
    if c.kind == "secret":
        return f"- `{c.path}`: [secret] **changed** (value not shown){mark}"
    if c.kind == "secret?":
        return f"- `{c.path}`: [secret], may have changed ({c.reason}){mark}"
    old = "—" if c.kind == "added" else f"`{_short(c.old)}`"
    new = "—" if c.kind == "removed" else f"`{_short(c.new)}`"
    return f"- `{c.path}`: {old} → {new}{mark}"


def _resource_block(d: ResourceDiff) -> str:
    lock = " 🔒 protected" if d.protect_old else ""
    head = f"- **{d.action}** `{d.type}` **{d.name}**{lock}"
    lines = [head]
    lines += [f"  - why: {_short(r, 300)}" for r in d.reasons[:3]]
    shown = 0
    for c in d.changes[:CHANGES_PER_RESOURCE]:
        line = "  " + _change_line(c)
        if sum(len(x) + 1 for x in lines) + len(line) > RESOURCE_BUDGET:
            break
        lines.append(line)
        shown += 1
    if shown < len(d.changes):
        lines.append(f"  - … {len(d.changes) - shown} more property change(s) (see --format json)")
    return "\n".join(lines)


def _grouped(diffs: list[ResourceDiff], action: str) -> list[str]:
    by_type: dict[str, list[str]] = {}
    for d in diffs:
        if d.action == action:
            mark = (" 🔒" if d.protect_old else "") + (
                " (retainOnDelete: only forgotten, it stays in the cloud)" if d.retained else ""
            )
            by_type.setdefault(d.type, []).append(d.name + mark)
    return [
        f"- **{action}** {len(names)} x `{t}`: {_short(', '.join(names), 800)}"
        for t, names in sorted(by_type.items())
    ]


def _details(r: StackReview) -> list[str]:
    """Detail blocks, most important first: blockers, replacements, updates, then the grouped
    creates and deletes."""
    order = {"replace": 1, "update": 2}
    changed = sorted(
        (d for d in r.diffs if d.action in order),
        key=lambda d: (not d.blocker, order[d.action], d.urn),
    )
    blocks = [_resource_block(d) for d in changed]
    return blocks + _grouped(r.diffs, "delete") + _grouped(r.diffs, "create")


def render_markdown(reviews: list[StackReview], budget: int = BUDGET) -> str:
    head = [
        MARKER,
        "## Offline plan review",
        "Offline: the real program under the mock engine (tools/engine.py), no cloud and no "
        "credentials; ids and IPs are fakes. Replace-forcing properties, prices and "
        "allocatable are tables in tools/ with their sources.",
        "",
        "| stack | create | update | replace | delete | blockers | policy | monthly cost "
        "(min-max nodes) | change | capacity |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *[_row(r) for r in reviews],
        "",
    ]
    blockers = [_blocker_line(r, d) for r in reviews for d in r.blockers]
    if blockers:
        head += [
            "### ⛔ Blockers: protected resources replaced or deleted, changes the API refuses or "
            "that are unsafe in one `up`",
            *_capped(blockers),
            "",
        ]
    summaries = {r.stack: "\n".join(_summary(r)) + "\n" for r in reviews}
    used = len("\n".join(head)) + sum(len(s) for s in summaries.values())
    extras: dict[str, list[str]] = {r.stack: [] for r in reviews}
    reserve = 400 * len(reviews)  # room for the "left out" notes
    remaining = budget - used - reserve

    def take(stack: str, text: str) -> bool:
        nonlocal remaining
        if len(text) + 1 > remaining:
            return False
        extras[stack].append(text)
        remaining -= len(text) + 1
        return True

    for r in reviews:
        if r.error:
            continue
        lines = _violations(r)
        if lines:
            take(r.stack, "**Policy violations** (new plan):")
            kept = []
            for line in lines:
                if not take(r.stack, line):
                    break
                kept.append(line)
            if len(kept) < len(lines):
                extras[r.stack].append(f"- … {len(lines) - len(kept)} more violation(s) not shown")
    for r in reviews:
        if r.error:
            continue
        limit = min(15_000, max(remaining // max(len(reviews), 1) - 200, 0))
        chart, note = diagram.mermaid(r.graph_old, r.graph_new, limit=limit)
        block = f"**Service graph** (thick: added, dashed: removed)\n```mermaid\n{chart}\n```"
        if note:
            block += f"\n_{note}_"
        if not take(r.stack, block):
            extras[r.stack].append("_service graph left out: over the comment budget_")
    share = {r.stack: remaining // max(len(reviews), 1) for r in reviews}
    for r in reviews:
        if r.error:
            continue
        blocks = _details(r)
        if not blocks:
            continue
        allowance, shown = share[r.stack], []
        for b in blocks:
            if len(b) + 1 > allowance:
                break
            shown.append(b)
            allowance -= len(b) + 1
        text = "\n".join(shown)
        left = len(blocks) - len(shown)
        more = f"\n\n_… {left} more not shown (budget); run `python -m tools.review` locally_"
        tail = more if left else ""
        take(r.stack, f"<details><summary>Changes</summary>\n\n{text}{tail}\n\n</details>")
    body = list(head)
    for r in reviews:
        body.append(summaries[r.stack])
        body += extras[r.stack]
        body.append("")
    text = "\n".join(body).rstrip() + "\n"
    if len(text) > budget:  # cannot happen unless the summaries alone exceed it
        text = text[: budget - 80] + "\n\n_… cut at the comment budget_\n"
    return text


# --- json ------------------------------------------------------------------------------------


def _change_json(c) -> dict[str, Any]:
    out: dict[str, Any] = {"path": c.path, "kind": c.kind, "replaces": c.replaces}
    if c.kind in ("secret", "secret?"):
        out.update(old=SECRET, new=SECRET, secret=True, changed=c.kind == "secret")
    else:
        out.update(old=c.old, new=c.new)
    if c.reason:
        out["reason"] = c.reason
    return out


def _cost_json(cost: Cost | None) -> dict[str, Any] | None:
    if cost is None:
        return None
    return {
        "minimum": round(cost.minimum, 2),
        "maximum": round(cost.maximum, 2),
        "items": [
            {"what": w, "minimum": round(lo, 2), "maximum": round(hi, 2), "detail": d}
            for w, lo, hi, d in cost.items
        ],
        "unpriced": cost.unpriced,
    }


def _capacity_json(check: Capacity | None) -> dict[str, Any] | None:
    if check is None:
        return None
    return {
        "fits": check.fits,
        "pools": [
            {
                "pool": p.pool.name,
                "size": p.pool.size,
                "nodes": p.pool.min_nodes,
                "cpuRequestedMilli": p.cpu,
                "cpuAllocatableMilli": p.cpu_allocatable,
                "memoryRequestedBytes": p.memory,
                "memoryAllocatableBytes": p.memory_allocatable,
                "fits": p.fits,
                "pods": p.pods,
                "oversized": p.oversized,
            }
            for p in check.pools
        ],
        "unschedulable": check.unplaced,
        "unmodelledCharts": check.unmodelled,
        "noRequests": check.no_requests,
        "unknownSizes": check.unknown_sizes,
    }


def render_json(reviews: list[StackReview]) -> dict[str, Any]:
    stacks = []
    for r in reviews:
        stacks.append(
            {
                "stack": r.stack,
                "base": r.base,
                "head": r.head,
                "error": r.error or None,
                "secretsUnknown": r.secrets_unknown or None,
                "summary": {**counts(r.diffs), "blockers": len(r.blockers)},
                "blockers": [d.urn for d in r.blockers],
                "resources": [
                    {
                        "urn": d.urn,
                        "type": d.type,
                        "name": d.name,
                        "action": d.action,
                        "protected": d.protect_old,
                        "protectedAfter": d.protect_new,
                        "blocker": d.blocker,
                        "refused": d.refused,
                        "retained": d.retained,
                        "cautions": d.cautions,
                        "hazards": d.hazards,
                        "knownType": d.known_type,
                        "reasons": d.reasons,
                        "changes": [_change_json(c) for c in d.changes],
                    }
                    for d in r.diffs
                ],
                "policy": r.policy,
                "cost": {"base": _cost_json(r.cost_old), "head": _cost_json(r.cost_new)},
                "capacity": _capacity_json(r.capacity),
                "graph": diagram.graph_json(r.graph_old, r.graph_new),
                "failed": r.failed,
            }
        )
    return {"stacks": stacks, "failed": any(r.failed for r in reviews)}


# --- command line ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.review", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "targets",
        nargs="+",
        help="OLD_PLAN_DIR NEW_PLAN_DIR, or with --base-ref one or more stack names",
    )
    parser.add_argument("--base-ref", help="git ref to compare the working tree with")
    parser.add_argument("--format", choices=("markdown", "json"), default="markdown")
    parser.add_argument(
        "--json-out",
        type=Path,
        metavar="FILE",
        help="also write the JSON form to FILE (a new file: an existing one is never replaced)",
    )
    args = parser.parse_args(argv)
    try:
        if args.json_out is not None and (args.json_out.exists() or args.json_out.is_symlink()):
            raise ReviewError(f"--json-out {args.json_out}: exists; refusing to replace it")
        if args.base_ref:
            reviews = review_ref(args.targets, args.base_ref)
        else:
            if len(args.targets) != 2:
                raise ReviewError(
                    "pass OLD_PLAN_DIR NEW_PLAN_DIR (two tools.plan folders), "
                    "or STACK --base-ref REF"
                )
            old_dir, new_dir = (Path(t) for t in args.targets)
            old, new = load_plan(old_dir), load_plan(new_dir)
            reviews = [review_plans(old, new, new_dir)]
    except (ReviewError, PlanError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json_out is not None:
        text = json.dumps(render_json(reviews), indent=2, sort_keys=True, default=str)
        args.json_out.write_text(text + "\n")
    if args.format == "json":
        print(json.dumps(render_json(reviews), indent=2, sort_keys=True, default=str))
    else:
        sys.stdout.write(render_markdown(reviews))
    return 1 if any(r.failed for r in reviews) else 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    with contextlib.suppress(Exception):
        sys.stdout.close()
    # The policy pack's analyzer leaves gRPC threads whose teardown at exit prints noise.
    os._exit(code)
