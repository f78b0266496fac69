"""The diff of two offline plans (`tools.plan` folders): what `pulumi up` would create, update,
replace or delete, per resource and per property, with protected resources that would be
replaced or deleted, and changes the cloud's API refuses, marked as blockers. Where the program
sets `ignore_changes`, `pulumi up` keeps the state's value, so those paths are no change.

Why offline: a cloud preview needs credentials (so never runs for a fork) and the PR comment of
pulumi/actions is cut at 64,000 characters; the plan folders are deterministic, so the same
program at two commits diffs exactly. Replacements come from the replace-forcing table
(`tools/review_replace.py`) and propagate the way a real preview shows them: an input that takes
the id of a replaced resource becomes unknown, so a replace-forcing input replaces its resource
too, and every resource of a replaced provider is replaced.

Secrets stay masked (`[secret]`); whether one changed is told from `digests.json`, which
`tools.plan` writes beside `resources.json`: sha256 of each resource's inputs as sent (secrets
included) and, where the engine keeps the wire inputs, of each secret value. The offline engine
only ever holds placeholders or values derived from them, never a real secret. Pure: no Pulumi.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools import json_text, plan_folder, review_replace
from tools.export import secret_envelopes
from tools.plan_folder import stack_of

SECRET = "[secret]"
UNKNOWN = "[unknown]"
DIGESTS = "digests.json"
PROTECT = "(option) protect"  # the property path a change of the protect option is shown as
_TOKEN_MIN = 10  # an invented value shorter than this is not searched for in other inputs


class PlanError(Exception):
    """A folder that is not a readable plan; the message says what to pass instead."""


# --- digests (written by tools.plan) ----------------------------------------------------------


def _secret_digests(value: Any) -> Iterator[tuple[str, str]]:
    """(path, sha256 of the secret's value) for every secret in a wire value."""
    for path, envelope in secret_envelopes(value):
        text = json.dumps(envelope.get("value"), sort_keys=True)
        yield path, hashlib.sha256(text.encode()).hexdigest()


def digests_document(resources: Iterable[Any]) -> dict[str, Any]:
    """`digests.json` for a run's resources: per URN the sha256 of its inputs as sent and, when
    the engine kept the wire inputs, of each secret value by property path."""
    out: dict[str, Any] = {}
    for r in sorted(resources, key=lambda r: r.urn):
        entry: dict[str, Any] = {"inputs": r.inputs_digest}
        wire = getattr(r, "wire_inputs", None)
        if wire:
            entry["secrets"] = dict(_secret_digests(wire))
        out[r.urn] = entry
    return {
        "_note": "sha256 of each resource's inputs as sent, and of each secret value: lets the "
        "review say that a [secret] changed without showing it (offline values only)",
        "resources": out,
    }


def digests_text(resources: Iterable[Any]) -> str:
    return json_text.dumps(digests_document(resources), sort_keys=True) + "\n"


# --- plans ------------------------------------------------------------------------------------


@dataclass
class Plan:
    """One plan folder's resources by URN, and its digests (None for a plan written before
    digests existed)."""

    stack: str
    resources: dict[str, dict[str, Any]]
    digests: dict[str, dict[str, Any]] | None
    label: str = ""


def load_plan(directory: Path, label: str = "") -> Plan:
    """Read `resources.json` (and `digests.json` when present) of a `tools.plan` folder."""
    try:
        data = plan_folder.read_resources(directory)
    except plan_folder.PlanFolderError as error:
        raise PlanError(str(error)) from None
    stacks = sorted({stack_of(r["urn"]) for r in data})
    digests = None
    try:
        doc = json.loads((directory / DIGESTS).read_text(encoding="utf-8"))
        digests = doc.get("resources") if isinstance(doc, dict) else None
    except (OSError, ValueError):
        digests = None
    return Plan(
        stacks[0] if stacks else "",
        {r["urn"]: r for r in data},
        digests if isinstance(digests, dict) else None,
        label or str(directory),
    )


def empty_plan(stack: str, label: str) -> Plan:
    """The base of a stack that does not exist yet: everything is created."""
    return Plan(stack, {}, {}, label)


# --- property diffs ---------------------------------------------------------------------------


@dataclass
class Change:
    """One property that differs: kind added | removed | changed | secret (a [secret] whose
    value changed) | secret? (a [secret] that may have changed: no digest tells)."""

    path: str
    kind: str
    old: Any = None
    new: Any = None
    replaces: bool = False
    reason: str = ""


def _keyed(items: list[Any]) -> dict[str, Any] | None:
    """A list of objects each with a unique `name`, keyed by it (ports, containers, rules)."""
    if not items or not all(isinstance(i, dict) and isinstance(i.get("name"), str) for i in items):
        return None
    keyed = {i["name"]: i for i in items}
    return keyed if len(keyed) == len(items) else None


def property_changes(old: Any, new: Any, path: str = "") -> list[Change]:
    """Leaf-level differences between two input trees."""
    if old == new:
        return []
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[Change] = []
        for k in sorted(set(old) | set(new)):
            sub = f"{path}.{k}" if path else k
            if k not in old:
                out.append(Change(sub, "added", None, new[k]))
            elif k not in new:
                out.append(Change(sub, "removed", old[k], None))
            else:
                out += property_changes(old[k], new[k], sub)
        return out
    if isinstance(old, list) and isinstance(new, list):
        ko, kn = _keyed(old), _keyed(new)
        if ko is not None and kn is not None:
            return property_changes(ko, kn, path)
        out = []
        for i in range(max(len(old), len(new))):
            sub = f"{path}[{i}]"
            if i >= len(old):
                out.append(Change(sub, "added", None, new[i]))
            elif i >= len(new):
                out.append(Change(sub, "removed", old[i], None))
            else:
                out += property_changes(old[i], new[i], sub)
        return out
    return [Change(path, "changed", old, new)]


def _secret_paths(value: Any, path: str = "") -> Iterator[str]:
    if value == SECRET:
        yield path
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _secret_paths(v, f"{path}.{k}" if path else k)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _secret_paths(v, f"{path}[{i}]")


def secret_changes(
    urn: str, old_inputs: dict[str, Any], new_inputs: dict[str, Any], old: Plan, new: Plan
) -> list[Change]:
    """[secret] values present in both plans at the same path, and whether each changed."""
    both = sorted(set(_secret_paths(old_inputs)) & set(_secret_paths(new_inputs)))
    if not both:
        return []
    od = (old.digests or {}).get(urn) if old.digests is not None else None
    nd = (new.digests or {}).get(urn) if new.digests is not None else None
    if od is None or nd is None:
        why = "no digests.json in the " + ("base" if od is None else "new") + " plan"
        return [Change(p, "secret?", SECRET, SECRET, reason=why) for p in both]
    os_, ns = od.get("secrets"), nd.get("secrets")
    if isinstance(os_, dict) and isinstance(ns, dict):
        return [
            Change(p, "secret", SECRET, SECRET)
            for p in both
            if os_.get(p) is not None and os_.get(p) != ns.get(p)
        ]
    if od.get("inputs") == nd.get("inputs"):
        return []
    if old_inputs == new_inputs:  # only a secret can account for the different digest
        reason = "" if len(both) == 1 else f"one or more of the {len(both)} secrets"
        return [Change(p, "secret", SECRET, SECRET, reason=reason) for p in both]
    return [
        Change(p, "secret?", SECRET, SECRET, reason="the digest covers the whole resource")
        for p in both
    ]


# --- resources --------------------------------------------------------------------------------


@dataclass
class ResourceDiff:
    """What happens to one resource: create | update | replace | delete."""

    urn: str
    type: str
    name: str
    action: str
    protect_old: bool = False
    protect_new: bool = False
    changes: list[Change] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    known_type: bool = True
    # Changes the cloud's API refuses though the provider sends them (review_replace.Refusal).
    refused: list[str] = field(default_factory=list)
    # Deleted from the program but `retainOnDelete` in the state: Pulumi only forgets it.
    retained: bool = False
    # What to check before applying an update that may still go wrong (`_caution`).
    cautions: list[str] = field(default_factory=list)
    # Changes that break the running platform when made in one `up` (`_hazards`).
    hazards: list[str] = field(default_factory=list)

    @property
    def blocker(self) -> bool:
        """`pulumi up` stops here, or must not run as planned: protected in the state (the base
        plan) and replaced or deleted, a change the API refuses, or one unsafe in one `up`."""
        if self.refused or self.hazards:
            return True
        return self.protect_old and self.action in ("replace", "delete")


def _version(text: Any) -> tuple[int, ...]:
    digits = "".join(c if c.isdigit() else " " for c in str(text)).split()
    return tuple(int(d) for d in digits)


def _provider_flag(plan: Plan, record: dict[str, Any], flag: str) -> bool:
    ref = record.get("provider") or ""
    provider = plan.resources.get(ref.rsplit("::", 1)[0]) if "::" in ref else None
    value = (provider or {}).get("inputs", {}).get(flag)
    return str(value).lower() == "true"


def _forces(
    rule: review_replace.TypeRule, change: Change, old: dict[str, Any], new: dict[str, Any], plan
) -> str | None:
    """Why `change` replaces the resource under `rule`, or None."""
    for p in rule.paths:
        if review_replace.covers(p, change.path):
            return f"{change.path} is replace-forcing ({rule.source})"
    if not any(review_replace.covers(p, change.path) for p in rule.conditional_paths):
        return None
    if rule.condition == "version-decrease":
        if _version(change.new) < _version(change.old):
            return f"version goes down ({change.old} -> {change.new}): {rule.source}"
        return None
    if rule.condition == "cluster-identifier":
        o, n = old["inputs"].get("clusterIdentifier"), new["inputs"].get("clusterIdentifier")
        if o is not None and n is not None:
            if change.path == "clusterIdentifier" and o != n:
                return f"clusterIdentifier changes ({rule.source})"
            return None
        if change.path != "clusterIdentifier":
            return f"{change.path} changes and no clusterIdentifier is set ({rule.source})"
        return None
    if rule.condition in ("mutable-secret", "mutable-configmap"):
        flag = (
            "enableSecretMutable"
            if rule.condition == "mutable-secret"
            else ("enableConfigMapMutable")
        )
        immutable = new["inputs"].get("immutable") is True
        if immutable or not _provider_flag(plan, new, flag):
            why = "it is immutable" if immutable else f"the provider does not set {flag}"
            return f"{change.path} changes and {why} ({rule.source})"
    return None


def _caution(
    rule: review_replace.TypeRule, change: Change, old: dict[str, Any], new: dict[str, Any]
) -> str | None:
    """What may still go wrong with a change the table calls an update: a version pinned in
    the same minor the base left to DOKS (which applies that minor's patches in its window) may
    be below the live one, and a lower version replaces the cluster. A higher minor is never
    below the live version."""
    if rule.condition != "version-decrease" or change.path != "version":
        return None
    if change.path not in _ignored(old) or change.path in _ignored(new):
        return None
    if _version(change.new)[:2] != _version(change.old)[:2]:
        return None
    return (
        f"version {change.new} is pinned in the minor the base left to DOKS, which may have "
        f"patched the live cluster past it offline unseen: a live version above {change.new} "
        f"would go down, which replaces the cluster ({rule.source}). Compare with "
        "`doctl kubernetes cluster get <name> --format Version` first"
    )


def _ignored(record: dict[str, Any]) -> list[str]:
    return list(record.get("ignoreChanges") or ())


def _refusals(rule: review_replace.TypeRule | None, change: Change) -> list[str]:
    if rule is None:
        return []
    return [
        f"{change.path} {change.old} -> {change.new}: {r.why}"
        for r in rule.refused
        if review_replace.covers(r.path, change.path)
        and change.old == r.old
        and change.new == r.new
    ]


def _tokens(record: dict[str, Any]) -> set[str]:
    """The values the fake cloud gives a resource (its id, invented outputs): an input holding
    one of them takes that resource's output, which a replacement changes."""
    from tools import engine

    id_ = engine._fake_id(record["type"], record["name"])
    tokens = {id_}
    extra = engine.FAKE_OUTPUTS.get(record["type"])
    if extra is not None:
        invented = extra(record["name"], record.get("inputs") or {}, id_)
        tokens |= {s for s in engine._strings(invented) if len(s) >= _TOKEN_MIN}
    return tokens


def _paths_holding(value: Any, tokens: set[str], path: str = "") -> Iterator[str]:
    if isinstance(value, str):
        if any(t in value for t in tokens):
            yield path
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _paths_holding(v, tokens, f"{path}.{k}" if path else k)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths_holding(v, tokens, f"{path}[{i}]")


def diff_plans(old: Plan, new: Plan) -> list[ResourceDiff]:
    """Every resource that changes between `old` and `new`, sorted by URN."""
    diffs: dict[str, ResourceDiff] = {}
    for urn in sorted(set(old.resources) | set(new.resources)):
        o, n = old.resources.get(urn), new.resources.get(urn)
        rec = n or o
        assert rec is not None
        rule = review_replace.rule(rec["type"])
        d = ResourceDiff(
            urn,
            rec["type"],
            rec["name"],
            "update",
            bool(o and o.get("protect")),
            bool(n and n.get("protect")),
            known_type=rule is not None,
        )
        if o is None or n is None:
            d.action = "create" if o is None else "delete"
            d.retained = bool(o and o.get("retainOnDelete"))
            diffs[urn] = d
            continue
        # `pulumi up` keeps the state's value where the program ignores changes.
        kept = _ignored(n)
        changes = [
            c
            for c in property_changes(o["inputs"], n["inputs"])
            if not any(review_replace.covers(p, c.path) for p in kept)
        ]
        if bool(o.get("protect")) != bool(n.get("protect")):  # a resource option, in the state
            changes.append(
                Change(PROTECT, "changed", bool(o.get("protect")), bool(n.get("protect")))
            )
        if not changes and (old.digests is None or new.digests is None):
            continue  # nothing tells a secret change apart: the review says so once
        changes += secret_changes(urn, o["inputs"], n["inputs"], old, new)
        if not changes:
            continue
        for c in changes:
            why = _forces(rule, c, o, n, new) if rule is not None else None
            if why and c.kind == "secret?":
                c.reason += "; it replaces the resource if it changed"
            elif why:
                c.replaces, c.reason = True, why
            if refusals := _refusals(rule, c):
                d.refused += refusals
                c.reason = c.reason or refusals[0]
            if not c.replaces and rule is not None and (caution := _caution(rule, c, o, n)):
                d.cautions.append(caution)
                c.reason = c.reason or caution
        d.changes = changes
        d.reasons = [c.reason for c in changes if c.replaces]
        d.action = "replace" if d.reasons else "update"
        diffs[urn] = d
    _propagate(diffs, old, new)
    for d in diffs.values():
        if d.action == "replace" and d.type in review_replace.NO_OVERLAP_ON_REPLACE:
            d.refused += _overlap(d, old.resources[d.urn], new.resources[d.urn])
    _default_revision_hazard(diffs, old, new)
    return [diffs[u] for u in sorted(diffs)]


HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
ISTIO_BASE = "istio-base"


def _releases(plan: Plan) -> dict[str, dict[str, Any]]:
    return {
        str((r.get("inputs") or {}).get("name")): r
        for r in plan.resources.values()
        if r["type"] == HELM_RELEASE
    }


def _default_revision(base: dict[str, Any]) -> str:
    return str(((base.get("inputs") or {}).get("values") or {}).get("defaultRevision") or "")


def _default_revision_hazard(diffs: dict[str, ResourceDiff], old: Plan, new: Plan) -> None:
    """The base chart's default validating webhook points at `istiod-<defaultRevision>`
    (manifests/charts/base/templates/defaultrevision-validatingwebhookconfiguration.yaml, Istio
    1.30.3), and every istiod release depends on `istio-base`, so it is upgraded first. Moving
    `default` to a revision this same `up` installs leaves every create or update of an Istio
    object failing validation ("service istiod-<rev> not found") until that istiod is ready,
    for good if its install fails and is rolled back. A new stack is not at risk: its Istio
    objects wait for the default istiod."""
    before, after = _releases(old), _releases(new)
    base = after.get(ISTIO_BASE)
    if ISTIO_BASE not in before or base is None:
        return
    revision = _default_revision(base)
    if not revision or revision == _default_revision(before[ISTIO_BASE]):
        return
    d = diffs.get(base["urn"])
    if f"istiod-{revision}" in before or d is None:
        return
    d.hazards.append(
        f"defaultRevision moves to {revision}, whose istiod (istiod-{revision}) this same up "
        "installs: istio-base is upgraded first, and until that istiod is ready every create "
        "or update of an Istio object fails validation (for good if its install is rolled "
        "back). Add the revision in one up (P1), move the tags in a later one (P3): "
        "docs/ingress.md"
    )


def _overlap(d: ResourceDiff, old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The replacement overlaps the resource it replaces, which still exists when it is made."""
    prop, why = review_replace.NO_OVERLAP_ON_REPLACE[d.type]
    a, b = old["inputs"].get(prop), new["inputs"].get(prop)
    try:
        overlaps = ipaddress.ip_network(a).overlaps(ipaddress.ip_network(b))
    except (TypeError, ValueError):  # not a range offline (unknown, secret): cannot tell
        return []
    return [f"{prop} {b} overlaps the replaced {a}: {why}"] if overlaps else []


def _propagate(diffs: dict[str, ResourceDiff], old: Plan, new: Plan) -> None:
    """Replacements reach dependents: a replaced provider replaces what it manages, and an input
    taking a replaced resource's output becomes unknown (replace-forcing: replaced too)."""
    replaced: set[str] = set()
    while True:
        fresh = {u for u, d in diffs.items() if d.action == "replace"} - replaced
        if not fresh:
            return
        replaced |= fresh
        tokens = {u: _tokens(new.resources[u]) for u in fresh if u in new.resources}
        for urn, rec in new.resources.items():
            if urn not in old.resources:
                continue
            d = diffs.get(urn)
            if d is not None and d.action in ("replace", "delete"):
                continue
            provider = (rec.get("provider") or "").rsplit("::", 1)[0]
            reasons: list[str] = []
            extra: list[Change] = []
            if provider in fresh:
                reasons.append(f"its provider {new.resources[provider]['name']} is replaced")
            rule = review_replace.rule(rec["type"])
            kept = _ignored(rec)
            for dep in fresh & set(rec.get("dependencies") or []):
                name = new.resources[dep]["name"]
                for p in _paths_holding(rec.get("inputs"), tokens.get(dep, set())):
                    if any(review_replace.covers(q, p) for q in kept):
                        continue  # `pulumi up` keeps the state's value there
                    change = Change(p, "changed", _at(rec["inputs"], p), f"{UNKNOWN} ({name})")
                    forced = rule is not None and (
                        any(review_replace.covers(q, p) for q in rule.paths)
                        or (rule.condition == "cluster-identifier" and p == "clusterIdentifier")
                    )
                    if forced:
                        change.replaces = True
                        change.reason = f"{p} takes an output of {name}, which is replaced"
                        reasons.append(change.reason)
                    extra.append(change)
            if not reasons and not extra:
                continue
            if d is None:
                d = diffs[urn] = ResourceDiff(
                    urn,
                    rec["type"],
                    rec["name"],
                    "update",
                    bool(old.resources[urn].get("protect")),
                    bool(rec.get("protect")),
                    known_type=rule is not None,
                )
            known = {c.path for c in d.changes}
            d.changes += [c for c in extra if c.path not in known]
            if reasons:
                d.action = "replace"
                d.reasons += reasons


def _at(value: Any, path: str) -> Any:
    for part in path.replace("[", ".[").split("."):
        if not part:
            continue
        if part.startswith("["):
            value = value[int(part[1:-1])]
        else:
            value = value[part]
    return value


def counts(diffs: Iterable[ResourceDiff]) -> dict[str, int]:
    out = {"create": 0, "update": 0, "replace": 0, "delete": 0}
    for d in diffs:
        out[d.action] += 1
    return out
